"""One cluster-wide reconciler: Jobs for VideoJobs and their status; it runs admission.py's MAX_RUNNING queue
and expiry.py's TTL deletion on its housekeeper, and retention.py's artifacts finalizer.

Kopf keeps three in-memory indexes (VideoJobs, the operator's Jobs, their pods; see handlers.py). Its
handlers only call `kick`; everything else happens here, on a few worker tasks that read the indexes
and reconcile one VideoJob at a time (its Job, then its status): no per-VideoJob timers or daemons, and
no Kopf change handlers, whose bookkeeping patched every VideoJob once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from videojobs import deadlines
from videojobs.contract import Phase, VideoJobSpec
from videojobs.crd import API_VERSION, KIND
from videojobs.keys import NAME_ANNOTATION
from videojobs.settings import RenderIsolation
from videojobs.storage import Storage
from videojobs_operator.admission import RESERVATION_SECONDS, Admission
from videojobs_operator.expiry import Expiry
from videojobs_operator.identity import runner_identity
from videojobs_operator.jobs import build_job, job_name
from videojobs_operator.kube import GONE, UNREACHABLE, KubeApi, api_message
from videojobs_operator.metrics import (
    ADMISSION_WAIT,
    RECONCILE_ERRORS,
    STAGE_DURATION,
    WORKQUEUE_ADDS,
    WORKQUEUE_DEPTH,
    WORKQUEUE_WAIT,
    WORKQUEUE_WORK,
    count_phases,
)
from videojobs_operator.retention import Retention, StorageOutage
from videojobs_operator.settings import OperatorSettings
from videojobs_operator.status import (
    JobView,
    Key,
    OperatorStatus,
    PodView,
    QueuePosition,
    VideoJobView,
    WorkloadView,
    desired_status,
    operator_message,
    phase_event,
    retry_due,
    retry_fields,
    retry_status,
    timestamp,
)
from videojobs_operator.visibility import QueueKey, QueuePositions

RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0
UNREACHABLE_RETRY_SECONDS = 4.0
"""The longest back-off after a call that got no answer: retried soon after the network returns."""
RECONCILE_SECONDS = 3 * (deadlines.CONNECT_SECONDS + deadlines.READ_SECONDS)
"""A reconcile still going after this long (three calls at their deadlines) is abandoned and retried,
so that nothing (a call without a deadline, an executor thread that never returns) holds its key."""
STALL_SECONDS = 60.0
"""Work pending and no reconcile done for this long: the workers are stuck (liveness fails, the Lease
is given up)."""
HOUSEKEEPING_MIN_INTERVAL = 0.1
POSITIONS_MIN_INTERVAL = 0.5
"""Workload events wake the queue-position refresher; it looks at most this often (visibility.py)."""
GAUGE_SECONDS = 2.0

logger = logging.getLogger(__name__)


class WorkQueue:
    """Keys to reconcile: each queued at most once, never handled by two workers at the same time.

    Keys added with `first` go before the others (VideoJobs still waiting for their Job, so that a
    burst of new ones is not held up behind status updates of running ones); otherwise first in,
    first out. Its depth, adds, wait and work times are the videojobs_workqueue_* metrics.
    """

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._queued: dict[Key, float] = {}  # -> when it was queued
        self._busy: dict[Key, float] = {}  # -> when its handling began
        self._again: dict[Key, bool] = {}

    def add(self, key: Key, *, first: bool = False) -> None:
        """Queue `key`, or mark it to be handled again once its current handling is done."""
        if key in self._busy:
            self._again[key] = self._again.get(key, False) or first
        elif key not in self._queued:
            self._queued[key] = time.monotonic()
            self._queue.put_nowait((0 if first else 1, next(self._order), key))
            WORKQUEUE_ADDS.inc()
        WORKQUEUE_DEPTH.set(len(self))

    async def get(self) -> Key:
        """The next key; the caller must call `done(key)` afterwards."""
        _, _, key = await self._queue.get()
        now = time.monotonic()
        WORKQUEUE_WAIT.observe(now - self._queued.pop(key, now))
        self._busy[key] = now
        WORKQUEUE_DEPTH.set(len(self))
        return key

    def done(self, key: Key) -> None:
        """Finish handling `key`."""
        WORKQUEUE_WORK.observe(time.monotonic() - self._busy.pop(key, time.monotonic()))
        if key in self._again:
            self.add(key, first=self._again.pop(key))

    def __len__(self) -> int:
        return len(self._queued) + len(self._again)

    @property
    def pending(self) -> bool:
        """Whether a key is queued or being handled."""
        return bool(self._queued or self._busy)


class RetryLater(Exception):
    """A step that cannot be done yet (an earlier VideoJob's leftovers, say): retried after a back-off."""


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def _owner(videojob: VideoJobView) -> kopf.Body:
    """The VideoJob as the owner `kopf.adopt` makes of it (owner reference, namespace, its labels)."""
    return kopf.Body(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": videojob.name,
                "namespace": videojob.namespace,
                "uid": videojob.uid,
                "labels": dict(videojob.labels),
            },
        }
    )


class Controller:
    """Owns the operator's writes: Jobs, the operator's status fields, queue releases, TTL deletions."""

    def __init__(
        self,
        settings: OperatorSettings,
        api: KubeApi,
        videojobs: kopf.Index[Key, VideoJobView],
        jobs: kopf.Index[Key, JobView],
        pods: kopf.Index[Key, PodView],
        storage: Storage,
        workloads: kopf.Index[tuple[str, str], WorkloadView] | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self._videojobs = videojobs
        self._jobs = jobs
        self._pods = pods
        self._workloads = workloads  # Kueue's, by (namespace, uid of the Job); None: no Kueue
        self._work = WorkQueue()
        self._housekeeping = asyncio.Event()
        self._indexed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._written: dict[Key, tuple[str, OperatorStatus]] = {}  # ahead of the index until it catches up
        self._failures: dict[str, tuple[str, str]] = {}  # VideoJob uid -> (reason, message)
        self._attempts: dict[Key, int] = {}
        self._stages: dict[str, tuple[str, float]] = {}
        self._new_jobs: dict[Key, tuple[str, float]] = {}  # made, not yet in the index: (VideoJob uid, when)
        self._cancelled: dict[Key, str] = {}  # uid of the Job deleted for spec.cancel
        self._progressed = time.monotonic()  # a reconcile got its answers, or work arrived after none
        self._events: dict[str, str] = {}  # VideoJob uid -> name of the latest Event known to be posted
        self._job_keys: dict[tuple[str, str], Key] = {}  # (namespace, a Job's uid) -> its VideoJob's key
        self.admission = Admission(settings.max_running, api, self._releasable, self._housekeeping.set)
        self.expiry = Expiry(api, self._current)
        self.retention = Retention(api, storage, settings.artifact_deletion_timeout_seconds)
        self.positions = QueuePositions(api.pending_workloads, self.kick_job)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the status workers and the housekeeper."""
        for number in range(self.settings.api_concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"videojobs-status-{number}"))
        self._tasks.append(asyncio.create_task(self._housekeeper(), name="videojobs-housekeeper"))
        if self._workloads is not None:
            self._tasks.append(asyncio.create_task(self._position_refresher(), name="videojobs-positions"))

    async def stop(self) -> None:
        """Stop the tasks and the API client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.api.close()

    # --- called by the Kopf handlers ---------------------------------------------------------------

    def kick(self, key: Key, *, queue: bool = False) -> None:
        """Reconcile `key`'s status soon (and the queue, if `queue`).

        Kopf calls handlers only once its indexes hold the whole initial listing, so the first kick
        also tells the housekeeper it may count running Jobs.
        """
        self._indexed.set()
        if not self._has_work():
            self._progressed = time.monotonic()  # the stall clock starts with the work
        self._work.add(key, first=self._awaits_job(key))
        if queue:
            self._housekeeping.set()

    def _awaits_job(self, key: Key) -> bool:
        """Whether the VideoJob has no Job yet and should get one (as far as the indexes tell)."""
        videojob = self.videojob(key)
        return videojob is not None and self._needs_job(key, videojob, self.job(key, videojob))

    def _needs_job(self, key: Key, videojob: VideoJobView, job: JobView | None) -> bool:
        """Whether to make the VideoJob's Job now: none exists or was made a moment ago, none is owed.

        A VideoJob that is deleting, cancelled or finished gets none, nor one whose status names a Job
        (someone else deleted it: the status says JobDeleted). A paused one gets its Job suspended; one
        paused with a spec.queueName gets none until it is resumed: Kueue makes an active Workload for a
        new Job and may admit it (unsuspend the Job, start its pod) before the operator could deactivate
        that Workload, so only a Job that does not exist yet is sure not to run.
        """
        current = self._current(videojob)
        finished = current.phase is not None and current.phase.is_terminal
        if videojob.deleting or videojob.cancel or finished or job is not None or current.job_name:
            return False
        if videojob.suspend and videojob.queue_name is not None:
            return False
        made = self._new_jobs.get(key)  # made, but the index has not seen it yet
        return made is None or made[0] != videojob.uid or time.monotonic() - made[1] >= RESERVATION_SECONDS

    def forget(self, key: Key, uid: str) -> None:
        """Drop what is remembered about a deleted VideoJob."""
        written = self._written.get(key)
        if written is not None and written[0] == uid:
            del self._written[key]
        self._failures.pop(uid, None)
        self._events.pop(uid, None)
        self.expiry.deleting.discard(uid)
        self._stages.pop(uid, None)
        self.admission.reserved.pop(key, None)
        self._attempts.pop(key, None)
        self._new_jobs.pop(key, None)
        self._cancelled.pop(key, None)
        for job_key in [job_key for job_key, of in self._job_keys.items() if of == key]:
            del self._job_keys[job_key]
        self.retention.forget(uid)
        self._housekeeping.set()

    # --- the Job ---------------------------------------------------------------------------------

    async def _ensure_job(self, key: Key, videojob: VideoJobView, job: JobView | None) -> None:
        """Make the VideoJob's Job exist, suspended while spec.suspend is true (or, with spec.cancel, not
        exist). Idempotent."""
        phase = self._current(videojob).phase
        if videojob.cancel and not (phase is not None and phase.is_terminal):
            if job is not None and not job.deleting and self._cancelled.get(key) != job.uid:
                await self.api.delete_job(videojob.namespace, job.name)
                self._cancelled[key] = job.uid
                logger.info("cancelled %s/%s: deleted Job %s", *key, job.name)
        elif job is not None:
            self._new_jobs.pop(key, None)  # the index has it now
            await self._ensure_suspension(videojob, job)
        elif self._needs_job(key, videojob, job):
            await self._create_job(key, videojob)

    async def _ensure_suspension(self, videojob: VideoJobView, job: JobView) -> None:
        """Pause: suspend the Job (its pods stop) and keep it so while spec.suspend is true. Resume: the Job
        waits as Queued for the queue (or Kueue) to release it.

        A Job that Kueue manages (its Workload seen) is paused through the Workload instead: spec.active
        false makes Kueue evict it (Kueue suspends the Job and frees its quota) and hold it; true on resume
        queues it again. Kueue owns that Job's spec.suspend: setting it too would fight Kueue's admission.
        """
        if job.finish is not None or job.deleting:
            return
        workload = self._workload(videojob.namespace, job)
        if workload is not None:
            if workload.active == videojob.suspend:
                await self.api.set_workload_active(
                    videojob.namespace, workload.name, active=not videojob.suspend
                )
                logger.info(
                    "%s %s/%s: %s Kueue's Workload %s",
                    "paused" if videojob.suspend else "resumed",
                    videojob.namespace,
                    videojob.name,
                    "deactivated" if videojob.suspend else "reactivated",
                    workload.name,
                )
            return
        if videojob.suspend and not job.suspended:
            await self.api.suspend_job(videojob.namespace, job.name, job.uid, suspend=True)
            logger.info("paused %s/%s: suspended Job %s", videojob.namespace, videojob.name, job.name)
        elif not videojob.suspend and job.waiting:
            self._housekeeping.set()  # resumed (or queued): the release round may run it now

    async def _create_job(self, key: Key, videojob: VideoJobView) -> None:
        try:
            spec = VideoJobSpec.model_validate(videojob.spec)
        except ValidationError as error:
            self._fail(videojob, "InvalidSpec", str(error.errors()[0]["msg"]))
            return
        priority = 0
        if spec.priority_class_name:
            value = await self.api.priority(spec.priority_class_name)
            if value is None:
                self._fail(
                    videojob,
                    "PriorityClassNotFound",
                    f"PriorityClass {spec.priority_class_name} does not exist",
                )
                return
            priority = value
        owner = _owner(videojob)
        if self.settings.runner_service_account is None and not await self._ensure_identity(videojob, owner):
            return
        suspend = videojob.suspend or (spec.queue_name is None and not self.admit(key))
        manifest = build_job(
            videojob.name,
            spec,
            self.settings,
            created=videojob.created,
            priority=priority,
            suspend=suspend,
            attempt=self._current(videojob).attempt,
        )
        kopf.adopt(manifest, owner=owner)
        try:
            await self.api.create_job(videojob.namespace, manifest)
        except ApiException as error:
            self.admission.reserved.pop(key, None)
            if error.status == 409:
                if await self._check_existing(videojob, manifest["metadata"]["name"]):
                    self._new_jobs[key] = (videojob.uid, time.monotonic())
            elif error.status in (400, 422):
                self._fail(videojob, "InvalidJob", api_message(error))
            else:
                raise RetryLater(f"creating its Job failed: {api_message(error)}") from error
        else:
            self._new_jobs[key] = (videojob.uid, time.monotonic())
            logger.info(
                "created Job %s for %s/%s%s", manifest["metadata"]["name"], *key, " (queued)" * suspend
            )

    async def _ensure_identity(self, videojob: VideoJobView, owner: kopf.Body) -> bool:
        """Create the runner's own ServiceAccount, Role and RoleBinding (before its Job: its pod needs them).

        False when the VideoJob failed instead (an object of that name belongs to something else).
        """
        name = job_name(videojob.name)
        manifests = runner_identity(
            videojob.namespace,
            videojob.name,
            name,
            self.settings.runner_service_account_annotations,
            render_pods=self.settings.render_isolation is RenderIsolation.POD,
        )
        kopf.adopt(manifests, owner=owner)
        # All three at once: with `bind` on Roles (operator/rbac/operator.yaml) the API server does not
        # need the Role to exist to admit its RoleBinding.
        results = await asyncio.gather(*map(self.api.create_object, manifests), return_exceptions=True)
        for manifest, result in zip(manifests, results, strict=True):
            if not await self._created(videojob, manifest, result):
                return False
        return True

    async def _created(self, videojob: VideoJobView, manifest: dict[str, Any], result: object) -> bool:
        """Whether creating `manifest` gave this VideoJob the object (made now, or made by an earlier try)."""
        if not isinstance(result, BaseException):
            return True
        if isinstance(result, ApiException) and result.status == 409:
            meta = manifest["metadata"]
            existing = await self.api.read_object(
                manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
            )
            return self._owned(videojob, existing)
        if isinstance(result, ApiException) and result.status in (400, 422):
            self._fail(videojob, "InvalidRunnerIdentity", api_message(result))
            return False
        raise RetryLater(f"creating the runner's {manifest['kind']} failed: {result}") from result

    async def _check_existing(self, videojob: VideoJobView, name: str) -> bool:
        """A Job of our name exists: ours (the index lags), an old one being deleted, or someone else's.

        Another VideoJob's (say, one named `<name>-a1` beside a retried `<name>`) fails this one.
        """
        existing = await self.api.read_job(videojob.namespace, name)
        annotations = existing["metadata"].get("annotations") or {}
        if annotations.get(NAME_ANNOTATION, videojob.name) != videojob.name:
            self._fail(videojob, "JobNameConflict", f"Job {name} belongs to another VideoJob")
            return False
        return self._owned(videojob, existing)

    def _owned(self, videojob: VideoJobView, existing: dict[str, Any]) -> bool:
        """Whether this VideoJob owns `existing`; waits (retry) if an older one of its name does.

        An object of the name that no VideoJob owns fails the VideoJob (JobNameConflict).
        """
        owners = [
            ref for ref in existing["metadata"].get("ownerReferences") or () if ref["kind"] == "VideoJob"
        ]
        if any(owner["uid"] == videojob.uid for owner in owners):
            return True
        kind, name = existing.get("kind", "Job"), existing["metadata"]["name"]
        if owners:  # left by an earlier VideoJob of the same name; the garbage collector removes it
            raise RetryLater(f"the {kind} of an earlier VideoJob of this name still exists")
        self._fail(videojob, "JobNameConflict", f"{kind} {name} exists and does not belong to this VideoJob")
        return False

    def _fail(self, videojob: VideoJobView, reason: str, message: str) -> None:
        logger.warning("%s/%s failed: %s: %s", videojob.namespace, videojob.name, reason, message)
        self._failures[videojob.uid] = (reason, message)

    def observe_stage(self, videojob: VideoJobView) -> None:
        """Feed the stage-duration histogram from the runner's stage transitions."""
        now = time.monotonic()
        previous = self._stages.get(videojob.uid)
        phase = videojob.status.phase
        finished = phase is not None and phase.is_terminal
        if previous is not None and (previous[0] != videojob.stage or finished):
            STAGE_DURATION.labels(previous[0]).observe(now - previous[1])
        if finished or videojob.stage is None:
            self._stages.pop(videojob.uid, None)
        elif previous is None or previous[0] != videojob.stage:
            self._stages[videojob.uid] = (videojob.stage, now)

    def admit(self, key: Key) -> bool:
        """Whether a new Job may start at once (takes the slot): see Admission."""
        return self.admission.admit(key, list(self._all_jobs()))

    def _releasable(self, key: Key, job: JobView) -> bool:
        """Whether the VideoJob of a waiting Job still wants it run (its current attempt's, not paused,
        cancelled or deleted)."""
        videojob = self.videojob(key)
        if videojob is None or videojob.suspend or videojob.cancel or videojob.deleting:
            return False
        current = self.job(key, videojob)
        return current is not None and current.uid == job.uid

    # --- index lookups -------------------------------------------------------------------------------

    def videojob(self, key: Key) -> VideoJobView | None:
        """The VideoJob of that name (the live one if an old one of the same name is still going)."""
        views = list(self._videojobs.get(key, ()))
        live = [view for view in views if not view.deleting]
        return live[-1] if live else (views[-1] if views else None)

    def job(self, key: Key, videojob: VideoJobView) -> JobView | None:
        """The Job of the VideoJob's current attempt, if the operator has seen it (not an earlier one's)."""
        name = job_name(videojob.name, self._current(videojob).attempt)
        jobs = self._jobs.get(key, ())
        return next((job for job in jobs if job.owner_uid == videojob.uid and job.name == name), None)

    def _workload(self, namespace: str, job: JobView | None) -> WorkloadView | None:
        """Kueue's Workload of a Job with a queue label, once the operator has seen it."""
        if self._workloads is None or job is None or job.kueue_queue is None:
            return None
        return next(iter(self._workloads.get((namespace, job.uid), ())), None)

    def workload_changed(self, namespace: str, workload: WorkloadView) -> None:
        """Kueue's Workload of a Job changed: its VideoJob's status may change, and the places of the
        VideoJobs waiting in its LocalQueue may have moved."""
        if workload.job_uid:
            self.kick_job(namespace, workload.job_uid)
        if workload.queue:
            self.positions.touch(namespace, workload.queue)

    def _position(
        self, namespace: str, job: JobView | None, workload: WorkloadView | None
    ) -> QueuePosition | None:
        """The place of a waiting Workload in Kueue's queues, as last read (visibility.py)."""
        if job is None or workload is None or workload.admitted:
            return None
        return self.positions.position(namespace, workload.queue or job.kueue_queue or "", workload.name)

    def _waiting_queues(self) -> set[QueueKey]:
        """The LocalQueues that hold a VideoJob's Job waiting for Kueue (suspended, its Workload seen, active
        and not admitted)."""
        waiting = set()
        for (namespace, _), job in self._all_jobs():
            if job.kueue_queue is None or not job.suspended or job.finish is not None or job.deleting:
                continue
            workload = self._workload(namespace, job)
            if workload is not None and workload.active and not workload.admitted:
                waiting.add((namespace, workload.queue or job.kueue_queue))
        return waiting

    def kick_job(self, namespace: str, job_uid: str) -> None:
        """Reconcile the VideoJob whose Job has that uid (Kueue's Workload of it changed).

        A Job's uid names one VideoJob for good: found once by a scan of the Jobs index, then remembered
        (each Workload changes several times: a scan per change was O(Jobs) per event).
        """
        key = self._job_keys.get((namespace, job_uid))
        if key is None:
            for candidate, job in self._all_jobs():
                if job.uid == job_uid and candidate[0] == namespace:
                    key = self._job_keys[namespace, job_uid] = candidate
                    break
            else:
                return
        self.kick(key)

    def _all_jobs(self) -> Iterator[tuple[Key, JobView]]:
        for key, store in self._jobs.items():
            for job in store:
                yield key, job

    def _current(self, videojob: VideoJobView) -> OperatorStatus:
        """The operator's status fields as last written, even before the index has them."""
        written = self._written.get((videojob.namespace, videojob.name))
        return written[1] if written is not None and written[0] == videojob.uid else videojob.status

    # --- status ------------------------------------------------------------------------------------

    def _has_work(self) -> bool:
        return self._work.pending or bool(self._attempts)

    def stalled(self) -> float | None:
        """Seconds without progress while work is pending (queued, handled or to be retried), if stalled."""
        idle = time.monotonic() - self._progressed
        return idle if idle >= STALL_SECONDS and self._has_work() else None

    async def _worker(self) -> None:
        while True:
            key = await self._work.get()
            progressed = True
            try:
                async with asyncio.timeout(RECONCILE_SECONDS):
                    await self._sync(key)
            except ApiException as error:
                if error.status in GONE:  # deleted, or replaced by a new VideoJob of the same name
                    self._written.pop(key, None)
                else:
                    self._retry(key, "reconcile", str(error.status), api_message(error))
            except RetryLater as error:
                self._retry(key, "job", "RetryLater", str(error))
            except StorageOutage as error:
                self._retry(key, "artifacts", "StorageOutage", str(error))
            except UNREACHABLE as error:  # no answer in time (a call's deadline, or RECONCILE_SECONDS)
                progressed = False
                message = str(error) or f"no answer within {RECONCILE_SECONDS:g} s"
                self._retry(key, "reconcile", "Unreachable", message, longest=UNREACHABLE_RETRY_SECONDS)
            except Exception as error:  # a bug must not stop the worker; retried with backoff
                logger.exception("reconciling %s/%s failed", *key)
                self._retry(key, "reconcile", type(error).__name__, str(error))
            else:
                self._attempts.pop(key, None)
            finally:
                if progressed:
                    self._progressed = time.monotonic()
                self._work.done(key)

    def _retry(
        self, key: Key, kind: str, reason: str, message: str, longest: float = MAX_RETRY_SECONDS
    ) -> None:
        RECONCILE_ERRORS.labels(kind, reason).inc()
        attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
        delay = min(RETRY_SECONDS * 2 ** (attempts - 1), longest)
        logger.warning("%s of %s/%s failed (retry in %.0f s): %s", kind, *key, delay, message)
        asyncio.get_running_loop().call_later(delay, self._work.add, key)

    async def _sync(self, key: Key) -> None:
        videojob = self.videojob(key)
        if videojob is None:
            return
        if videojob.deleting:
            await self._finalize(key, videojob)
            return
        await self.retention.ensure_finalizer(videojob)
        written = self._written.get(key)
        if written is not None and (written[0] != videojob.uid or written[1] == videojob.status):
            del self._written[key]  # the index has caught up (or the VideoJob was replaced)
        if retry_due(dataclasses.replace(videojob, status=self._current(videojob))):
            await self._start_retry(key, videojob)
        await self._ensure_job(key, videojob, self.job(key, videojob))
        current = self._current(videojob)
        job = self.job(key, videojob)
        pods = [pod for pod in self._pods.get(key, ()) if job is not None and pod.job_uid == job.uid]
        workload = self._workload(videojob.namespace, job)
        desired = desired_status(
            dataclasses.replace(videojob, status=current),
            job,
            pods,
            now=timestamp(),
            failure=self._failures.get(videojob.uid),
            workload=workload,
            position=self._position(videojob.namespace, job, workload),
        )
        if desired == current or (desired.phase is Phase.PENDING and desired.job_name is None):
            await self._ensure_event(videojob, current)  # one lost in a crash after its status write
            return  # nothing new, or nothing to say until the Job exists
        exists = videojob.has_status or key in self._written  # written: the index has not caught up yet
        fields = desired.to_wire()
        if desired.queue is None and current.queue is not None:
            fields["queue"] = None  # admitted (or paused, cancelled): the API server drops a null field
        message = operator_message(videojob, desired)
        if message is not None:
            fields["message"] = message
        await self.api.patch_status(videojob.namespace, videojob.name, videojob.uid, fields, exists=exists)
        self._written[key] = (videojob.uid, desired)
        if desired.phase != current.phase:
            self._phase_changed(videojob, current, desired)
        await self._ensure_event(videojob, desired)

    async def _finalize(self, key: Key, videojob: VideoJobView) -> None:
        """A deleted VideoJob: Jobs stopped, artifacts deleted, finalizer removed (retention.py)."""
        jobs = [job for job in self._jobs.get(key, ()) if job.owner_uid == videojob.uid]
        uids = {job.uid for job in jobs}
        pods = [pod for pod in self._pods.get(key, ()) if pod.job_uid in uids]
        await self.retention.finalize(videojob, self._current(videojob), jobs, pods)

    async def _start_retry(self, key: Key, videojob: VideoJobView) -> None:
        """Begin attempt spec.attempt once the previous attempt's pods are gone: its status goes back to
        Pending (the Job is made next, as for a new VideoJob), with an Event."""
        if any(pod.phase in ("Pending", "Running") for pod in self._pods.get(key, ())):
            logger.info("%s/%s: the retry waits for the previous attempt's pods to stop", *key)
            return  # their events bring it back here
        current = self._current(videojob)
        retry = retry_status(dataclasses.replace(videojob, status=current), timestamp())
        await self.api.patch_status(videojob.namespace, videojob.name, videojob.uid, retry_fields(retry))
        self._written[key] = (videojob.uid, retry)
        self._failures.pop(videojob.uid, None)  # a failure to make the previous Job may be fixed by now
        self._new_jobs.pop(key, None)
        self._cancelled.pop(key, None)
        self._phase_changed(videojob, current, retry)
        await self._ensure_event(videojob, retry)

    def _phase_changed(self, videojob: VideoJobView, before: OperatorStatus, after: OperatorStatus) -> None:
        assert after.phase is not None
        logger.info("%s/%s: %s (%s)", videojob.namespace, videojob.name, after.phase.value, after.summary)
        if after.start_time and not before.start_time and videojob.created:
            ADMISSION_WAIT.observe(max(0.0, _seconds_between(videojob.created, after.start_time)))
        if after.phase.is_terminal and videojob.ttl_seconds_after_finished is not None:
            self._housekeeping.set()

    async def _ensure_event(self, videojob: VideoJobView, status: OperatorStatus) -> None:
        """Post the Event of the phase `status` is in, unless it was posted already (by any process).

        Its name is derived from the VideoJob, the phase and when the phase's condition changed, so a
        second post of the same change is refused (409) and one lost in a crash between the status
        write and the Event is posted by the next reconcile, also after a restart. None for the initial
        Pending (only a Pending whose pod failed), nor for a change older than the API server keeps
        Events.
        """
        event = phase_event(videojob, status)
        if event is None or self._events.get(videojob.uid) == event.name:
            return
        try:
            await self.api.post_event(videojob.namespace, videojob.name, videojob.uid, event)
        except ApiException as error:  # an Event is nice to have: never retry the status for it
            RECONCILE_ERRORS.labels("event", str(error.status)).inc()
            logger.warning("posting an Event for %s/%s failed: %s", videojob.namespace, videojob.name, error)
        else:
            self._events[videojob.uid] = event.name

    # --- queue, TTL, gauges --------------------------------------------------------------------------

    async def _position_refresher(self) -> None:
        """Keep the places of VideoJobs waiting for Kueue fresh (visibility.py): woken by Workload events."""
        await self._indexed.wait()
        while True:
            wait = RETRY_SECONDS
            try:
                async with asyncio.timeout(RECONCILE_SECONDS):
                    wait = await self.positions.refresh(self._waiting_queues())
            except Exception as error:  # TimeoutError, a bug: retried on the next round
                RECONCILE_ERRORS.labels("positions", type(error).__name__).inc()
                logger.warning("refreshing Kueue queue positions failed: %r", error)
            await asyncio.sleep(POSITIONS_MIN_INTERVAL)  # coalesce bursts of Workload events
            await self.positions.wait(wait)

    async def _housekeeper(self) -> None:
        await self._indexed.wait()
        counted = 0.0
        while True:
            self._housekeeping.clear()
            wait = GAUGE_SECONDS  # at least this often, to keep the by-phase gauge fresh
            try:
                async with asyncio.timeout(RECONCILE_SECONDS):
                    await self.admission.release(list(self._all_jobs()))
                    wait = min(wait, await self.expiry.expire(self._videojobs.values()))
            except UNREACHABLE as error:
                RECONCILE_ERRORS.labels("housekeeping", "Unreachable").inc()
                logger.warning("housekeeping failed (retry in %.0f s): %s", RETRY_SECONDS, error or "timeout")
                wait = RETRY_SECONDS
            except Exception as error:  # retried on the next round
                RECONCILE_ERRORS.labels("housekeeping", type(error).__name__).inc()
                logger.exception("housekeeping failed")
                wait = RETRY_SECONDS
            if time.monotonic() - counted > GAUGE_SECONDS:
                count_phases(
                    self._current(view).phase for store in self._videojobs.values() for view in store
                )
                counted = time.monotonic()
            await asyncio.sleep(HOUSEKEEPING_MIN_INTERVAL)  # coalesce bursts of wake-ups
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._housekeeping.wait(), timeout=max(wait, 0.0))
