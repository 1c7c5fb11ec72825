"""Jobs: the queue and the one job envelope every API renders."""

from sticker_maker.jobs.models import Job, JobStatus, OutputFile
from sticker_maker.jobs.store import JobStore

__all__ = ["Job", "JobStatus", "JobStore", "OutputFile"]
