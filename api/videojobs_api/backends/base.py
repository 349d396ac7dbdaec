"""The job backend interface the routes use, and the artifact access every backend shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from videojobs.artifacts import (
    METADATA_FILE,
    SUBTITLES_SRT_FILE,
    SUBTITLES_VTT_FILE,
    THUMBNAIL_FILE,
    VIDEO_FILE,
)
from videojobs.contract import GenerationRequest, Phase, utcnow
from videojobs.storage import LocalStorage, Storage, guess_content_type
from videojobs_api.auth import Principal
from videojobs_api.models import StoredJob
from videojobs_api.problems import ArtifactNotFound

ACTIVE_PHASES = frozenset({Phase.PENDING, Phase.QUEUED, Phase.RUNNING})
"""Phases that count against a principal's cap of active jobs."""
RETRYABLE_PHASES = frozenset({Phase.FAILED, Phase.CANCELLED})
"""Phases a job can be retried from (its stored work is kept)."""


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and the fingerprint of the request body it came with."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class Created:
    """The job a create call answers with; `replayed` when an Idempotency-Key found an existing one."""

    job: StoredJob
    replayed: bool


@dataclass(frozen=True)
class Page:
    """Jobs newest first, and the cursor of the next page (None on the last)."""

    jobs: list[StoredJob]
    next_cursor: str | None


class ArtifactKind(StrEnum):
    """The stored artifacts of a finished job, by their file names."""

    VIDEO = VIDEO_FILE
    THUMBNAIL = THUMBNAIL_FILE
    SUBTITLES_VTT = SUBTITLES_VTT_FILE
    SUBTITLES_SRT = SUBTITLES_SRT_FILE
    METADATA = METADATA_FILE

    @property
    def media_type(self) -> str:
        """The artifact's Content-Type."""
        return guess_content_type(self.value)


@dataclass(frozen=True)
class Artifact:
    """Where an artifact can be read: a local file, or a presigned URL valid until `expires_at`."""

    path: Path | None = None
    url: str | None = None
    expires_at: datetime | None = None


class ArtifactStore:
    """A job's artifacts in its Storage: a local path to serve, or a presigned URL to redirect to."""

    def __init__(self, storage: Storage, presign_seconds: int) -> None:
        self.storage = storage
        self.presign_seconds = presign_seconds

    @property
    def is_local(self) -> bool:
        """Whether artifacts are files this process can serve."""
        return isinstance(self.storage, LocalStorage)

    async def locate(
        self, job_id: str, kind: ArtifactKind, content_disposition: str | None = None
    ) -> Artifact:
        """Find an artifact; ArtifactNotFound when a local one is missing (S3 URLs are not checked).

        A presigned URL's response carries `content_disposition` (the download's file name).
        """
        return await self.locate_file(job_id, kind.value, content_disposition)

    async def locate_file(self, job_id: str, name: str, content_disposition: str | None = None) -> Artifact:
        """`locate` for any artifact name relative to the job (e.g. a scene's thumbnail)."""
        key = f"{job_id}/{name}"
        if self.is_local:
            path = Path(self.storage.location(key))
            if not await asyncio.to_thread(path.is_file):
                raise ArtifactNotFound(f"Job {job_id!r} has no stored {name}.")
            return Artifact(path=path)
        expires_at = utcnow() + timedelta(seconds=self.presign_seconds)
        url = await asyncio.to_thread(
            self.storage.presigned_url, key, self.presign_seconds, content_disposition
        )
        return Artifact(url=url, expires_at=expires_at)

    async def read(self, job_id: str, kind: ArtifactKind) -> bytes:
        """An artifact's content (for small ones such as metadata)."""
        data = await asyncio.to_thread(self.storage.get_bytes, f"{job_id}/{kind.value}")
        if data is None:
            raise ArtifactNotFound(f"Job {job_id!r} has no stored {kind.value}.")
        return data

    async def delete_job(self, job_id: str) -> int:
        """Delete every stored artifact of a job; how many there were."""
        return await asyncio.to_thread(self.storage.delete_prefix, f"{job_id}/")


async def backlog_then_live(
    backlog: list[StoredJob], latest: StoredJob, after: int | None, live: asyncio.Queue[StoredJob | None]
) -> AsyncIterator[StoredJob]:
    """A job's events: the backlog, then changes from `live` (subscribed before the backlog was read)
    newer than the last one sent; nothing live once the latest, terminal, snapshot has been sent."""
    last = after or 0
    for job in backlog:
        yield job
        last = job.event_id
    if latest.status.phase.is_terminal and latest.event_id <= last:
        return
    while (change := await live.get()) is not None:
        if change.event_id > last:
            yield change
            last = change.event_id


class JobBackend(Protocol):
    """Where jobs live and run. Every method taking a principal raises JobNotFound for jobs it may not see."""

    artifacts: ArtifactStore

    async def start(self) -> None:
        """Open resources and pick up jobs left over from a previous run."""

    async def stop(self) -> None:
        """Stop running work (it resumes on the next start) and release resources."""

    async def ready(self) -> None:
        """Return when the backend can serve requests; raise BackendUnavailable otherwise."""

    async def create(
        self, principal: Principal, request: GenerationRequest, idempotency: Idempotency | None
    ) -> Created:
        """Queue a new job, or find the one an Idempotency-Key already made.

        Raises IdempotencyKeyReused for the key with another body, TooManyActiveJobs over the cap.
        """

    async def get(self, principal: Principal, job_id: str) -> StoredJob:
        """One job."""

    async def list_jobs(
        self, principal: Principal, *, cursor: str | None, limit: int, phases: Collection[Phase]
    ) -> Page:
        """The principal's jobs (all of them for an admin), newest first, optionally only these phases."""

    async def cancel(self, principal: Principal, job_id: str) -> StoredJob:
        """Stop a job (phase Cancelled); JobAlreadyFinished when it had ended."""

    async def retry(self, principal: Principal, job_id: str) -> StoredJob:
        """Run a Failed or Cancelled job again from its checkpoint (no LLM call repeated for stored work).

        Raises JobNotRetryable in any other phase, TooManyActiveJobs over the cap.
        """

    async def delete(self, principal: Principal, job_id: str) -> None:
        """Stop the job if it runs, then remove it and its stored artifacts."""

    async def events(self, principal: Principal, job_id: str, after: int | None) -> AsyncIterator[StoredJob]:
        """The job's snapshots with increasing event ids: those after `after` (else the latest), then live."""
