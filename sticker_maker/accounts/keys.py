"""API keys: ``sm_<id>_<secret>``, shown once, stored only as a SHA-256 hash.

The id (8 characters) finds the row; the hash of the whole key is compared in
constant time. Keys carry ≥32 random bytes, so a fast hash is the right one
(no password stretching needed) and authentication costs one indexed read.
Nothing is cached: a revoked or rotated key fails on its very next request, in
every process that shares the database.

Each key also has a webhook signing secret (``whsec_…``, Standard Webhooks), shown
to its owner by ``GET /v1/account``, and optional per-key limit overrides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sticker_maker.db import Database, api_keys, ledger
from sticker_maker.errors import AuthenticationError, InvalidInput, NotFound
from sticker_maker.safety.policy import check_level

PREFIX = "sm_"
SCOPES = ("user", "admin")
_ID_ALPHABET = string.ascii_letters + string.digits
_ID = re.compile(r"^[A-Za-z0-9]{8}$")
#: compared against when the id is unknown, so a miss costs the same as a hit
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
#: the per-request key lookup, built once
_KEY_BY_ID = select(api_keys).where(api_keys.c.id == bindparam("id"))


@dataclass(frozen=True)
class ApiKey:
    id: str
    label: str
    scope: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    webhook_secret: str | None = None
    #: per-key overrides of the service's limits (None = the service default)
    requests_per_minute: int | None = None
    submits_per_minute: int | None = None
    max_active_jobs: int | None = None
    #: content safety level (off|relaxed|standard|strict); None = the service default
    safety: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def prefix(self) -> str:
        """The public, recognisable part of the key (``sm_AbCd1234``)."""
        return f"{PREFIX}{self.id}"

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(
            id=row["id"],
            label=row["label"],
            scope=row["scope"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
            webhook_secret=row.get("webhook_secret"),
            requests_per_minute=row.get("requests_per_minute"),
            submits_per_minute=row.get("submits_per_minute"),
            max_active_jobs=row.get("max_active_jobs"),
            safety=row.get("safety"),
        )


@dataclass(frozen=True)
class NewKey:
    """A freshly created (or rotated) key. ``secret`` is the full key, shown once."""

    key: ApiKey
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(secret: str) -> str | None:
    if not secret.startswith(PREFIX):
        return None
    key_id, sep, rest = secret[len(PREFIX) :].partition("_")
    if not sep or not _ID.match(key_id) or len(rest) < 40:
        return None
    return key_id


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def key_id_of(text: str) -> str:
    """The id in a full key, a prefix (``sm_AbCd1234``) or a bare id; :class:`NotFound` if none."""
    text = text.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :].partition("_")[0]
    if not _ID.match(text):
        raise NotFound(f"no API key {text!r}: give its id or prefix, like sm_AbCd1234")
    return text


def _new_secret(key_id: str) -> str:
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


LIMIT_FIELDS = ("requests_per_minute", "submits_per_minute", "max_active_jobs")


def _check_limits(limits: dict[str, int | None]) -> dict[str, int | None]:
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown limit(s) {', '.join(sorted(unknown))}", "limits")
    for name, value in limits.items():
        if value is not None and not 0 <= value <= 1_000_000:
            raise InvalidInput(f"{value} is out of range (0 to 1000000)", name)
    return limits


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- create / authenticate ---------------------------------------------------

    def create(
        self,
        *,
        label: str = "",
        scope: str = "user",
        credits: float = 0.0,
        safety: str | None = None,
        **limits: int | None,
    ) -> NewKey:
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}; allowed: user, admin", "scope")
        if credits < 0:
            raise InvalidInput(f"{credits} is out of range (must be ≥ 0)", "credits")
        limits = _check_limits(limits)
        check_level(safety, "safety")
        key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        secret = _new_secret(key_id)
        now = time.time()
        row = {
            "id": key_id,
            "secret_hash": _hash(secret),
            "label": label,
            "scope": scope,
            "created_at": now,
            "webhook_secret": new_webhook_secret(),
            "safety": safety,
            **limits,
        }
        with self.db.write() as conn:
            conn.execute(insert(api_keys).values(**row))
            if credits:
                add_to_ledger(conn, key_id, "grant", float(credits), note="initial grant")
        return NewKey(key=self.get(key_id), secret=secret)

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
            row = conn.execute(_KEY_BY_ID, {"id": key_id}).mappings().first()
        stored = row["secret_hash"] if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(stored, _hash(secret)) or row is None:
            raise AuthenticationError("invalid API key")
        if row["revoked_at"] is not None:
            raise AuthenticationError("this API key has been revoked")
        return ApiKey.from_row(row)

    def touch(self, key_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=time.time())
            )

    # -- administration ---------------------------------------------------------

    def get(self, key_id: str) -> ApiKey:
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFound(f"no API key sm_{key_id}")
        return ApiKey.from_row(row)

    def list_keys(self, *, include_revoked: bool = False) -> list[tuple[ApiKey, float]]:
        """Every key with its balance, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [(ApiKey.from_row(r), float(r["balance"] or 0.0)) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke at once (every process: nothing is cached). Revoking twice is harmless."""
        self.get(key_id)
        with self.db.write() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return self.get(key_id)

    def rotate(self, key_id: str) -> NewKey:
        """A new secret for the same key (id, balance, jobs kept); the old one fails at once."""
        key = self.get(key_id)
        if key.revoked_at is not None:
            raise InvalidInput(f"key {key.prefix} is revoked; create a new one", "key")
        secret = _new_secret(key_id)
        with self.db.write() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(secret_hash=_hash(secret))
            )
        return NewKey(key=key, secret=secret)

    def set_limits(self, key_id: str, **limits: int | None) -> ApiKey:
        """Set per-key overrides (None clears one back to the service default)."""
        self.get(key_id)
        limits = _check_limits(limits)
        if limits:
            with self.db.write() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**limits))
        return self.get(key_id)

    def set_safety(self, key_id: str, level: str | None) -> ApiKey:
        """Set the key's content safety level (None: back to the service default)."""
        check_level(level, "safety")
        self.get(key_id)
        with self.db.write() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(safety=level))
        return self.get(key_id)

    def grant(self, key_id: str, credits: float, note: str = "") -> float:
        """Add credits (or remove them with a negative amount, never below zero)."""
        self.get(key_id)
        if credits == 0 or credits != credits or abs(credits) > 1e12:
            raise InvalidInput(f"{credits} must be a non-zero number", "credits")
        with self.db.write() as conn:
            balance = balance_of(conn, key_id, lock=True)
            if balance + credits < 0:
                raise InvalidInput(
                    f"removing {-credits:g} credits would leave a negative balance "
                    f"(balance {balance:g})",
                    "credits",
                )
            add_to_ledger(conn, key_id, "grant", float(credits), note=note[:200] or None)
            return balance_of(conn, key_id)

    def balance(self, key_id: str) -> float:
        with self.db.read() as conn:
            return balance_of(conn, key_id)


def balance_of(conn: Connection, key_id: str, *, lock: bool = False) -> float:
    """The key's balance: the sum of its ledger rows, as kept by :func:`add_to_ledger`.

    ``lock`` takes the key's row lock (PostgreSQL; SQLite's write lock already serialises),
    so a check-then-spend in the same transaction is atomic across processes.
    """
    query = select(api_keys.c.balance).where(api_keys.c.id == key_id)
    value = conn.execute(query.with_for_update() if lock else query).scalar()
    return float(value or 0.0)


def ledger_sum(conn: Connection, key_id: str) -> float:
    """The balance recomputed from every ledger row (slow; for checks and audits)."""
    value = conn.execute(
        select(func.coalesce(func.sum(ledger.c.amount), 0.0)).where(ledger.c.key_id == key_id)
    ).scalar()
    return float(value or 0.0)


def add_to_ledger(
    conn: Connection,
    key_id: str,
    kind: str,
    amount: float,
    *,
    job_id: str | None = None,
    note: str | None = None,
) -> bool:
    """Write one ledger row and move the key's balance by ``amount``, in ``conn``'s transaction.

    The only way credits move. A job's row of a kind that exists already (unique index on
    ``job_id, kind``) is skipped and False returned: no movement happens twice.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ledger).values(
        key_id=key_id,
        job_id=job_id,
        kind=kind,
        amount=float(amount),
        created_at=time.time(),
        note=note,
    )
    if job_id is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["job_id", "kind"])
    if conn.execute(stmt.returning(ledger.c.id)).first() is None:
        return False
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(balance=api_keys.c.balance + float(amount))
    )
    return True
