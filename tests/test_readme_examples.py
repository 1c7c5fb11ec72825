"""Every example in the README runs as written against a real server with the tiny model.

Each ``bash`` and ``python`` block of README.md is run, or listed in :data:`NOT_RUN` with the
reason and where it is tested instead (a usage synopsis is fenced as ``text``, not an
example). The bash blocks of one section run in one shell, in order, as a reader would type
them into one terminal (a later block may use a variable an earlier one set). Only this
server's address, its keys and the tiny presets replace the README's: ``localhost:8000``,
``http://127.0.0.1:8000`` and ``http://gpu-box:8000`` become this server; ``sm_…`` and
``$KEY`` its key; ``sm_AbCd1234`` a key made for the example; a size of 1024 the tiny
model's 64 (a CPU denoises 64² in a second, 1024² in minutes). ``cat.jpg``, ``sheet.png``
and ``me.jpg`` (a real photo of a face, scikit-image's astronaut), which the examples
upload, are in the working folder; ``sticker-maker`` is this checkout's, and the replicate
client's ``REPLICATE_BASE_URL`` and token are this server's and key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer
from PIL import Image, ImageDraw
from skimage import data as skimage_data

pytestmark = pytest.mark.slow  # a real server, the CLI and the clients: about 3 minutes

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.DOTALL | re.MULTILINE)
REPLICATE = "the Replicate section: tests/replicate_api/test_replicate_edges.py runs it as written"
#: a line of the block → why it is not run here, and where it is tested
NOT_RUN = {
    "make serve   #": "installs a venv and starts a server: every test server is `serve` as "
    "the README gives it (tests/conftest.py), and CI runs `make test` (.ci/run)",
    "export REPLICATE_BASE_URL=": REPLICATE,
    "quick = {": REPLICATE,
    'curl -s "$REPLICATE_BASE_URL': REPLICATE,
    "export STICKER_MAKER_DATABASE_URL=postgresql": "needs PostgreSQL and S3 by those names: "
    "tests/scale and tests/fleet run that setup (db upgrade, serve --no-worker, worker)",
    "python bench/fullsize.py": "builds the real-size SDXL (minutes, 15 GiB): "
    "tests/benchmarks/test_fullsize.py checks its parts",
}


def _blocks() -> list[tuple[str, str, str]]:
    """(section heading, language, code) of every bash and python block, in order."""
    text = README.read_text()
    found = []
    for match in BLOCK.finditer(text):
        headings = re.findall(r"^#{2,3} .*$", text[: match.start()], flags=re.MULTILINE)
        found.append((headings[-1], match.group(1), match.group(2)))
    return found


def _why_not_run(code: str) -> str | None:
    return next((why for line, why in NOT_RUN.items() if line in code), None)


def test_every_example_is_run_or_says_why_not() -> None:
    blocks = _blocks()
    assert len(blocks) >= 20
    skipped = [code for _, _, code in blocks if _why_not_run(code)]
    # each reason is used (a README change cannot leave a stale entry behind)
    assert {_why_not_run(code) for code in skipped} == set(NOT_RUN.values())
    assert len(skipped) <= 6, "examples are meant to run: fix the example, not this list"


def _art(path: Path, size: tuple[int, int], discs: int) -> None:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    slot = size[0] // discs
    for i in range(discs):
        cx, cy, r = slot * i + slot // 2, size[1] // 2, min(slot, size[1]) // 3
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(40 + 90 * i, 120, 200), width=3)
    image.save(path)


@pytest.fixture(scope="module")
def place(
    shared_server: RunningServer, presets_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The working folder, environment and substitutions the examples run with."""
    folder = tmp_path_factory.mktemp("readme")
    _art(folder / "cat.jpg", (160, 160), 1)
    _art(folder / "sheet.png", (540, 140), 3)
    Image.fromarray(skimage_data.astronaut()).save(folder / "me.jpg")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sticker-maker"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sticker_maker "$@"\n')
    shim.chmod(0o755)
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "sticker-maker").symlink_to(shim)
    key = shared_server.new_key(credits=100_000, admin=True)  # the SDK example makes a key
    other = shared_server.new_key(credits=10)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "KEY": key,
        "STICKER_MAKER_HOME": str(shared_server.home),
        "STICKER_MAKER_PRESETS": str(presets_file),
        "REPLICATE_BASE_URL": shared_server.url,
        "REPLICATE_API_TOKEN": key,
    }
    env.pop("STICKER_MAKER_URL", None)
    env.pop("STICKER_MAKER_API_KEY", None)
    _warm_up(shared_server.url, key)
    host = shared_server.url.removeprefix("http://")
    swaps = {
        "http://127.0.0.1:8000": shared_server.url,
        "http://gpu-box:8000": shared_server.url,
        "localhost:8000": host,
        "sm_AbCd1234": other[: other.index("_", 3)],  # its prefix, sm_<id>
        "sm_…": key,
    }
    yield {"folder": folder, "env": env, "swaps": swaps, "key": key, "url": shared_server.url}
    # the examples' unfinished jobs end here (they would hold the shared server's worker)
    auth = {"Authorization": f"Bearer {key}"}
    for job in httpx.get(f"{shared_server.url}/v1/jobs?limit=100", headers=auth).json()["jobs"]:
        if job["status"] in ("queued", "running"):
            httpx.post(f"{shared_server.url}/v1/jobs/{job['id']}/cancel", headers=auth)


#: sizes the examples ask for → the tiny model's
SIZES = re.compile(r'("width": |"height": |img_width=|img_height=)1024\b')


def _warm_up(url: str, key: str) -> None:
    """Both presets the examples use loaded once, as on a server that has been running (the
    Segmind client gives a synchronous call 30 s, a cold tiny model on a busy CPU may not
    make it)."""
    auth = {"Authorization": f"Bearer {key}", "Prefer": "wait=60"}
    for preset in ("stickersheet", "sticker-maker"):
        job = httpx.post(
            f"{url}/v1/jobs", headers=auth, json={"prompt": "warm", "preset": preset}, timeout=90
        ).json()
        for _ in range(10):
            if job["status"] not in ("queued", "running"):
                break
            job = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=auth, timeout=90).json()
        assert job["status"] == "succeeded", job


def _as_here(code: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        code = code.replace(old, new)
    return SIZES.sub(r"\g<1>64", code)


def _sections(language: str) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for heading, lang, code in _blocks():
        if lang == language and not _why_not_run(code):
            grouped.setdefault(heading, []).append(code)
    return grouped


BASH = _sections("bash")
PYTHON = [(h, c) for h, codes in _sections("python").items() for c in codes]


@pytest.mark.parametrize("heading", list(BASH), ids=lambda h: h.strip("# ")[:40])
def test_the_bash_examples_run_as_written(heading: str, place: dict) -> None:
    script = "\n".join(_as_here(code, place["swaps"]) for code in BASH[heading])
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=place["folder"],
        env=place["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{heading}\n{script}\n{done.stdout}\n{done.stderr}"
    _check(heading, place, done.stdout)


def _check(heading: str, place: dict, stdout: str) -> None:
    """What each section's examples should have left behind (beyond exiting 0)."""
    folder: Path = place["folder"]
    if heading.startswith("### Finishing"):
        with zipfile.ZipFile(folder / "pack.zip") as pack:  # the README's pack, as written
            names = pack.namelist()
        assert {"contents.json", "tray.png", "01.webp", "02.webp", "03.webp"} <= set(names)
        exported = sorted(folder.glob("sticker-*-1-whatsapp.webp"))
        assert exported and Image.open(exported[0]).size == (512, 512)
    if heading.startswith("### CLI"):
        made = {p.name for p in (folder / "stickers").iterdir()}
        assert {"cat.png", "cat.whatsapp.webp", "cat.print_svg.svg"} <= made
        assert {"sheet_01.png", "sheet_02.png", "sheet_01.telegram.png"} <= made
    if heading.startswith("### Stickers of you"):
        assert any((folder / "stickers").glob("a-person-smiling-*-sticker.png")), sorted(
            p.name for p in (folder / "stickers").iterdir()
        )
    if heading.startswith("### Packs"):
        for target in ("whatsapp", "telegram"):
            with zipfile.ZipFile(folder / f"corgi-{target}.zip") as pack:
                assert len([n for n in pack.namelist() if n[:2].isdigit()]) == 4
        assert len(list((folder / "corgi").glob("*.png"))) >= 4
    if heading.startswith("### Native API"):
        assert '"status"' in stdout
    if heading.startswith("### Sticker-maker-compatible"):
        assert '"tid"' in stdout


@pytest.mark.parametrize(("heading", "code"), PYTHON, ids=lambda v: str(v).strip("# ")[:30])
def test_the_python_examples_run_as_written(heading: str, code: str, place: dict) -> None:
    prelude = "import os\nKEY = os.environ['KEY']\n"  # the key the examples name KEY
    done = subprocess.run(
        [sys.executable, "-c", prelude + _as_here(code, place["swaps"])],
        cwd=place["folder"],
        env=place["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{heading}\n{done.stdout}\n{done.stderr}"


def test_the_webhook_check_accepts_the_services_signature() -> None:
    from sticker_maker.accounts import webhooks

    (code,) = [c for _, lang, c in _blocks() if lang == "python" and "def verify(" in c]
    scope: dict = {}
    exec(code, scope)  # the README's function, as written
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    body = json.dumps({"id": "x"}).encode()
    headers = webhooks.headers(secret, "msg_1", body)
    assert scope["verify"](secret, headers, body)
    assert not scope["verify"](secret, headers, body + b" ")
