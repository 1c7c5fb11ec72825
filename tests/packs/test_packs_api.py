"""POST /v1/packs, GET /v1/expressions and the pack exports, in process (the test plays
the worker)."""

from __future__ import annotations

import io
import json
import zipfile

from accounts.helpers import Client, bearer
from PIL import Image

from sticker_maker.accounts import billing
from sticker_maker.expressions import BUILT_IN, DEFAULT_EMOJI, MAX_PACK
from sticker_maker.jobs import Job, OutputFile
from sticker_maker.storage import new_file_name


def _pack(client: Client, key: str, **fields: object) -> object:
    body = {"character": "a corgi in a red scarf", **fields}
    return client.post("/v1/packs", headers=bearer(key), json=body)


def _fields(response: object) -> list[str]:
    return [f["field"] for f in response.json()["error"]["fields"]]  # type: ignore[attr-defined]


def _sticker(colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((*colour, 255), (12, 12, 52, 52))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (200, 200, 40)]


def _which(image: Image.Image) -> int:
    """Which of COLOURS the middle of a (lossy) exported sticker is."""
    pixel = image.convert("RGBA").getpixel((image.width // 2, image.height // 2))
    return min(
        range(len(COLOURS)),
        key=lambda i: sum(abs(a - b) for a, b in zip(pixel[:3], COLOURS[i], strict=True)),
    )


def _finish(client: Client, job: Job) -> Job:
    """Play the worker for a pack: an image and a sticker per expression, written to the
    output array in reverse order (exports must go by ``index``)."""
    outputs = []
    for index, expression in reversed(list(enumerate(job.input.expressions))):
        for kind in ("image", "sticker"):
            name = new_file_name("png")
            client.svc.storage.put(name, _sticker(COLOURS[index % len(COLOURS)]))
            outputs.append(
                OutputFile(
                    name,
                    kind,
                    index,
                    job.input.seed,
                    64,
                    64,
                    "image/png",
                    expression.name,
                    expression.emoji,
                )
            )
    assert client.svc.jobs.complete(job, outputs, 2.0)
    return client.svc.jobs.get(job.id)


def test_a_pack_of_count_is_one_job_of_the_first_built_in_expressions(client: Client) -> None:
    key = client.new_key(credits=1000)
    response = _pack(client, key, count=4, seed=7)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "pack" and body["status"] == "queued"
    assert body["input"]["samples"] == 4 and body["input"]["seed"] == 7
    assert body["input"]["prompt"] == "a corgi in a red scarf"
    names = [e["name"] for e in body["input"]["expressions"]]
    assert names == ["happy", "sad", "angry", "love"]
    assert [e["emoji"] for e in body["input"]["expressions"]] == ["😄", "😢", "😠", "😍"]
    assert body["queue_position"] == 0

    # one job, its four stickers billed like four samples: reserved now
    job = client.svc.jobs.get(body["id"])
    assert job.input.seeds() == [7, 7, 7, 7]
    prompts = job.input.prompts()
    assert prompts[0] == "a corgi in a red scarf, happy, big smile"
    settings = client.svc.settings
    reserved = billing.reservation(job.input, 1.0, settings)
    single = billing.reservation(job.input.model_copy(update={"samples": 1}), 1.0, settings)
    assert reserved > single
    balance = client.get("/v1/account", headers=bearer(key)).json()["balance"]
    assert abs(balance - (1000 - reserved)) < 1e-6

    listed = client.get(f"/v1/jobs/{body['id']}", headers=bearer(key)).json()
    assert listed["kind"] == "pack"


def test_default_count_and_custom_expressions_get_fitting_emoji(client: Client) -> None:
    key = client.new_key()
    default = _pack(client, key).json()
    assert len(default["input"]["expressions"]) == 8
    response = _pack(
        client,
        key,
        expressions=[
            "Happy",
            "very sleepy",
            "eating pizza",
            "lol",
            {"name": "birthday", "emoji": "🎂", "prompt": "holding a birthday cake"},
        ],
    )
    assert response.status_code == 201, response.text
    got = [(e["name"], e["emoji"], e["prompt"]) for e in response.json()["input"]["expressions"]]
    assert got == [
        ("happy", "😄", "happy, big smile"),
        ("very sleepy", "😴", "very sleepy"),
        ("eating pizza", DEFAULT_EMOJI, "eating pizza"),
        ("lol", "😂", "lol"),
        ("birthday", "🎂", "holding a birthday cake"),
    ]


def test_bad_packs_are_refused_naming_the_field(client: Client) -> None:
    key = client.new_key()
    cases = [
        ({"expressions": ["happy", "  ", "sad"]}, "expressions[1]"),
        ({"expressions": ["happy", ""]}, "expressions[1]"),
        ({"expressions": ["x"] * (MAX_PACK + 1)}, "expressions"),
        ({"expressions": []}, "expressions"),
        ({"expressions": ["happy", 3]}, "expressions[1]"),
        ({"expressions": ["happy", "x" * 61]}, "expressions[1]"),
        ({"expressions": [{"name": "happy", "colour": "red"}]}, "expressions[0].colour"),
        ({"expressions": ["happy"], "count": 2}, "count"),
        ({"count": MAX_PACK + 1}, "count"),
        ({"count": 0}, "count"),
        ({"character": "   "}, "character"),
        ({"character": ""}, "character"),
        ({"width": 100}, "width"),
        ({"preset": "no-such-preset"}, "preset"),
        ({"prompt_strength": 5, "guidance_scale": 5}, "prompt_strength"),
        ({"ip_adapter_weight": 0.5}, "ip_adapter_weight"),
    ]
    for fields, field in cases:
        response = _pack(client, key, **fields)
        assert response.status_code == 400, (fields, response.text)
        assert field in _fields(response), (fields, response.json())
    assert client.svc.jobs.list_for_key(key.split("_")[1]) == []


def test_credits_short_for_a_big_pack_is_406_and_queues_nothing(client: Client) -> None:
    key = client.new_key(credits=1)
    response = _pack(client, key, count=MAX_PACK)
    assert response.status_code == 406, response.text
    assert client.svc.jobs.list_for_key(key.split("_")[1]) == []


def test_expressions_route_lists_the_built_in_ones(client: Client) -> None:
    body = client.get("/v1/expressions").json()
    assert body["max_pack"] == MAX_PACK == 30 and body["default_count"] == 8
    names = [e["name"] for e in body["expressions"]]
    assert len(names) == len(BUILT_IN) >= 16 and len(set(names)) == len(names)
    for wanted in ("happy", "sad", "angry", "love", "laughing", "surprised", "thumbs up"):
        assert wanted in names
    assert all(e["emoji"] and e["prompt"] for e in body["expressions"])


def test_pack_exports_whatsapp_and_telegram_in_index_order(client: Client) -> None:
    key = client.new_key()
    created = _pack(client, key, expressions=["happy", "sad", "love", "eating pizza"]).json()
    early = client.get(f"/v1/packs/{created['id']}/export/whatsapp", headers=bearer(key))
    assert early.status_code == 409, early.text

    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None and job.id == created["id"]
    _finish(client, job)
    envelope = client.get(f"/v1/jobs/{job.id}", headers=bearer(key)).json()
    assert envelope["output"][0]["expression"] == "eating pizza"  # reversed in the array
    assert envelope["output"][0]["emoji"] == DEFAULT_EMOJI

    response = client.get(
        f"/v1/packs/{job.id}/export/whatsapp",
        headers=bearer(key),
        params={"name": "Corgi", "publisher": "me"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        contents = json.loads(zf.read("contents.json"))
        pack = contents["sticker_packs"][0]
        assert pack["name"] == "Corgi" and pack["publisher"] == "me"
        assert [s["emojis"] for s in pack["stickers"]] == [["😄"], ["😢"], ["😍"], [DEFAULT_EMOJI]]
        first = Image.open(io.BytesIO(zf.read("01.webp")))
        assert first.size == (512, 512)
        assert _which(first) == 0  # index 0 first, not the output array's first
        assert Image.open(io.BytesIO(zf.read("tray.png"))).size == (96, 96)

    response = client.get(f"/v1/packs/{job.id}/export/telegram", headers=bearer(key))
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        listed = json.loads(zf.read("pack.json"))
        assert listed["name"] == "a corgi in a red scarf"
        files = [s["file"] for s in listed["stickers"]]
        assert [s["emoji_list"] for s in listed["stickers"]] == [["😄"], ["😢"], ["😍"], ["🙂"]]
        assert zf.read("emojis.txt").decode().splitlines()[0] == f"{files[0]} 😄 happy"
        for name in files:
            data = zf.read(name)
            assert len(data) <= 512 * 1024
            sticker = Image.open(io.BytesIO(data))
            assert max(sticker.size) == 512 and min(sticker.size) <= 512
        assert [_which(Image.open(io.BytesIO(zf.read(f)))) for f in files] == [0, 1, 2, 3]
        assert Image.open(io.BytesIO(zf.read("icon.png"))).size == (100, 100)

    bad = client.get(f"/v1/packs/{job.id}/export/signal", headers=bearer(key))
    assert bad.status_code == 400 and "target" in _fields(bad)
    other = client.new_key()
    assert (
        client.get(f"/v1/packs/{job.id}/export/telegram", headers=bearer(other)).status_code == 404
    )


def test_a_pack_too_small_for_whatsapp_says_so(client: Client) -> None:
    key = client.new_key()
    created = _pack(client, key, expressions=["happy", "sad"]).json()
    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None and job.id == created["id"]
    _finish(client, job)
    response = client.get(f"/v1/packs/{job.id}/export/whatsapp", headers=bearer(key))
    assert response.status_code == 400, response.text
    assert "3 to 30" in response.text and "target" in _fields(response)
    assert client.get(f"/v1/packs/{job.id}/export/telegram", headers=bearer(key)).status_code == 200


def test_custom_expression_prompts_pass_the_content_policy(client: Client) -> None:
    """A pack's expression words are screened with its character."""
    from sticker_maker.safety import Findings

    seen: list[str] = []
    screen = client.svc.jobs.admission.prompts  # type: ignore[union-attr]
    original = screen.findings

    def findings(text: str) -> Findings:
        seen.append(text)
        return original(text)

    screen.findings = findings  # type: ignore[method-assign]
    key = client.new_key()
    assert _pack(client, key, expressions=["happy", "juggling"]).status_code == 201
    assert seen and "juggling" in seen[-1] and "a corgi" in seen[-1]
