"""Build a diffusers scheduler from a user-facing sampler name."""

from __future__ import annotations

from typing import Any

import diffusers

from sticker_maker.schedulers import SCHEDULERS


def make_scheduler(name: str, base_config: Any, *, seed: int | None = None) -> Any:
    """A fresh scheduler of kind ``name`` from the pipeline's original config.

    Always build from the *original* config: ``from_config`` of a scheduler that
    was itself made with ``use_karras_sigmas=True`` would carry that setting over.
    """
    class_name, kwargs = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    extra = dict(kwargs)
    if class_name == "DPMSolverSDEScheduler" and seed is not None:
        # This scheduler ignores the pipeline's generator unless given its own seed.
        extra["noise_sampler_seed"] = seed
    return cls.from_config(base_config, **extra)
