"""Safety levels: what each blocks, and which level applies to a job.

=========  ==================================================================  ===========
level      blocks                                                              image check
=========  ==================================================================  ===========
off        nothing (an operator's explicit choice for a trusted key)           no
relaxed    minors, sexual violence, the operator's own block list             no
standard   relaxed + explicit sexual content + the text classifier (default)   yes
strict     standard + suggestive content                                       yes
=========  ==================================================================  ===========

At every level but ``off`` a prompt that names a child *and* has a sexual or
suggestive term is blocked as ``minors``. The level of a job is the key's (or the
service default), made stricter, never looser, by its preset's ``safety``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sticker_maker.errors import InvalidInput

LEVELS = ("off", "relaxed", "standard", "strict")
DEFAULT_LEVEL = "standard"

_RELAXED = frozenset({"minors", "sexual_violence", "operator"})
BLOCKS: dict[str, frozenset[str]] = {
    "off": frozenset(),
    "relaxed": _RELAXED,
    "standard": _RELAXED | {"sexual", "classifier"},
    "strict": _RELAXED | {"sexual", "classifier", "suggestive"},
}
#: the order a refusal reports its reason in (the most serious first; logs only)
SEVERITY = ("minors", "sexual_violence", "sexual", "operator", "classifier", "suggestive")


def check_level(value: str | None, field: str) -> str | None:
    """``value`` if it is a level (or None); else :class:`InvalidInput` naming ``field``."""
    if value is None or value in LEVELS:
        return value
    raise InvalidInput(f"unknown safety level {value!r}; allowed: {', '.join(LEVELS)}", field)


def effective(key_level: str | None, preset_level: str | None, default: str) -> str:
    """The job's level: the key's (else ``default``), raised to the preset's if stricter."""
    level = key_level or default
    if preset_level is not None and LEVELS.index(preset_level) > LEVELS.index(level):
        return preset_level
    return level


def combine(found: set[str]) -> set[str]:
    """A child named next to a sexual or suggestive term makes the prompt ``minors``."""
    if "minor_context" in found and found & {"sexual", "suggestive"}:
        found = found | {"minors"}
    return found


def refusal(found: Iterable[str], level: str) -> str | None:
    """The most serious category of ``found`` that ``level`` blocks, or None."""
    blocked = BLOCKS[level]
    hits = set(found) & blocked
    return next((c for c in SEVERITY if c in hits), None)


def checks_images(level: str) -> bool:
    return level in ("standard", "strict")
