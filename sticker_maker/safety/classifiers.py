"""Optional classifiers: any transformers ``text-classification`` or
``image-classification`` model, from the Hugging Face Hub or a local folder.

A classifier flags an input when any of its ``labels`` (compared case-insensitively
with the model's ``id2label`` names) scores at least ``threshold``. A model that does
not load, or that has none of the labels, is an error naming the setting: the check
is never silently off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sticker_maker.errors import InvalidInput

log = logging.getLogger("sticker_maker.safety")


class Classifier:
    """One loaded pipeline and the rule that turns its scores into a verdict."""

    def __init__(
        self,
        task: str,
        model: str,
        labels: Sequence[str],
        threshold: float,
        *,
        setting: str,
        device: str | None = None,
    ) -> None:
        self.task = task
        self.model = model
        self.threshold = threshold
        self.setting = setting
        started = time.perf_counter()
        try:
            from transformers import pipeline

            kwargs: dict[str, Any] = {"model": model, "top_k": None}
            if device is not None:
                kwargs["device"] = device
            self.pipe = pipeline(task, **kwargs)
        except ImportError as exc:
            raise InvalidInput(
                f"setting {setting}={model!r} needs the engine extra "
                f"(pip install 'sticker-maker[engine]'): {exc}",
                setting,
            ) from None
        except Exception as exc:
            raise InvalidInput(
                f"setting {setting}: the {task} model {model!r} could not be loaded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Give a Hub id this machine can download, or a local folder saved with "
                "save_pretrained (model and its tokenizer or image processor)",
                setting,
            ) from None
        names = {str(n).lower() for n in self.pipe.model.config.id2label.values()}
        wanted = {label.lower() for label in labels}
        self.labels = frozenset(names & wanted)
        if not self.labels:
            raise InvalidInput(
                f"setting {setting}: the model {model!r} has labels {sorted(names)}, none of "
                f"which is an unsafe label ({', '.join(sorted(wanted))}); set "
                f"{setting.removesuffix('_MODEL')}_LABELS to the model's unsafe label(s)",
                setting,
            )
        log.info(
            "safety: %s model %s loaded in %.2fs (refuses %s at >= %g)",
            task,
            model,
            time.perf_counter() - started,
            ", ".join(sorted(self.labels)),
            threshold,
        )

    def flagged(self, inputs: Sequence[Any]) -> list[bool]:
        """One verdict per input: True when an unsafe label scores ≥ the threshold."""
        if not inputs:
            return []
        results = self.pipe(list(inputs))
        verdicts = []
        for scores in results:
            if isinstance(scores, dict):  # one label only
                scores = [scores]
            verdicts.append(
                any(
                    str(s["label"]).lower() in self.labels and s["score"] >= self.threshold
                    for s in scores
                )
            )
        return verdicts
