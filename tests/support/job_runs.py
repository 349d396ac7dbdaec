"""Jobs run in this process through the runner's entry points: new jobs, revises of stored ones, resumes."""

from __future__ import annotations

import asyncio

from videojobs.contract import GenerationRequest, JobStatus, Revision
from videojobs.settings import Settings
from videojobs_runner.jobs import create_job, open_job, resolve, run_job


def run_new(settings: Settings, request: GenerationRequest, job_id: str) -> JobStatus:
    """Create job `job_id` for `request` and run it to its end."""
    record = resolve(request, settings, job_id)
    return asyncio.run(run_job(record, create_job(record, settings), settings))


def run_revise(settings: Settings, revision: Revision, job_id: str) -> JobStatus:
    """Create job `job_id` as a revise of its stored parent (the parent's request plus `revision`), run it."""
    parent, _, _ = open_job(revision.parent, settings)
    return run_new(settings, parent.revision_request(revision), job_id)


def resume(settings: Settings, job_id: str) -> JobStatus:
    """Run a stored job again from its checkpoint."""
    record, artifacts, settings = open_job(job_id, settings)
    return asyncio.run(run_job(record, artifacts, settings))
