"""Webhooks: per-job URL and events, Standard Webhooks signatures, a durable outbox.

A native submit may carry ``webhook`` (an http(s) URL) and
``webhook_events_filter`` (any of ``start``, ``progress``, ``completed``;
default ``["completed"]``). Each event is written to the ``webhook_deliveries``
outbox in the same transaction as the job change that caused it, so nothing is
lost on a restart; :mod:`sticker_maker.accounts.webhook_sender` delivers it.

Signing (https://www.standardwebhooks.com): headers ``webhook-id`` (stable
across retries), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>``,
where the secret is the key's ``whsec_…`` (``GET /v1/account``) base64-decoded.
:func:`verify` is the receiver's side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, insert, select

from sticker_maker.db import jobs, webhook_deliveries
from sticker_maker.errors import InvalidInput

EVENTS = ("start", "progress", "completed")
DEFAULT_EVENTS = ("completed",)
MAX_URL = 2000
#: at most one progress event per job this often (seconds)
PROGRESS_EVERY = 1.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- configuration at submit --------------------------------------------------------


def config(
    url: str,
    events: Iterable[str] | None,
    base_url: str,
    allow_networks: Iterable[str] = (),
) -> str:
    """Validate a job's webhook; the JSON stored in ``jobs.webhook``. Raises InvalidInput."""
    check_url(url, allow_networks)
    chosen = list(dict.fromkeys(events)) if events is not None else list(DEFAULT_EVENTS)
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        raise InvalidInput(
            f"must be a non-empty list of: {', '.join(EVENTS)}", "webhook_events_filter"
        )
    return json.dumps({"url": url, "events": chosen, "base_url": base_url})


#: the Replicate-compatible API's events → the outbox's (outputs come at completion here,
#: and logs with each progress step)
REPLICATE_EVENTS = {
    "start": "start",
    "output": "completed",
    "logs": "progress",
    "completed": "completed",
}


def replicate_config(
    url: str,
    events: Iterable[str] | None,
    base_url: str,
    allow_networks: Iterable[str] = (),
) -> str:
    """:func:`config` for a prediction: Replicate's event names (default: all of them);
    the body sent is the bare prediction (``format``), signed the same way."""
    check_url(url, allow_networks)
    chosen = list(dict.fromkeys(events)) if events is not None else list(REPLICATE_EVENTS)
    if not chosen or any(e not in REPLICATE_EVENTS for e in chosen):
        raise InvalidInput(
            f"must be a non-empty list of: {', '.join(REPLICATE_EVENTS)}", "webhook_events_filter"
        )
    native = list(dict.fromkeys(REPLICATE_EVENTS[e] for e in chosen))
    return json.dumps({"url": url, "events": native, "base_url": base_url, "format": "replicate"})


def is_bare(stored: str | None) -> bool:
    """Whether deliveries carry the bare rendered object (Replicate) instead of an event."""
    cfg = parse(stored)
    return bool(cfg and cfg.get("format") == "replicate")


def check_url(url: str, allow_networks: Iterable[str] = ()) -> None:
    """Syntax, scheme, and (for an IP literal) the address rules. Raises InvalidInput."""
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        raise InvalidInput(
            f"must be an http(s) URL of printable ASCII (punycode for international names), "
            f"≤ {MAX_URL} characters",
            "webhook",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidInput("is not a valid URL", "webhook") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("must be an absolute http:// or https:// URL", "webhook")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("must not contain credentials (user:password@)", "webhook")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a host name: resolved and checked at every delivery
    reason = refused(literal, allow_networks)
    if reason:
        raise InvalidInput(reason, "webhook")


def refused(ip: IPAddress, allow_networks: Iterable[str] = ()) -> str | None:
    """Why ``ip`` may not be called (private, loopback, link-local…), or None if it may."""
    plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    for net in allow_networks:
        try:
            if plain in ipaddress.ip_network(net, strict=False):
                return None
        except ValueError:
            continue
    kinds = [
        ("loopback", plain.is_loopback),
        ("link-local", plain.is_link_local),
        ("private", plain.is_private),
        ("multicast", plain.is_multicast),
        ("unspecified", plain.is_unspecified),
        ("reserved", plain.is_reserved),
        ("non-public", not plain.is_global),
    ]
    for kind, hit in kinds:
        if hit:
            return (
                f"refused: {ip} is a {kind} address; webhooks go to public addresses only "
                "(an operator can allow networks with STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS)"
            )
    return None


def parse(stored: str | None) -> dict[str, Any] | None:
    if not stored:
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("url") else None


def wants(stored: str | None, event: str) -> bool:
    cfg = parse(stored)
    return bool(cfg and event in cfg.get("events", ()))


# -- the outbox -----------------------------------------------------------------------


def enqueue(conn: Connection, job_row: Mapping[str, Any], event: str) -> str | None:
    """Write one delivery for ``event`` if the job asked for it; its ``webhook-id``."""
    cfg = parse(job_row.get("webhook"))
    if cfg is None or event not in cfg.get("events", ()):
        return None
    now = time.time()
    payload = {
        "type": f"job.{event}",
        "timestamp": now,
        "base_url": cfg.get("base_url", ""),
        "job": {k: job_row[k] for k in job_row},
    }
    msg_id = f"msg_{uuid.uuid4().hex}"
    conn.execute(
        insert(webhook_deliveries).values(
            id=msg_id,
            job_id=job_row["id"],
            key_id=job_row["key_id"],
            event=event,
            url=cfg["url"],
            payload=json.dumps(payload),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return msg_id


def enqueue_progress(conn: Connection, job_id: str) -> None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is not None:
        enqueue(conn, row, "progress")


# -- signatures -----------------------------------------------------------------------


def _key_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
        "user-agent": "sticker-maker-webhooks",
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300.0
) -> bool:
    """Receiver side: True if the signature matches and the timestamp is recent."""
    try:
        msg_id = headers["webhook-id"]
        ts = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance:
        return False
    expected = sign(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)
