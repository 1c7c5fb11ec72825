"""``sticker-maker cutout`` and ``sticker-maker split``: the finishing stage on files.

Register them on the main app with :func:`register`. Everything heavy (numpy, OpenCV,
the finishing package itself) is imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from PIL import Image


class Remover(StrEnum):
    """Background removal methods (mirrors ``sticker_maker.finishing.METHODS``)."""

    auto = "auto"
    model = "model"
    none = "none"


class Holes(StrEnum):
    """What happens to enclosed backdrop (mirrors ``sticker_maker.finishing.HOLES``)."""

    auto = "auto"
    keep = "keep"
    cut = "cut"


HOLES_HELP = (
    "Regions of backdrop the subject encloses (a wheel, a ring, a cup's handle, the "
    "letter o). 'auto': cut those that are backdrop (same colour and noise as outside, "
    "an opening's shape), keep backdrop-coloured art (eye whites, white fur). 'keep': "
    "fill every hole (the classic die cut). 'cut': remove every one. The border rings "
    "the holes that stay open."
)


class Target(StrEnum):
    """Export targets (mirrors ``sticker_maker.finishing.TARGETS``)."""

    png = "png"
    webp = "webp"
    telegram = "telegram"
    whatsapp = "whatsapp"
    whatsapp_tray = "whatsapp_tray"
    discord = "discord"
    print_png = "print_png"
    print_svg = "print_svg"


OutputOpt = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="Folder to write into (created if missing).",
        metavar="DIR",
        file_okay=False,
        show_default=False,
    ),
]
RemoverOpt = Annotated[
    Remover,
    typer.Option(
        "--remover",
        help="How to remove the background. 'auto': model-free when the backdrop is flat "
        "(white, a solid colour, a light noisy gradient), else the --model if given, else "
        "model-free anyway. 'model': always the --model. 'none': keep the image as it is.",
        case_sensitive=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Learned remover: a rembg model name (e.g. birefnet-general, "
        "isnet-general-use; needs the optional rembg package) or a path to a u2net-style "
        ".onnx file.",
        metavar="NAME_OR_ONNX",
        show_default=False,
    ),
]
BorderOpt = Annotated[
    int | None,
    typer.Option(
        "--border",
        min=0,
        help="Width in px of the white die-cut border. Default: about 2.5% of the "
        "sticker's longer side. 0 writes the bare cut-out.",
        metavar="PX",
        show_default=False,
    ),
]
HolesOpt = Annotated[Holes, typer.Option("--holes", help=HOLES_HELP, case_sensitive=False)]
ShadowOpt = Annotated[
    bool, typer.Option("--shadow", help="Add a soft drop shadow under the sticker.")
]
ExportOpt = Annotated[
    list[Target] | None,
    typer.Option(
        "--export",
        "-e",
        help="Also write an export beside each PNG; repeat for several. telegram: 512 px "
        "PNG/WebP <= 512 KB; whatsapp: 512x512 WebP <= 100 KB; whatsapp_tray: 96x96 PNG; "
        "discord: 320x320 PNG; print_png: 300 dpi PNG; print_svg: its SVG cut line; png, "
        "webp. Written as DIR/<name>.<target>.<png|webp|svg>.",
        case_sensitive=False,
        metavar="TARGET",
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print what was decided for each image.")
]


def _require_finishing() -> None:
    """Fail cleanly when the image stack is missing (a client-only install)."""
    try:
        import cv2  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as exc:
        typer.echo(
            f"error: this command needs numpy and OpenCV ({exc.name} is missing): "
            "pip install 'sticker-maker[server]'",
            err=True,
        )
        raise typer.Exit(1) from None


def _open_image(path: Path, param: str) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (UnidentifiedImageError, OSError) as exc:
        raise typer.BadParameter(
            f"{path} is not a readable image ({exc})", param_hint=param
        ) from None


def _write_exports(sticker: Image.Image, out_dir: Path, stem: str, targets: list[Target]) -> None:
    from sticker_maker.finishing import export
    from sticker_maker.finishing._export import sniff_extension

    for target in dict.fromkeys(targets):
        data = export(sticker, target.value)
        name = f"{stem}.{target.value}.{sniff_extension(data)}"
        (out_dir / name).write_bytes(data)


def cutout(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files to cut out (PNG, JPEG, WebP...).",
            metavar="IMAGE...",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    output: OutputOpt,
    remover: RemoverOpt = Remover.auto,
    model: ModelOpt = None,
    border: BorderOpt = None,
    shadow: ShadowOpt = False,
    holes: HolesOpt = Holes.auto,
    no_trim: Annotated[
        bool,
        typer.Option(
            "--no-trim",
            help="Keep the input's canvas size and position (to compare a cut-out pixel for "
            "pixel with the original) instead of trimming to the sticker.",
        ),
    ] = False,
    exports: ExportOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Cut the subject out of each IMAGE and write DIR/<name>.png (RGBA).

    The background is removed (see --remover), then the sticker gets a
    smooth white die-cut border (--border, 0 for none) and is trimmed to
    its content with an even margin. With --export, ready-to-upload files
    are written beside it, e.g. DIR/<name>.telegram.png.
    """
    _require_finishing()
    from sticker_maker.finishing import FinishingError, die_cut, remove_background, trim

    if remover is Remover.model and not model:
        raise typer.BadParameter("--remover model needs --model", param_hint="'--model'")
    output.mkdir(parents=True, exist_ok=True)
    for path in images:
        img = _open_image(path, "'IMAGE...'")
        try:
            result = remove_background(img, method=remover.value, model=model, holes=holes.value)
        except FinishingError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--model'") from None
        try:
            sticker = die_cut(
                result.image,
                border=border,
                shadow=shadow,
                keep_canvas=no_trim,
                holes=holes.value,
            )
        except FinishingError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(1) from None
        target = output / f"{path.stem}.png"
        sticker.save(target)
        if exports:
            _write_exports(trim(sticker) if no_trim else sticker, output, path.stem, exports)
        typer.echo(f"{target} ({result.method_used})")
        if verbose:
            for note in result.notes:
                typer.echo(f"  {note}")


def split(
    sheet: Annotated[
        Path,
        typer.Argument(
            help="Sticker sheet image: stickers on a plain backdrop, or already transparent.",
            metavar="SHEET",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    output: OutputOpt,
    border: Annotated[
        int | None,
        typer.Option(
            "--border",
            min=0,
            help="Width in px of the white border added to each sticker. Default: about "
            "2.5% of its longer side, none if the artwork already has a white rim.",
            metavar="PX",
            show_default=False,
        ),
    ] = None,
    shadow: ShadowOpt = False,
    min_area: Annotated[
        int | None,
        typer.Option(
            "--min-area",
            min=1,
            help="Smallest sticker in px; smaller pieces are dropped as specks unless they "
            "sit next to a sticker. Default: 0.05% of the sheet.",
            metavar="PX",
            show_default=False,
        ),
    ] = None,
    remover: RemoverOpt = Remover.auto,
    model: ModelOpt = None,
    exports: ExportOpt = None,
) -> None:
    """Split SHEET into one file per sticker: DIR/<name>_01.png, ...

    Pieces of one sticker stay together, specks are dropped, and the
    stickers are numbered in reading order (rows top to bottom, left to
    right). Each is trimmed and given a die-cut border; --export writes
    ready-to-upload files beside each one.
    """
    _require_finishing()
    from sticker_maker.finishing import FinishingError, split_sheet

    if remover is Remover.model and not model:
        raise typer.BadParameter("--remover model needs --model", param_hint="'--model'")
    img = _open_image(sheet, "'SHEET'")
    try:
        stickers = split_sheet(
            img,
            border=border,
            min_area=min_area,
            shadow=shadow,
            method=remover.value,
            model=model,
        )
    except FinishingError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--model'") from None
    if not stickers:
        typer.echo(f"error: no stickers found on {sheet}", err=True)
        raise typer.Exit(1)
    output.mkdir(parents=True, exist_ok=True)
    for i, sticker in enumerate(stickers, start=1):
        stem = f"{sheet.stem}_{i:02d}"
        target = output / f"{stem}.png"
        sticker.save(target)
        if exports:
            _write_exports(sticker, output, stem, exports)
        typer.echo(str(target))
    typer.echo(f"{len(stickers)} stickers from {sheet}")


def register(app: typer.Typer) -> None:
    """Add the ``cutout`` and ``split`` commands to ``app``."""
    app.command("cutout")(cutout)
    app.command("split")(split)
