"""The model process as the worker sees it: start it, wait until it is ready, stop it."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
from typing import Any

from sticker_maker.worker.child import child_main

#: the most jobs the model process may run at once (the size of the per-job cancel flags)
MAX_BATCH = 64


class ModelProcess:
    """One model process and the pipe to it."""

    def __init__(self, config: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.cancel = ctx.Event()
        #: job n of the running batch is cancelled by flags[n] = 1
        self.flags = ctx.RawArray("b", MAX_BATCH)
        #: the model's device type, reported when it is ready ("cuda", "cpu", ...)
        self.device = "cpu"
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=child_main,
            args=(child_conn, self.cancel, {**config, "report_device": True}, self.flags),
            daemon=True,
            name="sticker-maker-model",
        )
        self.proc.start()
        child_conn.close()
        self.ready = False

    def wait_ready(self, stop: threading.Event) -> bool:
        while not self.ready and not stop.is_set():
            if self.conn.poll(0.2):
                try:
                    message = self.conn.recv()
                except EOFError:
                    return False
                self.ready = message[0] == "ready"
                if len(message) > 1:
                    self.device = message[1]
            elif not self.proc.is_alive():
                return False
        return self.ready

    def close(self, timeout: float = 5.0) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(("stop",))
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)
        self.conn.close()
