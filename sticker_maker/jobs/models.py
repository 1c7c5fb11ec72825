"""The job envelope: id, status, input, output, error, logs, progress, metrics, timestamps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sticker_maker.inputs import CutoutInput, SplitInput
from sticker_maker.params import JobInput

#: a job's input, by its kind
AnyInput = JobInput | CutoutInput | SplitInput
INPUTS: dict[str, type[AnyInput]] = {
    "generate": JobInput,
    "cutout": CutoutInput,
    "split": SplitInput,
    "pack": JobInput,
}


def parse_input(kind: str, text: str) -> AnyInput:
    """The stored JSON input of a job of ``kind``."""
    return INPUTS[kind].model_validate_json(text)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True)
class OutputFile:
    """One stored output. ``file`` is the storage name (unguessable)."""

    file: str
    kind: str  # "image" (opaque, as generated) | "sticker" (transparent cut-out)
    index: int  # which sample of the batch (which piece of a split sheet)
    seed: int  # 0 for upload jobs
    width: int
    height: int
    content_type: str = "image/png"
    #: a pack's sticker: its expression and emoji (None otherwise)
    expression: str | None = None
    emoji: str | None = None
    #: a sticker whose cut-out found nothing (fully transparent): the job still succeeds
    #: with its opaque image, the logs say so, and exports of it answer 409
    empty: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "kind": self.kind,
            "index": self.index,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "content_type": self.content_type,
        }
        if self.expression is not None:
            out["expression"] = self.expression
            out["emoji"] = self.emoji
        if self.empty:
            out["empty"] = True
        return out


@dataclass(frozen=True)
class Job:
    id: str
    key_id: str
    kind: str
    preset: str
    input: AnyInput
    status: JobStatus
    output: list[OutputFile] = field(default_factory=list)
    error: str | None = None
    logs: str = ""
    progress_step: int = 0
    progress_total: int = 0
    attempt: int = 0
    worker_id: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    predict_time: float | None = None
    #: webhook config (JSON: url, events, base_url) or None; see accounts.webhooks
    webhook: str | None = None
    #: the content safety level it was admitted at (None: admitted before safety existed)
    safety: str | None = None
    #: the failure's code when it has one (``content_blocked``: its image was refused)
    error_code: str | None = None
    #: how another API asked for the job (JSON), e.g. the Replicate version and input
    api: str | None = None

    @property
    def queue_time(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.created_at

    @property
    def total_time(self) -> float | None:
        return None if self.completed_at is None else self.completed_at - self.created_at

    @property
    def input_files(self) -> list[str]:
        """Stored files the job's input owns (an upload), deleted with its outputs."""
        return list(getattr(self.input, "files", []))

    @classmethod
    def from_row(cls, row: Any) -> Job:
        output = json.loads(row["output"]) if row["output"] else []
        return cls(
            id=row["id"],
            key_id=row["key_id"],
            kind=row["kind"],
            preset=row["preset"],
            input=parse_input(row["kind"], row["input"]),
            status=JobStatus(row["status"]),
            output=[OutputFile(**o) for o in output],
            error=row["error"],
            logs=row["logs"] or "",
            progress_step=row["progress_step"],
            progress_total=row["progress_total"],
            attempt=row["attempt"],
            worker_id=row["worker_id"],
            heartbeat_at=row["heartbeat_at"],
            cancel_requested=bool(row["cancel_requested"]),
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            predict_time=row["predict_time"],
            webhook=row.get("webhook"),
            safety=row.get("safety"),
            error_code=row.get("error_code"),
            api=row.get("api"),
        )
