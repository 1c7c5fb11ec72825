"""``GET /v1/account``: the calling key, its balance, holds, limits and recent usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from sticker_maker.accounts import ApiKey, billing
from sticker_maker.accounts.keys import balance_of
from sticker_maker.accounts.limits import effective
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import doc
from sticker_maker.api.render import iso
from sticker_maker.api.services import Services, services
from sticker_maker.db import jobs
from sticker_maker.db.database import Database

router = APIRouter(tags=["account"])


def key_info(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "label": key.label,
        "scope": key.scope,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
        "safety": key.safety,
    }


def key_limits(key: ApiKey, settings: Any) -> dict[str, int]:
    return {
        "requests_per_minute": effective(key.requests_per_minute, settings.requests_per_minute),
        "submits_per_minute": effective(key.submits_per_minute, settings.submits_per_minute),
        "max_active_jobs": effective(key.max_active_jobs, settings.max_active_jobs),
    }


def account_body(db: Database, key: ApiKey, settings: Any, *, usage_limit: int) -> dict:
    with db.read() as conn:
        balance = balance_of(conn, key.id)
        reserved = billing.reserved_now(conn, key.id)
        active = conn.execute(
            select(func.count()).where(
                jobs.c.key_id == key.id, jobs.c.status.in_(("queued", "running"))
            )
        ).scalar()
        usage = billing.usage(conn, key.id, limit=usage_limit)
    for row in usage:
        row["created_at"] = iso(row["created_at"])
    return {
        "key": key_info(key),
        "balance": balance,
        "reserved": reserved,
        "active_jobs": int(active or 0),
        "limits": key_limits(key, settings),
        "webhook_secret": key.webhook_secret,
        "usage": usage,
        # how long finished jobs and their files are kept (the page's recent-jobs hint)
        "retention_seconds": settings.retention_seconds,
        # what the replicate client's accounts.current() reads
        "type": "user",
        "username": key.label or key.prefix,
        "name": key.label or key.prefix,
        "github_url": None,
    }


@router.get(
    "/v1/account",
    summary="Your balance, reservations, limits and recent usage",
    **doc(schemas.Account),
)
def account(
    usage: int = Query(50, ge=0, le=500, description="how many ledger rows to show"),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """``balance`` is what you can spend now (the ledger's sum: running jobs' reservations are
    already taken out; ``reserved`` shows them). ``usage`` lists ledger rows, newest first:
    ``grant``, ``reserve`` (hold at submit), ``refund`` (hold released when the job ends),
    ``settle`` (the charge: predict_time x price_per_second)."""
    return account_body(svc.db, key, svc.settings, usage_limit=usage)
