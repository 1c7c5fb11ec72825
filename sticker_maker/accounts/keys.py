"""API keys: ``sm_<id>_<secret>``, shown once, stored only as a SHA-256 hash.

The id (8 characters) finds the row; the hash of the whole key is compared in
constant time. Keys carry ≥32 random bytes, so a fast hash is the right one
(no password stretching needed) and authentication costs one indexed read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update

from sticker_maker.db import Database, api_keys, ledger
from sticker_maker.errors import AuthenticationError

PREFIX = "sm_"
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    id: str
    label: str
    scope: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


@dataclass(frozen=True)
class NewKey:
    """A freshly created key. ``secret`` is the full key, shown once."""

    key: ApiKey
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(secret: str) -> str | None:
    if not secret.startswith(PREFIX):
        return None
    key_id, sep, rest = secret[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 8 or len(rest) < 40:
        return None
    return key_id


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: id → (hash, ApiKey) for keys seen recently; cleared on revoke
        self._cache: dict[str, tuple[str, ApiKey, float]] = {}

    def create(self, *, label: str = "", scope: str = "user", credits: float = 0.0) -> NewKey:
        key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self.db.write() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id, secret_hash=_hash(secret), label=label, scope=scope, created_at=now
                )
            )
            if credits:
                conn.execute(
                    insert(ledger).values(
                        key_id=key_id, kind="grant", amount=float(credits), created_at=now
                    )
                )
        key = ApiKey(key_id, label, scope, now, None, None)
        return NewKey(key=key, secret=secret)

    def authenticate(self, secret: str | None) -> ApiKey:
        """The key for ``secret``, or :class:`AuthenticationError`."""
        if not secret:
            raise AuthenticationError(
                "missing API key: send it in the 'Authorization: Bearer <key>', "
                "'x-api-key' or 'apikey' header"
            )
        key_id = _split(secret)
        if key_id is None:
            raise AuthenticationError("invalid API key")
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
            raise AuthenticationError("invalid API key")
        if row["revoked_at"] is not None:
            raise AuthenticationError("this API key has been revoked")
        return ApiKey(
            row["id"],
            row["label"],
            row["scope"],
            row["created_at"],
            row["last_used_at"],
            row["revoked_at"],
        )

    def touch(self, key_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=time.time())
            )

    def balance(self, key_id: str) -> float:
        with self.db.read() as conn:
            value = conn.execute(
                select(func.coalesce(func.sum(ledger.c.amount), 0.0)).where(
                    ledger.c.key_id == key_id
                )
            ).scalar()
        return float(value or 0.0)
