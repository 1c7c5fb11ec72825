"""Content safety: prompts are checked before a job is queued, images before they are kept.

* :class:`PromptScreen` (``screen.py``): the maintained default list
  (``data/default_terms.txt``) plus the operator's block and allow lists, matched on
  normalised whole words (``normalize.py``, ``terms.py``), then optionally a
  text-classification model. Used by ``accounts.admission`` for every API.
* :class:`ImageScreen`: optionally an image-classification model, run in the model
  process on every generated image before anything is stored (``worker.predictor``).
* ``policy.py``: the levels (off, relaxed, standard, strict), per key and per preset.
* ``settings.py``: ``STICKER_MAKER_SAFETY_*``.

A refusal is :class:`~sticker_maker.errors.ContentBlocked` (``content_blocked``, with the
stage, ``prompt`` or ``image``); its message never repeats what matched.
"""

from sticker_maker.safety.policy import LEVELS, checks_images, effective
from sticker_maker.safety.screen import (
    Findings,
    ImageScreen,
    PromptScreen,
    load_terms,
    verify_image_model,
)
from sticker_maker.safety.settings import SafetySettings

__all__ = [
    "LEVELS",
    "Findings",
    "ImageScreen",
    "PromptScreen",
    "SafetySettings",
    "checks_images",
    "effective",
    "load_terms",
    "verify_image_model",
]
