"""The reaper: returns jobs of dead workers to the queue. Runs in every API and worker process.

Each pass is one short statement (see :meth:`JobStore.reap_expired`), idempotent,
so any number of processes can run it at once.
"""

from __future__ import annotations

import logging
import threading

from sticker_maker.jobs.store import JobStore, Reaped
from sticker_maker.jobs.workers import WorkerRegistry

log = logging.getLogger("sticker_maker.reaper")


class Reaper:
    def __init__(
        self,
        store: JobStore,
        *,
        lease_timeout: float = 30.0,
        max_attempts: int = 3,
        interval: float | None = None,
    ) -> None:
        self.store = store
        self.registry = WorkerRegistry(store.db)
        self.lease_timeout = lease_timeout
        self.max_attempts = max_attempts
        #: seconds between passes: a third of the lease, so a dead worker's job waits
        #: at most ~1.3 lease timeouts before it runs again
        self.interval = interval if interval is not None else max(0.5, lease_timeout / 3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Reaped:
        from sticker_maker.metrics import REAPED

        reaped = self.store.reap_expired(self.lease_timeout, self.max_attempts)
        for action, ids in (
            ("requeued", reaped.requeued),
            ("failed", reaped.failed),
            ("canceled", reaped.canceled),
        ):
            if ids:
                REAPED.labels(action).inc(len(ids))
                log.warning("lease expired: %s %d job(s): %s", action, len(ids), ", ".join(ids))
        self.registry.prune(older_than=max(10 * self.lease_timeout, 300.0))
        return reaped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sticker-maker-reaper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception as exc:  # the database may be away for a moment; try next pass
                from sticker_maker.faults import unavailable

                if unavailable(exc) is None:
                    log.exception("reaper pass failed")
                else:
                    log.warning("reaper pass failed: %s", exc)
