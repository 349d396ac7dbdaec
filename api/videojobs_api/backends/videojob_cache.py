"""The kubernetes backend's cache: one list+watch of the namespace's VideoJobs, kept in memory.

It resumes from its resourceVersion, relists after 410 Gone, notices a silent watch, counts each owner's
active jobs, and publishes every changed status view on the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from videojobs import deadlines
from videojobs.contract import GenerationRequest, JobStatus, storage_job_id
from videojobs.keys import (
    CREATED_AT_ANNOTATION,
    FINGERPRINT_ANNOTATION,
    OWNER_ANNOTATION,
    WEBHOOK_SENT_ANNOTATION,
)
from videojobs_api.backends.apiserver import UNREACHABLE, ApiServerError, VideoJobApi
from videojobs_api.backends.base import ACTIVE_PHASES
from videojobs_api.events import EventBus
from videojobs_api.models import JobStatusResponse, StoredJob
from videojobs_api.problems import BackendUnavailable

log = logging.getLogger(__name__)

HISTORY = 256
"""Snapshots kept per job for Last-Event-ID resumes."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
"""Back-off between failed list or watch attempts."""


def explain(error: Exception, namespace: str) -> str:
    """One line on why the API server could not be used."""
    if isinstance(error, ApiServerError):
        if error.status == 404:
            return f"the VideoJob CRD is not installed (kubectl apply -f crds/videojob.yaml): {error}"
        if error.status in (401, 403):
            return f"not allowed to use VideoJobs in namespace {namespace} (api/rbac.yaml): {error}"
        return f"the API server answered {error}"
    return f"the API server is not reachable: {error or type(error).__name__}"


def _created_at(meta: dict[str, Any]) -> datetime:
    stamp = (meta.get("annotations") or {}).get(CREATED_AT_ANNOTATION) or meta.get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


_REQUEST_KEYS = frozenset(info.alias or name for name, info in GenerationRequest.model_fields.items())


def _request(obj: dict[str, Any]) -> GenerationRequest:
    """The request a VideoJob holds: its spec's request part (just the topic if that part is unreadable)."""
    spec = obj.get("spec") or {}
    with contextlib.suppress(ValidationError):
        return GenerationRequest.model_validate({key: spec[key] for key in _REQUEST_KEYS & spec.keys()})
    return GenerationRequest(topic=str(spec.get("topic") or "untitled")[:500])


def _status(obj: dict[str, Any]) -> JobStatus:
    try:
        return JobStatus.model_validate(obj.get("status") or {})
    except ValidationError as error:
        log.warning("VideoJob %s: unreadable status (%s)", obj["metadata"]["name"], error.errors()[0]["msg"])
        return JobStatus()


def stored_job(obj: dict[str, Any], namespace: str) -> StoredJob:
    """The API's view of a VideoJob; its event id is its resourceVersion."""
    meta = obj["metadata"]
    return StoredJob(
        id=meta["name"],
        owner=(meta.get("annotations") or {}).get(OWNER_ANNOTATION, ""),
        created_at=_created_at(meta),
        request=_request(obj),
        status=_status(obj),
        event_id=int(meta["resourceVersion"]),
        storage_id=storage_job_id(namespace, meta["name"], meta["uid"]),
        webhook_sent=(meta.get("annotations") or {}).get(WEBHOOK_SENT_ANNOTATION),
        ttl_seconds=(obj.get("spec") or {}).get("ttlSecondsAfterFinished"),
    )


def _view(job: StoredJob) -> JobStatusResponse:
    """What a status event shows: a change elsewhere (heartbeat, conditions, annotations) is no event."""
    return JobStatusResponse.of(job)


@dataclass
class CacheEntry:
    """A cached job: its latest snapshot, recent distinct snapshots, and what an idempotent create finds."""

    job: StoredJob
    uid: str
    version: int
    """The latest resourceVersion seen (job.event_id is that of the latest status change)."""
    status: dict[str, Any]
    """The VideoJob's status as last seen, without the heartbeat."""
    history: deque[StoredJob]
    fingerprint: str | None = None
    cancelled: bool = False
    """spec.cancel: the current attempt is cancelled for good."""
    attempt: int = 0
    """spec.attempt: raised by one for each retry."""


class VideoJobCache:
    """Every VideoJob of one namespace as the watch last reported it, and each owner's active count."""

    def __init__(self, api: VideoJobApi, namespace: str, bus: EventBus) -> None:
        self.api = api
        self.namespace = namespace
        self.bus = bus
        self.entries: dict[str, CacheEntry] = {}
        self.deleting: dict[str, asyncio.Event] = {}
        """Uids this process deletes, until the watch reports them gone (never brought back meanwhile)."""
        self.active: Counter[str] = Counter()
        """Cached jobs per owner in an active phase, kept up to date by `changed` and `_removed`."""
        self.synced = asyncio.Event()
        self.problem: str | None = "the VideoJob cache has not synced yet"
        self._heard = time.monotonic()
        """When the API server last answered the list+watch (an event, a bookmark, a watch opened)."""
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the list+watch task."""
        self._watcher = asyncio.create_task(self._watch_forever(), name="videojobs-watch")

    async def stop(self) -> None:
        """Stop the list+watch task."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def ready(self) -> None:
        """Raise BackendUnavailable unless synced and the watch answered within its deadline."""
        if self.problem is not None:
            raise BackendUnavailable(f"Kubernetes: {self.problem}.")
        silent = time.monotonic() - self._heard
        if silent > deadlines.WATCH_SILENCE_SECONDS:
            raise BackendUnavailable(f"Kubernetes: the VideoJob watch has been silent for {silent:.0f} s.")

    def require_synced(self) -> None:
        """Raise BackendUnavailable until the first list has filled the cache."""
        if not self.synced.is_set():
            raise BackendUnavailable(f"Kubernetes: {self.problem}.")

    # --- the watch ----------------------------------------------------------------------------

    async def _watch_forever(self) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                failures = 0
            except ApiServerError as error:
                if error.status == 410:  # too old to resume: list again
                    log.info("VideoJob watch expired (410 Gone); relisting")
                    version = None
                    continue
                failures += 1
                self._report_problem(explain(error, self.namespace))
            except (*UNREACHABLE, ValueError) as error:
                failures += 1
                self._report_problem(explain(error, self.namespace))
            if failures:
                await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _report_problem(self, problem: str) -> None:
        log.warning("VideoJob watch: %s", problem)
        self._set_problem(problem)

    async def _list(self) -> str:
        """List every VideoJob (in pages) into the cache; the resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self.api.list(limit=500, continue_token=token)
            items += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                version: str = page["metadata"]["resourceVersion"]
                self._replace_all(items)
                return version

    async def _watch(self, version: str) -> str:
        """Follow changes after `version` until the server ends the watch; the last version seen."""
        async with self.api.watch(version, deadlines.WATCH_SECONDS) as events:
            self._set_problem(None)
            self._heard = time.monotonic()
            async for event in events:
                self._heard = time.monotonic()
                kind, obj = event["type"], event["object"]
                version = obj["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    self._removed(obj["metadata"]["name"], obj["metadata"]["uid"])
                elif kind in ("ADDED", "MODIFIED"):
                    self.changed(obj)
        return version

    # --- the cache ----------------------------------------------------------------------------

    def jobs(self) -> Iterable[StoredJob]:
        """Every cached job."""
        return (entry.job for entry in self.entries.values())

    def _set_problem(self, problem: str | None) -> None:
        self.problem = problem if problem is not None or self.synced.is_set() else self.problem

    def _replace_all(self, items: list[dict[str, Any]]) -> None:
        names = {obj["metadata"]["name"] for obj in items}
        for name in [name for name in self.entries if name not in names]:
            self._removed(name)
        for obj in items:
            self.changed(obj)
        for uid in self.deleting.keys() - {obj["metadata"]["uid"] for obj in items}:
            self.deleting.pop(uid).set()
        self.synced.set()
        self.problem = None
        self._heard = time.monotonic()

    def changed(self, obj: dict[str, Any]) -> None:
        """A VideoJob as the API server has it now: cache it; publish it when its status view changed."""
        meta = obj["metadata"]
        name, uid = meta["name"], meta["uid"]
        if uid in self.deleting or meta.get("deletionTimestamp"):
            return
        version = int(meta["resourceVersion"])
        entry = self.entries.get(name)
        if entry is not None and entry.uid != uid:  # a new VideoJob of the same name
            self._removed(name)
            entry = None
        before = entry.job if entry is not None else None
        self._update(name, entry, obj, version)
        self._tally(before, -1)
        self._tally(self.entries[name].job, +1)

    def _update(self, name: str, entry: CacheEntry | None, obj: dict[str, Any], version: int) -> None:
        """Cache a new VideoJob or a newer version of a cached one; publish a changed status view."""
        meta = obj["metadata"]
        status = {key: value for key, value in (obj.get("status") or {}).items() if key != "heartbeatTime"}
        if entry is None:
            job = stored_job(obj, self.namespace)
            fingerprint = (meta.get("annotations") or {}).get(FINGERPRINT_ANNOTATION)
            entry = CacheEntry(job, meta["uid"], version, status, deque([job], maxlen=HISTORY), fingerprint)
            self.entries[name] = entry
            self.bus.publish(job)
        elif version > entry.version:
            entry.version = version
            sent = (meta.get("annotations") or {}).get(WEBHOOK_SENT_ANNOTATION)
            if sent != entry.job.webhook_sent:  # no event: what the webhook sender recorded
                entry.job = replace(entry.job, webhook_sent=sent)
            if status != entry.status:  # not a heartbeat, label or annotation change alone
                entry.status = status
                job = stored_job(obj, self.namespace)
                if _view(job) == _view(entry.job):
                    entry.job = replace(job, event_id=entry.job.event_id)
                else:
                    entry.job = job
                    entry.history.append(job)
                    self.bus.publish(job)
            request = _request(obj)
            if request != entry.job.request:  # a mutable field changed (max_cost_usd, tags, webhook)
                entry.job = replace(entry.job, request=request)
        spec = obj.get("spec") or {}
        entry.cancelled = bool(spec.get("cancel"))
        entry.attempt = int(spec.get("attempt") or 0)

    def _removed(self, name: str, uid: str | None = None) -> None:
        """The VideoJob is gone (only that incarnation of it, given its uid)."""
        if uid is not None and (gone := self.deleting.pop(uid, None)) is not None:
            gone.set()
        self.forget(name, uid)

    def forget(self, name: str, uid: str | None = None) -> None:
        """Drop the cached VideoJob (only that incarnation of it, given its uid)."""
        entry = self.entries.get(name)
        if entry is not None and uid in (None, entry.uid):
            del self.entries[name]
            self._tally(entry.job, -1)
            self.bus.close(name)

    def _tally(self, job: StoredJob | None, change: int) -> None:
        """Count `job` in (+1) or out (-1) of its owner's active jobs, if it is active."""
        if job is not None and job.status.phase in ACTIVE_PHASES:
            self.active[job.owner] += change
            if not self.active[job.owner]:
                del self.active[job.owner]
