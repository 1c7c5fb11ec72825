"""Per-process Prometheus metrics (counters and histograms kept by the process that saw it).

A worker records what it did; Prometheus adds them up over every process. The
numbers that must agree across processes (jobs by state, queue depth, live
workers) are not here: ``api/metrics.py`` reads them from the database at
scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "CONTENT_BLOCKED",
    "GPU_SECONDS",
    "HANDED_BACK",
    "HEARTBEATS",
    "JOBS_FINISHED",
    "PREDICT_TIME",
    "QUEUE_WAIT",
    "REAPED",
]

QUEUE_WAIT = Histogram(
    "sticker_maker_queue_wait_seconds",
    "Seconds from submit to a worker claiming the job (observed by the worker).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
PREDICT_TIME = Histogram(
    "sticker_maker_predict_seconds",
    "Model seconds per finished job, weight loading excluded (what is billed).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
GPU_SECONDS = Counter(
    "sticker_maker_gpu_seconds_billed",
    "predict_time of succeeded jobs recorded by this process: the GPU-seconds billed.",
)
JOBS_FINISHED = Counter(
    "sticker_maker_jobs_finished",
    "Jobs this process's worker ended, by final status.",
    ["status"],
)
HEARTBEATS = Counter(
    "sticker_maker_worker_heartbeats",
    "Heartbeats this process's worker wrote (job leases and the worker registry).",
)
HANDED_BACK = Counter(
    "sticker_maker_jobs_handed_back",
    "Running jobs this process's worker gave back to the queue while shutting down.",
)
REAPED = Counter(
    "sticker_maker_jobs_reaped",
    "Jobs whose lease expired, by what this process's reaper did with them.",
    ["action"],
)
CONTENT_BLOCKED = Counter(
    "sticker_maker_content_blocked",
    "Requests the content policy refused in this process, by stage (prompt: at submit, "
    "in the API; image: generated images, in the worker).",
    ["stage"],
)
