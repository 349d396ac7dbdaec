"""The local backend: jobs in SQLite, run by the runner in worker processes under a concurrency limit.

The backend plays the operator's part: it owns the lifecycle status fields (phase, start and completion
times, conditions) and merges in the runner-owned fields each worker reports. A worker is
`python -m videojobs_runner.local_worker <job-id>`: it reads a WorkOrder line on stdin, writes one
JobStatus JSON line per progress report on stdout, and stops (its renders too) when stdin closes, which
is how the backend cancels it (videojobs.work_order).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import ValidationError

from videojobs.artifacts import new_job_id
from videojobs.contract import (
    RUNNER_STATUS_FIELDS,
    Condition,
    ConditionStatus,
    GenerationRequest,
    JobError,
    JobStatus,
    Phase,
    Stage,
    utcnow,
)
from videojobs.storage import storage_from_settings
from videojobs.usage_metrics import UsageMeter
from videojobs.work_order import STATUS_LINE_LIMIT, WorkOrder
from videojobs_api.auth import Principal
from videojobs_api.backends.base import (
    ACTIVE_PHASES,
    RETRYABLE_PHASES,
    ArtifactStore,
    Created,
    Idempotency,
    Page,
    backlog_then_live,
)
from videojobs_api.budget import Budget, budget_today, capped
from videojobs_api.events import EventBus
from videojobs_api.models import StoredJob
from videojobs_api.problems import (
    BackendUnavailable,
    IdempotencyKeyReused,
    InvalidField,
    JobAlreadyFinished,
    JobNotFound,
    JobNotRetryable,
    TooManyActiveJobs,
)
from videojobs_api.settings import API_ENV_PREFIX, ApiSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
StatusChange = Callable[[StoredJob], JobStatus | None]
"""Computes a job's next status from its current one; None leaves it unchanged."""

ID_ATTEMPTS = 3
EXPIRY_CHECK_SECONDS = 1.0
"""How often finished jobs are checked for expiry (a cheap scan of the in-memory snapshots)."""
INTERRUPTED = "Interrupted"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL,
    priority INTEGER NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    idempotency_key TEXT,
    fingerprint TEXT,
    UNIQUE (owner, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner_phase ON jobs (owner, phase);
CREATE INDEX IF NOT EXISTS jobs_by_phase ON jobs (phase, priority, seq);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (job_id, id)
) WITHOUT ROWID;
"""


def _stored_job(row: sqlite3.Row, ttl_seconds: int | None) -> StoredJob:
    return StoredJob(
        id=row["id"],
        owner=row["owner"],
        created_at=datetime.fromisoformat(row["created_at"]),
        request=_request(json.loads(row["request"])),
        status=JobStatus.model_validate_json(row["status"]),
        event_id=row["event_id"],
        ttl_seconds=ttl_seconds,
    )


_LEGACY_FIELDS = {  # the request's shape before it was the VideoJob spec's: flat REST-only fields
    "model": ("models", "default"),
    "enable_subtitles": ("delivery", "subtitles"),
    "enable_thumbnails": ("delivery", "thumbnail"),
    "output_format": ("delivery", "format"),
    "webhook_url": ("webhook", "url"),
    "webhook_events": ("webhook", "events"),
}


def _request(stored: dict[str, Any]) -> GenerationRequest:
    """A stored request, including those stored in the shape older versions wrote."""
    if not _LEGACY_FIELDS.keys() & stored.keys():
        return GenerationRequest.model_validate(stored)
    request = {key: value for key, value in stored.items() if key not in _LEGACY_FIELDS}
    for key, (group, field) in _LEGACY_FIELDS.items():
        if stored.get(key) is not None:
            request.setdefault(group, {})[field] = stored[key]
    if "url" not in request.get("webhook", {}):
        request.pop("webhook", None)
    return GenerationRequest.model_validate(request)


def _same(a: JobStatus, b: JobStatus) -> bool:
    """Equal but for the heartbeat (which alone is no status change)."""
    return a.model_dump(exclude={"heartbeat_time"}) == b.model_dump(exclude={"heartbeat_time"})


class _Store:
    """The SQLite side of the backend. Every method runs on the backend's single database thread."""

    def __init__(self, path: Path, publish: Callable[[StoredJob], None], ttl_seconds: int | None) -> None:
        self.path = path
        self.publish = publish
        self.ttl_seconds = ttl_seconds
        self._conn: sqlite3.Connection | None = None

    def _job(self, row: sqlite3.Row) -> StoredJob:
        return _stored_job(row, self.ttl_seconds)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "the store is not open"
        return self._conn

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    def all(self) -> list[StoredJob]:
        return [self._job(row) for row in self.conn.execute("SELECT * FROM jobs ORDER BY seq")]

    def create(
        self,
        job: StoredJob,
        idempotency: Idempotency | None,
        max_active: int,
        retry_after_seconds: int,
        budget: Budget | None,
    ) -> Created:
        with self._transaction() as conn:
            if idempotency is not None:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (job.owner, idempotency.key)
                ).fetchone()
                if row is not None:
                    if row["fingerprint"] != idempotency.fingerprint:
                        raise IdempotencyKeyReused()
                    return Created(self._job(row), replayed=True)
            _check_cap(conn, job.owner, max_active, retry_after_seconds)
            job = replace(job, request=capped(budget, job.request))
            conn.execute(
                "INSERT INTO jobs (id, owner, created_at, priority, request, status, phase, event_id,"
                " idempotency_key, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.owner,
                    job.created_at.isoformat(),
                    job.request.priority.rank,
                    job.request.model_dump_json(),
                    job.status.model_dump_json(),
                    job.status.phase.value,
                    job.event_id,
                    idempotency.key if idempotency else None,
                    idempotency.fingerprint if idempotency else None,
                ),
            )
            self._record_event(conn, job)
        self.publish(job)
        return Created(job, replayed=False)

    def page(
        self, owner: str | None, before: int | None, limit: int, phases: Collection[Phase]
    ) -> tuple[list[StoredJob], int | None]:
        """Up to `limit` jobs newest first, and the seq to continue before when there are more."""
        clauses, params = ["1 = 1"], list[object]()
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if before is not None:
            clauses.append("seq < ?")
            params.append(before)
        if phases:
            clauses.append(f"phase IN ({_marks(phases)})")
            params.extend(phase.value for phase in phases)
        rows = self.conn.execute(
            f"SELECT * FROM jobs WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?",
            (*params, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        return [self._job(row) for row in rows[:limit]], rows[limit - 1]["seq"] if more else None

    def change(self, job_id: str, change: StatusChange) -> StoredJob | None:
        """Apply `change` atomically; the new snapshot when the status changed (then published)."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            updated = self._apply(conn, self._job(row), change)
        if updated is not None:
            self.publish(updated)
        return updated

    def retry(
        self, job_id: str, max_active: int, retry_after_seconds: int, budget: Budget | None
    ) -> StoredJob | None:
        """Queue a Failed or Cancelled job again, within its owner's cap of active jobs and its budget."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = self._job(row)
            if job.status.phase not in RETRYABLE_PHASES:
                raise JobNotRetryable(job)
            _check_cap(conn, job.owner, max_active, retry_after_seconds)
            request = capped(budget, job.request, job.status.usage.cost_usd)
            if request != job.request:
                conn.execute("UPDATE jobs SET request = ? WHERE id = ?", (request.model_dump_json(), job_id))
                job = replace(job, request=request)
            updated = self._apply(conn, job, _requeued)
        if updated is not None:
            self.publish(updated)
        return updated

    def claim_next(self) -> StoredJob | None:
        """The next queued job (highest priority, then oldest), now Running."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE phase = ? ORDER BY priority DESC, seq LIMIT 1",
                (Phase.QUEUED.value,),
            ).fetchone()
            if row is None:
                return None
            updated = self._apply(conn, self._job(row), _started)
        if updated is not None:
            self.publish(updated)
        return updated

    def requeue_interrupted(self) -> list[StoredJob]:
        """Jobs left Running by a previous server: marked interrupted and queued to resume."""
        requeued = []
        with self._transaction() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE phase = ?", (Phase.RUNNING.value,)).fetchall()
            for row in rows:
                updated = self._apply(conn, self._job(row), _interrupted)
                if updated is not None:
                    requeued.append(updated)
        for job in requeued:
            self.publish(job)
        return requeued

    def events_after(self, job_id: str, after: int) -> list[tuple[int, JobStatus]]:
        rows = self.conn.execute(
            "SELECT id, status FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after)
        ).fetchall()
        return [(row["id"], JobStatus.model_validate_json(row["status"])) for row in rows]

    def remove(self, job_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def _apply(self, conn: sqlite3.Connection, job: StoredJob, change: StatusChange) -> StoredJob | None:
        status = change(job)
        if status is None or _same(status, job.status):
            return None
        updated = replace(job, status=status, event_id=job.event_id + 1)
        conn.execute(
            "UPDATE jobs SET status = ?, phase = ?, event_id = ? WHERE id = ?",
            (status.model_dump_json(), status.phase.value, updated.event_id, job.id),
        )
        self._record_event(conn, updated)
        return updated

    @staticmethod
    def _record_event(conn: sqlite3.Connection, job: StoredJob) -> None:
        conn.execute(
            "INSERT INTO events (job_id, id, status) VALUES (?, ?, ?)",
            (job.id, job.event_id, job.status.model_dump_json()),
        )


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" for _ in values)


# --- status transitions (the operator's part) ---------------------------------------------------


def _started(job: StoredJob) -> JobStatus:
    status = job.status
    return status.model_copy(
        update={"phase": Phase.RUNNING, "start_time": status.start_time or utcnow(), "message": "Starting"}
    )


def _interrupted(job: StoredJob) -> JobStatus:
    message = "Interrupted by a server restart; it resumes from its checkpoint"
    condition = Condition(
        type=INTERRUPTED,
        status=ConditionStatus.TRUE,
        reason="ServerRestart",
        message=message,
        last_transition_time=utcnow(),
    )
    conditions = [c for c in job.status.conditions if c.type != INTERRUPTED] + [condition]
    return job.status.model_copy(update={"phase": Phase.QUEUED, "message": message, "conditions": conditions})


def _reported(job: StoredJob, reported: JobStatus) -> JobStatus | None:
    if job.status.phase is not Phase.RUNNING:
        return None
    return job.status.model_copy(update={name: getattr(reported, name) for name in RUNNER_STATUS_FIELDS})


def _ended(job: StoredJob, returncode: int | None) -> JobStatus | None:
    status = job.status
    if status.phase is not Phase.RUNNING:
        return None
    if returncode == 0 and status.stage is Stage.COMPLETED and status.error is None:
        return status.model_copy(update={"phase": Phase.SUCCEEDED, "completion_time": utcnow()})
    error = status.error or JobError(
        stage=status.stage,
        message="the worker could not start"
        if returncode is None
        else f"the worker exited with {returncode}",
        recoverable=True,
        suggestion="Check the server's worker log for this job, then create the job again.",
    )
    return status.model_copy(
        update={"phase": Phase.FAILED, "error": error, "message": error.message, "completion_time": utcnow()}
    )


def _cancelled(job: StoredJob, *, strict: bool) -> JobStatus | None:
    if job.status.phase.is_terminal:
        if strict:
            raise JobAlreadyFinished(job)
        return None
    return job.status.model_copy(
        update={"phase": Phase.CANCELLED, "message": "Cancelled", "completion_time": utcnow()}
    )


def _check_cap(conn: sqlite3.Connection, owner: str, max_active: int, retry_after_seconds: int) -> None:
    """Raise TooManyActiveJobs when `owner` has `max_active` active jobs already."""
    phases = tuple(phase.value for phase in ACTIVE_PHASES)
    (active,) = conn.execute(
        f"SELECT COUNT(*) FROM jobs WHERE owner = ? AND phase IN ({_marks(phases)})", (owner, *phases)
    ).fetchone()
    if active >= max_active:
        raise TooManyActiveJobs(max_active, retry_after_seconds)


def _requeued(job: StoredJob) -> JobStatus:
    return job.status.model_copy(
        update={
            "phase": Phase.QUEUED,
            "message": "Queued again: the retry continues from the stored work",
            "error": None,
            "start_time": None,
            "completion_time": None,
        }
    )


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if kind == "seq" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidField("cursor", "query", "not a cursor from this API")


# --- the backend --------------------------------------------------------------------------------


@dataclass
class _Worker:
    """A running job's worker process and the task that follows it."""

    job_id: str
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None
    stop_requested: bool = False


class LocalBackend:
    """Jobs in SQLite, each run by a worker process; at most `local_workers` at once, by priority.

    In the operator's place it also counts the jobs' tokens and cost by model (`usage`, on the API's
    registry: videojobs_llm_*).
    """

    def __init__(self, settings: ApiSettings, bus: EventBus, usage: UsageMeter) -> None:
        self.settings = settings
        self.bus = bus
        self.usage = usage
        self.artifacts = ArtifactStore(
            storage_from_settings(settings.runner), settings.runner.presigned_url_expiry_seconds
        )
        self._store = _Store(settings.database_path, self._publish_threadsafe, settings.job_ttl_seconds)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videojobs-sqlite")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[str, StoredJob] = {}
        """The latest snapshot of every job: reads never wait for the database."""
        self._workers: dict[str, _Worker] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._stopping = False

    async def _db(self, function: Callable[..., T], *args: object) -> T:
        """Run a store method on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))

    def _publish_threadsafe(self, job: StoredJob) -> None:
        """From the database thread, right after a commit: hand the change to the loop, in commit order.

        A caller awaiting the database call resumes after this callback ran, so it reads its own write.
        """
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._changed, job)

    def _changed(self, job: StoredJob) -> None:
        if job.id in self._jobs or job.event_id == 1:  # a deleted job is never brought back
            self._jobs[job.id] = job
            self.usage.observe(job.id, job.status.usage_by_model)
            self.bus.publish(job)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, requeue jobs a previous server left running, start scheduling."""
        self._loop = asyncio.get_running_loop()
        await self._db(self._store.open)
        self._jobs = {job.id: job for job in await self._db(self._store.all)}
        for job in self._jobs.values():  # counted by an earlier server: only the growth from here on
            self.usage.observe(job.id, job.status.usage_by_model)
        requeued = await self._db(self._store.requeue_interrupted)
        if requeued:
            log.info("resuming %d interrupted job(s): %s", len(requeued), ", ".join(j.id for j in requeued))
        self._scheduler = asyncio.create_task(self._schedule())
        if self.settings.job_ttl_seconds is not None:
            self._expiry = asyncio.create_task(self._expire())
        self._wake.set()

    async def stop(self) -> None:
        """Stop scheduling and every worker; their jobs stay Running, to be resumed by the next start."""
        self._stopping = True
        for task in (self._scheduler, self._expiry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(self._stop_worker(job_id) for job_id in list(self._workers)))
        await self._db(self._store.close)
        self._executor.shutdown(wait=True)

    async def ready(self) -> None:
        """Ready when the scheduler runs and the database answers."""
        if self._scheduler is None or self._scheduler.done():
            raise BackendUnavailable("The local job scheduler is not running.")
        try:
            await self._db(self._store.ping)
        except sqlite3.Error as error:
            raise BackendUnavailable(f"The job database does not answer: {error}") from error

    # --- jobs ---------------------------------------------------------------------------------

    async def create(
        self, principal: Principal, request: GenerationRequest, idempotency: Idempotency | None
    ) -> Created:
        """Queue a job (phase Queued) unless an Idempotency-Key names an existing one; its max_cost_usd
        capped to what is left of the principal's daily budget."""
        attempt = 1
        while True:
            job = StoredJob(
                id=new_job_id(request.topic),
                owner=principal.name,
                created_at=utcnow(),
                request=request,
                status=JobStatus(phase=Phase.QUEUED, message="Waiting for a worker"),
                event_id=1,
            )
            try:
                created = await self._db(
                    self._store.create,
                    job,
                    idempotency,
                    self.settings.max_active_jobs,
                    self.settings.retry_after_seconds,
                    self._budget(principal.name),
                )
            except sqlite3.IntegrityError:  # the random id suffix collided
                if attempt == ID_ATTEMPTS:
                    raise
                attempt += 1
                continue
            self._wake.set()
            return created

    async def get(self, principal: Principal, job_id: str) -> StoredJob:
        """One job the principal may see."""
        job = self._jobs.get(job_id)
        if job is None or not principal.may_see(job.owner):
            raise JobNotFound(job_id)
        return job

    async def list_jobs(
        self, principal: Principal, *, cursor: str | None, limit: int, phases: Collection[Phase]
    ) -> Page:
        """Newest first; admins see every principal's jobs."""
        before = _decode_cursor(cursor) if cursor is not None else None
        owner = None if principal.is_admin else principal.name
        jobs, next_seq = await self._db(self._store.page, owner, before, limit, phases)
        return Page(jobs, _encode_cursor(next_seq) if next_seq is not None else None)

    async def cancel(self, principal: Principal, job_id: str) -> StoredJob:
        """Cancel in the database first (so nothing restarts it), then stop its worker."""
        await self.get(principal, job_id)
        cancelled = await self._db(self._store.change, job_id, partial(_cancelled, strict=True))
        await self._stop_worker(job_id)
        return cancelled or await self.get(principal, job_id)

    async def retry(self, principal: Principal, job_id: str) -> StoredJob:
        """Queue a Failed or Cancelled job again; its worker resumes from the stored checkpoint."""
        owner = (await self.get(principal, job_id)).owner
        settings = self.settings
        retried = await self._db(
            self._store.retry,
            job_id,
            settings.max_active_jobs,
            settings.retry_after_seconds,
            self._budget(owner),
        )
        self._wake.set()
        return retried or await self.get(principal, job_id)

    def _budget(self, owner: str) -> Budget | None:
        """The owner's daily budget, from the jobs' latest snapshots."""
        jobs = (job for job in self._jobs.values() if job.owner == owner)
        return budget_today(self.settings.daily_budget(owner), jobs)

    async def delete(self, principal: Principal, job_id: str) -> None:
        """Cancel and stop it if active, then delete its artifacts, worker log and record."""
        await self.get(principal, job_id)
        await self._remove(job_id)

    async def _expire(self) -> None:
        """Delete finished jobs, with their artifacts, once they are past their expires_at."""
        while True:
            now = utcnow()
            for job in list(self._jobs.values()):
                expires_at = job.expires_at
                if expires_at is not None and expires_at <= now:
                    log.info("job %s expired at %s: deleting it and its artifacts", job.id, expires_at)
                    await self._remove(job.id)
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)

    async def _remove(self, job_id: str) -> None:
        await self._db(self._store.change, job_id, partial(_cancelled, strict=False))
        await self._stop_worker(job_id)
        await self.artifacts.delete_job(job_id)
        await asyncio.to_thread(self._remove_local_files, job_id)
        await self._db(self._store.remove, job_id)
        self._jobs.pop(job_id, None)
        self.usage.forget(job_id)
        self.bus.close(job_id)

    async def events(self, principal: Principal, job_id: str, after: int | None) -> AsyncIterator[StoredJob]:
        """Missed events after `after` (the latest snapshot without it), then live ones."""
        await self.get(principal, job_id)
        return self._event_stream(job_id, after)

    async def _event_stream(self, job_id: str, after: int | None) -> AsyncIterator[StoredJob]:
        with self.bus.subscribe(job_id) as live:  # subscribed before reading, so nothing falls between
            latest = self._jobs.get(job_id)
            if latest is None:
                return
            if after is None:
                backlog = [latest]
            else:
                missed = await self._db(self._store.events_after, job_id, after)
                backlog = [replace(latest, status=status, event_id=event_id) for event_id, status in missed]
            async for job in backlog_then_live(backlog, latest, after, live):
                yield job

    # --- workers ------------------------------------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self._workers) < self.settings.local_workers:
                job = await self._db(self._store.claim_next)
                if job is None:
                    break
                worker = _Worker(job.id)
                self._workers[job.id] = worker
                worker.task = asyncio.create_task(self._run(worker, job))

    async def _run(self, worker: _Worker, job: StoredJob) -> None:
        returncode: int | None = None
        try:
            returncode = await self._work(worker, job)
        except Exception:
            log.exception("the worker of job %s failed", job.id)
        finally:
            self._workers.pop(job.id, None)
            self._wake.set()
        if not self._stopping:
            await self._db(self._store.change, job.id, partial(_ended, returncode=returncode))

    async def _work(self, worker: _Worker, job: StoredJob) -> int:
        log_file = await asyncio.to_thread(self._open_log, job.id)
        with log_file:
            process = await asyncio.create_subprocess_exec(
                *self.settings.worker_command,
                job.id,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=_worker_environment(),
                start_new_session=True,
                limit=STATUS_LINE_LIMIT,
            )
        worker.process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            order = WorkOrder(settings=self.settings.runner, request=job.request)
            process.stdin.write(order.model_dump_json().encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            if worker.stop_requested:
                process.stdin.close()
            async for line in process.stdout:
                await self._report(job.id, line)
            return await process.wait()
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
                await process.wait()

    async def _report(self, job_id: str, line: bytes) -> None:
        try:
            reported = JobStatus.model_validate_json(line)
        except ValidationError:
            log.warning("job %s: ignored a status line that is not a JobStatus", job_id)
            return
        await self._db(self._store.change, job_id, partial(_reported, reported=reported))

    async def _stop_worker(self, job_id: str) -> None:
        """Close the worker's stdin (it stops cleanly, renders included); kill its group after the grace."""
        worker = self._workers.get(job_id)
        if worker is None or worker.task is None:
            return
        worker.stop_requested = True
        if worker.process is not None and worker.process.stdin is not None:
            worker.process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(worker.task), self.settings.worker_stop_seconds)
        except TimeoutError:
            if worker.process is not None:
                log.warning("job %s: the worker ignored its stop; killing it", job_id)
                _kill_group(worker.process.pid)
            await worker.task

    def _log_path(self, job_id: str) -> Path:
        return self.settings.runner.scratch_dir / f"{job_id}.worker.log"

    def _open_log(self, job_id: str) -> TextIO:
        path = self._log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a")

    def _remove_local_files(self, job_id: str) -> None:
        self._log_path(job_id).unlink(missing_ok=True)
        shutil.rmtree(self.settings.runner.scratch_dir / job_id, ignore_errors=True)


def _worker_environment() -> dict[str, str]:
    """The server's environment without the API's own settings (its keys and secrets above all)."""
    return {name: value for name, value in os.environ.items() if not name.startswith(API_ENV_PREFIX)}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
