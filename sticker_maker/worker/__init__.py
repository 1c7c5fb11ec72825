"""The worker: claims jobs, runs them in a child process, stores outputs, records results."""

from sticker_maker.worker.runner import Worker

__all__ = ["Worker"]
