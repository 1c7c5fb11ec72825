"""Who is calling: the API key from any of the headers the three APIs use."""

from __future__ import annotations

import time

from fastapi import Depends, Request

from sticker_maker.accounts import ApiKey
from sticker_maker.api.services import Services, services

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
    if key.last_used_at is None or time.time() - key.last_used_at > _TOUCH_EVERY:
        svc.keys.touch(key.id)
    request.state.api_key = key
    return key
