"""Who is calling: the API key from any of the headers the three APIs use.

Every authenticated request is counted against the key's requests-per-minute
limit (429 with ``Retry-After`` beyond it). Admin routes add a scope check (403).
"""

from __future__ import annotations

import time

from fastapi import Depends, Request

from sticker_maker.accounts import ApiKey
from sticker_maker.accounts.limits import count_request
from sticker_maker.api.services import Services, services
from sticker_maker.errors import PermissionDenied

#: touch ``last_used_at`` at most this often per key (it is a write)
_TOUCH_EVERY = 60.0


def key_from_headers(request: Request) -> str | None:
    headers = request.headers
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key") or headers.get("apikey")


def current_key(request: Request, svc: Services = Depends(services)) -> ApiKey:
    key = svc.keys.authenticate(key_from_headers(request))
    request.state.api_key = key
    count_request(svc.db, key, svc.settings)
    if key.last_used_at is None or time.time() - key.last_used_at > _TOUCH_EVERY:
        svc.keys.touch(key.id)
    return key


def admin_key(key: ApiKey = Depends(current_key)) -> ApiKey:
    if not key.is_admin:
        raise PermissionDenied("this route needs an admin key (sticker-maker keys create --admin)")
    return key


def optional_key(request: Request, svc: Services = Depends(services)) -> ApiKey | None:
    """The caller's key if the request carries one (checked: a bad one is 401), else None."""
    if key_from_headers(request) is None:
        return None
    return current_key(request, svc)
