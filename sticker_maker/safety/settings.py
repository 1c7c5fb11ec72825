"""Safety settings: every one is a ``STICKER_MAKER_SAFETY_*`` environment variable.

Read once per process (API, worker, model process) and checked at start: a list file
that cannot be read or a classifier that does not load stops ``serve`` (and
``worker``) with a message naming the setting. Safety is never turned off by an error.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from sticker_maker.errors import InvalidInput
from sticker_maker.safety.policy import DEFAULT_LEVEL, check_level

ENV = "STICKER_MAKER_SAFETY"

#: labels of common NSFW text and image classifiers that mean "refuse"
TEXT_LABELS = ("nsfw", "sexual", "porn", "explicit", "unsafe")
IMAGE_LABELS = ("nsfw", "porn", "hentai", "sexy", "explicit", "unsafe")


@dataclass(frozen=True)
class SafetySettings:
    """Content safety (README, "Content safety")."""

    #: the level of keys that have none of their own: off | relaxed | standard | strict
    level: str = DEFAULT_LEVEL
    #: operator block-list files (sections as in the default list; plain lines: "operator")
    block_files: tuple[str, ...] = ()
    #: operator allow-list files (phrases never matched)
    allow_files: tuple[str, ...] = ()
    #: extra terms to block / allow, comma-separated in the environment
    block_terms: tuple[str, ...] = ()
    allow_terms: tuple[str, ...] = ()
    #: a text-classification model (Hub id or local folder) run on prompts; None = lists only
    text_model: str | None = None
    text_labels: tuple[str, ...] = TEXT_LABELS
    text_threshold: float = 0.5
    #: an image-classification model (Hub id or local folder) run on every generated image;
    #: setting it turns the image check on
    image_model: str | None = None
    image_labels: tuple[str, ...] = IMAGE_LABELS
    image_threshold: float = 0.5
    #: bill the GPU time of a job whose image was refused (default: refund it)
    charge_blocked_images: bool = False
    #: the device the classifiers run on ("cpu", "cuda", ...; None: the pipeline's choice)
    device: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> SafetySettings:
        """Keyword overrides first (None = not given), then ``STICKER_MAKER_SAFETY_*``."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            if overrides.get(name) is not None:
                return str(overrides[name])
            suffix = "" if name == "level" else "_" + name.upper()
            return env.get(ENV + suffix) or None

        def items(name: str, sep: str = ",") -> tuple[str, ...] | None:
            raw = get(name)
            if raw is None:
                return None
            return tuple(i.strip() for i in raw.split(sep) if i.strip())

        values: dict[str, Any] = {}
        level = get("level")
        if level is not None:
            values["level"] = check_level(level.strip().lower(), ENV)
        for name in ("block_files", "allow_files"):
            paths = items(name, os.pathsep)
            if paths is not None:
                values[name] = paths
        for name in ("block_terms", "allow_terms", "text_labels", "image_labels"):
            terms = items(name)
            if terms is not None:
                values[name] = tuple(t.lower() for t in terms) if "labels" in name else terms
        for name in ("text_model", "image_model", "device"):
            if get(name) is not None:
                values[name] = get(name)
        for name in ("text_threshold", "image_threshold"):
            raw = get(name)
            if raw is not None:
                values[name] = _threshold(name, raw)
        raw = get("charge_blocked_images")
        if raw is not None:
            values["charge_blocked_images"] = _flag("charge_blocked_images", raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (sent to the model process)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SafetySettings:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _env_name(name: str) -> str:
    return f"{ENV}_{name.upper()}"


def _threshold(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise InvalidInput(
            f"setting {_env_name(name)} must be a number above 0 and at most 1, got {raw!r}",
            name,
        )
    return value


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"setting {_env_name(name)} must be true or false, got {raw!r}", name)
