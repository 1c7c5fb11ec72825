"""Sampler names users know (Segmind's 12 plus the DPM++ Karras family) → diffusers classes.

Data only, no torch import: the API validates names with it, the engine builds
the scheduler with :func:`sticker_maker.engine.schedulers.make_scheduler`.
"""

from __future__ import annotations

from typing import Any

#: name → (diffusers class name, extra kwargs for ``from_config``)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "DPM Multi": ("DPMSolverMultistepScheduler", {}),
    "DPM Single": ("DPMSolverSinglestepScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"},
    ),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
}

SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)
