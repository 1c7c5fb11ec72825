"""Admission: what a submit must pass, inside the transaction that queues the job.

Order: the content policy (422 ``content_blocked``), the key's submit rate (429), the
service's queue depth (503), the key's jobs in flight (429), then the credit
reservation (406). Each check and the insert share one transaction holding the key's
row lock (PostgreSQL) or the write lock (SQLite), so a rejected submit leaves nothing
behind and concurrent submits from several processes cannot overspend or overshoot a
per-key limit. The prompt itself is read before that transaction (:meth:`screen`), so
an optional text classifier never holds a lock; what it found is judged inside, at the
key's safety level.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, select

from sticker_maker.accounts import billing, limits
from sticker_maker.db import api_keys
from sticker_maker.errors import AuthenticationError, ContentBlocked
from sticker_maker.inputs import UploadInput
from sticker_maker.metrics import CONTENT_BLOCKED
from sticker_maker.params import JobInput
from sticker_maker.presets import PresetRegistry
from sticker_maker.safety import Findings, PromptScreen, effective

log = logging.getLogger("sticker_maker.safety")


class Admission:
    """Called by ``JobStore.submit``; returns extra column values for the job row."""

    def __init__(
        self, settings: Any, presets: PresetRegistry, prompts: PromptScreen | None = None
    ) -> None:
        self.settings = settings
        self.presets = presets
        self.prompts = (
            prompts if prompts is not None else PromptScreen.from_settings(settings.safety)
        )

    def screen(self, job_input: JobInput | UploadInput) -> Findings | None:
        """What the prompt touches (no lock held); None for upload jobs (no prompt)."""
        if not isinstance(job_input, JobInput):
            return None
        # a pack's expressions are prompt words too (custom ones are the user's text)
        words = [job_input.prompt, *(e.prompt for e in job_input.expressions)]
        return self.prompts.findings(", ".join(words))

    def __call__(
        self,
        conn: Connection,
        key_id: str,
        job_id: str,
        job_input: JobInput | UploadInput,
        screened: Findings | None = None,
    ) -> dict[str, Any]:
        key_row = (
            conn.execute(select(api_keys).where(api_keys.c.id == key_id).with_for_update())
            .mappings()
            .first()
        )
        if key_row is None or key_row["revoked_at"] is not None:
            raise AuthenticationError("this API key has been revoked")
        preset = self.presets.get(job_input.preset)
        level = effective(key_row.get("safety"), preset.safety, self.settings.safety.level)
        reason = screened.refusal(level) if screened is not None else None
        if reason is not None:
            CONTENT_BLOCKED.labels("prompt").inc()
            # the key and the category, never the prompt (logs are read by many people)
            log.info(
                "submit refused: stage prompt, key sm_%s, level %s, category %s",
                key_id,
                level,
                reason,
            )
            raise ContentBlocked("prompt")
        limits.check_submit(conn, key_row, self.settings, time.time())
        price = preset.price_per_second
        held = billing.reservation(job_input, price, self.settings, conn)
        billing.reserve(conn, key_id, job_id, held)
        return {"price_per_second": price, "safety": level}
