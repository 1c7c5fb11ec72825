"""Admission: what a submit must pass, inside the transaction that queues the job.

Order: the key's submit rate (429), the service's queue depth (503), the key's
jobs in flight (429), then the credit reservation (406). Each check and the
insert share one transaction holding the key's row lock (PostgreSQL) or the
write lock (SQLite), so a rejected submit leaves nothing behind and concurrent
submits from several processes cannot overspend or overshoot a per-key limit.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select

from sticker_maker.accounts import billing, limits
from sticker_maker.db import api_keys
from sticker_maker.errors import AuthenticationError
from sticker_maker.inputs import UploadInput
from sticker_maker.params import JobInput
from sticker_maker.presets import PresetRegistry


class Admission:
    """Called by ``JobStore.submit``; returns extra column values for the job row."""

    def __init__(self, settings: Any, presets: PresetRegistry) -> None:
        self.settings = settings
        self.presets = presets

    def __call__(
        self, conn: Connection, key_id: str, job_id: str, job_input: JobInput | UploadInput
    ) -> dict[str, Any]:
        key_row = (
            conn.execute(select(api_keys).where(api_keys.c.id == key_id).with_for_update())
            .mappings()
            .first()
        )
        if key_row is None or key_row["revoked_at"] is not None:
            raise AuthenticationError("this API key has been revoked")
        limits.check_submit(conn, key_row, self.settings, time.time())
        price = self.presets.get(job_input.preset).price_per_second
        billing.reserve(conn, key_id, job_id, billing.reservation(job_input, price, self.settings))
        return {"price_per_second": price}
