"""Build a diffusers scheduler from a user-facing sampler name."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import diffusers

from sticker_maker.schedulers import SCHEDULERS

# torchsde warns on every step of the SDE sampler about a float rounding of its interval end.
warnings.filterwarnings("ignore", message="Should have tb<=t1", module="torchsde")


def make_scheduler(name: str, base_config: Any, *, seeds: Sequence[int] | None = None) -> Any:
    """A fresh scheduler of kind ``name`` from the pipeline's original config.

    Always build from the *original* config: ``from_config`` of a scheduler that
    was itself made with ``use_karras_sigmas=True`` would carry that setting over.
    ``seeds`` (one per image of the batch) seed the SDE sampler's Brownian tree, which
    ignores the pipeline's generators; one seed per image keeps image i of a batch
    identical to a single run with its seed.
    """
    class_name, kwargs = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    extra = dict(kwargs)
    if class_name == "DPMSolverSDEScheduler" and seeds is not None:
        extra["noise_sampler_seed"] = list(seeds)
    return cls.from_config(base_config, **extra)
