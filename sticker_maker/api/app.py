"""The FastAPI application: routers, error mapping, and the in-process worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sticker_maker import __version__
from sticker_maker.api import (
    account,
    admin,
    contract,
    docs,
    errors,
    events,
    fallback,
    files,
    finishing,
    health,
    metrics,
    native,
    packs,
    replicate,
    replicate_files,
    seed_compat,
    segmind,
    web,
)
from sticker_maker.api.body_limit import BodyLimit
from sticker_maker.api.services import Services
from sticker_maker.api.waiting import JobWaiter
from sticker_maker.config import Settings

log = logging.getLogger("sticker_maker.api")


def create_app(
    settings: Settings, *, run_worker: bool = True, run_background: bool = True
) -> FastAPI:
    """Build the app. With ``run_worker`` the lifespan starts an in-process worker;
    with ``run_background`` the lease reaper, the retention sweeper and the webhook sender.

    The reaper runs in every process (cheap and idempotent), so jobs of a dead worker
    return to the queue as long as any API or worker process is up.
    """
    svc = Services.build(settings)  # loads the prompt check: a bad safety list stops here
    if run_worker:
        from sticker_maker.safety import verify_image_model

        verify_image_model(settings.safety)  # a classifier that does not load stops serve
        if settings.engine.previews:  # so does a preview autoencoder that does not load
            from sticker_maker.engine.preview import verify_preview_vae

            verify_preview_vae(settings.engine.preview_vae)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = _background(svc) if run_background else []
        if svc.db.is_postgres:  # a job that another machine finished wakes its waiters here
            from sticker_maker.db.database import DONE_CHANNEL
            from sticker_maker.db.listener import Listener

            background.append(Listener(svc.db, DONE_CHANNEL, app.state.waiter.notify))
        for thread in background:
            thread.start()
        worker = None
        if run_worker:
            from sticker_maker.worker import Worker

            worker = Worker(
                svc.jobs,
                svc.storage,
                presets_file=str(settings.presets_file) if settings.presets_file else None,
                cache_size=settings.pipeline_cache_size,
                engine_options=settings.engine.to_dict(),
                poll_interval=settings.poll_interval,
                heartbeat_interval=settings.heartbeat_interval,
                max_batch=settings.max_batch or None,
                safety=settings.safety.to_dict(),
            )
            svc.jobs.on_submit.append(worker.wake)
            svc.jobs.on_cancel.append(worker.cancel)
            worker.start()
        app.state.worker = worker
        listener = None
        if settings.metrics_port:  # /metrics for Prometheus, off the public port
            listener = health.MetricsListener(svc, settings.metrics_port, settings.metrics_host)
            listener.start()
        app.state.metrics_listener = listener
        try:
            yield
        finally:
            if listener is not None:
                listener.stop()
            if worker is not None:
                worker.stop()
            for thread in background:
                thread.stop()
            svc.db.dispose()

    app = FastAPI(
        title="sticker-maker",
        version=__version__,
        description="Text prompt → die-cut stickers. Native job API plus wire-compatible "
        "sticker-maker (/api/v1), Segmind (/v1/<model>, /v2) and Replicate (/v1/predictions, "
        "/v1/models) routes. A key goes in any of `Authorization: Bearer`, `x-api-key` or "
        "`apikey`; each API answers errors in its own shape.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from api.docs, with local assets
        redoc_url=None,
    )
    app.state.services = svc
    # an in-process worker (or, on PostgreSQL, a NOTIFY from any machine) wakes waiters
    # directly; without either, read sooner and back off
    woken = run_worker or svc.db.is_postgres
    app.state.waiter = JobWaiter(svc.jobs, first_poll=1.0 if woken else 0.1)
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        skip=(*finishing.UPLOAD_PATHS, replicate_files.UPLOAD_PATH),
        body_timeout=settings.body_timeout,
        max_in_flight=settings.max_bodies_in_flight_bytes,
    )
    app.include_router(native.router)
    app.include_router(events.router)
    app.include_router(replicate.router)
    app.include_router(replicate_files.router)
    app.include_router(account.router)
    app.include_router(admin.router)
    app.include_router(seed_compat.router)
    app.include_router(finishing.router)
    app.include_router(packs.router)
    app.include_router(files.router)
    app.include_router(metrics.router)
    app.include_router(health.router)  # /health (process up), /ready (database, storage)
    app.include_router(docs.router)  # /docs, /redoc and their assets (offline)

    # Last: the catch-all /v1/<model> and /v2/<model> routes must not shadow the others.
    app.include_router(segmind.router)
    # Then any other /v1 or /v2 path: 404 in its family's envelope (never a 405).
    app.include_router(fallback.router)
    # The page and its assets (/, /web/...) after every API route: they never shadow one.
    app.include_router(web.router)
    contract.install(app)  # /openapi.json says what these routes answer (api.contract)
    return app


def _background(svc: Services) -> list:  # type: ignore[type-arg]
    """The lease reaper, the retention sweeper and the webhook sender (each a daemon thread)."""
    from sticker_maker.accounts.retention import Sweeper
    from sticker_maker.accounts.webhook_sender import WebhookSender
    from sticker_maker.api.render import job_body
    from sticker_maker.api.replicate_models import Asked, prediction
    from sticker_maker.jobs import Job

    def webhook_data(job: Job, root: str) -> dict:  # type: ignore[type-arg]
        asked = Asked.load(job.api)  # a Replicate prediction: its webhooks carry it bare
        return prediction(job, asked, root) if asked else job_body(job, root)

    from sticker_maker.jobs.reaper import Reaper

    settings = svc.settings
    return [
        Reaper(svc.jobs, lease_timeout=settings.lease_timeout, max_attempts=settings.max_attempts),
        Sweeper(svc.db, svc.storage, settings.retention_seconds, settings.sweep_interval),
        WebhookSender(
            svc.db,
            lambda row, root: webhook_data(Job.from_row(row), root),
            allow_networks=settings.webhook_allow_networks,
            timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
            backoff=settings.webhook_backoff,
        ),
    ]
