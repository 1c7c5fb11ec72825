"""The ML libraries' own chatter (warnings, progress bars) off unless ``--verbose``.

diffusers, transformers, huggingface_hub and tqdm print deprecation warnings, "loading
pipeline components" bars and download bars that mean nothing to an operator reading the
service's logs (one line per job start and end). ``serve`` and ``worker`` call
:func:`quiet_ml_libraries` at start; the model process, spawned from them, calls it
again (it inherits the environment, so ``--verbose`` reaches it as
``STICKER_MAKER_VERBOSE=1``). An operator's own settings of the libraries' variables
(``TQDM_DISABLE``, ``DIFFUSERS_VERBOSITY`` …) win over these defaults.
"""

from __future__ import annotations

import logging
import os
import warnings

#: set to 1 by ``--verbose``; read by the model process
VERBOSE_ENV = "STICKER_MAKER_VERBOSE"
#: the libraries' own switches, set (unless already set) when quiet
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
#: loggers and warning-raising modules (with their submodules) kept quiet
LIBRARIES = ("diffusers", "transformers", "huggingface_hub", "tqdm", "accelerate", "peft")


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_ml_libraries(verbose: bool | None = None) -> bool:
    """Silence the ML libraries unless ``verbose`` (None: as ``STICKER_MAKER_VERBOSE``
    says). Returns whether they were silenced."""
    if verbose is None:
        verbose = is_verbose()
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # the model process is told too
        return False
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    pattern = "(" + "|".join(LIBRARIES) + r")(\..*)?$"
    warnings.filterwarnings("ignore", module=pattern)
    # the same for FutureWarnings raised on the libraries' behalf from torch's modules
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch(\..*)?$")
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    _already_imported()
    return True


def _already_imported() -> None:
    """Libraries imported before this call read their variables already: tell them."""
    import sys

    if "diffusers" in sys.modules:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
