"""The artifacts finalizer: a deleted (or expired) VideoJob goes only once its artifacts are deleted.

Every VideoJob the operator manages carries ARTIFACTS_FINALIZER. When it is deleted, its Jobs are
stopped first (a stopping runner still writes its checkpoint), then its storage prefix is deleted, then
the finalizer is removed. A storage outage does not hold the delete forever: each failure is retried
with the controller's backoff, with a Warning Event and a metric; the first failure is kept in the
status (condition ArtifactsDeleted=False, so a restarted operator keeps the clock), and after
ARTIFACT_DELETION_TIMEOUT_SECONDS the finalizer goes anyway, with a last Warning Event saying the
artifacts were left.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from videojobs.contract import storage_job_id
from videojobs.storage import Storage
from videojobs_operator.kube import KubeApi
from videojobs_operator.metrics import ARTIFACT_DELETION_FAILURES, ARTIFACTS_LEFT
from videojobs_operator.status import (
    ARTIFACTS_DELETED,
    FALSE,
    Condition,
    JobView,
    OperatorStatus,
    PhaseEvent,
    PodView,
    VideoJobView,
    timestamp,
)

ARTIFACTS_FINALIZER = "videojobs.io/artifacts"
ACTION = "DeleteArtifacts"

logger = logging.getLogger(__name__)


class StorageOutage(Exception):
    """Deleting the artifacts failed; retried with backoff until the timeout."""


def storage_prefix(videojob: VideoJobView) -> str:
    """The VideoJob's folder in storage (with its slash: never another job's prefix)."""
    return f"{storage_job_id(videojob.namespace, videojob.name, videojob.uid)}/"


def with_finalizer(videojob: VideoJobView) -> list[str] | None:
    """The finalizers with ARTIFACTS_FINALIZER added, or None when it is there already."""
    return None if ARTIFACTS_FINALIZER in videojob.finalizers else [*videojob.finalizers, ARTIFACTS_FINALIZER]


def first_failure(status: OperatorStatus) -> str | None:
    """When deleting the artifacts first failed (the ArtifactsDeleted=False condition), if it did."""
    condition = status.condition(ARTIFACTS_DELETED)
    return condition.last_transition_time if condition is not None else None


def given_up(status: OperatorStatus, now: datetime, timeout: float) -> bool:
    """Whether deleting the artifacts has failed for `timeout` seconds: the finalizer goes anyway."""
    since = first_failure(status)
    return since is not None and (now - datetime.fromisoformat(since)).total_seconds() >= timeout


def failure_event(videojob: VideoJobView, failures: int, message: str) -> PhaseEvent:
    """The Warning Event of the `failures`-th failed deletion (named by the VideoJob's uid and the count)."""
    digest = hashlib.sha256(f"{videojob.uid}/artifacts/{failures}".encode()).hexdigest()[:16]
    return PhaseEvent(
        name=f"{videojob.name[:220]}.artifacts.{digest}",
        reason="ArtifactDeletionFailed",
        message=f"deleting the artifacts failed (try {failures}; retried with backoff): {message}",
        warning=True,
        action=ACTION,
    )


def left_event(videojob: VideoJobView, prefix: str, timeout: float) -> PhaseEvent:
    """The last Warning Event: the finalizer went, the artifacts stay."""
    digest = hashlib.sha256(f"{videojob.uid}/artifacts/left".encode()).hexdigest()[:16]
    return PhaseEvent(
        name=f"{videojob.name[:220]}.artifacts-left.{digest}",
        reason="ArtifactsLeft",
        message=f"storage failed for {timeout:g} s: the artifacts under {prefix} were left (delete by hand)",
        warning=True,
        action=ACTION,
    )


def failed_conditions(status: OperatorStatus, message: str, now: str) -> list[dict[str, object]]:
    """The status' conditions with ArtifactsDeleted=False (its first failure's time kept)."""
    since = first_failure(status) or now
    failed = Condition(ARTIFACTS_DELETED, FALSE, "StorageError", message[:1024], since)
    others = [condition for condition in status.conditions if condition.type != ARTIFACTS_DELETED]
    return [condition.to_wire() for condition in (*others, failed)]


class Retention:
    """Adds the finalizer, and on deletion stops the Jobs, deletes the artifacts and removes it."""

    def __init__(self, api: KubeApi, storage: Storage, timeout: float) -> None:
        self.api = api
        self.storage = storage
        self.timeout = timeout
        self._failures: dict[str, int] = {}  # VideoJob uid -> failed deletions so far (Event names)

    async def ensure_finalizer(self, videojob: VideoJobView) -> None:
        """Add ARTIFACTS_FINALIZER to a VideoJob that lacks it."""
        finalizers = with_finalizer(videojob)
        if finalizers is not None:
            await self.api.set_finalizers(
                videojob.namespace, videojob.name, videojob.uid, videojob.finalizers, finalizers
            )

    async def finalize(
        self,
        videojob: VideoJobView,
        status: OperatorStatus,
        jobs: Sequence[JobView],
        pods: Sequence[PodView],
    ) -> None:
        """Stop the Jobs; once their pods are gone, delete the artifacts and remove the finalizer.

        StorageOutage when storage failed (retry later), unless it has failed for the whole timeout.
        """
        if ARTIFACTS_FINALIZER not in videojob.finalizers:
            return
        for job in jobs:
            if not job.deleting:
                await self.api.delete_job(videojob.namespace, job.name)
        if any(pod.phase in ("Pending", "Running") for pod in pods):
            return  # their events bring it back here
        prefix = storage_prefix(videojob)
        try:
            deleted = await asyncio.to_thread(self.storage.delete_prefix, prefix)
        except Exception as error:  # StorageError, or whatever else an unreachable store raises
            await self._failed(videojob, status, prefix, str(error))
        else:
            logger.info("%s/%s: deleted %d artifact(s)", videojob.namespace, videojob.name, deleted)
        await self._release(videojob)

    async def _failed(
        self, videojob: VideoJobView, status: OperatorStatus, prefix: str, message: str
    ) -> None:
        """Record a failed deletion (status, Event, metric) and raise StorageOutage; past the timeout,
        post the last Event and return (the finalizer goes)."""
        ARTIFACT_DELETION_FAILURES.inc()
        if given_up(status, datetime.now(UTC), self.timeout):
            ARTIFACTS_LEFT.inc()
            logger.error(
                "%s/%s: artifacts left under %s: %s", videojob.namespace, videojob.name, prefix, message
            )
            await self.api.post_event(
                videojob.namespace, videojob.name, videojob.uid, left_event(videojob, prefix, self.timeout)
            )
            return
        failures = self._failures[videojob.uid] = self._failures.get(videojob.uid, 0) + 1
        if first_failure(status) is None:
            fields = {"conditions": failed_conditions(status, message, timestamp())}
            await self.api.patch_status(videojob.namespace, videojob.name, videojob.uid, fields)
        event = failure_event(videojob, failures, message)
        await self.api.post_event(videojob.namespace, videojob.name, videojob.uid, event)
        raise StorageOutage(message)

    async def _release(self, videojob: VideoJobView) -> None:
        remaining = [name for name in videojob.finalizers if name != ARTIFACTS_FINALIZER]
        await self.api.set_finalizers(
            videojob.namespace, videojob.name, videojob.uid, videojob.finalizers, remaining
        )
        self._failures.pop(videojob.uid, None)

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a VideoJob that is gone."""
        self._failures.pop(uid, None)
