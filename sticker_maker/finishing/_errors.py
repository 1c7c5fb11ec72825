"""Errors raised by the finishing stage."""

from __future__ import annotations

from collections.abc import Iterable


class FinishingError(ValueError):
    """A bad argument or an impossible request to the finishing stage.

    The message names the argument (or the input) at fault and, where there is a fixed
    set, the allowed values.
    """


def bad_choice(argument: str, value: object, allowed: Iterable[str]) -> FinishingError:
    """Build the error for ``argument=value`` not being one of ``allowed``."""
    choices = ", ".join(repr(a) for a in allowed)
    return FinishingError(f"{argument}={value!r} is not supported; allowed values: {choices}")
