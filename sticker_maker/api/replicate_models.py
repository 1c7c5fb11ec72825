"""The Replicate-compatible API's models and versions: inputs in, predictions out.

Every preset is a model. Its ``owner/name`` is each of its aliases that has that shape
(``fofr/sticker-maker``), else ``sticker-maker/<preset>``. A preset model has one version
whose inputs are the native generation parameters; its id is a hash of the preset, so a
changed preset is a new version. The preset that answers to ``fofr/sticker-maker`` is
that model as published instead, with each published version id:

* v1 (``6443cc83…``, ``58a70990…``): ``upscale`` / ``upscale_steps``; the output is the
  image, then its cut-out (PNG); CFG 7, 1024², 20 steps.
* v2 (``4acb778e…``, the latest): ``number_of_images`` (1-10), ``output_format``
  (webp, jpg, png), ``output_quality``; the output is the transparent stickers in that
  format (``jpg``: on white); CFG 6, 1152², 17 steps.

The published v2 decodes transparency with LayerDiffuse; here the sticker comes from the
preset's cut-out, the same as v1's second file. Facts: ``shared/reference/replicate-compat.md``.

This module is the translation only (no routes, no I/O): see ``api/replicate.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sticker_maker.api import face_to_sticker as face
from sticker_maker.api.render import iso
from sticker_maker.errors import FieldError, InvalidInput, NotFound
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.params import (
    MAX_PROMPT,
    MAX_SEED,
    GenerationRequest,
    JobInput,
    Side,
    resolve,
    validation_errors,
)
from sticker_maker.presets import Preset, PresetRegistry

STICKER_MAKER = "fofr/sticker-maker"
V1_IDS = (
    "6443cc831f51eb01333f50b757157411d7cadb6215144cc721e3688b70004ad0",
    "58a7099052ed9928ee6a65559caa790bfa8909841261ef588686660189eb9dc8",
)
V2_ID = "4acb778eb059772225ec213948f0660867b2e03f277448f18cf1800b96a65a1a"
#: the Cog version the schemas are written as
COG_VERSION = "0.9.4"

STATUS = {
    JobStatus.QUEUED: "starting",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "canceled",
}


# -- the published versions' inputs ------------------------------------------------------

Prompt = Field(default="a cute cat", max_length=MAX_PROMPT, description="Prompt")
Negative = Field(default="", max_length=MAX_PROMPT, description="Things you do not want")
Seed = Field(default=None, ge=0, le=MAX_SEED, description="Fix the random seed for reproducibility")


class V1Input(BaseModel):
    """fofr/sticker-maker, Feb 2024: the image, then its cut-out."""

    model_config = ConfigDict(extra="forbid", title="Input")

    prompt: str = Prompt
    negative_prompt: str = Negative
    width: Side = Field(default=1024, description="Width of the image")
    height: Side = Field(default=1024, description="Height of the image")
    steps: int = Field(default=20, ge=1, le=100, description="Denoising steps")
    seed: int | None = Seed
    upscale: bool = Field(default=True, description="2x upscale the sticker")
    upscale_steps: int = Field(default=10, ge=1, le=50, description="Steps of the upscaler")


class V2Input(BaseModel):
    """fofr/sticker-maker, Apr 2024: transparent stickers in the asked format."""

    model_config = ConfigDict(extra="forbid", title="Input")

    prompt: str = Prompt
    negative_prompt: str = Negative
    width: Side = Field(default=1152, description="Width of the image")
    height: Side = Field(default=1152, description="Height of the image")
    steps: int = Field(default=17, ge=1, le=100, description="Denoising steps")
    number_of_images: int = Field(default=1, ge=1, le=10, description="Number of images")
    output_format: Literal["webp", "jpg", "png"] = Field(
        default="webp", description="Format of the output images"
    )
    output_quality: int = Field(
        default=90,
        ge=0,
        le=100,
        description="Quality of the output images, from 0 to 100 (png: ignored)",
    )
    seed: int | None = Seed


#: the native generation parameters a preset model takes (the preset is the model's)
_NATIVE_HIDDEN = {"preset", "finishing"}


@dataclass(frozen=True)
class Version:
    """One version of a model: its id, how it reads inputs and which outputs it shows."""

    id: str
    model: str
    preset: str
    kind: Literal["v1", "v2", "preset", "face"]
    created_at: str

    def openapi_schema(self, preset: Preset) -> dict[str, Any]:
        return cog_schema(self.input_schema(preset))

    def input_schema(self, preset: Preset) -> dict[str, Any]:
        if self.kind == "v1":
            return V1Input.model_json_schema()
        if self.kind == "v2":
            return V2Input.model_json_schema()
        if self.kind == "face":
            return face.FaceInput.model_json_schema()
        schema = GenerationRequest.model_json_schema()
        props = {k: v for k, v in schema["properties"].items() if k not in _NATIVE_HIDDEN}
        for name, value in _preset_defaults(preset).items():  # None means the preset's
            if name in props:
                props[name] = {**_non_null(props[name]), "default": value}
        return {
            "title": "Input",
            "type": "object",
            "properties": props,
            "required": ["prompt"],
        }

    def job_input(self, raw: dict[str, Any], presets: PresetRegistry) -> JobInput:
        """The resolved job for ``raw`` inputs; InvalidInput naming ``input.<field>``."""
        if not isinstance(raw, dict):
            raise InvalidInput("must be a JSON object of the model's inputs", "input")
        if self.kind == "face":  # the caller attaches the stored picture
            return face.job_input(raw, self.preset, presets)
        if self.kind == "preset":
            request = _validate(GenerationRequest, {**raw, "preset": self.preset})
            return resolve(request, presets)  # type: ignore[arg-type]
        if self.kind == "v1":
            v1: V1Input = _validate(V1Input, raw)  # type: ignore[assignment]
            fields: dict[str, Any] = v1.model_dump(exclude={"seed"})
            fields |= {"guidance_scale": 7.0, "seed": v1.seed}
            return _resolved(fields, self.preset, presets)
        v2: V2Input = _validate(V2Input, raw)  # type: ignore[assignment]
        fields = v2.model_dump(exclude={"seed", "number_of_images"})
        fields |= {"guidance_scale": 6.0, "seed": v2.seed}
        job = _resolved(fields, self.preset, presets)
        # the native API makes at most 4 per job; the published v2 up to 10
        return job.model_copy(update={"samples": v2.number_of_images})

    def asked(self, raw: dict[str, Any]) -> Asked:
        return Asked(self.id, self.model, self.kind, raw)


def output_urls(kind: str, job: Job, root: str) -> list[str]:
    """v2: the stickers; v1 and preset models: each image, then its cut-out."""
    shown = [o for o in job.output if kind != "v2" or o.kind == "sticker"]
    return [f"{root}/files/{o.file}" for o in shown]


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` → X (a Cog input has a type and a default, never null)."""
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        rest = {k: v for k, v in prop.items() if k != "anyOf"}
        return {**rest, **variants[0]}
    return prop


def _preset_defaults(preset: Preset) -> dict[str, Any]:
    return {
        "width": preset.width,
        "height": preset.height,
        "steps": preset.steps,
        "guidance_scale": preset.guidance_scale,
        "scheduler": preset.scheduler,
        "lora_scale": preset.lora_scale,
    }


def _validate(model: type[BaseModel], raw: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc.errors(), "input.")) from None


def _resolved(fields: dict[str, Any], preset: str, presets: PresetRegistry) -> JobInput:
    try:
        request = GenerationRequest.model_validate({**fields, "preset": preset})
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc.errors(), "input.")) from None
    try:
        return resolve(request, presets)
    except InvalidInput as exc:  # e.g. upscale without an upscaler: name the input
        raise InvalidInput(
            [FieldError(f"input.{e.field}", e.message) for e in exc.errors]
        ) from None


# -- Cog's OpenAPI shape ---------------------------------------------------------------


def cog_schema(inputs: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document as Cog writes it: ``Input`` (each property with ``x-order``;
    a choice as ``allOf`` a ``$ref`` to an enum schema), ``Output`` (a list of URIs), and
    the prediction request/response schemas."""
    components: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for order, (name, prop) in enumerate(inputs["properties"].items()):
        prop = _non_null(dict(prop))
        prop.setdefault("title", name.replace("_", " ").title())
        if "enum" in prop:
            components[name] = {
                "title": name,
                "description": "An enumeration.",
                "enum": prop.pop("enum"),
                "type": prop.pop("type", "string"),
            }
            prop = {
                "allOf": [{"$ref": f"#/components/schemas/{name}"}],
                **{k: v for k, v in prop.items() if k in ("default", "description")},
            }
        props[name] = {**prop, "x-order": order}
    components["Input"] = {
        "title": "Input",
        "type": "object",
        "properties": props,
        **({"required": inputs["required"]} if inputs.get("required") else {}),
    }
    components["Output"] = {
        "title": "Output",
        "type": "array",
        "items": {"type": "string", "format": "uri"},
    }
    components["Status"] = {
        "title": "Status",
        "description": "An enumeration.",
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "type": "string",
    }
    components["PredictionRequest"] = {
        "title": "PredictionRequest",
        "type": "object",
        "properties": {
            "id": {"title": "Id", "type": "string"},
            "input": {"$ref": "#/components/schemas/Input"},
            "webhook": {"title": "Webhook", "type": "string", "format": "uri"},
        },
    }
    components["PredictionResponse"] = {
        "title": "PredictionResponse",
        "type": "object",
        "properties": {
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "id": {"title": "Id", "type": "string"},
            "version": {"title": "Version", "type": "string"},
            "created_at": {"title": "Created At", "type": "string", "format": "date-time"},
            "started_at": {"title": "Started At", "type": "string", "format": "date-time"},
            "completed_at": {"title": "Completed At", "type": "string", "format": "date-time"},
            "status": {"$ref": "#/components/schemas/Status"},
            "error": {"title": "Error", "type": "string"},
            "logs": {"title": "Logs", "type": "string", "default": ""},
            "metrics": {"title": "Metrics", "type": "object"},
        },
    }
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": components},
    }


# -- the catalogue ----------------------------------------------------------------------


def model_names(preset: Preset) -> list[str]:
    """``owner/name`` of each alias that has that shape, else ``sticker-maker/<preset>``."""
    names = [a for a in preset.aliases if _is_model_name(a)]
    if face.is_face_model(preset) and face.FACE_TO_STICKER not in {n.lower() for n in names}:
        names.append(face.FACE_TO_STICKER)
    return names or [f"sticker-maker/{preset.name}"]


def _is_model_name(text: str) -> bool:
    owner, slash, name = text.partition("/")
    return bool(slash and owner and name and "/" not in name and ":" not in text)


def preset_version_id(preset: Preset) -> str:
    """A stable id for a preset's version: changes when the preset does."""
    text = json.dumps(asdict(preset), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Catalogue:
    """Models and versions of a preset registry (cheap: rebuilt from the presets)."""

    def __init__(self, presets: PresetRegistry) -> None:
        self.presets = presets
        self.models: dict[str, tuple[Preset, list[Version]]] = {}
        self.versions: dict[str, Version] = {}
        for preset in presets.all():
            for name in model_names(preset):
                if name.lower() == STICKER_MAKER:
                    versions = [
                        Version(V2_ID, name, preset.name, "v2", "2024-04-10T13:32:08.862Z"),
                        *(
                            Version(v, name, preset.name, "v1", "2024-02-21T11:14:48.313Z")
                            for v in V1_IDS
                        ),
                    ]
                elif name.lower() == face.FACE_TO_STICKER:
                    versions = [
                        Version(v, name, preset.name, "face", face.CREATED_AT)
                        for v in face.VERSION_IDS
                    ]
                else:
                    created = "2025-01-01T00:00:00.000Z"
                    versions = [
                        Version(preset_version_id(preset), name, preset.name, "preset", created)
                    ]
                self.models[name.lower()] = (preset, versions)
                for version in versions:
                    self.versions.setdefault(version.id, version)

    def model(self, owner: str, name: str) -> tuple[str, Preset, list[Version]]:
        """The model's canonical name, preset and versions (latest first), or NotFound."""
        key = f"{owner}/{name}".lower()
        if key not in self.models:
            known = ", ".join(sorted(v[0].model for _, v in self.models.values()))
            raise NotFound(f"model {owner}/{name} not found; models here: {known}")
        preset, versions = self.models[key]
        return versions[0].model, preset, versions

    def version(self, ref: str, model: str | None = None) -> Version:
        """A version by id (or ``owner/name:id``), or NotFound naming what exists."""
        if ":" in ref:
            model, ref = ref.split(":", 1)
        found = self.versions.get(ref)
        if found is None or (model is not None and found.model.lower() != model.lower()):
            where = f" of model {model}" if model else ""
            raise NotFound(
                f"version {ref[:80]}{where} not found; list a model's versions with "
                "GET /v1/models/{owner}/{name}/versions"
            )
        return found


# -- rendering ------------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    """How a prediction was asked (stored as ``jobs.api``): shown back as it was asked."""

    version: str
    model: str
    kind: str
    input: dict[str, Any]
    #: retention removed its input and output (``accounts.retention``)
    removed: bool = False

    def dump(self) -> str:
        return json.dumps({"family": "replicate", **asdict(self)})

    @classmethod
    def load(cls, text: str | None) -> Asked | None:
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("family") != "replicate":
            return None
        return cls(
            data["version"],
            data["model"],
            data["kind"],
            dict(data["input"]),
            bool(data.get("removed", False)),
        )


def progress_line(step: int, total: int) -> str:
    """A tqdm-style line (``45%|████▌     | 9/20``): the replicate client's ``progress``."""
    filled = round(10 * step / total)
    return f"{round(100 * step / total):3d}%|{'█' * filled}{' ' * (10 - filled)}| {step}/{total}"


def prediction(
    job: Job,
    asked: Asked,
    root: str,
    *,
    waited: bool = False,
    retention: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The prediction object. ``waited``: answered after a wait, so an unfinished one says
    ``starting`` (the replicate client polls only then). Past ``retention`` seconds after
    completion its input and output are gone (``data_removed``), as on Replicate."""
    status = STATUS[job.status]
    if waited and not job.status.is_terminal:
        status = "starting"
    removed = asked.removed or bool(
        retention is not None
        and job.completed_at is not None
        and (now if now is not None else time.time()) - job.completed_at > retention
    )
    done = job.status is JobStatus.SUCCEEDED and not removed
    logs = job.logs
    if job.status is JobStatus.RUNNING and job.progress_total > 0:
        logs = f"{logs.rstrip()}\n{progress_line(job.progress_step, job.progress_total)}".lstrip()
    url = f"{root}/v1/predictions/{job.id}"
    metrics: dict[str, float] = {}
    if job.predict_time is not None:
        metrics["predict_time"] = round(job.predict_time, 3)
    if job.total_time is not None:
        metrics["total_time"] = round(job.total_time, 3)
    return {
        "id": job.id,
        "model": asked.model,
        "version": asked.version,
        "input": {} if removed else asked.input,
        "output": output_urls(asked.kind, job, root) if done else None,
        "logs": logs,
        "error": (job.error or "the prediction failed") if job.status is JobStatus.FAILED else None,
        "status": status,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "metrics": metrics,
        "data_removed": removed,
        "source": "api",
        "urls": {"get": url, "cancel": f"{url}/cancel", "stream": f"{url}/stream"},
    }
