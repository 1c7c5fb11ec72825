"""Build a diffusers scheduler from a user-facing sampler name."""

from __future__ import annotations

import copy
import json
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import diffusers

from sticker_maker.schedulers import SCHEDULERS

# torchsde warns on every step of the SDE sampler about a float rounding of its interval end.
warnings.filterwarnings("ignore", message="Should have tb<=t1", module="torchsde")

#: (name, base config) → a scheduler built once. Some constructors are slow (the Karras
#: DPM2 ones map 1000 sigmas back to timesteps: ~350 ms on a CPU); a deep copy takes <1 ms
#: and starts from the same fresh state.
_PROTOTYPES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def make_scheduler(name: str, base_config: Any, *, seeds: Sequence[int] | None = None) -> Any:
    """A fresh scheduler of kind ``name`` from the pipeline's original config.

    Always build from the *original* config: ``from_config`` of a scheduler that
    was itself made with ``use_karras_sigmas=True`` would carry that setting over.
    ``seeds`` (one per image of the batch) seed the SDE sampler's Brownian tree, which
    ignores the pipeline's generators; one seed per image keeps image i of a batch
    identical to a single run with its seed.
    """
    class_name, kwargs = SCHEDULERS[name]
    key = (name, json.dumps(dict(base_config), sort_keys=True, default=str))
    with _LOCK:
        prototype = _PROTOTYPES.get(key)
        if prototype is None:
            prototype = getattr(diffusers, class_name).from_config(base_config, **kwargs)
            _PROTOTYPES[key] = prototype
        scheduler = copy.deepcopy(prototype)
    if class_name == "DPMSolverSDEScheduler":
        scheduler.noise_sampler_seed = list(seeds) if seeds is not None else None
        scheduler.noise_sampler = None
    return scheduler
