"""The two checks: prompts at admission, generated images in the model process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sticker_maker.safety import policy
from sticker_maker.safety.classifiers import Classifier
from sticker_maker.safety.settings import ENV, SafetySettings
from sticker_maker.safety.terms import TermList, default_text, parse, read_file

log = logging.getLogger("sticker_maker.safety")


def load_terms(settings: SafetySettings) -> TermList:
    """The default list, then the operator's block and allow lists (files, then env)."""
    entries = parse(default_text(), where="the default list", default="sexual")
    for name in settings.block_files:
        entries += read_file(
            Path(name).expanduser(), default="operator", setting=f"{ENV}_BLOCK_FILES"
        )
    for name in settings.allow_files:
        allowed = read_file(Path(name).expanduser(), default="allow", setting=f"{ENV}_ALLOW_FILES")
        entries += [("allow", term) for _, term in allowed]
    entries += [("operator", term) for term in settings.block_terms]
    entries += [("allow", term) for term in settings.allow_terms]
    return TermList.build(entries)


def _classifier(settings: SafetySettings, kind: str) -> Classifier | None:
    """The ``text`` or ``image`` classifier the settings name, loaded; None if none."""
    model = getattr(settings, f"{kind}_model")
    if not model:
        return None
    return Classifier(
        f"{kind}-classification",
        model,
        getattr(settings, f"{kind}_labels"),
        getattr(settings, f"{kind}_threshold"),
        setting=f"{ENV}_{kind.upper()}_MODEL",
        device=settings.device,
    )


@dataclass(frozen=True)
class Findings:
    """What a prompt touches (categories; ``classifier`` when the model flagged it)."""

    categories: frozenset[str]

    def refusal(self, level: str) -> str | None:
        """The reason ``level`` refuses this prompt (a category, for logs), or None."""
        return policy.refusal(self.categories, level)


class PromptScreen:
    """Prompt check: the lists (microseconds), then the optional text classifier."""

    def __init__(self, terms: TermList, classifier: Classifier | None = None) -> None:
        self.terms = terms
        self.classifier = classifier

    @classmethod
    def from_settings(cls, settings: SafetySettings) -> PromptScreen:
        return cls(load_terms(settings), _classifier(settings, "text"))

    def findings(self, prompt: str) -> Findings:
        found = policy.combine(self.terms.categories(prompt))
        # the model is asked only when the lists leave the standard level nothing to refuse
        if (
            self.classifier is not None
            and policy.refusal(found, "standard") is None
            and self.classifier.flagged([prompt])[0]
        ):
            found.add("classifier")
        return Findings(frozenset(found))


class ImageScreen:
    """Image check: one classifier call per batch of generated images."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    @classmethod
    def from_settings(cls, settings: SafetySettings) -> ImageScreen | None:
        """The check, or None when no image model is set (then there is no image check)."""
        classifier = _classifier(settings, "image")
        return None if classifier is None else cls(classifier)

    def flagged(self, images: Sequence[Any]) -> list[bool]:
        """One verdict per PIL image (RGB)."""
        return self.classifier.flagged([im.convert("RGB") for im in images])


def verify_image_model(settings: SafetySettings) -> None:
    """Load the configured image model once and drop it: a worker's start-up check, so a
    model that does not load stops ``serve`` / ``worker`` at start, not at the first job."""
    if settings.image_model:
        ImageScreen.from_settings(settings)
