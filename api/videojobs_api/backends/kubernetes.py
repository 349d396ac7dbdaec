"""The Kubernetes backend: each job is a VideoJob in one namespace, read from a watch-backed cache.

One list+watch of the namespace's VideoJobs (resourceVersion resume, bookmarks, a relist after 410
Gone) keeps a snapshot of every VideoJob in memory and feeds the event bus; reads and SSE streams are
served from it (a name it lacks is asked of the API server once: another replica may have just made
it). Writes (create, cancel = spec.cancel, retry, delete) go to the API server and are put into the cache at
once, so a client reads its own writes, on any replica. The watch and every call run on the event loop
(apiserver.py). The operator turns VideoJobs into Jobs and owns the phase; the runner reports progress
into the status subresource.

Event ids are resourceVersions: the same on every replica and across restarts, and increasing
(comparable integers for objects of one resource since Kubernetes 1.35, KEP-5504).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any

from videojobs.artifacts import new_job_id
from videojobs.contract import GenerationRequest, Phase, VideoJobSpec
from videojobs.crd import API_VERSION, KIND
from videojobs.errors import ConfigurationError
from videojobs.keys import (
    CREATED_AT_ANNOTATION,
    FINGERPRINT_ANNOTATION,
    IDEMPOTENCY_LABEL,
    OWNER_ANNOTATION,
    OWNER_LABEL,
)
from videojobs.storage import storage_from_settings
from videojobs_api.auth import Principal
from videojobs_api.backends.apiserver import UNREACHABLE, ApiServerError, VideoJobApi, load_configuration
from videojobs_api.backends.base import (
    RETRYABLE_PHASES,
    ArtifactStore,
    Created,
    Idempotency,
    Page,
    backlog_then_live,
)
from videojobs_api.backends.videojob_cache import CacheEntry, VideoJobCache, explain
from videojobs_api.backends.webhook_lease import WebhookLease
from videojobs_api.budget import Budget, budget_today, capped
from videojobs_api.events import EventBus
from videojobs_api.models import StoredJob
from videojobs_api.problems import (
    BackendUnavailable,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidField,
    JobAlreadyFinished,
    JobNotFound,
    JobNotRetryable,
    TooManyActiveJobs,
)
from videojobs_api.settings import ApiSettings
from videojobs_api.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

HISTORY = 256
"""Snapshots kept per job for Last-Event-ID resumes."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
"""Back-off between failed list or watch attempts."""
SYNC_WAIT_SECONDS = 10
"""How long start-up waits for the first list (the server then starts unready, and says why)."""
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_ID_ATTEMPTS = 3


def owner_label(principal: str) -> str:
    """A principal's name as a label value: itself when it is one, else a readable prefix and a hash."""
    if _LABEL_VALUE.match(principal):
        return principal
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", principal)[:50].strip("-_.") or "p"
    return f"{slug}-{hashlib.sha256(principal.encode()).hexdigest()[:10]}"


def _idempotency_hash(owner: str, key: str) -> str:
    return hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()[:40]


def _idempotent_name(key_hash: str) -> str:
    """The VideoJob name of an Idempotency-Key: a retry on any replica collides with it (409)."""
    return f"idem-{key_hash[:24]}"


def probe(settings: ApiSettings) -> None:
    """Check that the cluster answers and VideoJobs can be listed; ConfigurationError says why not."""
    api = VideoJobApi(load_configuration(settings.kubeconfig), settings.namespace, pool=1)

    async def list_one() -> None:
        try:
            await api.list(limit=1)
        finally:
            await api.close()

    try:
        asyncio.run(list_one())
    except (ApiServerError, *UNREACHABLE) as error:
        raise ConfigurationError(
            f"the kubernetes backend cannot use {api.host}: {explain(error, settings.namespace)}",
            suggestion="Check VIDEOJOBS_API_KUBECONFIG / VIDEOJOBS_API_NAMESPACE, "
            "or use VIDEOJOBS_API_BACKEND=local.",
        ) from error


def _encode_cursor(job: StoredJob) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, name = raw.partition("|")
        if name:
            return datetime.fromisoformat(stamp), name
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidField("cursor", "query", "not a cursor from this API")


# --- the backend -------------------------------------------------------------------------------------


class KubernetesBackend:
    """Jobs as VideoJobs in `settings.namespace`; reads from one shared watch; the operator runs them."""

    def __init__(
        self,
        settings: ApiSettings,
        bus: EventBus,
        api: VideoJobApi | None = None,
        webhooks: WebhookDispatcher | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.bus = bus
        self.artifacts = ArtifactStore(
            storage_from_settings(settings.runner), settings.runner.presigned_url_expiry_seconds
        )
        self._api = api or VideoJobApi(load_configuration(settings.kubeconfig), settings.namespace)
        self.cache = VideoJobCache(self._api, settings.namespace, bus)
        self._reserved: defaultdict[str, int] = defaultdict(int)
        """Creations in flight per owner: counted against the cap before their VideoJob is cached."""
        self._webhook_lease = (
            WebhookLease(
                webhooks,
                self._api,
                self.namespace,
                settings.webhook_lease,
                self.cache.jobs,
                self.cache.changed,
            )
            if webhooks is not None and webhooks.key is not None
            else None
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the cache's list+watch; readiness waits for its first list."""
        self.cache.start()
        with contextlib.suppress(TimeoutError):  # serve anyway: /readyz says why not synced
            await asyncio.wait_for(self.cache.synced.wait(), SYNC_WAIT_SECONDS)
        if self._webhook_lease is not None:
            await self._webhook_lease.start()

    async def stop(self) -> None:
        """Stop the watch and close the connections."""
        if self._webhook_lease is not None:
            await self._webhook_lease.stop()
        await self.cache.stop()
        await self._api.close()

    async def ready(self) -> None:
        """Ready while the cache is synced and its watch is healthy."""
        self.cache.ready()

    # --- jobs ---------------------------------------------------------------------------------

    async def _visible(self, principal: Principal, job_id: str) -> CacheEntry:
        """The cached job if `principal` may see it (JobNotFound otherwise).

        A name the cache lacks is asked of the API server once: another replica may have created it a
        moment ago, and a client that follows its `Location` must not get a 404 for its own job.
        """
        self.cache.require_synced()
        entry = self.cache.entries.get(job_id) or await self._fetch(job_id)
        if entry is None or not principal.may_see(entry.job.owner):
            raise JobNotFound(job_id)
        return entry

    async def _fetch(self, name: str) -> CacheEntry | None:
        """That VideoJob from the API server, now cached; None when it does not exist or is being deleted."""
        try:
            obj = await self._api.get(name)
        except ApiServerError as error:
            if error.status == 404:
                return None
            raise self._unavailable(error) from error
        except UNREACHABLE as error:
            raise self._unavailable(error) from error
        self.cache.changed(obj)
        return self.cache.entries.get(name)

    def _find_idempotent(self, owner: str, key_hash: str) -> CacheEntry | None:
        entry = self.cache.entries.get(_idempotent_name(key_hash))
        return entry if entry is not None and entry.job.owner == owner else None

    def _replay(self, entry: CacheEntry, idempotency: Idempotency) -> Created:
        if entry.fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused()
        return Created(entry.job, replayed=True)

    def _manifest(
        self, name: str, principal: Principal, request: GenerationRequest, idempotency: Idempotency | None
    ) -> dict[str, Any]:
        execution = {
            "queue_name": self.settings.queue_for(principal.name),
            "priority_class_name": self.settings.priority_classes.get(request.priority),
            "ttl_seconds_after_finished": self.settings.job_ttl_seconds,
        }
        spec = VideoJobSpec.model_validate(request.model_dump() | execution)
        labels = {OWNER_LABEL: owner_label(principal.name), "app.kubernetes.io/created-by": "videojobs-api"}
        annotations = {
            OWNER_ANNOTATION: principal.name,
            CREATED_AT_ANNOTATION: datetime.now(UTC).isoformat(),
        }
        if idempotency is not None:
            labels[IDEMPOTENCY_LABEL] = _idempotency_hash(principal.name, idempotency.key)
            annotations[FINGERPRINT_ANNOTATION] = idempotency.fingerprint
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": spec.to_wire(),
        }

    async def create(
        self, principal: Principal, request: GenerationRequest, idempotency: Idempotency | None
    ) -> Created:
        """Create the VideoJob; an Idempotency-Key names it, so a concurrent retry (any replica) finds it."""
        self.cache.require_synced()
        key_hash = _idempotency_hash(principal.name, idempotency.key) if idempotency else None
        if idempotency is not None and key_hash is not None:
            found = self._find_idempotent(principal.name, key_hash)
            if found is not None:
                return self._replay(found, idempotency)
        owner = principal.name
        if self.cache.active[owner] + self._reserved[owner] >= self.settings.max_active_jobs:
            raise TooManyActiveJobs(self.settings.max_active_jobs, self.settings.retry_after_seconds)
        request = capped(self._budget(owner), request)
        self._reserved[owner] += 1
        try:
            for attempt in range(1, _ID_ATTEMPTS + 1):
                name = _idempotent_name(key_hash) if key_hash else new_job_id(request.topic)
                manifest = self._manifest(name, principal, request, idempotency)
                try:
                    obj = await self._api.create(manifest)
                except ApiServerError as error:
                    if error.status != 409:
                        raise self._unavailable(error) from error
                    if idempotency is not None:
                        return self._replay(await self._existing(name), idempotency)
                    if attempt == _ID_ATTEMPTS:
                        raise self._unavailable(error) from error
                    continue
                except UNREACHABLE as error:
                    raise self._unavailable(error) from error
                self.cache.changed(obj)
                return Created(self.cache.entries[name].job, replayed=False)
            raise AssertionError("unreachable")
        finally:
            self._reserved[owner] -= 1
            if not self._reserved[owner]:
                del self._reserved[owner]

    async def _existing(self, name: str) -> CacheEntry:
        """The VideoJob an Idempotency-Key named, which another request (or replica) created.

        IdempotencyKeyInUse (409, retry) while it is still being deleted.
        """
        entry = self.cache.entries.get(name) or await self._fetch(name)
        if entry is None:  # being deleted
            raise IdempotencyKeyInUse()
        return entry

    def _unavailable(self, error: Exception) -> BackendUnavailable:
        log.warning("Kubernetes API call failed: %s", error)
        return BackendUnavailable(f"Kubernetes: {explain(error, self.namespace)}.")

    async def get(self, principal: Principal, job_id: str) -> StoredJob:
        """One job, from the cache (or, for a name it lacks yet, the API server)."""
        return (await self._visible(principal, job_id)).job

    async def list_jobs(
        self, principal: Principal, *, cursor: str | None, limit: int, phases: Collection[Phase]
    ) -> Page:
        """Newest first (by creation time, then name), from the cache; admins see every job."""
        self.cache.require_synced()
        after = _decode_cursor(cursor) if cursor is not None else None
        jobs = sorted(
            (
                entry.job
                for entry in self.cache.entries.values()
                if principal.may_see(entry.job.owner) and (not phases or entry.job.status.phase in phases)
            ),
            key=lambda job: (job.created_at, job.id),
            reverse=True,
        )
        if after is not None:
            jobs = [job for job in jobs if (job.created_at, job.id) < after]
        more = len(jobs) > limit
        return Page(jobs[:limit], _encode_cursor(jobs[limit - 1]) if more else None)

    async def cancel(self, principal: Principal, job_id: str) -> StoredJob:
        """Set spec.cancel; the operator deletes the Job and marks it Cancelled (awaited briefly)."""
        entry = await self._visible(principal, job_id)
        if entry.job.status.phase.is_terminal:
            raise JobAlreadyFinished(entry.job)
        with self.bus.subscribe(job_id) as changes:
            if not entry.cancelled:
                await self._patch_spec(job_id, {"cancel": True})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.cancel_wait_seconds):
                    while not self._settled(job_id):
                        await changes.get()
        return (await self._visible(principal, job_id)).job

    async def retry(self, principal: Principal, job_id: str) -> StoredJob:
        """Raise spec.attempt and clear spec.cancel in one change (the only one that may clear it): the
        operator starts a new Job for the VideoJob (its return to Pending is awaited briefly)."""
        entry = await self._visible(principal, job_id)
        if entry.job.status.phase not in RETRYABLE_PHASES:
            raise JobNotRetryable(entry.job)
        owner = entry.job.owner
        if self.cache.active[owner] + self._reserved[owner] >= self.settings.max_active_jobs:
            raise TooManyActiveJobs(self.settings.max_active_jobs, self.settings.retry_after_seconds)
        spec: dict[str, Any] = {"attempt": entry.attempt + 1, "cancel": False}
        request = capped(self._budget(owner), entry.job.request, entry.job.status.usage.cost_usd)
        if request.max_cost_usd != entry.job.request.max_cost_usd:
            spec["maxCostUsd"] = request.max_cost_usd
        with self.bus.subscribe(job_id) as changes:
            await self._patch_spec(job_id, spec)
            with contextlib.suppress(TimeoutError):  # the operator takes it back to Pending (awaited briefly)
                async with asyncio.timeout(self.settings.cancel_wait_seconds):
                    while self._settled(job_id):
                        await changes.get()
        return (await self._visible(principal, job_id)).job

    def _budget(self, owner: str) -> Budget | None:
        """The owner's daily budget, from its cached jobs."""
        jobs = (entry.job for entry in self.cache.entries.values() if entry.job.owner == owner)
        return budget_today(self.settings.daily_budget(owner), jobs)

    def _settled(self, job_id: str) -> bool:
        """Whether the job has ended or is gone."""
        entry = self.cache.entries.get(job_id)
        return entry is None or entry.job.status.phase.is_terminal

    async def _patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        """Merge-patch the VideoJob's spec."""
        try:
            obj = await self._api.patch(name, {"spec": spec})
        except ApiServerError as error:
            if error.status == 404:
                raise JobNotFound(name) from error
            raise self._unavailable(error) from error
        except UNREACHABLE as error:
            raise self._unavailable(error) from error
        self.cache.changed(obj)

    async def delete(self, principal: Principal, job_id: str) -> None:
        """Delete that VideoJob (awaited, briefly): the operator's artifacts finalizer stops its Job, then
        deletes its artifacts (once its pod has stopped: a stopping pod still writes its checkpoint),
        then lets it go. The artifacts are deleted there only, also for a TTL expiry or a kubectl delete.
        """
        entry = await self._visible(principal, job_id)
        gone = self.cache.deleting.setdefault(entry.uid, asyncio.Event())  # before the watch can tell
        try:
            await self._api.delete(job_id, entry.uid)
        except ApiServerError as error:
            if error.status not in (404, 409):  # gone already, or replaced by a new one (uid precondition)
                self.cache.deleting.pop(entry.uid, None)
                raise self._unavailable(error) from error
            gone.set()
        except UNREACHABLE as error:
            self.cache.deleting.pop(entry.uid, None)
            raise self._unavailable(error) from error
        self.cache.forget(job_id, entry.uid)
        try:
            async with asyncio.timeout(self.settings.delete_wait_seconds):
                await gone.wait()
        except TimeoutError:
            log.warning(
                "VideoJob %s/%s is still being deleted after %g s (its pod has not stopped, or "
                "storage is down: the operator's finalizer retries)",
                self.namespace,
                job_id,
                self.settings.delete_wait_seconds,
            )

    async def events(self, principal: Principal, job_id: str, after: int | None) -> AsyncIterator[StoredJob]:
        """Snapshots seen after `after` (the latest without it), then live ones."""
        await self._visible(principal, job_id)
        return self._event_stream(job_id, after)

    async def _event_stream(self, job_id: str, after: int | None) -> AsyncIterator[StoredJob]:
        with self.bus.subscribe(job_id) as live:
            entry = self.cache.entries.get(job_id)
            if entry is None:
                return
            latest = entry.job
            backlog = [latest] if after is None else [job for job in entry.history if job.event_id > after]
            async for job in backlog_then_live(backlog, latest, after, live):
                yield job
