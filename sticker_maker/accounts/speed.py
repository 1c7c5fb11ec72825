"""This service's measured speed, so a reservation is a fair upper bound on its hardware.

A job's work is counted in *units*: one denoising step of one 1024x1024 image (upscaling
and upload jobs converted as in :func:`~sticker_maker.accounts.billing.work_units`) plus
:data:`FIXED_UNITS` for what every job does once (text encoding, decoding, cut-out,
saving). When a job succeeds, its billed seconds / its units is this service's speed for
that job kind and preset, kept in the ``speeds`` table, which every API process reads.

* Before any measurement (a new service, a new preset): the configured fallback,
  ``estimate_base_seconds + estimate_step_seconds x units`` (30 s + 1 s per unit).
* After: ``MARGIN x seconds_per_unit x (units + FIXED_UNITS)``: 3x what the same work
  took here. A slower job raises the speed at once; a faster one lowers it by at most
  :data:`DECAY` per job, so one lucky job does not make the next reservation too small.

Written in the transaction that ends the job, so it costs no extra round trip.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select, update

from sticker_maker.db import speeds
from sticker_maker.inputs import CutoutInput, SplitInput, UploadInput
from sticker_maker.params import JobInput

#: a reservation holds this many times the measured time of the same work
MARGIN = 3.0
#: units of work every job does once, whatever its size
FIXED_UNITS = 5.0
#: a faster job lowers the stored speed to no less than this fraction of it
DECAY = 0.8


def speed_name(job: JobInput | UploadInput) -> str:
    """What a speed is kept for: the kind of work (generation, cut-out, split) and preset."""
    kind = (
        "cutout"
        if isinstance(job, CutoutInput)
        else "split"
        if isinstance(job, SplitInput)
        else "generate"
    )
    return f"{kind}:{job.preset}"[:240]


def seconds_per_unit(conn: Connection, job: JobInput | UploadInput) -> float | None:
    """The measured speed for this kind of job with this preset, or None (never run)."""
    value = conn.execute(
        select(speeds.c.seconds_per_unit).where(speeds.c.name == speed_name(job))
    ).scalar()
    return float(value) if value is not None else None


def estimate(measured: float, units: float) -> float:
    """Seconds reserved for ``units`` of work at the ``measured`` speed."""
    return MARGIN * measured * (units + FIXED_UNITS)


def observe(conn: Connection, job_row: Any) -> None:
    """Learn from a job that ended (only a succeeded one teaches anything)."""
    from sticker_maker.accounts.billing import work_units
    from sticker_maker.jobs.models import parse_input

    if job_row["status"] != "succeeded":
        return
    billed = job_row.get("billed_time")
    seconds = float(billed if billed is not None else job_row.get("predict_time") or 0.0)
    if seconds <= 0:
        return
    try:
        job_input = parse_input(job_row["kind"], job_row["input"])
    except (KeyError, ValueError):
        return  # a kind this version does not know teaches nothing
    rate = seconds / (work_units(job_input) + FIXED_UNITS)
    name = speed_name(job_input)
    now = time.time()
    old = conn.execute(
        select(speeds.c.seconds_per_unit).where(speeds.c.name == name).with_for_update()
    ).scalar()
    if old is None:
        _insert(conn, name, rate, now)
        return
    conn.execute(
        update(speeds)
        .where(speeds.c.name == name)
        .values(
            seconds_per_unit=max(rate, DECAY * float(old)),
            jobs=speeds.c.jobs + 1,
            updated_at=now,
        )
    )


def _insert(conn: Connection, name: str, rate: float, now: float) -> None:
    """The first measurement; a concurrent first one (another worker) keeps the larger."""
    values = {"name": name, "seconds_per_unit": rate, "jobs": 1, "updated_at": now}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(speeds).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[speeds.c.name],
            set_={
                "seconds_per_unit": statement.excluded.seconds_per_unit,
                "jobs": speeds.c.jobs + 1,
                "updated_at": now,
            },
            where=speeds.c.seconds_per_unit < statement.excluded.seconds_per_unit,
        )
    )
