"""Build a diffusers scheduler from a user-facing sampler name and a preset's options."""

from __future__ import annotations

import copy
import inspect
import json
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import diffusers
import torch

from sticker_maker.schedulers import SCHEDULERS

# torchsde warns on every step of the SDE sampler about a float rounding of its interval end.
warnings.filterwarnings("ignore", message="Should have tb<=t1", module="torchsde")

#: (name, base config, options) → a scheduler built once. Some constructors are slow (the
#: Karras DPM2 ones map 1000 sigmas back to timesteps: ~350 ms on a CPU); a deep copy takes
#: <1 ms and starts from the same fresh state.
_PROTOTYPES: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()

#: options that go to ``step()``, not to the constructor
STEP_OPTIONS = ("eta",)


def make_scheduler(
    name: str,
    base_config: Any,
    *,
    seeds: Sequence[int] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A fresh scheduler of kind ``name`` from the pipeline's original config.

    Always build from the *original* config: ``from_config`` of a scheduler that
    was itself made with ``use_karras_sigmas=True`` would carry that setting over.
    ``options`` (a preset's ``scheduler_options``, e.g. ``timestep_spacing="trailing"``)
    are passed on when the class takes them (``eta`` goes to ``step``: see
    :func:`step_options`). ``seeds`` (one per image of the batch) seed the SDE sampler's
    Brownian tree, which ignores the pipeline's generators; one seed per image keeps
    image i of a batch identical to a single run with its seed.
    """
    class_name, kwargs = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    extra = {k: v for k, v in (options or {}).items() if k not in STEP_OPTIONS and k in accepted}
    key = (
        name,
        json.dumps(dict(base_config), sort_keys=True, default=str),
        json.dumps(extra, sort_keys=True),
    )
    with _LOCK:
        prototype = _PROTOTYPES.get(key)
        if prototype is None:
            prototype = cls.from_config(base_config, **{**kwargs, **extra})
            _PROTOTYPES[key] = prototype
        scheduler = copy.deepcopy(prototype)
    if class_name == "DPMSolverSDEScheduler":
        scheduler.noise_sampler_seed = list(seeds) if seeds is not None else None
        scheduler.noise_sampler = None
    return scheduler


def step_options(scheduler: Any, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The preset's options that this sampler's ``step()`` takes (``eta``: DDIM's, 0 by
    default, as the diffusers pipeline passes it)."""
    accepted = inspect.signature(scheduler.step).parameters
    wanted = {"eta": 0.0, **{k: v for k, v in (options or {}).items() if k in STEP_OPTIONS}}
    return {k: v for k, v in wanted.items() if k in accepted}


def draw_noise_on_cpu(scheduler: Any, latents: torch.Tensor) -> None:
    """Make the SDE sampler draw its Brownian noise on the CPU, in float32.

    diffusers' ``DPMSolverSDEScheduler`` builds its torchsde Brownian tree on the
    sample's device and dtype at the first step, so the same seed gave different pixels
    on a GPU, in float16 or in float32. Call after ``set_timesteps`` (which drops the
    sampler): the tree is built here from a CPU float32 tensor of the latents' shape and
    each draw is moved to the latents' device and dtype. No-op for other samplers.
    """
    if not isinstance(scheduler, diffusers.DPMSolverSDEScheduler):
        return
    from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler

    sigmas = scheduler.sigmas
    low, high = sigmas[sigmas > 0].min().item(), sigmas.max().item()
    cpu = torch.zeros(latents.shape, dtype=torch.float32)
    sampler = BrownianTreeNoiseSampler(cpu, low, high, scheduler.noise_sampler_seed)
    device, dtype = latents.device, latents.dtype

    def noise(sigma: Any, sigma_next: Any) -> torch.Tensor:
        return sampler(sigma, sigma_next).to(device, dtype)

    noise.sampler = sampler  # type: ignore[attr-defined]  # tests look at its tree
    scheduler.noise_sampler = noise
