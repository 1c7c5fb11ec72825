"""What the routes use, built once per app: settings, database, stores, presets, storage."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from sticker_maker.accounts import KeyStore
from sticker_maker.accounts.admission import Admission
from sticker_maker.accounts.idempotency import IdempotencyStore
from sticker_maker.accounts.limits import RequestCounter
from sticker_maker.config import Settings
from sticker_maker.db import Database
from sticker_maker.jobs import JobStore
from sticker_maker.presets import PresetRegistry, load_presets
from sticker_maker.storage import Storage, open_storage


@dataclass
class Services:
    settings: Settings
    db: Database
    presets: PresetRegistry
    jobs: JobStore
    keys: KeyStore
    storage: Storage
    idempotency: IdempotencyStore
    #: per-process request counting for the requests-per-minute limit
    requests: RequestCounter | None = None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        settings.ensure_dirs()
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        db.upgrade()
        presets = load_presets(settings.presets_file)
        jobs = JobStore(db)
        jobs.admission = Admission(settings, presets)  # limits + credit reservation on submit
        return cls(
            settings=settings,
            db=db,
            presets=presets,
            jobs=jobs,
            keys=KeyStore(db),
            storage=open_storage(settings.storage_url, settings.storage_dir),
            idempotency=IdempotencyStore(db, settings.retention_seconds),
            requests=RequestCounter(db),
        )


async def services(request: Request) -> Services:
    # async: FastAPI would run a plain function in the thread pool, a hop per request
    return request.app.state.services
