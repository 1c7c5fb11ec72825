"""Delivers the webhook outbox: a background thread, safe with several processes.

Each pass claims due deliveries with a short lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), so two API processes never send the same attempt twice. A failed
attempt is retried with exponential backoff (``webhook_backoff`` x 2ⁿ, capped at
an hour, up to ``webhook_max_attempts``) under the same ``webhook-id``.

Requests are SSRF-safe: the host name is resolved, *every* address is checked
(no private, loopback, link-local, reserved… unless ``webhook_allow_networks``
allows it) and the connection goes to the checked address (TLS still verifies
the certificate for the name), so a DNS answer that changes between check and
connect cannot redirect it. No redirects are followed, proxies from the
environment are ignored, each step is bounded by ``webhook_timeout`` and at most
64 KiB of the answer is read.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import and_, or_, select, update

from sticker_maker.accounts import webhooks
from sticker_maker.db import Database, api_keys, webhook_deliveries
from sticker_maker.errors import InvalidInput

log = logging.getLogger("sticker_maker.webhooks")

MAX_RESPONSE_BYTES = 64 * 1024
MAX_BACKOFF = 3600.0

#: renders a job row (as stored in the event) into the body's ``data`` given a base URL
Render = Callable[[dict[str, Any], str], dict[str, Any]]


class DeliveryRefused(Exception):
    """The URL may not be called (address rules, bad URL): not retried."""


def resolve_checked(host: str, port: int, allow_networks: Iterable[str] = ()) -> list[str]:
    """Every address ``host`` resolves to, after checking each; DeliveryRefused if any fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OSError(f"{host} has no addresses")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        reason = webhooks.refused(ip, allow_networks)
        if reason:
            raise DeliveryRefused(f"{host}: {reason}")
    return addresses


def post(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allow_networks: Iterable[str] = (),
    timeout: float = 10.0,
) -> int:
    """POST ``body`` to ``url`` by a checked address; the HTTP status. Raises on refusal/errors."""
    target, host, host_header = _checked_target(url, allow_networks)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "POST",
            target,
            content=body,
            headers={**headers, "host": host_header},
            extensions={"sni_hostname": host},
        ) as response,
    ):
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= MAX_RESPONSE_BYTES:
                break
        return response.status_code


def _checked_target(url: str, allow_networks: Iterable[str]) -> tuple[str, str, str]:
    """``url`` rewritten to a checked address of its host; the host and Host header."""
    try:
        webhooks.check_url(url, allow_networks)
    except InvalidInput as exc:
        raise DeliveryRefused(str(exc)) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port, allow_networks)[0]
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    return target, host, host_header


class TooLarge(Exception):
    """A fetched body passed its size cap."""


def get(
    url: str,
    *,
    allow_networks: Iterable[str] = (),
    timeout: float = 10.0,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """GET ``url`` under the same rules as a delivery (public addresses only, the checked
    address connected to, no redirects, no proxies, ``timeout`` per step): the status and
    at most ``max_bytes`` of the body (:class:`TooLarge` past it). For image inputs given
    as URLs."""
    target, host, host_header = _checked_target(url, allow_networks)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "GET", target, headers={"host": host_header}, extensions={"sni_hostname": host}
        ) as response,
    ):
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"{declared} bytes")
        chunks, read = [], 0
        for chunk in response.iter_bytes():  # decoded: the cap holds for compressed bodies
            read += len(chunk)
            if read > max_bytes:
                raise TooLarge(f"more than {max_bytes} bytes")
            chunks.append(chunk)
        return response.status_code, b"".join(chunks)


class WebhookSender:
    """The outbox's delivery thread (one per API process; claims make it multi-process safe)."""

    def __init__(
        self,
        db: Database,
        render: Render,
        *,
        allow_networks: Iterable[str] = (),
        timeout: float = 10.0,
        max_attempts: int = 8,
        backoff: float = 5.0,
        poll_interval: float = 0.5,
        concurrency: int = 4,
    ) -> None:
        self.db = db
        self.render = render
        self.allow_networks = tuple(allow_networks)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sm-webhook")
        self._thread = threading.Thread(target=self.run, name="sm-webhook-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.claim()
            except Exception:
                log.exception("claiming webhook deliveries failed; retrying")
                batch = []
            if not batch:
                self._stop.wait(self.poll_interval)
                continue
            assert self._pool is not None
            for future in [self._pool.submit(self.attempt, row) for row in batch]:
                try:
                    future.result()
                except Exception:
                    log.exception("webhook delivery crashed")

    # -- one pass ------------------------------------------------------------------

    def claim(self, now: float | None = None) -> list[dict[str, Any]]:
        """Lease up to ``concurrency`` due deliveries; their rows plus the key's secret."""
        now = time.time() if now is None else now
        due = and_(
            webhook_deliveries.c.status == "pending",
            webhook_deliveries.c.next_attempt_at <= now,
            or_(
                webhook_deliveries.c.locked_until.is_(None),
                webhook_deliveries.c.locked_until < now,
            ),
        )
        with self.db.read() as conn:
            if conn.execute(select(webhook_deliveries.c.id).where(due).limit(1)).first() is None:
                return []
        pick = (
            select(webhook_deliveries.c.id)
            .where(due)
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(self.concurrency)
            .with_for_update(skip_locked=True)
        )
        lease = now + 3 * self.timeout + 5
        with self.db.write() as conn:
            rows = (
                conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id.in_(pick), due)
                    .values(locked_until=lease)
                    .returning(*webhook_deliveries.c)
                )
                .mappings()
                .all()
            )
            secrets = dict(
                conn.execute(
                    select(api_keys.c.id, api_keys.c.webhook_secret).where(
                        api_keys.c.id.in_({r["key_id"] for r in rows})
                    )
                ).all()
            )
        return [{**r, "secret": secrets.get(r["key_id"])} for r in rows]

    def body(self, row: dict[str, Any]) -> bytes:
        """The same bytes on every attempt: rendered from the event's stored snapshot."""
        event = json.loads(row["payload"])
        data = self.render(event["job"], event.get("base_url", ""))
        if webhooks.is_bare(event["job"].get("webhook")):  # Replicate: the bare prediction
            return json.dumps(data, separators=(",", ":")).encode()
        envelope = {"type": event["type"], "timestamp": _iso(event["timestamp"]), "data": data}
        return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()

    def attempt(self, row: dict[str, Any]) -> str:
        """Send one attempt and record its outcome: delivered | pending | failed."""
        attempts = int(row["attempts"]) + 1
        try:
            if not row.get("secret"):
                raise DeliveryRefused("the key has no webhook secret")
            body = self.body(row)
            status = post(
                row["url"],
                webhooks.headers(row["secret"], row["id"], body),
                body,
                allow_networks=self.allow_networks,
                timeout=self.timeout,
            )
        except DeliveryRefused as exc:
            return self._record(row["id"], attempts, "failed", str(exc))
        except (httpx.HTTPError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return self._record(row["id"], attempts, "delivered", None)
            error = f"HTTP {status}"
            if status == 410:  # Gone: the receiver asks us to stop
                return self._record(row["id"], attempts, "failed", error)
        if attempts >= self.max_attempts:
            return self._record(row["id"], attempts, "failed", error)
        delay = min(MAX_BACKOFF, self.backoff * 2 ** (attempts - 1))
        return self._record(row["id"], attempts, "pending", error, retry_at=time.time() + delay)

    def _record(
        self,
        msg_id: str,
        attempts: int,
        status: str,
        error: str | None,
        retry_at: float | None = None,
    ) -> str:
        now = time.time()
        values: dict[str, Any] = {
            "attempts": attempts,
            "status": status,
            "last_error": error,
            "locked_until": None,
        }
        if status == "pending":
            values["next_attempt_at"] = retry_at
        else:
            values["finished_at"] = now
        if error:
            log.warning("webhook %s attempt %d: %s (%s)", msg_id, attempts, error, status)
        with self.db.write() as conn:
            conn.execute(
                update(webhook_deliveries).where(webhook_deliveries.c.id == msg_id).values(**values)
            )
        return status


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
