"""PostgreSQL LISTEN on a dedicated connection, in a daemon thread.

Used by workers ("a job was queued": :data:`JOBS_CHANNEL`) and API processes ("a
job finished", :data:`DONE_CHANNEL`, payload = job id, so ``Prefer: wait`` and
synchronous routes wake at once even when another machine ran the job). The
connection is re-opened when it drops; ``on_connect`` runs after each (re)connect,
so the owner can catch up on anything sent while nobody listened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from sticker_maker.db.database import Database

log = logging.getLogger("sticker_maker.db")


class Listener:
    def __init__(
        self,
        db: Database,
        channel: str,
        on_notify: Callable[[str], None],
        *,
        on_connect: Callable[[], None] | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.db = db
        self.channel = channel
        self.on_notify = on_notify
        self.on_connect = on_connect
        #: seconds each wait on the connection lasts (how soon stop() is noticed)
        self.timeout = timeout
        #: set while a LISTEN connection is open
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"listen-{self.channel}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self.db.listen(self.channel)
            except Exception as exc:
                log.warning("cannot LISTEN on %s (%s); polling meanwhile", self.channel, exc)
                self._stop.wait(5.0)
                continue
            self.listening.set()
            try:
                if self.on_connect is not None:
                    self.on_connect()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=self.timeout, stop_after=1):
                        self.on_notify(note.payload)
            except Exception as exc:
                log.warning(
                    "lost the LISTEN connection on %s (%s); reconnecting", self.channel, exc
                )
                self._stop.wait(1.0)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    conn.close()
