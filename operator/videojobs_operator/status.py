"""Phase and conditions of a VideoJob from its Job and pods: pure functions over small views of them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from videojobs.contract import CONTROLLER_NAME, ConditionStatus, Phase
from videojobs.keys import JOB_CREATED_ANNOTATION, KUEUE_QUEUE_LABEL, NAME_ANNOTATION, PRIORITY_ANNOTATION

Key = tuple[str, str]
"""(namespace, VideoJob name): how the indexes file VideoJobs, Jobs and pods."""

QUEUED, RUNNING, SUSPENDED = "Queued", "Running", "Suspended"
SUCCEEDED, FAILED, CANCELLED = "Succeeded", "Failed", "Cancelled"
"""Condition types the operator maintains."""
ARTIFACTS_DELETED = "ArtifactsDeleted"
"""The condition of a deleted VideoJob whose artifacts could not be deleted yet (storage outage)."""

RETRYING = "Retrying"
"""The reason of the Pending phase that starts another attempt (spec.attempt raised)."""

CLEARED_ON_RETRY = (
    "jobName",
    "startTime",
    "completionTime",
    "error",
    "heartbeatTime",
    "estimatedCompletionTime",
)
"""Status fields of the previous attempt that a retry clears (its runner resets the others as it starts)."""

WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Container waiting reasons worth surfacing: the pod will not start by itself."""

TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE

FINISH_CONDITIONS = {
    "SuccessCriteriaMet": "Complete",
    "Complete": "Complete",
    "FailureTarget": "Failed",
    "Failed": "Failed",
}
"""Job conditions that settle its outcome; the first two of each pair come first (pods may still stop)."""


EVENT_TTL = timedelta(hours=1)
"""How long the API server keeps Events (kube-apiserver --event-ttl): an older change needs none now."""


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with a Z, whole seconds: how Kubernetes writes times."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Condition:
    """A metav1.Condition (times as the API server's strings)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Condition:
        """From the status' JSON."""
        return cls(
            type=str(wire.get("type", "")),
            status=ConditionStatus(wire.get("status", ConditionStatus.UNKNOWN.value)),
            reason=str(wire.get("reason", "")),
            message=str(wire.get("message", "")),
            last_transition_time=str(wire.get("lastTransitionTime", "")),
            observed_generation=wire.get("observedGeneration"),
        )

    def to_wire(self) -> dict[str, Any]:
        """As the status' JSON."""
        wire: dict[str, Any] = {
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }
        if self.observed_generation is not None:
            wire["observedGeneration"] = self.observed_generation
        return wire


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """A pending Workload's place in Kueue's queues, counted from 1 (admitted next), from Kueue's visibility
    API (which counts from 0)."""

    local_queue: int
    cluster_queue: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """status.queue (videojobs.contract.QueueStatus): the Kueue LocalQueue a Queued VideoJob waits in, and
    its place there when Kueue reports one."""

    name: str
    position: QueuePosition | None = None

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> QueueStatus:
        """From the status' JSON."""
        local, cluster = wire.get("position"), wire.get("positionInClusterQueue")
        position = (
            QueuePosition(int(local), int(cluster)) if local is not None and cluster is not None else None
        )
        return cls(name=str(wire.get("name", "")), position=position)

    def to_wire(self) -> dict[str, Any]:
        """As the status' JSON."""
        wire: dict[str, Any] = {"name": self.name}
        if self.position is not None:
            wire["position"] = self.position.local_queue
            wire["positionInClusterQueue"] = self.position.cluster_queue
        return wire


@dataclass(frozen=True, slots=True)
class OperatorStatus:
    """The status fields the operator owns (videojobs.contract.OPERATOR_STATUS_FIELDS)."""

    phase: Phase | None = None
    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    job_name: str | None = None
    attempt: int = 0
    """The spec.attempt that the phase and the Job belong to."""
    queue: QueueStatus | None = None
    """Kueue's LocalQueue (and place in it) while Queued by Kueue; None otherwise (a patch then sends null
    to clear it: Controller._sync)."""

    @classmethod
    def from_wire(cls, status: Mapping[str, Any]) -> OperatorStatus:
        """The operator's part of a VideoJob's status JSON."""
        phase = status.get("phase")
        queue = status.get("queue")
        return cls(
            phase=Phase(phase) if phase in {member.value for member in Phase} else None,
            conditions=tuple(Condition.from_wire(c) for c in status.get("conditions") or ()),
            observed_generation=status.get("observedGeneration"),
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
            job_name=status.get("jobName"),
            attempt=int(status.get("attempt") or 0),
            queue=QueueStatus.from_wire(queue) if isinstance(queue, Mapping) else None,
        )

    def to_wire(self) -> dict[str, Any]:
        """The fields as the status' JSON, leaving out unset ones (only a retry unsets any: retry_fields)."""
        wire = {
            "phase": self.phase.value if self.phase else None,
            "conditions": [condition.to_wire() for condition in self.conditions],
            "observedGeneration": self.observed_generation,
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "jobName": self.job_name,
            "attempt": self.attempt,
            "queue": self.queue.to_wire() if self.queue is not None else None,
        }
        return {key: value for key, value in wire.items() if value is not None}

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def headline(self) -> Condition | None:
        """The condition that explains the phase."""
        by_phase = {
            Phase.QUEUED: QUEUED,
            Phase.PENDING: RUNNING,
            Phase.RUNNING: RUNNING,
            Phase.SUSPENDED: SUSPENDED,
            Phase.SUCCEEDED: SUCCEEDED,
            Phase.FAILED: FAILED,
            Phase.CANCELLED: CANCELLED,
        }
        return self.condition(by_phase[self.phase]) if self.phase else None

    @property
    def summary(self) -> str:
        """The phase's reason in one line ("Reason: message"), or the phase alone."""
        headline = self.headline
        if headline is not None:
            return f"{headline.reason}: {headline.message}" if headline.message else headline.reason
        return self.phase.value if self.phase else ""


@dataclass(frozen=True, slots=True)
class VideoJobView:
    """What the operator needs to know about a VideoJob."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: str
    suspend: bool = False
    """spec.suspend: paused (its Job suspended) while true."""
    cancel: bool = False
    """spec.cancel: its current attempt cancelled for good (its Job deleted)."""
    managed_by: str | None = None
    """spec.managedBy: the controller that runs it (None: this operator)."""
    attempt: int = 0
    """spec.attempt: the attempt asked for (a retry once the status' is lower and the VideoJob ended)."""
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
    ttl_seconds_after_finished: int | None = None
    stage: str | None = None
    runner_reported: bool = False
    """Whether a runner ever wrote the status (its heartbeatTime is set with every report)."""
    runner_error: bool = False
    has_status: bool = False
    status: OperatorStatus = OperatorStatus()
    spec: Mapping[str, Any] = field(default_factory=dict)
    """The spec as the API server has it, for its Job (validated when the Job is made)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Its labels: `kopf.adopt` copies them onto the Job."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> VideoJobView:
        """From the VideoJob object."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 1)),
            created=meta.get("creationTimestamp", ""),
            suspend=bool(spec.get("suspend", False)),
            cancel=bool(spec.get("cancel", False)),
            managed_by=spec.get("managedBy"),
            attempt=int(spec.get("attempt") or 0),
            deleting=meta.get("deletionTimestamp") is not None,
            finalizers=tuple(meta.get("finalizers") or ()),
            ttl_seconds_after_finished=spec.get("ttlSecondsAfterFinished"),
            stage=status.get("stage"),
            runner_reported=status.get("heartbeatTime") is not None,
            runner_error=status.get("error") is not None,
            has_status=bool(status),
            status=OperatorStatus.from_wire(status),
            spec=dict(spec),  # plain copies: a Kopf view would keep the whole object alive
            labels=dict(meta.get("labels") or {}),
        )

    @property
    def queue_name(self) -> str | None:
        """spec.queueName: the Kueue LocalQueue that admits its Job (None: the operator's own queue)."""
        queue = self.spec.get("queueName")
        return str(queue) if queue else None

    @property
    def managed_here(self) -> bool:
        """Whether this operator runs it: spec.managedBy is unset or names this operator (MultiKueue and
        the like name themselves, and the operator then leaves the VideoJob alone)."""
        return self.managed_by in (None, CONTROLLER_NAME)


@dataclass(frozen=True, slots=True)
class Finish:
    """A Job's terminal condition."""

    type: str  # "Complete" or "Failed"
    reason: str
    message: str
    time: str


@dataclass(frozen=True, slots=True)
class JobView:
    """What the operator needs to know about a Job it created."""

    name: str
    uid: str
    videojob: str
    owner_uid: str | None
    suspended: bool
    kueue_queue: str | None
    priority: int
    created: str
    deleting: bool = False
    failed_pods: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    finish: Finish | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobView:
        """From the Job object."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        annotations = meta.get("annotations") or {}
        owners = [ref for ref in meta.get("ownerReferences") or () if ref.get("kind") == "VideoJob"]
        finish = None
        for condition in status.get("conditions") or ():
            outcome = FINISH_CONDITIONS.get(condition.get("type", ""))
            if outcome is not None and condition.get("status") == "True" and finish is None:
                finish = Finish(
                    type=outcome,
                    reason=condition.get("reason", ""),
                    message=condition.get("message", ""),
                    time=condition.get("lastTransitionTime", ""),
                )
        try:
            priority = int(annotations.get(PRIORITY_ANNOTATION, 0))
        except ValueError:
            priority = 0
        return cls(
            name=meta["name"],
            uid=meta["uid"],
            videojob=annotations.get(NAME_ANNOTATION, meta["name"]),
            owner_uid=owners[0]["uid"] if owners else None,
            suspended=bool(spec.get("suspend", False)),
            kueue_queue=(meta.get("labels") or {}).get(KUEUE_QUEUE_LABEL),
            priority=priority,
            created=annotations.get(JOB_CREATED_ANNOTATION, meta.get("creationTimestamp", "")),
            deleting=meta.get("deletionTimestamp") is not None,
            failed_pods=int(status.get("failed", 0)),
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
            finish=finish,
        )

    @property
    def running(self) -> bool:
        """Admitted and not finished: it holds one of the MAX_RUNNING slots."""
        return not self.suspended and self.finish is None and not self.deleting

    @property
    def waiting(self) -> bool:
        """Held by the operator's own queue (not Kueue's) for a free slot."""
        return self.suspended and self.kueue_queue is None and self.finish is None and not self.deleting

    def queue_order(self) -> tuple[int, str, str]:
        """Release order: higher priority first, then older VideoJobs first."""
        return (-self.priority, self.created, self.name)


@dataclass(frozen=True, slots=True)
class PodView:
    """What the operator needs to know about one of a Job's pods."""

    name: str
    created: str
    phase: str
    job_uid: str | None = None
    node: str | None = None
    deleting: bool = False
    unschedulable: str | None = None
    waiting_reason: str | None = None
    waiting_message: str = ""
    terminated_reason: str | None = None
    exit_code: int | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodView:
        """From the Pod object."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        unschedulable = None
        for condition in status.get("conditions") or ():
            if (condition.get("type"), condition.get("reason")) == ("PodScheduled", "Unschedulable"):
                unschedulable = condition.get("message", "")
        waiting: Mapping[str, Any] = {}
        terminated: Mapping[str, Any] = {}
        for container in status.get("containerStatuses") or ():
            state = container.get("state") or {}
            waiting = state.get("waiting") or waiting
            terminated = state.get("terminated") or terminated
        owners = [ref for ref in meta.get("ownerReferences") or () if ref.get("kind") == "Job"]
        return cls(
            name=meta["name"],
            created=meta.get("creationTimestamp", ""),
            phase=status.get("phase", "Pending"),
            job_uid=owners[0]["uid"] if owners else None,
            node=spec.get("nodeName"),
            deleting=meta.get("deletionTimestamp") is not None,
            unschedulable=unschedulable,
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message", ""),
            terminated_reason=terminated.get("reason"),
            exit_code=terminated.get("exitCode"),
        )


@dataclass(frozen=True, slots=True)
class WorkloadView:
    """What the operator needs to know about the Kueue Workload (kueue.x-k8s.io/v1beta2) of a queued Job."""

    name: str
    job_uid: str | None
    queue: str
    cluster_queue: str | None = None
    admitted: bool = False
    reason: str = ""
    """Why it waits: the reason of a False QuotaReserved, or of a True Evicted/Preempted (Kueue's words)."""
    message: str = ""
    active: bool = True
    """spec.active: false while the operator holds it (a paused VideoJob), so Kueue neither admits it nor
    counts it against the quota."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> WorkloadView:
        """From the Workload object."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        owners = [ref for ref in meta.get("ownerReferences") or () if ref.get("kind") == "Job"]
        conditions = {c.get("type"): c for c in status.get("conditions") or ()}

        def true(type_: str) -> Mapping[str, Any] | None:
            condition = conditions.get(type_)
            return condition if condition is not None and condition.get("status") == "True" else None

        admitted = true("Admitted") is not None and true("Evicted") is None
        reason = message = ""
        if not admitted:
            waiting = true("Preempted") or true("Evicted") or conditions.get("QuotaReserved") or {}
            if waiting.get("status") != "True" or waiting.get("type") != "QuotaReserved":
                reason, message = str(waiting.get("reason", "")), str(waiting.get("message", ""))
        return cls(
            name=meta["name"],
            job_uid=owners[0].get("uid") if owners else None,
            queue=str(spec.get("queueName", "")),
            cluster_queue=(status.get("admission") or {}).get("clusterQueue"),
            admitted=admitted,
            reason=reason,
            message=message,
            active=spec.get("active", True) is not False,
        )


def kueue_condition(
    queue: str, workload: WorkloadView | None, position: QueuePosition | None = None
) -> Condition:
    """The Queued condition of a Job left to Kueue: True while Kueue holds it (with Kueue's reason and
    message: no quota, LocalQueue missing, preempted), False once its Workload is admitted.

    Kueue reports a position in the queue only through its visibility API (an aggregated API server), not
    in the Workload: `position` is what visibility.QueuePositions last read from it (None: not served,
    or not read yet), shown in the message while the Workload waits.
    """
    if workload is None:
        return _condition(QUEUED, TRUE, "WaitingForKueue", f"Kueue LocalQueue {queue} admits it")
    where = f"LocalQueue {workload.queue or queue}"
    if workload.cluster_queue:
        where += f", ClusterQueue {workload.cluster_queue}"
    if workload.admitted:
        return _condition(QUEUED, FALSE, "Admitted", f"admitted by Kueue ({where})")
    reasons = {
        "Preempted": "PreemptedByKueue",
        "InClusterQueue": "PreemptedByKueue",
        "Inadmissible": "Inadmissible",
    }
    reason = reasons.get(workload.reason, "QueuedByKueue")
    detail = f": {workload.message}" if workload.message else ""
    place = ""
    if position is not None:
        place = f", position {position.local_queue} in the LocalQueue"
        place += f", {position.cluster_queue} in the ClusterQueue"
    message = f"waiting for Kueue ({where}, Workload {workload.name}{place}){detail}"
    return _condition(QUEUED, TRUE, reason, message)


@dataclass(frozen=True, slots=True)
class _Observed:
    phase: Phase
    conditions: tuple[Condition, ...]
    start_time: str | None = None
    completion_time: str | None = None


def _condition(type_: str, status: ConditionStatus, reason: str, message: str = "") -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message)


ADMITTED = _condition(QUEUED, FALSE, "Admitted", "the Job may run")


def desired_status(
    videojob: VideoJobView,
    job: JobView | None,
    pods: Iterable[PodView],
    *,
    now: str,
    failure: tuple[str, str] | None = None,
    workload: WorkloadView | None = None,
    position: QueuePosition | None = None,
) -> OperatorStatus:
    """The operator's status fields for `videojob`, given its Job and pods as observed now.

    Terminal phases stick. `failure` is a (reason, message) recorded when the Job could not be created.
    `workload` is Kueue's Workload of a Job with a queue label (kueue_condition), `position` its place in
    Kueue's queues while it waits (status.queue, kueue_condition).
    lastTransitionTime is kept for conditions whose status did not change.
    """
    current = videojob.status
    if current.phase is not None and current.phase.is_terminal:
        return dataclasses.replace(current, observed_generation=videojob.generation)
    pods = sorted(pods, key=lambda pod: (pod.created, pod.name))
    observed = _observe(videojob, job, pods, now, failure)
    if (
        job is not None
        and job.kueue_queue is not None
        and workload is not None
        and (observed.phase is Phase.QUEUED or workload.admitted)
    ):
        kueue = kueue_condition(job.kueue_queue, workload, position)
        observed = dataclasses.replace(
            observed, conditions=tuple(kueue if c.type == QUEUED else c for c in observed.conditions)
        )
    queue = None
    if observed.phase is Phase.QUEUED and job is not None and job.kueue_queue is not None:
        name = workload.queue if workload is not None and workload.queue else job.kueue_queue
        queue = QueueStatus(name, position if workload is not None and not workload.admitted else None)
    return OperatorStatus(
        phase=observed.phase,
        conditions=merge_conditions(current.conditions, observed.conditions, now, videojob.generation),
        observed_generation=videojob.generation,
        start_time=observed.start_time,
        completion_time=observed.completion_time,
        job_name=job.name if job is not None else current.job_name,
        attempt=current.attempt,
        queue=queue,
    )


def retry_due(videojob: VideoJobView) -> bool:
    """Whether to run the VideoJob again: spec.attempt is above its status' attempt, and it ended Failed
    or Cancelled and spec.cancel is false (a retry of a cancelled one clears it in the same change).

    A raise while it still goes takes effect if it then fails or is cancelled; a Succeeded one stays. A
    paused one (spec.suspend) is retried too: its new Job is made suspended (with spec.queueName: once
    resumed).
    """
    status = videojob.status
    return (
        videojob.attempt > status.attempt
        and status.phase in (Phase.FAILED, Phase.CANCELLED)
        and not videojob.cancel
        and not videojob.deleting
    )


def retry_status(videojob: VideoJobView, now: str) -> OperatorStatus:
    """The status that starts attempt spec.attempt: Pending, no Job yet, the previous attempt's conditions
    and times gone (the Retrying condition is stamped afresh, so its Event has a name of its own)."""
    ended = videojob.status.phase
    assert ended is not None
    message = f"attempt {videojob.attempt} after {ended.value}: a new Job resumes from the checkpoint"
    return OperatorStatus(
        phase=Phase.PENDING,
        conditions=merge_conditions(
            (), (_condition(RUNNING, FALSE, RETRYING, message),), now, videojob.generation
        ),
        observed_generation=videojob.generation,
        attempt=videojob.attempt,
    )


def retry_fields(status: OperatorStatus) -> dict[str, Any]:
    """The status patch of a retry: `status`, CLEARED_ON_RETRY as null (the API server drops them), and
    the reason in `message`."""
    return {**dict.fromkeys(CLEARED_ON_RETRY), **status.to_wire(), "message": status.summary}


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """The Event of one phase change (or another `action`); its name is the same every time it is computed."""

    name: str
    reason: str
    message: str
    warning: bool
    action: str = "PhaseChanged"


def phase_event(
    videojob: VideoJobView, status: OperatorStatus, now: datetime | None = None
) -> PhaseEvent | None:
    """The Event for the phase `status` is in (None: none is due).

    The name hashes the VideoJob's uid, the phase and the lastTransitionTime of the condition that
    explains it, so each change has one name. None for Pending unless a pod failed or a retry began (the
    initial Pending is no change), and for a change older than EVENT_TTL.
    """
    headline = status.headline
    if status.phase is None or headline is None or not headline.last_transition_time:
        return None
    if status.phase is Phase.PENDING and headline.reason not in ("PodFailed", RETRYING):
        return None
    changed = datetime.fromisoformat(headline.last_transition_time.replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) - changed > EVENT_TTL:
        return None
    key = f"{videojob.uid}/{status.phase.value}/{headline.type}/{headline.last_transition_time}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return PhaseEvent(
        name=f"{videojob.name[:220]}.{status.phase.value.lower()}.{digest}",
        reason=RETRYING if headline.reason == RETRYING else status.phase.value,
        message=status.summary,
        warning=status.phase is Phase.FAILED,
    )


def operator_message(videojob: VideoJobView, status: OperatorStatus) -> str | None:
    """The status `message` the operator writes with `status` (None: the runner's stays).

    The message belongs to the runner once it reports. Until then it says why the VideoJob waits or
    how it went; on Failed or Cancelled, unless the runner reported an error, why it ended: so that
    `kubectl get -o wide` shows the reason.
    """
    if status.headline is None:
        return None
    if not videojob.runner_reported:
        return status.summary
    if status.phase in (Phase.FAILED, Phase.CANCELLED) and not videojob.runner_error:
        return status.summary
    return None


def merge_conditions(
    old: Sequence[Condition], new: Sequence[Condition], now: str, generation: int
) -> tuple[Condition, ...]:
    """`new`, stamped: each keeps the old lastTransitionTime when its status did not change."""
    previous = {condition.type: condition for condition in old}
    merged = []
    for condition in new:
        before = previous.get(condition.type)
        kept = before.last_transition_time if before is not None and before.status == condition.status else ""
        merged.append(
            dataclasses.replace(condition, last_transition_time=kept or now, observed_generation=generation)
        )
    return tuple(merged)


def _observe(
    videojob: VideoJobView,
    job: JobView | None,
    pods: Sequence[PodView],
    now: str,
    failure: tuple[str, str] | None,
) -> _Observed:
    current = videojob.status
    if videojob.cancel:
        message = "cancelled with spec.cancel: true; its Job was deleted"
        return _Observed(
            Phase.CANCELLED,
            (_condition(CANCELLED, TRUE, "Cancelled", message),),
            current.start_time,
            now,
        )
    if job is None or (job.deleting and job.finish is None):
        if failure is not None:
            return _Observed(Phase.FAILED, (_condition(FAILED, TRUE, *failure),), None, now)
        if current.job_name is not None:  # it existed: someone else deleted it
            message = f"Job {current.job_name} was deleted before it finished; raise spec.attempt to retry"
            return _Observed(Phase.FAILED, (_condition(FAILED, TRUE, "JobDeleted", message),), None, now)
        if videojob.suspend and job is None:  # paused before it started (with a queueName: no Job yet)
            return _Observed(Phase.SUSPENDED, (_paused(None, ()),))
        return _Observed(Phase.PENDING, ())
    if job.finish is not None:
        return _finished(job, pods)
    if videojob.suspend:
        return _Observed(Phase.SUSPENDED, (_paused(job, pods),), job.start_time)
    if job.suspended:
        if job.kueue_queue is not None:
            queued = _condition(
                QUEUED, TRUE, "WaitingForKueue", f"Kueue LocalQueue {job.kueue_queue} admits it"
            )
        else:
            queued = _condition(QUEUED, TRUE, "WaitingForSlot", "waiting for a free slot (MAX_RUNNING)")
        return _Observed(Phase.QUEUED, (queued,))
    present = [pod for pod in pods if not pod.deleting]
    pod = present[-1] if present else None
    retries = f" (after {job.failed_pods} failed attempt(s))" if job.failed_pods else ""
    if pod is not None and pod.phase in ("Running", "Succeeded"):  # Succeeded: until the Job says so
        running = _condition(RUNNING, TRUE, "PodRunning", f"pod {pod.name} runs on {pod.node}{retries}")
        return _Observed(Phase.RUNNING, (ADMITTED, running), job.start_time)
    return _Observed(Phase.PENDING, (ADMITTED, _pending(pod, retries)), job.start_time)


def _paused(job: JobView | None, pods: Sequence[PodView]) -> Condition:
    """Why a paused VideoJob is Suspended, and whether its pod has stopped yet."""
    if job is None:
        message = "paused (spec.suspend: true) before it started: its Job is made once spec.suspend is false"
        return _condition(SUSPENDED, TRUE, "Paused", message)
    if not job.suspended or any(pod.phase in ("Pending", "Running") for pod in pods):
        message = f"pausing (spec.suspend: true): Job {job.name} is being suspended, its pod stops"
    else:
        message = f"paused (spec.suspend: true): Job {job.name} is suspended; spec.suspend: false resumes it"
    return _condition(SUSPENDED, TRUE, "Paused", message)


def _pending(pod: PodView | None, retries: str) -> Condition:
    starting = _condition(RUNNING, FALSE, "PodPending", f"waiting for the runner pod to start{retries}")
    if pod is None:
        return starting
    if pod.phase == "Failed":
        cause = f"{pod.terminated_reason or 'Error'}, exit code {pod.exit_code}"
        message = f"pod {pod.name} failed ({cause}); the Job retries or gives up{retries}"
        return _condition(RUNNING, FALSE, "PodFailed", message)
    if pod.unschedulable is not None:
        message = f"no node can run pod {pod.name} (GPU nodes full or none match): {pod.unschedulable}"
        return _condition(RUNNING, FALSE, "Unschedulable", message)
    if pod.waiting_reason in WAITING_REASONS:
        message = f"pod {pod.name}: {pod.waiting_message or pod.waiting_reason}"
        return _condition(RUNNING, FALSE, pod.waiting_reason or "", message)
    return starting  # the same condition as before the pod existed: no status patch for this step


def _finished(job: JobView, pods: Sequence[PodView]) -> _Observed:
    finish = job.finish
    assert finish is not None
    if finish.type == "Complete":
        done = _condition(SUCCEEDED, TRUE, "Completed", f"Job {job.name} completed")
        stopped = _condition(RUNNING, FALSE, "Completed", "the runner finished")
        return _Observed(
            Phase.SUCCEEDED, (ADMITTED, stopped, done), job.start_time, job.completion_time or finish.time
        )
    reason, message = _failure(finish, [pod for pod in pods if pod.phase == "Failed"])
    failed = _condition(FAILED, TRUE, reason, message)
    stopped = _condition(RUNNING, FALSE, reason, "the runner stopped")
    return _Observed(Phase.FAILED, (ADMITTED, stopped, failed), job.start_time, finish.time)


def _failure(finish: Finish, failed_pods: Sequence[PodView]) -> tuple[str, str]:
    """The most useful reason: the last failed pod's cause when the Job only says it gave up."""
    last = failed_pods[-1] if failed_pods else None
    detail = f"Job: {finish.reason}: {finish.message}" if finish.message else f"Job: {finish.reason}"
    if last is not None and last.terminated_reason == "OOMKilled":
        return "OOMKilled", f"pod {last.name} ran out of memory; raise spec.resources.memory. {detail}"
    if finish.reason == "PodFailurePolicy":
        code = f" with exit code {last.exit_code}" if last is not None and last.exit_code is not None else ""
        return "PodFailurePolicy", f"the runner failed{code}, which a retry cannot fix. {detail}"
    if finish.reason == "BackoffLimitExceeded":
        cause = ""
        if last is not None and last.exit_code is not None:
            cause = f"; last pod {last.name} exited with code {last.exit_code} ({last.terminated_reason})"
        return "BackoffLimitExceeded", f"every attempt failed{cause}. {detail}"
    if finish.reason == "DeadlineExceeded":
        return "DeadlineExceeded", f"the Job ran past spec.activeDeadlineSeconds. {detail}"
    return finish.reason or "JobFailed", detail
