"""Who is calling: the API key from any of the headers the three APIs use.

Every authenticated request is counted against the key's requests-per-minute
limit (429 with ``Retry-After`` beyond it). Admin routes add a scope check (403).

The key is looked up on every request (no cache: a revoked key stops working at
once, in every process). On SQLite the lookup is a local indexed read that never
waits for writers (WAL), so it runs on the event loop itself; a thread hop would cost
more than the read. Anything that may wait (PostgreSQL round trips, the rate counter's
periodic write, ``last_used_at``) goes to the thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey
from sticker_maker.accounts.limits import count_request
from sticker_maker.api.services import Services, services
from sticker_maker.errors import PermissionDenied

#: touch ``last_used_at`` at most this often per key (it is a write)
_TOUCH_EVERY = 60.0

T = TypeVar("T")


def key_from_headers(request: Request) -> str | None:
    headers = request.headers
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key") or headers.get("apikey")


async def read(svc: Services, fn: Callable[..., T], *args: Any) -> T:
    """Run the database read ``fn(*args)``: inline on SQLite, in the thread pool otherwise."""
    if svc.db.is_sqlite:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


async def current_key(request: Request, svc: Services = Depends(services)) -> ApiKey:
    key = await read(svc, svc.keys.authenticate, key_from_headers(request))
    request.state.api_key = key
    counter = svc.requests
    if counter is None:
        await run_in_threadpool(count_request, svc.db, key, svc.settings)
    elif counter.needs_write(key, svc.settings):
        await run_in_threadpool(counter.count, key, svc.settings)
    else:
        counter.count(key, svc.settings, may_write=False)
    if key.last_used_at is None or time.time() - key.last_used_at > _TOUCH_EVERY:
        await run_in_threadpool(svc.keys.touch, key.id)
    return key


def admin_key(key: ApiKey = Depends(current_key)) -> ApiKey:
    if not key.is_admin:
        raise PermissionDenied("this route needs an admin key (sticker-maker keys create --admin)")
    return key


async def optional_key(request: Request, svc: Services = Depends(services)) -> ApiKey | None:
    """The caller's key if the request carries one (checked: a bad one is 401), else None."""
    if key_from_headers(request) is None:
        return None
    return await current_key(request, svc)
