"""Waiting for a job to finish inside a request (``Prefer: wait``, Segmind's sync route).

The API process never busy-polls the database. When the worker runs in this
process (``serve``'s default) the job store calls :meth:`JobWaiter.notify` as a
job finishes and the waiting request wakes at once; a read once a second is the
safety net for jobs that another process finished. When no worker runs here
(``serve --no-worker`` beside separate workers) nothing in this process hears
about a job finishing, so the wait reads the job with a backoff: after 0.1 s,
then each gap half as long again, up to one read per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from sticker_maker.jobs import Job, JobStore

#: first and largest gap between database reads when no in-process wake-up comes
FIRST_POLL = 0.1
MAX_POLL = 1.0


class JobWaiter:
    """Wake requests waiting on a job: in-process notification, polling as the fallback.

    ``first_poll``: the first gap between reads (use ``max_poll`` when a worker
    runs in this process, since its jobs wake the waiter directly).
    """

    def __init__(
        self, store: JobStore, *, first_poll: float = FIRST_POLL, max_poll: float = MAX_POLL
    ) -> None:
        self.store = store
        self.first_poll = first_poll
        self.max_poll = max(max_poll, first_poll)
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        store.on_finish.append(self.notify)

    def notify(self, job_id: str) -> None:
        """A job reached a terminal state (called from the worker's thread)."""
        with self._lock:
            waiters = list(self._waiting.get(job_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that request's loop has closed
                loop.call_soon_threadsafe(event.set)

    async def wait(
        self,
        job_id: str,
        key_id: str | None,
        timeout: float,
        *,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> Job:
        """The job once terminal, or as it stands after ``timeout`` seconds.

        ``gone`` (e.g. ``request.is_disconnected``) is checked at each wake-up;
        when it answers true the wait ends early with the job as it stands.
        """
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiting.setdefault(job_id, []).append(entry)
        try:
            deadline = loop.time() + max(0.0, timeout)
            gap = self.first_poll
            while True:
                event.clear()  # before the read: a finish during the read still wakes us
                job = await run_in_threadpool(self.store.get, job_id, key_id)
                remaining = deadline - loop.time()
                if job.status.is_terminal or remaining <= 0:
                    return job
                if gone is not None and await gone():
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(gap, remaining))
                gap = min(gap * 1.5, self.max_poll)
        finally:
            with self._lock:
                entries = self._waiting.get(job_id, [])
                if entry in entries:
                    entries.remove(entry)
                if not entries:
                    self._waiting.pop(job_id, None)

    def waiting(self) -> int:
        """How many requests are waiting now (for tests and metrics)."""
        with self._lock:
            return sum(len(v) for v in self._waiting.values())
