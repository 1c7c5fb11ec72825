"""Live progress without polling: the SDK's ``wait(on_progress=…)`` follows
``GET /v1/jobs/{id}/events`` and falls back to polling where it cannot."""

from __future__ import annotations

import asyncio
import threading

import httpx

import sticker_maker as sm
from replicate_api.conftest import App


def _requests(app: App) -> tuple[sm.Client, list[str]]:
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    return sm.Client(app.root, app.token, http_client=http), seen


def test_wait_follows_the_event_stream(app: App) -> None:
    client, seen = _requests(app)
    job = client.submit("a dog", preset="tiny")
    reports: list[tuple[str, int | None, int]] = []
    threading.Timer(0.5, app.play_worker).start()
    job.wait(
        timeout=30,
        on_progress=lambda j: reports.append((j.status, j.queue_position, j.progress.step)),
    )
    assert job.succeeded and job.output
    assert reports[0] == ("queued", 0, 0) and reports[-1][0] == "succeeded"
    assert seen == ["/v1/jobs", f"/v1/jobs/{job.id}/events"]  # no polls


def test_async_wait_follows_the_event_stream(app: App) -> None:
    async def main() -> tuple[sm.AsyncJob, list[str]]:
        statuses: list[str] = []
        async with sm.AsyncClient(app.root, app.token) as client:
            job = await client.submit("a dog", preset="tiny")
            threading.Timer(0.5, app.play_worker).start()

            async def report(j: sm.AsyncJob) -> None:
                statuses.append(j.status)

            await job.wait(timeout=30, on_progress=report)
        return job, statuses

    job, statuses = asyncio.run(main())
    assert job.succeeded and statuses[0] == "queued" and statuses[-1] == "succeeded"


def test_wait_falls_back_to_polling_without_the_stream(app: App) -> None:
    seen: list[str] = []

    def hide_events(request: httpx.Request) -> None:
        seen.append(request.url.path)
        if request.url.path.endswith("/events"):  # an older server, or a proxy in the way
            request.url = request.url.copy_with(path="/v1/no-such-route")

    http = httpx.Client(event_hooks={"request": [hide_events]})
    client = sm.Client(app.root, app.token, http_client=http)
    job = client.submit("a dog", preset="tiny")
    threading.Timer(0.5, app.play_worker).start()
    reports: list[str] = []
    job.wait(timeout=30, on_progress=lambda j: reports.append(j.status))
    assert job.succeeded and reports[-1] == "succeeded"
    assert seen.count(f"/v1/jobs/{job.id}") >= 1  # it polled
