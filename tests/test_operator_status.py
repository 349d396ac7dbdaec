"""Phase and conditions from a Job and its pods: one row per situation and failure reason."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from videojobs.contract import ConditionStatus, JobStatus, Phase
from videojobs_operator.status import (
    EVENT_TTL,
    Condition,
    JobView,
    OperatorStatus,
    PodView,
    VideoJobView,
    WorkloadView,
    desired_status,
    merge_conditions,
    phase_event,
    retry_due,
    retry_fields,
    retry_status,
)

T0, T1, NOW = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:05:00Z"
VJ_UID, JOB_UID = "vj-uid", "job-uid"


def videojob(status: dict[str, Any] | None = None, **spec: Any) -> VideoJobView:
    return VideoJobView.from_body(
        {
            "metadata": {
                "namespace": "ns",
                "name": "v",
                "uid": VJ_UID,
                "generation": 3,
                "creationTimestamp": T0,
            },
            "spec": {"topic": "t", **spec},
            "status": status or {},
        }
    )


def job(
    *conditions: tuple[str, str, str], suspend: bool = False, kueue: bool = False, failed: int = 0
) -> JobView:
    labels = {"kueue.x-k8s.io/queue-name": "gpus"} if kueue else {}
    return JobView.from_body(
        {
            "metadata": {
                "name": "v",
                "uid": JOB_UID,
                "labels": labels,
                "annotations": {"videojobs.io/name": "v", "videojobs.io/priority": "5"},
                "ownerReferences": [{"kind": "VideoJob", "uid": VJ_UID, "name": "v"}],
            },
            "spec": {"suspend": suspend},
            "status": {
                "startTime": None if suspend else T0,
                "completionTime": T1 if any(c[0] == "Complete" for c in conditions) else None,
                "failed": failed,
                "conditions": [
                    {
                        "type": type_,
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": T1,
                    }
                    for type_, reason, message in conditions
                ],
            },
        }
    )


def pod(
    phase: str = "Pending",
    *,
    name: str = "v-abcde",
    unschedulable: str | None = None,
    waiting: tuple[str, str] | None = None,
    terminated: tuple[str, int] | None = None,
    created: str = T0,
) -> PodView:
    state: dict[str, Any] = {}
    if waiting:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if terminated:
        state["terminated"] = {"reason": terminated[0], "exitCode": terminated[1]}
    conditions = []
    if unschedulable:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        )
    return PodView.from_body(
        {
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "ownerReferences": [{"kind": "Job", "uid": JOB_UID, "name": "v"}],
            },
            "spec": {"nodeName": None if unschedulable else "gpu-node-0"},
            "status": {
                "phase": phase,
                "conditions": conditions,
                "containerStatuses": [{"name": "runner", "state": state}] if state else [],
            },
        }
    )


NO_GPU = "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity"

# (id, videojob, job, pods, failure) -> (phase, {condition type: (status, reason)}, substring of the headline)
CASES: list[
    tuple[str, VideoJobView, JobView | None, list[PodView], Any, Phase, dict[str, tuple[str, str]], str]
] = [
    ("job-not-created-yet", videojob(), None, [], None, Phase.PENDING, {}, ""),
    (
        "queued-for-a-slot",
        videojob(),
        job(suspend=True),
        [],
        None,
        Phase.QUEUED,
        {"Queued": ("True", "WaitingForSlot")},
        "MAX_RUNNING",
    ),
    (
        "queued-in-kueue",
        videojob(),
        job(suspend=True, kueue=True),
        [],
        None,
        Phase.QUEUED,
        {"Queued": ("True", "WaitingForKueue")},
        "gpus",
    ),
    (
        "admitted-no-pod-yet",
        videojob(),
        job(),
        [],
        None,
        Phase.PENDING,
        {"Queued": ("False", "Admitted"), "Running": ("False", "PodPending")},
        "runner pod to start",
    ),
    (
        "unschedulable-no-gpu-node",
        videojob(),
        job(),
        [pod(unschedulable=NO_GPU)],
        None,
        Phase.PENDING,
        {"Running": ("False", "Unschedulable")},
        "Insufficient nvidia.com/gpu",
    ),
    (
        "image-pull-backoff",
        videojob(),
        job(),
        [pod(waiting=("ImagePullBackOff", 'Back-off pulling image "runner:nope"'))],
        None,
        Phase.PENDING,
        {"Running": ("False", "ImagePullBackOff")},
        "runner:nope",
    ),
    (
        "missing-secret",
        videojob(),
        job(),
        [pod(waiting=("CreateContainerConfigError", 'secret "llm-keys" not found'))],
        None,
        Phase.PENDING,
        {"Running": ("False", "CreateContainerConfigError")},
        "llm-keys",
    ),
    (
        "container-creating-is-just-pending",
        videojob(),
        job(),
        [pod(waiting=("ContainerCreating", ""))],
        None,
        Phase.PENDING,
        {"Running": ("False", "PodPending")},
        "to start",
    ),
    (
        "running",
        videojob(),
        job(),
        [pod("Running")],
        None,
        Phase.RUNNING,
        {"Queued": ("False", "Admitted"), "Running": ("True", "PodRunning")},
        "gpu-node-0",
    ),
    (
        "running-the-retry",
        videojob(),
        job(failed=1),
        [pod("Failed", terminated=("Error", 1)), pod("Running", name="v-second", created=T1)],
        None,
        Phase.RUNNING,
        {"Running": ("True", "PodRunning")},
        "1 failed attempt",
    ),
    (
        "pod-failed-job-undecided",
        videojob(),
        job(failed=1),
        [pod("Failed", terminated=("Error", 1))],
        None,
        Phase.PENDING,
        {"Running": ("False", "PodFailed")},
        "exit code 1",
    ),
    (
        "pod-succeeded-job-completing",
        videojob(),
        job(),
        [pod("Succeeded", terminated=("Completed", 0))],
        None,
        Phase.RUNNING,
        {"Running": ("True", "PodRunning")},  # no extra patch until the Job finishes
        "gpu-node-0",
    ),
    (
        "complete",
        videojob(),
        job(("Complete", "CompletionsReached", "")),
        [pod("Succeeded")],
        None,
        Phase.SUCCEEDED,
        {"Succeeded": ("True", "Completed"), "Running": ("False", "Completed")},
        "completed",
    ),
    (
        "success-criteria-met-before-complete",
        videojob(),
        job(("SuccessCriteriaMet", "CompletionsReached", "")),
        [pod("Succeeded")],
        None,
        Phase.SUCCEEDED,
        {"Succeeded": ("True", "Completed")},
        "completed",
    ),
    (
        "oom-killed",
        videojob(),
        job(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"), failed=2),
        [pod("Failed", terminated=("OOMKilled", 137))],
        None,
        Phase.FAILED,
        {"Failed": ("True", "OOMKilled"), "Running": ("False", "OOMKilled")},
        "spec.resources.memory",
    ),
    (
        "backoff-limit-exceeded",
        videojob(),
        job(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"), failed=2),
        [pod("Failed", terminated=("Error", 1))],
        None,
        Phase.FAILED,
        {"Failed": ("True", "BackoffLimitExceeded")},
        "exited with code 1",
    ),
    (
        "deadline-exceeded",
        videojob(),
        job(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")),
        [],
        None,
        Phase.FAILED,
        {"Failed": ("True", "DeadlineExceeded")},
        "activeDeadlineSeconds",
    ),
    (
        "permanent-runner-failure",
        videojob(),
        job(
            (
                "FailureTarget",
                "PodFailurePolicy",
                "Container runner for pod ns/v-abcde failed with exit code 2",
            )
        ),
        [pod("Failed", terminated=("Error", 2))],
        None,
        Phase.FAILED,
        {"Failed": ("True", "PodFailurePolicy")},
        "exit code 2",
    ),
    (
        "cancelled",
        videojob(cancel=True),
        job(),
        [pod("Running")],
        None,
        Phase.CANCELLED,
        {"Cancelled": ("True", "Cancelled")},
        "spec.cancel",
    ),
    (
        "pausing",
        videojob(suspend=True),
        job(),
        [pod("Running")],
        None,
        Phase.SUSPENDED,
        {"Suspended": ("True", "Paused")},
        "its pod stops",
    ),
    (
        "paused",
        videojob(suspend=True),
        job(suspend=True, kueue=True),
        [],
        None,
        Phase.SUSPENDED,
        {"Suspended": ("True", "Paused")},
        "spec.suspend: false resumes it",
    ),
    (
        "finished-while-pausing",
        videojob(suspend=True),
        job(("Complete", "CompletionsReached", "")),
        [],
        None,
        Phase.SUCCEEDED,
        {"Succeeded": ("True", "Completed")},
        "completed",
    ),
    (
        "job-deleted-behind-our-back",
        videojob({"phase": "Running", "jobName": "v"}),
        None,
        [],
        None,
        Phase.FAILED,
        {"Failed": ("True", "JobDeleted")},
        "deleted",
    ),
    (
        "job-could-not-be-created",
        videojob(),
        None,
        [],
        ("PriorityClassNotFound", "PriorityClass nope does not exist"),
        Phase.FAILED,
        {"Failed": ("True", "PriorityClassNotFound")},
        "nope",
    ),
]


@pytest.mark.parametrize(
    ("view", "the_job", "pods", "failure", "phase", "conditions", "headline"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_status_table(view, the_job, pods, failure, phase, conditions, headline) -> None:
    status = desired_status(view, the_job, pods, now=NOW, failure=failure)
    assert status.phase is phase
    got = {c.type: (c.status.value, c.reason) for c in status.conditions}
    assert conditions.items() <= got.items(), got
    assert status.headline is None or headline in status.headline.message
    assert status.observed_generation == 3
    assert all(c.observed_generation == 3 and c.last_transition_time == NOW for c in status.conditions)
    # The wire form is the contract's: the runner's JobStatus model reads it back.
    wire = {key: value for key, value in status.to_wire().items() if value is not None}
    assert JobStatus.model_validate(wire).phase is phase


def test_times_and_job_name() -> None:
    running = desired_status(videojob(), job(), [pod("Running")], now=NOW)
    assert (running.start_time, running.completion_time, running.job_name) == (T0, None, "v")
    done = desired_status(videojob(), job(("Complete", "CompletionsReached", "")), [], now=NOW)
    assert (done.start_time, done.completion_time) == (T0, T1)
    failed = desired_status(videojob(), job(("Failed", "DeadlineExceeded", "")), [], now=NOW)
    assert failed.completion_time == T1  # the Failed condition's time
    cancelled = desired_status(videojob(cancel=True), None, [], now=NOW)
    assert cancelled.completion_time == NOW
    queued = desired_status(videojob(), job(suspend=True), [], now=NOW)
    assert queued.start_time is None


def test_last_transition_time_is_kept_while_the_status_holds() -> None:
    running = desired_status(videojob(), job(), [pod("Running")], now=T1)
    again = desired_status(videojob(running.to_wire()), job(), [pod("Running")], now=NOW)
    assert again == running  # nothing to patch
    done = desired_status(
        videojob(running.to_wire()), job(("Complete", "CompletionsReached", "")), [pod("Succeeded")], now=NOW
    )
    times = {c.type: c.last_transition_time for c in done.conditions}
    assert times == {"Queued": T1, "Running": NOW, "Succeeded": NOW}


def test_terminal_phases_stick() -> None:
    done = desired_status(videojob(), job(("Complete", "CompletionsReached", "")), [], now=T1)
    view = videojob(done.to_wire(), cancel=True)
    later = desired_status(view, None, [], now=NOW)
    assert later.phase is Phase.SUCCEEDED and later.conditions == done.conditions


def test_merge_conditions_stamps_generation_and_new_times() -> None:
    waiting = Condition(type="Queued", status=ConditionStatus.TRUE, reason="WaitingForSlot")
    before = [dataclasses.replace(waiting, last_transition_time=T0)]
    (kept,) = merge_conditions(before, [dataclasses.replace(waiting, message="still")], NOW, 7)
    assert (kept.last_transition_time, kept.observed_generation, kept.message) == (T0, 7, "still")
    admitted = dataclasses.replace(waiting, status=ConditionStatus.FALSE, reason="Admitted")
    (moved,) = merge_conditions(before, [admitted], NOW, 7)
    assert moved.last_transition_time == NOW


def test_views_read_the_objects() -> None:
    view = videojob(
        {
            "phase": "Queued",
            "stage": "planning",
            "conditions": [
                {"type": "Queued", "status": "True", "reason": "WaitingForSlot", "lastTransitionTime": T0}
            ],
        },
        ttlSecondsAfterFinished=60,
    )
    assert view.status.phase is Phase.QUEUED and view.stage == "planning"
    assert view.ttl_seconds_after_finished == 60 and not view.suspend and not view.cancel
    assert view.managed_here and videojob(managedBy="videojobs.io/operator").managed_here
    assert not videojob(managedBy="kueue.x-k8s.io/multikueue").managed_here
    assert OperatorStatus.from_wire({"phase": "Bogus"}).phase is None
    the_job = job(suspend=True)
    assert the_job.waiting and not the_job.running and the_job.priority == 5
    assert the_job.owner_uid == VJ_UID and the_job.videojob == "v"
    assert job().running and not job().waiting
    assert not job(suspend=True, kueue=True).waiting
    assert pod("Running").job_uid == JOB_UID


def test_each_phase_change_has_one_event_name() -> None:
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    running = desired_status(videojob(), job(), [pod("Running")], now=T1)
    event = phase_event(videojob(), running, now)
    assert event is not None and event == phase_event(videojob(), running, now)  # the same every time
    assert event.name.startswith("v.running.") and (event.reason, event.warning) == ("Running", False)
    assert event.message == running.summary
    again = dataclasses.replace(running, conditions=merge_conditions((), running.conditions, NOW, 3))
    assert phase_event(videojob(), again, now).name != event.name  # it became Running again, later
    assert phase_event(videojob(), running, now + EVENT_TTL + timedelta(seconds=61)) is None  # expired
    pending = desired_status(videojob(), job(), [], now=T1)
    assert pending.phase is Phase.PENDING and phase_event(videojob(), pending, now) is None


def test_a_raised_attempt_retries_a_failed_or_cancelled_videojob_only() -> None:
    failed = desired_status(videojob(), job(("Failed", "BackoffLimitExceeded", "")), [], now=T1).to_wire()
    cancelled = desired_status(videojob(cancel=True), None, [], now=T1).to_wire()
    succeeded = desired_status(videojob(), job(("Complete", "CompletionsReached", "")), [], now=T1).to_wire()
    running = desired_status(videojob(), job(), [pod("Running")], now=T1).to_wire()
    assert retry_due(videojob(failed, attempt=1))
    assert not retry_due(videojob(failed))  # not raised
    assert not retry_due(videojob({**failed, "attempt": 1}, attempt=1))  # attempt 1 has run already
    assert retry_due(videojob({**failed, "attempt": 1}, attempt=2))
    assert retry_due(videojob(cancelled, attempt=1))
    assert not retry_due(videojob(cancelled, attempt=1, cancel=True))  # a retry clears cancel with it
    assert retry_due(videojob(failed, attempt=1, suspend=True))  # paused: its new Job is made suspended
    assert not retry_due(videojob(succeeded, attempt=1))  # the video exists: nothing to run again
    assert not retry_due(videojob(running, attempt=1))  # taken up if this attempt fails


def test_a_retry_starts_afresh_and_its_attempt_sticks() -> None:
    failed = desired_status(videojob(), job(("Failed", "BackoffLimitExceeded", "")), [], now=T1).to_wire()
    view = videojob(
        {**failed, "heartbeatTime": T1, "error": {"stage": "rendering", "message": "m"}}, attempt=1
    )
    retry = retry_status(view, NOW)
    assert (retry.phase, retry.attempt, retry.job_name, retry.start_time, retry.completion_time) == (
        Phase.PENDING,
        1,
        None,
        None,
        None,
    )
    assert [(c.type, c.reason, c.last_transition_time) for c in retry.conditions] == [
        ("Running", "Retrying", NOW)
    ]
    assert "attempt 1 after Failed" in retry.summary
    fields = retry_fields(retry)
    assert fields["attempt"] == 1 and fields["phase"] == "Pending" and fields["message"] == retry.summary
    cleared = ("jobName", "startTime", "completionTime", "error", "heartbeatTime")
    assert all(fields[name] is None for name in cleared)

    event = phase_event(view, retry, datetime.fromisoformat(NOW.replace("Z", "+00:00")))
    assert event is not None and (event.reason, event.warning) == ("Retrying", False)

    again = videojob(retry.to_wire(), attempt=1)  # as the API server stores it
    assert again.status == retry and not retry_due(again)
    running = desired_status(again, job(), [pod("Running")], now=NOW)
    assert (running.phase, running.attempt) == (Phase.RUNNING, 1)
    ended = desired_status(
        videojob(running.to_wire(), attempt=1), job(("Failed", "DeadlineExceeded", "")), [], now=NOW
    )
    assert (ended.phase, ended.attempt) == (Phase.FAILED, 1)


# --- Kueue's Workload ------------------------------------------------------------------------------


def workload(*conditions: tuple[str, str, str, str], cluster_queue: str | None = None) -> WorkloadView:
    status: dict[str, Any] = {
        "conditions": [
            {"type": type_, "status": status, "reason": reason, "message": message}
            for type_, status, reason, message in conditions
        ]
    }
    if cluster_queue:
        status["admission"] = {"clusterQueue": cluster_queue}
    return WorkloadView.from_body(
        {
            "metadata": {"name": "job-v-1a2b3", "ownerReferences": [{"kind": "Job", "uid": JOB_UID}]},
            "spec": {"queueName": "gpus"},
            "status": status,
        }
    )


NO_QUOTA = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu"


@pytest.mark.parametrize(
    ("the_workload", "phase", "reason", "message"),
    [
        (None, Phase.QUEUED, "WaitingForKueue", "Kueue LocalQueue gpus admits it"),
        (
            workload(("QuotaReserved", "False", "Pending", NO_QUOTA)),
            Phase.QUEUED,
            "QueuedByKueue",
            f"waiting for Kueue (LocalQueue gpus, Workload job-v-1a2b3): {NO_QUOTA}",
        ),
        (
            workload(("QuotaReserved", "False", "Inadmissible", "LocalQueue gpus doesn't exist")),
            Phase.QUEUED,
            "Inadmissible",
            "waiting for Kueue (LocalQueue gpus, Workload job-v-1a2b3): LocalQueue gpus doesn't exist",
        ),
        (
            workload(
                ("QuotaReserved", "False", "Pending", NO_QUOTA),
                ("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x)"),
                ("Admitted", "True", "Admitted", ""),
            ),
            Phase.QUEUED,
            "PreemptedByKueue",
            "waiting for Kueue (LocalQueue gpus, Workload job-v-1a2b3): Preempted to accommodate a workload"
            " (UID: x)",
        ),
    ],
)
def test_a_queued_jobs_kueue_workload_explains_the_wait(
    the_workload: WorkloadView | None, phase: Phase, reason: str, message: str
) -> None:
    status = desired_status(videojob(), job(suspend=True, kueue=True), [], now=NOW, workload=the_workload)
    assert status.phase is phase
    queued = status.condition("Queued")
    assert queued is not None
    assert (queued.status, queued.reason, queued.message) == (ConditionStatus.TRUE, reason, message)


def test_an_admitted_workload_names_its_cluster_queue() -> None:
    admitted = workload(
        ("QuotaReserved", "True", "QuotaReserved", ""),
        ("Admitted", "True", "Admitted", ""),
        cluster_queue="gpu-cq",
    )
    status = desired_status(videojob(), job(kueue=True), [pod("Running")], now=NOW, workload=admitted)
    assert status.phase is Phase.RUNNING
    queued = status.condition("Queued")
    assert queued is not None
    assert (queued.status, queued.reason) == (ConditionStatus.FALSE, "Admitted")
    assert queued.message == "admitted by Kueue (LocalQueue gpus, ClusterQueue gpu-cq)"
    # A Job without the queue label ignores any Workload.
    plain = desired_status(videojob(), job(), [pod("Running")], now=NOW, workload=admitted)
    assert plain.condition("Queued") == dataclasses.replace(
        queued, reason="Admitted", message="the Job may run"
    )
