"""Admin-only key management: ``/v1/keys…`` (admin keys; user keys get 403)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from sticker_maker.accounts import ApiKey
from sticker_maker.accounts.keys import key_id_of
from sticker_maker.api import schemas
from sticker_maker.api.account import key_info, key_limits
from sticker_maker.api.auth import admin_key
from sticker_maker.api.contract import doc
from sticker_maker.api.services import Services, services

router = APIRouter(tags=["admin"], dependencies=[Depends(admin_key)])

Limit = Field(default=None, ge=0, le=1_000_000, description="None = the service default")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=200)
    scope: Literal["user", "admin"] = "user"
    credits: float = Field(default=0.0, ge=0, le=1e12)
    requests_per_minute: int | None = Limit
    submits_per_minute: int | None = Limit
    max_active_jobs: int | None = Limit
    safety: Literal["off", "relaxed", "standard", "strict"] | None = Field(
        default=None, description="content safety level; None = the service default"
    )


class KeySafety(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["off", "relaxed", "standard", "strict"] | None = Field(
        description="content safety level; null = back to the service default"
    )


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Limit
    submits_per_minute: int | None = Limit
    max_active_jobs: int | None = Limit


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credits: float = Field(ge=-1e12, le=1e12, description="negative removes (never below 0)")
    note: str = Field(default="", max_length=200)


def _key_body(svc: Services, key: ApiKey, balance: float | None = None) -> dict[str, Any]:
    return {
        **key_info(key),
        "balance": svc.keys.balance(key.id) if balance is None else balance,
        "limits": key_limits(key, svc.settings),
    }


@router.get("/v1/keys", summary="List API keys (admin)", **doc(schemas.AdminKeyList))
def list_keys(
    include_revoked: bool = Query(False), svc: Services = Depends(services)
) -> dict[str, Any]:
    return {
        "keys": [
            _key_body(svc, key, balance)
            for key, balance in svc.keys.list_keys(include_revoked=include_revoked)
        ]
    }


@router.post(
    "/v1/keys",
    status_code=201,
    summary="Create an API key (admin)",
    **doc(schemas.AdminKeySecret, status=201),
)
def create_key(body: KeyCreate, svc: Services = Depends(services)) -> dict[str, Any]:
    """The full key is in ``secret``, shown this once: only its hash is stored."""
    new = svc.keys.create(**body.model_dump())
    return {"key": _key_body(svc, new.key), "secret": new.secret}


@router.get("/v1/keys/{key_id}", summary="One API key (admin)", **doc(schemas.AdminKeyOne))
def get_key(key_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    return {"key": _key_body(svc, svc.keys.get(key_id_of(key_id)))}


@router.post(
    "/v1/keys/{key_id}/revoke",
    summary="Revoke an API key at once (admin)",
    **doc(schemas.AdminKeyOne),
)
def revoke_key(key_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    return {"key": _key_body(svc, svc.keys.revoke(key_id_of(key_id)))}


@router.post(
    "/v1/keys/{key_id}/rotate",
    summary="New secret, same key and balance (admin)",
    **doc(schemas.AdminKeySecret),
)
def rotate_key(key_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    """The old secret stops working at once; the new one is in ``secret``, shown once."""
    new = svc.keys.rotate(key_id_of(key_id))
    return {"key": _key_body(svc, new.key), "secret": new.secret}


@router.post(
    "/v1/keys/{key_id}/grant",
    summary="Add (or remove) credits (admin)",
    **doc(schemas.AdminKeyOne),
)
def grant_credits(key_id: str, body: Grant, svc: Services = Depends(services)) -> dict[str, Any]:
    kid = key_id_of(key_id)
    balance = svc.keys.grant(kid, body.credits, body.note)
    return {"key": _key_body(svc, svc.keys.get(kid), balance)}


@router.post(
    "/v1/keys/{key_id}/limits", summary="Set per-key limits (admin)", **doc(schemas.AdminKeyOne)
)
def set_limits(key_id: str, body: KeyLimits, svc: Services = Depends(services)) -> dict[str, Any]:
    """Fields left out are unchanged; ``null`` returns one to the service default."""
    key = svc.keys.set_limits(key_id_of(key_id), **body.model_dump(exclude_unset=True))
    return {"key": _key_body(svc, key)}


@router.post(
    "/v1/keys/{key_id}/safety",
    summary="Set a key's content safety level (admin)",
    **doc(schemas.AdminKeyOne),
)
def set_safety(key_id: str, body: KeySafety, svc: Services = Depends(services)) -> dict[str, Any]:
    """``relaxed`` or ``off`` for a trusted key, ``strict`` for a cautious one (README,
    "Content safety"); a preset's own level can still make it stricter."""
    return {"key": _key_body(svc, svc.keys.set_safety(key_id_of(key_id), body.level))}
