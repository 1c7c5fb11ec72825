"""``sticker-maker pack`` (one character, a sticker per expression) and the reference
picture of ``generate --image``, on this machine or on a service (``--server``)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sticker_maker.cli.client_cmds import _cli_words, _wait_with_progress, err, fail, out

if TYPE_CHECKING:
    from sticker_maker.params import JobInput
    from sticker_maker.presets import PresetRegistry


class Export(StrEnum):
    none = "none"
    whatsapp = "whatsapp"
    telegram = "telegram"


ImageOpt = Annotated[
    Path | None,
    typer.Option(
        "--image",
        help="A photo (PNG, JPEG or WebP) whose subject the stickers are of: a face, a pet, "
        "an object. Needs a preset with an IP-Adapter (e.g. face-to-sticker).",
        show_default=False,
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
WeightOpt = Annotated[
    float | None,
    typer.Option(
        "--ip-adapter-weight",
        help="How much the picture steers the stickers, 0-1 (default: the preset's).",
        show_default=False,
    ),
]
NoiseOpt = Annotated[
    float | None,
    typer.Option(
        "--ip-adapter-noise",
        help="Looser likeness, 0-1 (default: the preset's).",
        show_default=False,
    ),
]
StrengthOpt = Annotated[
    float | None,
    typer.Option(
        "--strength",
        help="img2img: start from the picture and change this much of it (0-1].",
        show_default=False,
    ),
]


def reference_params(
    image: Path | None, weight: float | None, noise: float | None, strength: float | None
) -> dict[str, Any]:
    """The reference fields as API parameters (None values left out)."""
    given = {
        "image": image,
        "ip_adapter_weight": weight,
        "ip_adapter_noise": noise,
        "strength": strength,
    }
    return {k: v for k, v in given.items() if v is not None}


def attach_reference(
    job: JobInput, params: dict[str, Any], registry: PresetRegistry
) -> tuple[JobInput, bytes | None]:
    """Locally: check the picture as the API does and attach it; (job, the picture's PNG).

    Raises StickerMakerError naming the option's field, as the API would.
    """
    from sticker_maker.api.references import preset_defaults, reference_problem
    from sticker_maker.api.uploads import check_image
    from sticker_maker.errors import InvalidInput
    from sticker_maker.params import Reference
    from sticker_maker.storage import new_file_name

    image = params.get("image")
    if image is None:
        for name in ("ip_adapter_weight", "ip_adapter_noise", "strength"):
            if name in params:
                raise InvalidInput("applies only to stickers of a picture: give --image", name)
        return job, None
    preset = registry.get(job.preset)
    if problem := reference_problem(preset):
        raise InvalidInput(problem, "image")
    upload = check_image(Path(image).read_bytes(), "image")
    weight, noise = preset_defaults(preset)
    try:
        reference = Reference(
            image=new_file_name("png"),
            ip_adapter_weight=params.get("ip_adapter_weight", weight),
            ip_adapter_noise=params.get("ip_adapter_noise", noise),
            strength=params.get("strength"),
        )
    except ValueError as exc:
        from pydantic import ValidationError

        from sticker_maker.params import invalid_from_validation

        if isinstance(exc, ValidationError):
            raise invalid_from_validation(exc) from None
        raise
    return job.model_copy(update={"reference": reference}), upload.data


def run_local(job: JobInput, kind: str, picture: bytes | None, presets_file: Path | None) -> Any:
    """Run one job on this machine with a progress bar: its stickers."""
    from sticker_maker.cli._progress import step_progress

    with step_progress(err) as progress:
        task = progress.add_task("loading model", total=job.steps)
        from sticker_maker.worker.predictor import Predictor

        predictor = Predictor()
        predictor.setup(str(presets_file) if presets_file else None)

        def on_progress(step: int, total: int) -> None:
            progress.update(task, description="generating", completed=step, total=total)

        return predictor.run(kind, job.model_dump_json(), picture, on_progress=on_progress)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "sticker"


def pack(
    character: Annotated[str, typer.Argument(help="Who or what every sticker shows.")],
    count: Annotated[
        int | None,
        typer.Option(help="The first N built-in expressions (default 8).", show_default=False),
    ] = None,
    expressions: Annotated[
        str | None,
        typer.Option(
            "--expressions",
            help="Comma-separated expressions instead of --count, e.g. 'happy,sad,eating pizza'.",
            show_default=False,
        ),
    ] = None,
    image: ImageOpt = None,
    ip_adapter_weight: WeightOpt = None,
    ip_adapter_noise: NoiseOpt = None,
    preset: Annotated[str, typer.Option(help="Preset name or alias.")] = "sticker-maker",
    seed: Annotated[
        int | None, typer.Option(help="One seed for the whole pack.", show_default=False)
    ] = None,
    steps: Annotated[int | None, typer.Option(show_default=False)] = None,
    width: Annotated[int | None, typer.Option(show_default=False)] = None,
    height: Annotated[int | None, typer.Option(show_default=False)] = None,
    export: Annotated[
        Export,
        typer.Option(
            "--export",
            case_sensitive=False,
            help="Also write the pack as a WhatsApp pack zip or a Telegram-ready zip.",
        ),
    ] = Export.none,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the files.")] = Path(
        "."
    ),
    presets: Annotated[
        Path | None,
        typer.Option(
            "--presets", envvar="STICKER_MAKER_PRESETS", help="Presets TOML file (local runs)."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="STICKER_MAKER_URL",
            help="Run on this sticker-maker service (URL) instead of locally.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="STICKER_MAKER_API_KEY", show_default=False, show_envvar=False
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run locally even if $STICKER_MAKER_URL is set.")
    ] = False,
) -> None:
    """Make a pack: one sticker of CHARACTER per expression, in one run.

    Writes NAME-SEED-EXPRESSION-sticker.png per sticker (and the images), and with
    --export the pack zip; prints their paths.
    """
    chosen: list[str] | None = None
    if expressions is not None:
        chosen = [e.strip() for e in expressions.split(",")]
    params: dict[str, Any] = {
        "preset": preset,
        "seed": seed,
        "steps": steps,
        "width": width,
        "height": height,
        **reference_params(image, ip_adapter_weight, ip_adapter_noise, None),
    }
    params = {k: v for k, v in params.items() if v is not None}
    if server and not local:
        _pack_remote(server, api_key, output, character, chosen, count, params, export)
        return
    _pack_local(output, character, chosen, count, params, export, presets)


def _pack_remote(
    server: str,
    api_key: str | None,
    output: Path,
    character: str,
    chosen: list[str] | None,
    count: int | None,
    params: dict[str, Any],
    export: Export,
) -> None:
    from sticker_maker.sdk import APIError, Client

    with Client(server, api_key) as client:
        job = None
        try:
            job = client.packs.create(character, expressions=chosen, count=count, **params)
            err.print(f"pack {job.id} on {client.base_url}", highlight=False)
            _wait_with_progress(job)
            paths = job.save(output)
            if export is not Export.none:
                target = output / f"{_slug(character)}-{export.value}.zip"
                client.packs.export(job, export.value, target)
                paths.append(target)
        except KeyboardInterrupt:
            if job is not None and not job.done:
                job.cancel()
                err.print(f"canceled pack {job.id}")
            raise
        except APIError as exc:
            raise fail(_cli_words(str(exc))) from None
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)


def _pack_local(
    output: Path,
    character: str,
    chosen: list[str] | None,
    count: int | None,
    params: dict[str, Any],
    export: Export,
    presets_file: Path | None,
) -> None:
    from sticker_maker.api.packs import PackRequest, _generation, pack_expressions
    from sticker_maker.errors import StickerMakerError
    from sticker_maker.params import resolve
    from sticker_maker.presets import load_presets

    try:
        registry = load_presets(presets_file)
        body = PackRequest.model_validate(
            {"character": character, **{k: v for k, v in params.items() if k != "image"}}
        )
        expressions = pack_expressions(chosen, count)
        job = resolve(_generation(body), registry).model_copy(
            update={"samples": len(expressions), "expressions": expressions}
        )
        job, picture = attach_reference(job, params, registry)
        stickers = run_local(job, "pack", picture, presets_file)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    except ValueError as exc:  # pydantic's, for an option out of range
        from pydantic import ValidationError

        from sticker_maker.params import invalid_from_validation

        if not isinstance(exc, ValidationError):
            raise
        raise fail(invalid_from_validation(exc).message) from None
    output.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(character)}-{job.seed}"
    paths, images = [], []
    for sticker, expression in zip(stickers, job.expressions, strict=True):
        path = output / f"{stem}-{_slug(expression.name)}-sticker.{sticker.ext}"
        path.write_bytes(sticker.sticker_png)
        paths.append(path)
        images.append(_pil(sticker.sticker_png))
    if export is not Export.none:
        paths.append(_export_local(output, character, job, images, export))
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)


def _pil(data: bytes) -> Any:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGBA")


def _export_local(
    output: Path, character: str, job: JobInput, images: list[Any], export: Export
) -> Path:
    from sticker_maker.finishing import FinishingError, whatsapp_pack
    from sticker_maker.finishing._packs import telegram_pack

    emojis = [e.emoji for e in job.expressions]
    title = character[:128]
    try:
        if export is Export.whatsapp:
            data = whatsapp_pack(
                images, name=title, publisher="sticker-maker", emojis=[[e] for e in emojis]
            )
        else:
            data = telegram_pack(
                images, name=title, emojis=emojis, names=[e.name for e in job.expressions]
            )
    except FinishingError as exc:
        raise fail(str(exc)) from None
    target = output / f"{_slug(character)}-{export.value}.zip"
    target.write_bytes(data)
    return target


def register(app: typer.Typer) -> None:
    app.command(name="pack")(pack)
