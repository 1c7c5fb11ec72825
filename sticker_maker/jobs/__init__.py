"""Jobs: the queue and the one job envelope every API renders."""

from sticker_maker.jobs.models import AnyInput, Job, JobStatus, OutputFile, parse_input
from sticker_maker.jobs.store import JobStore

__all__ = ["AnyInput", "Job", "JobStatus", "JobStore", "OutputFile", "parse_input"]
