"""Credits, billed per GPU-second of ``predict_time``.

Every movement is a row of the ``ledger``; a key's balance is their sum:

=========  ==========  ==========================================================
kind       amount      when
=========  ==========  ==========================================================
grant      +N (or -N)  an operator adds (removes) credits
reserve    -R          a job is submitted; R = :func:`reservation`, an upper estimate
refund     +R          the job ends, however it ends: the reservation is released
settle     -C          the job succeeded: C = predict_time x price_per_second
=========  ==========  ==========================================================

So a failed or canceled job costs nothing and a succeeded one costs exactly its
measured GPU time (one exception, the operator's choice: a job whose generated image the
content policy refused is charged its GPU time when
``STICKER_MAKER_SAFETY_CHARGE_BLOCKED_IMAGES`` is on). A job that shared one model call
with others (batching across jobs) is billed its share of that call: ``billed_time``
(its images' fraction of the call, plus its own finishing) instead of ``predict_time``.
C is capped at R: a job can never take more than was reserved, so the balance can never
go negative (the reserve needed balance ≥ R). A capped charge is logged as a warning:
raise ``estimate_step_seconds`` for that hardware (only the first job of a kind and
preset can meet it: later ones are estimated from the measured speed, ``accounts.speed``).

Exactly once per job: refund and settle are written in the same transaction as
the fenced state change that ends the job (``JobStore``), and the unique index
``(job_id, kind)`` makes a repeat impossible (such an insert is skipped).
``api_keys.balance`` is the ledger's sum, moved by each row in the row's own
transaction (:func:`~sticker_maker.accounts.keys.add_to_ledger`), so checking a
balance costs one indexed read however long the history grows.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, func, select

from sticker_maker.accounts import speed
from sticker_maker.accounts.keys import add_to_ledger, balance_of
from sticker_maker.db import jobs, ledger
from sticker_maker.errors import InsufficientCredits
from sticker_maker.inputs import UploadInput
from sticker_maker.params import JobInput

log = logging.getLogger("sticker_maker.billing")

#: the area the per-step estimate is given for (one 1024x1024 image)
REFERENCE_PIXELS = 1024 * 1024
#: an upscaled sample costs its refine steps at 4x the area plus this many step-equivalents
#: for the ESRGAN pass
UPSCALE_FIXED_STEPS = 10


def work_units(job: JobInput | UploadInput) -> float:
    """A job's work in denoising steps of one 1024x1024 image (see README, "Credits")::

    mp    = width x height / 1024²
    units = samples x mp x (steps + (upscale ? 4 x upscale_steps + 10 : 0))

    An upload job (cutout, split: no diffusion) counts as one unit per megapixel.
    """
    mp = job.width * job.height / REFERENCE_PIXELS
    if isinstance(job, UploadInput):
        return mp
    per_sample = job.steps
    if job.upscale:
        per_sample += 4 * job.upscale_steps + UPSCALE_FIXED_STEPS
    return job.samples * mp * per_sample


def estimate_seconds(
    job: JobInput | UploadInput, *, base_seconds: float, step_seconds: float
) -> float:
    """The fallback upper estimate of a job's predict_time in seconds, before this
    service has measured its speed: ``base_seconds + step_seconds x units``."""
    return base_seconds + step_seconds * work_units(job)


def reservation(
    job: JobInput | UploadInput,
    price_per_second: float,
    settings: Any,
    conn: Connection | None = None,
) -> float:
    """Credits held at submit: the estimate x the preset's price. The estimate is 3x
    the time the same work took on this service (:mod:`~sticker_maker.accounts.speed`)
    once a job of this kind and preset has succeeded, else the configured fallback."""
    measured = speed.seconds_per_unit(conn, job) if conn is not None else None
    if measured is not None:
        seconds = speed.estimate(measured, work_units(job))
    else:
        seconds = estimate_seconds(
            job,
            base_seconds=settings.estimate_base_seconds,
            step_seconds=settings.estimate_step_seconds,
        )
    return round(seconds * price_per_second, 6)


def reserve(conn: Connection, key_id: str, job_id: str, amount: float) -> None:
    """Hold ``amount`` for a new job, or :class:`InsufficientCredits` (406).

    Call inside the submit transaction: the key's row lock (PostgreSQL) or the
    write lock (SQLite) makes check-and-hold atomic across processes.
    """
    balance = balance_of(conn, key_id, lock=True)
    if balance < amount:
        raise InsufficientCredits(
            f"Insufficient credits: this job reserves {amount:g} credits "
            f"(an upper estimate of its GPU time x price; unused credits are refunded) "
            f"and the balance is {balance:g}"
        )
    add_to_ledger(conn, key_id, "reserve", -amount, job_id=job_id)


def finalize(conn: Connection, job_row: Any) -> None:
    """Release the reservation and, for a succeeded job, charge its predict_time.

    ``job_row`` is the job's row as the fenced update that ended it returned it.
    """
    job_id, key_id = job_row["id"], job_row["key_id"]
    held = conn.execute(
        select(ledger.c.amount).where(ledger.c.job_id == job_id, ledger.c.kind == "reserve")
    ).scalar()
    reserved = -float(held) if held is not None else 0.0
    if held is not None:
        add_to_ledger(conn, key_id, "refund", reserved, job_id=job_id)
    billed = job_row.get("billed_time")
    # a refused image is charged only when the worker was told to (billed_time is set)
    refused = job_row.get("error_code") == "content_blocked" and billed is not None
    if job_row["status"] != "succeeded" and not refused:
        return
    predict_time = float(job_row["predict_time"] or 0.0)
    seconds = predict_time if billed is None else float(billed)
    price = float(job_row.get("price_per_second") or 0.0)
    charge = seconds * price
    note = f"{seconds:.3f} s x {price:g}/s"
    if refused:
        note += " (image refused by the content policy; GPU time charged)"
    elif billed is not None:
        note += f" (its share of a batch that took {predict_time:.3f} s)"
    if charge > reserved:
        log.warning(
            "job %s: charge %.4f exceeds its reservation %.4f; charging the reservation. "
            "Raise estimate_step_seconds / estimate_base_seconds for this hardware.",
            job_id,
            charge,
            reserved,
        )
        charge, note = reserved, note + " (capped at the reservation)"
    add_to_ledger(conn, key_id, "settle", -charge, job_id=job_id, note=note)


def reserved_now(conn: Connection, key_id: str) -> float:
    """Credits held by this key's unfinished jobs (their reserve rows, not yet refunded)."""
    value = conn.execute(
        select(func.coalesce(func.sum(ledger.c.amount), 0.0))
        .select_from(ledger.join(jobs, jobs.c.id == ledger.c.job_id))
        .where(
            jobs.c.key_id == key_id,
            jobs.c.status.in_(("queued", "running")),
            ledger.c.kind == "reserve",
        )
    ).scalar()
    return 0.0 - float(value or 0.0)  # never -0.0: nothing held is 0.0


def usage(conn: Connection, key_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The key's most recent ledger rows, newest first."""
    rows = conn.execute(
        select(ledger).where(ledger.c.key_id == key_id).order_by(ledger.c.id.desc()).limit(limit)
    ).mappings()
    return [
        {
            "kind": r["kind"],
            "amount": r["amount"],
            "job_id": r["job_id"],
            "note": r["note"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def charged(conn: Connection, job_id: str) -> float:
    """Credits a job was charged: its ``settle`` row (0 until it succeeds, and if it fails)."""
    value = conn.execute(
        select(ledger.c.amount).where(ledger.c.job_id == job_id, ledger.c.kind == "settle")
    ).scalar()
    return -float(value) if value is not None else 0.0
