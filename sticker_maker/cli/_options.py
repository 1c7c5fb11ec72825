"""Options more than one command takes."""

from __future__ import annotations

from typing import Annotated

import typer

#: ``serve`` and ``worker``: the ML libraries' own output (``sticker_maker.quiet``)
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Let diffusers, transformers, huggingface_hub and tqdm print their warnings "
        "and progress bars (off by default, also in the model process; env "
        "STICKER_MAKER_VERBOSE=1).",
    ),
]
