"""The reconciler without a cluster: Job creation, status writes, the MAX_RUNNING queue, TTL, rate limit."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from videojobs.contract import Phase, storage_job_id
from videojobs.errors import StorageError
from videojobs.storage import LocalStorage
from videojobs_operator import controller as controller_module
from videojobs_operator.controller import Controller, RetryLater, WorkQueue
from videojobs_operator.kube import TokenBucket
from videojobs_operator.retention import StorageOutage
from videojobs_operator.settings import OperatorSettings
from videojobs_operator.status import JobView, PhaseEvent, PodView, VideoJobView, WorkloadView

NS = "ns"


class FakeApi:
    """Records the operator's API calls; answers like the API server would."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.create_error: ApiException | None = None
        self.existing: dict[str, Any] = {}
        self.identity_error: ApiException | None = None
        self.existing_identity: dict[str, Any] = {}
        self.priorities = {"high": 1000}
        self.events: dict[str, PhaseEvent] = {}
        self.finalizers: dict[str, list[str]] = {}
        self.pending: dict[tuple[str, str], list[dict[str, Any]]] | ApiException = ApiException(
            status=404, reason="Not Found"
        )
        """Kueue's pendingworkloads by (namespace, LocalQueue), or what asking for them raises (by default
        a 404: the visibility API is not served)."""

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> None:
        self.calls.append(("create", manifest["metadata"]["name"], manifest))
        if self.create_error is not None:
            raise self.create_error

    async def read_job(self, namespace: str, name: str) -> dict[str, Any]:
        return self.existing

    async def create_object(self, manifest: dict[str, Any]) -> None:
        self.calls.append(("identity", manifest["kind"], manifest["metadata"]["name"], manifest))
        if self.identity_error is not None:
            raise self.identity_error

    async def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return {"kind": kind, **self.existing_identity}

    async def release_job(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("release", name))

    async def suspend_job(self, namespace: str, name: str, uid: str, *, suspend: bool) -> None:
        self.calls.append(("suspend", name, suspend))

    async def set_workload_active(self, namespace: str, name: str, *, active: bool) -> None:
        self.calls.append(("workload-active", name, active))

    async def pending_workloads(self, namespace: str, local_queue: str) -> list[dict[str, Any]]:
        self.calls.append(("pending-workloads", namespace, local_queue))
        if isinstance(self.pending, ApiException):
            raise self.pending
        return self.pending.get((namespace, local_queue), [])

    async def set_finalizers(
        self, namespace: str, name: str, uid: str, old: tuple[str, ...], new: list[str]
    ) -> None:
        self.finalizers[name] = new  # kept apart from `calls`: the index never shows it in these tests

    async def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete-job", name))

    async def patch_status(
        self, namespace: str, name: str, uid: str, fields: dict[str, Any], **_: Any
    ) -> None:
        self.calls.append(("status", name, fields))

    async def delete_videojob(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("delete-videojob", name))

    async def priority(self, name: str) -> int | None:
        return self.priorities.get(name)

    async def post_event(self, namespace: str, name: str, uid: str, event: PhaseEvent) -> None:
        """Record it; like the API server, keep it only once by name (a second post is a 409, no error)."""
        if event.name not in self.events:
            self.events[event.name] = event
            self.calls.append(("event", name, event.reason, event.warning))

    def close(self) -> None:
        pass

    def take(self, kind: str) -> list[tuple[Any, ...]]:
        taken = [call for call in self.calls if call[0] == kind]
        self.calls = [call for call in self.calls if call[0] != kind]
        return taken


class FakeStorage(LocalStorage):
    """A local store that fails deletions while `down` (a storage outage)."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp()))
        self.down = False

    def delete_prefix(self, prefix: str) -> int:
        if self.down:
            raise StorageError("S3 unreachable")
        return super().delete_prefix(prefix)


def body(name: str, created: str = "2026-01-01T00:00:00Z", status: dict[str, Any] | None = None, **spec: Any):
    return {
        "apiVersion": "videojobs.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"topic": "t", **spec},
        "status": status or {},
    }


def job_body(name: str, *, suspend: bool = False, priority: int = 0, created: str = "", done: bool = False):
    conditions = [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}] if done else []
    return {
        "metadata": {
            "name": name,
            "uid": f"job-{name}",
            "annotations": {
                "videojobs.io/name": name,
                "videojobs.io/priority": str(priority),
                "videojobs.io/created": created,
            },
            "ownerReferences": [{"kind": "VideoJob", "uid": f"uid-{name}", "name": name}],
        },
        "spec": {"suspend": suspend},
        "status": {"startTime": None if suspend else "2026-01-01T00:00:05Z", "conditions": conditions},
    }


class World:
    """A controller over plain-dict indexes that tests fill in as Kopf would."""

    def __init__(self, **settings: Any) -> None:
        self.api = FakeApi()
        self.videojobs: dict[tuple[str, str], list[VideoJobView]] = {}
        self.jobs: dict[tuple[str, str], list[JobView]] = {}
        self.pods: dict[tuple[str, str], list[PodView]] = {}
        self.storage = FakeStorage()
        self.workloads: dict[tuple[str, str], list[WorkloadView]] = {}
        self.controller = Controller(
            OperatorSettings(**settings),
            self.api,  # type: ignore[arg-type]
            self.videojobs,  # type: ignore[arg-type]
            self.jobs,  # type: ignore[arg-type]
            self.pods,  # type: ignore[arg-type]
            self.storage,
            self.workloads,  # type: ignore[arg-type]
        )

    def add_videojob(self, raw: dict[str, Any]) -> VideoJobView:
        view = VideoJobView.from_body(raw)
        self.videojobs[(NS, view.name)] = [view]
        return view

    def add_job(self, raw: dict[str, Any]) -> JobView:
        view = JobView.from_body(raw)
        self.jobs[(NS, view.videojob)] = [view]
        return view

    async def ensure(self, raw: dict[str, Any]) -> None:
        """The VideoJob as Kopf's index has it now, reconciled (as an event for it would have it)."""
        await self.sync(self.add_videojob(raw).name)

    async def sync(self, name: str) -> None:
        await self.controller._sync((NS, name))


def test_new_videojob_gets_one_owned_job_and_its_status_follows() -> None:
    async def scenario() -> None:
        world = World()
        await world.ensure(body("a"))
        assert len(world.api.take("identity")) == 3
        ((_, name, manifest),) = world.api.take("create")
        assert name == "a" and manifest["spec"]["suspend"] is False
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("VideoJob", "uid-a", True)
        await world.sync("a")
        assert world.api.calls == []  # nothing to say until the Job exists

        world.add_job(job_body("a"))
        world.pods[(NS, "a")] = [
            PodView(name="a-x", created="t", phase="Running", job_uid="job-a", node="gpu-node-0")
        ]
        await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Running" and fields["jobName"] == "a"
        assert world.api.take("event") == [("event", "a", "Running", False)]

        await world.sync("a")  # the index has not caught up, but the controller remembers its write
        assert world.api.calls == []
        world.add_videojob(body("a", status=fields))
        await world.sync("a")
        assert world.api.calls == []

        restarted = World()  # a new operator process: the Job is in the index, none is made again
        restarted.add_job(job_body("a"))
        await restarted.ensure(body("a", status=fields))
        assert restarted.api.take("create") == [] and restarted.api.take("identity") == []

        lost = World()  # it had a Job (its status says so) that someone else deleted: none is made again
        await lost.ensure(body("a", status=fields))
        assert lost.api.take("create") == []
        ((_, _, fields),) = lost.api.take("status")
        assert fields["phase"] == "Failed" and fields["conditions"][0]["reason"] == "JobDeleted"

    asyncio.run(scenario())


def test_job_name_conflicts_and_leftovers() -> None:
    async def scenario() -> None:
        world = World()
        world.api.create_error = ApiException(status=409, reason="Conflict")
        world.api.existing = {
            "metadata": {"name": "a", "ownerReferences": [{"kind": "VideoJob", "uid": "uid-a"}]}
        }
        await world.ensure(body("a"))  # ours already: fine
        await world.sync("a")
        assert world.api.take("status") == []
        await world.sync("a")  # the index has not seen it yet, but it is ours: not made again
        assert [call[1] for call in world.api.take("create")] == ["a"]

        world.api.existing = {
            "metadata": {"name": "b", "ownerReferences": [{"kind": "VideoJob", "uid": "old"}]}
        }
        with pytest.raises(RetryLater, match="earlier VideoJob"):  # reconciled again after a back-off
            await world.ensure(body("b"))

        world.api.existing = {"metadata": {"name": "c"}}
        await world.ensure(body("c"))
        await world.sync("c")
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Failed"
        assert fields["conditions"][0]["reason"] == "JobNameConflict"
        assert world.api.take("event") == [("event", "c", "Failed", True)]

    asyncio.run(scenario())


def test_each_runner_gets_its_own_identity_before_its_job() -> None:
    async def scenario() -> None:
        world = World()
        await world.ensure(body("a"))
        kinds = [(call[0], call[1]) for call in world.api.calls if call[0] in ("identity", "create")]
        assert kinds == [  # all three before the Job
            ("identity", "ServiceAccount"),
            ("identity", "Role"),
            ("identity", "RoleBinding"),
            ("create", "a"),
        ]
        for call in world.api.take("identity"):
            (owner,) = call[3]["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"]) == ("VideoJob", "uid-a")

        shared = World(runner_service_account="videojobs-runner")
        await shared.ensure(body("b"))
        assert shared.api.take("identity") == [] and len(shared.api.take("create")) == 1

    asyncio.run(scenario())


def test_identity_conflicts_wait_for_leftovers_and_fail_on_foreign_objects() -> None:
    async def scenario() -> None:
        world = World()
        world.api.identity_error = ApiException(status=409, reason="Conflict")
        world.api.existing_identity = {
            "metadata": {"name": "a", "ownerReferences": [{"kind": "VideoJob", "uid": "uid-a"}]}
        }
        await world.ensure(body("a"))  # made by an earlier try: fine, the Job follows
        assert len(world.api.take("create")) == 1

        world.api.existing_identity = {
            "metadata": {"name": "b", "ownerReferences": [{"kind": "VideoJob", "uid": "old"}]}
        }
        with pytest.raises(RetryLater, match="ServiceAccount of an earlier VideoJob"):
            await world.ensure(body("b"))
        assert world.api.take("create") == []

        world.api.existing_identity = {"metadata": {"name": "c"}}
        await world.ensure(body("c"))
        assert world.api.take("create") == []
        await world.sync("c")
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Failed"
        assert fields["conditions"][0]["reason"] == "JobNameConflict"
        assert "ServiceAccount c exists" in fields["conditions"][0]["message"]

    asyncio.run(scenario())


def test_missing_priority_class_fails_fast_and_known_ones_order_the_queue() -> None:
    async def scenario() -> None:
        world = World()
        await world.ensure(body("a", priorityClassName="nope"))
        assert world.api.take("create") == []
        await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["conditions"][0]["reason"] == "PriorityClassNotFound"

        await world.ensure(body("b", priorityClassName="high"))
        ((_, _, manifest),) = world.api.take("create")
        assert manifest["metadata"]["annotations"]["videojobs.io/priority"] == "1000"

    asyncio.run(scenario())


def test_queue_admits_up_to_max_running_then_releases_by_priority_then_age() -> None:
    async def scenario() -> None:
        world = World(max_running=2)
        world.add_videojob(body("running"))
        world.add_job(job_body("running"))
        await world.ensure(body("b"))
        await world.ensure(body("c", created="2026-01-01T00:00:02Z"))
        suspended = {call[1]: call[2]["spec"]["suspend"] for call in world.api.take("create")}
        assert suspended == {"b": False, "c": True}  # b took the second slot, c waits

        world.add_job(job_body("b"))
        world.add_job(job_body("c", suspend=True, created="2026-01-01T00:00:02Z"))
        for name, priority, created in (("d", 10, "2026-01-01T00:00:03Z"), ("e", 0, "2026-01-01T00:00:01Z")):
            world.add_videojob(body(name, created=created))
            world.add_job(job_body(name, suspend=True, priority=priority, created=created))
        await world.ensure(body("f", created="2026-01-01T00:00:09Z"))
        assert world.api.take("create")[0][2]["spec"]["suspend"] is True  # others wait: f queues
        world.add_job(job_body("f", suspend=True, created="2026-01-01T00:00:09Z"))

        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == []  # both slots taken

        world.add_job(job_body("running", done=True))
        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == [("release", "d")]  # highest priority first
        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == []  # d's slot is reserved until its Job shows it

        world.add_job(job_body("d", priority=10, created="2026-01-01T00:00:03Z"))
        world.add_job(job_body("b", done=True))
        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == [("release", "e")]  # then the oldest

        world.add_videojob(body("c", created="2026-01-01T00:00:02Z", cancel=True))  # cancelled while queued
        world.add_job(job_body("d", done=True))
        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == [("release", "f")]

    asyncio.run(scenario())


def test_unlimited_never_queues() -> None:
    async def scenario() -> None:
        world = World()
        for name in "abc":
            await world.ensure(body(name))
        assert [call[2]["spec"]["suspend"] for call in world.api.take("create")] == [False] * 3

    asyncio.run(scenario())


def test_cancel_deletes_the_job_for_good() -> None:
    async def scenario() -> None:
        world = World()
        world.add_job(job_body("a"))
        await world.ensure(body("a", cancel=True))
        assert world.api.take("delete-job") == [("delete-job", "a")]
        await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Cancelled"

        cancelled = body("a", status=fields, cancel=True, attempt=1)
        await world.ensure(cancelled)  # a raised attempt alone does not restart it: cancel must go too
        assert world.api.take("create") == []

    asyncio.run(scenario())


def attempt_job(name: str, attempt: int, *conditions: dict[str, str]) -> dict[str, Any]:
    """The Job of a VideoJob's attempt, as the operator names it, finished with `conditions`."""
    raw = job_body(name)
    if attempt:
        raw["metadata"] = {**raw["metadata"], "name": f"{name}-a{attempt}", "uid": f"job-{name}-a{attempt}"}
    raw["status"] = {**raw["status"], "conditions": list(conditions)}
    return raw


GAVE_UP = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}


def test_a_raised_attempt_runs_a_failed_videojob_again_in_a_job_of_its_own() -> None:
    async def scenario() -> None:
        world = World()
        world.add_job(attempt_job("a", 0, GAVE_UP))
        await world.ensure(body("a"))
        ((_, _, failed),) = world.api.take("status")
        assert failed["phase"] == "Failed" and failed["attempt"] == 0
        world.api.take("event")
        ended = {**failed, "heartbeatTime": "2026-01-01T00:00:09Z", "error": {"stage": "rendering"}}

        await world.ensure(body("a", status=ended, attempt=1))
        ((_, _, fields),) = world.api.take("status")
        assert (fields["phase"], fields["attempt"], fields["jobName"], fields["error"]) == (
            "Pending",
            1,
            None,
            None,
        )
        assert fields["message"].startswith("Retrying: attempt 1 after Failed")
        assert world.api.take("event") == [("event", "a", "Retrying", False)]
        ((_, name, manifest),) = world.api.take("create")  # in the same pass, the old Job is no answer
        assert name == "a-a1" and manifest["metadata"]["annotations"]["videojobs.io/name"] == "a"

        await world.sync("a")  # the index has neither the new status nor the new Job yet
        assert world.api.take("create") == [] and world.api.take("status") == []

        retrying = {key: value for key, value in fields.items() if value is not None}
        restarted = World()  # an operator restarted before the new Job was seen makes it (once)
        restarted.jobs[(NS, "a")] = [JobView.from_body(attempt_job("a", 0, GAVE_UP))]
        await restarted.ensure(body("a", status=retrying, attempt=1))
        assert [call[1] for call in restarted.api.take("create")] == ["a-a1"]
        restarted.jobs[(NS, "a")].append(JobView.from_body(attempt_job("a", 1)))
        await restarted.sync("a")
        assert restarted.api.take("create") == []
        ((_, _, fields),) = restarted.api.take("status")
        assert (fields["phase"], fields["jobName"], fields["attempt"]) == ("Pending", "a-a1", 1)

        done = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
        restarted.jobs[(NS, "a")][1] = JobView.from_body(attempt_job("a", 1, done))
        await restarted.ensure(body("a", status={**retrying, **fields}, attempt=1))
        ((_, _, fields),) = restarted.api.take("status")
        assert (fields["phase"], fields["jobName"], fields["attempt"]) == ("Succeeded", "a-a1", 1)

    asyncio.run(scenario())


def test_a_retry_waits_for_its_turn() -> None:
    async def scenario() -> None:
        world = World()
        cancelled = {"phase": "Cancelled", "jobName": "c", "attempt": 0, "observedGeneration": 1}
        await world.ensure(body("c", status=cancelled, cancel=True, attempt=1))  # still cancelled
        assert world.api.take("status") == [] and world.api.take("create") == []

        world.pods[(NS, "c")] = [
            PodView(name="c-x", created="t", phase="Running", job_uid="job-c", deleting=True)
        ]
        await world.ensure(body("c", status=cancelled, attempt=1))  # its pod still stops
        assert world.api.take("status") == [] and world.api.take("create") == []
        world.pods[(NS, "c")] = []
        await world.sync("c")
        assert world.api.take("status")[0][2]["phase"] == "Pending"
        assert [call[1] for call in world.api.take("create")] == ["c-a1"]

        succeeded = {"phase": "Succeeded", "jobName": "s", "attempt": 0}
        await world.ensure(body("s", status=succeeded, attempt=1))  # the video exists: nothing to run
        assert world.api.take("create") == []
        ((_, _, fields),) = world.api.take("status")  # only the spec change is acknowledged
        assert (fields["phase"], fields["observedGeneration"], fields["attempt"]) == ("Succeeded", 1, 0)

    asyncio.run(scenario())


def test_an_event_lost_in_a_crash_is_posted_by_the_next_operator_and_only_once() -> None:
    async def scenario() -> None:
        crashed = World()
        crashed.add_job(job_body("a", done=True))

        async def killed(*_: Any) -> None:
            raise ApiException(status=503, reason="the operator died before posting its Event")

        crashed.api.post_event = killed  # type: ignore[method-assign,assignment]
        await crashed.ensure(body("a"))
        ((_, _, fields),) = crashed.api.take("status")
        assert fields["phase"] == "Succeeded"

        shared: dict[str, PhaseEvent] = {}  # the API server's Events
        for attempt in range(2):  # a restarted operator finds the status written and no Event, then one
            restarted = World()
            restarted.api.events = shared
            restarted.add_job(job_body("a", done=True))
            await restarted.ensure(body("a", status=fields))
            assert restarted.api.take("status") == []  # nothing else to write
            assert restarted.api.take("event") == (
                [("event", "a", "Succeeded", False)] if not attempt else []
            )
            await restarted.sync("a")  # known to be posted now: not even tried again
        assert len(shared) == 1

    asyncio.run(scenario())


def test_why_a_videojob_waits_or_ended_goes_into_its_message_until_a_runner_reports() -> None:
    async def scenario() -> None:
        world = World(max_running=1)
        world.add_job(job_body("busy"))
        await world.ensure(body("queued"))
        assert len(world.api.take("create")) == 1
        world.add_job(job_body("queued", suspend=True))
        await world.sync("queued")
        ((_, _, fields),) = world.api.take("status")
        assert fields["message"] == "WaitingForSlot: waiting for a free slot (MAX_RUNNING)"

        await world.ensure(body("queued", status=fields, cancel=True))  # cancelled before it ran
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Cancelled"
        assert fields["message"] == "Cancelled: cancelled with spec.cancel: true; its Job was deleted"

        reported = {"heartbeatTime": "2026-01-01T00:00:09Z", "message": "rendering scene 2 of 3"}
        world.add_job(job_body("ran"))
        world.pods[(NS, "ran")] = [PodView(name="ran-x", created="t", phase="Running", job_uid="job-ran")]
        await world.ensure(body("ran", status=reported))
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Running" and "message" not in fields  # the runner's own

    asyncio.run(scenario())


def test_finished_videojobs_are_deleted_after_their_ttl() -> None:
    async def scenario() -> None:
        world = World()
        long_ago = "2020-01-01T00:00:00Z"
        done = {"phase": "Succeeded", "completionTime": long_ago}
        world.add_videojob(body("old", status=done, ttlSecondsAfterFinished=60))
        world.add_videojob(body("kept", status=done))  # no TTL: kept
        fresh = {"phase": "Failed", "completionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        world.add_videojob(body("fresh", status=fresh, ttlSecondsAfterFinished=600))
        world.add_videojob(body("running", status={"phase": "Running"}, ttlSecondsAfterFinished=0))
        next_due = await world.controller.expiry.expire(world.controller._videojobs.values())
        assert world.api.take("delete-videojob") == [("delete-videojob", "old")]
        assert 590 <= next_due <= 600
        await world.controller.expiry.expire(world.controller._videojobs.values())
        assert world.api.take("delete-videojob") == []  # asked once

    asyncio.run(scenario())


def test_stage_durations_come_from_status_transitions() -> None:
    world = World()

    def seen(stage: str | None, phase: str = "Running") -> None:
        world.controller.observe_stage(
            VideoJobView.from_body(body("s", status={"stage": stage, "phase": phase}))
        )

    def count(stage: str) -> float:
        return REGISTRY.get_sample_value("videojobs_stage_duration_seconds_count", {"stage": stage}) or 0.0

    before = count("planning"), count("rendering")
    seen("planning")
    seen("planning")
    seen("rendering")
    assert (count("planning"), count("rendering")) == (before[0] + 1, before[1])
    seen("rendering", phase=Phase.SUCCEEDED.value)
    assert count("rendering") == before[1] + 1
    seen("rendering", phase=Phase.SUCCEEDED.value)
    assert count("rendering") == before[1] + 1


def test_a_hung_reconcile_is_abandoned_and_retried_and_a_stall_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(controller_module, "RECONCILE_SECONDS", 0.2)
    monkeypatch.setattr(controller_module, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(controller_module, "STALL_SECONDS", 0.5)
    monkeypatch.setattr(controller_module, "UNREACHABLE_RETRY_SECONDS", 0.2)
    world = World(api_concurrency=1)
    hang = asyncio.Event()
    creates = world.api.create_job

    async def create_job(namespace: str, manifest: dict[str, Any]) -> None:
        await creates(namespace, manifest)
        if not hang.is_set():
            await asyncio.Event().wait()  # a call that never returns (a silent network, no deadline)

    world.api.create_job = create_job  # type: ignore[method-assign]

    async def scenario() -> None:
        world.add_videojob(body("stuck"))
        world.add_videojob(body("next"))
        world.controller.start()
        world.controller.kick((NS, "stuck"))
        world.controller.kick((NS, "next"))
        for _ in range(100):  # the one worker is freed from the hung call and goes on, retrying it
            if len([call for call in world.api.calls if call[0] == "create"]) >= 3:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the hung reconcile was not abandoned")
        await asyncio.sleep(0.6)
        assert world.controller.stalled() is not None  # work pending, nothing done for STALL_SECONDS
        hang.set()  # the network returns: the retries get their answers
        for _ in range(100):
            if world.controller.stalled() is None:
                break
            await asyncio.sleep(0.05)
        assert world.controller.stalled() is None
        await world.controller.stop()

    asyncio.run(scenario())


def test_nothing_is_stalled_without_work() -> None:
    world = World()
    world.controller._progressed -= 3600  # idle for an hour
    assert world.controller.stalled() is None


def test_work_queue_dedupes_and_never_hands_out_a_busy_key() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add(("n", "a"))
        queue.add(("n", "a"))
        queue.add(("n", "b"))
        assert len(queue) == 2
        first = await queue.get()
        queue.add(first)  # changed while being handled: handled again afterwards, not concurrently
        second = await queue.get()
        assert second != first and len(queue) == 1
        queue.done(first)
        assert await queue.get() == first

        later = WorkQueue()
        for name in "abc":
            later.add(("n", name))
        later.add(("n", "new"), first=True)  # waiting for its Job: ahead of the status updates
        later.add(("n", "a"), first=True)  # queued already: keeps its place
        assert [(await later.get())[1] for _ in range(4)] == ["new", "a", "b", "c"]

    asyncio.run(scenario())


def test_work_queue_reports_its_depth_wait_and_work_times() -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    async def scenario() -> None:
        queue = WorkQueue()
        adds, waits, works = (
            sample("videojobs_workqueue_adds_total"),
            sample("videojobs_workqueue_queue_duration_seconds_count"),
            sample("videojobs_workqueue_work_duration_seconds_count"),
        )
        queue.add(("n", "a"))
        queue.add(("n", "b"))
        assert sample("videojobs_workqueue_depth") == 2
        key = await queue.get()
        assert sample("videojobs_workqueue_depth") == 1
        assert sample("videojobs_workqueue_queue_duration_seconds_count") == waits + 1
        queue.done(key)
        assert sample("videojobs_workqueue_work_duration_seconds_count") == works + 1
        assert sample("videojobs_workqueue_adds_total") == adds + 2

    asyncio.run(scenario())


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    async def scenario() -> float:
        bucket = TokenBucket(rate=100, burst=5)
        started = time.monotonic()
        for _ in range(15):
            await bucket.acquire()
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert 0.09 <= elapsed < 1.0  # 5 at once, then 10 at 100/s


def test_pause_suspends_the_job_and_resume_releases_it() -> None:
    async def scenario() -> None:
        world = World()
        world.add_job(job_body("a"))
        await world.ensure(body("a", suspend=True))
        assert world.api.take("suspend") == [("suspend", "a", True)]
        assert world.api.take("delete-job") == []  # a pause keeps the Job (and the checkpoint)
        world.add_job(job_body("a", suspend=True))
        await world.sync("a")
        fields = world.api.take("status")[-1][2]
        assert fields["phase"] == "Suspended" and fields["conditions"][0]["reason"] == "Paused"

        world.add_videojob(body("a", status=fields))  # resumed: without a cap its Job goes at once
        await world.sync("a")
        await world.controller.admission.release(list(world.controller._all_jobs()))
        assert world.api.take("release") == [("release", "a")]

        await world.ensure(body("new", suspend=True))  # created paused: its Job is made suspended
        assert world.api.take("create")[0][2]["spec"]["suspend"] is True

    asyncio.run(scenario())


def test_pausing_a_job_that_kueue_manages_deactivates_its_workload_and_resuming_reactivates_it() -> None:
    async def scenario() -> None:
        world = World()
        job = job_body("a")
        job["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "tenant-a"}
        world.add_job(job)
        workload: dict[str, Any] = {
            "metadata": {"name": "job-a-1", "ownerReferences": [{"kind": "Job", "uid": "job-a"}]},
            "spec": {"queueName": "tenant-a"},
        }
        world.workloads[(NS, "job-a")] = [WorkloadView.from_body(workload)]
        await world.ensure(body("a", queueName="tenant-a", suspend=True))
        assert world.api.take("workload-active") == [("workload-active", "job-a-1", False)]
        assert world.api.take("suspend") == []  # Kueue suspends the Job it manages: no fight over it

        workload["spec"]["active"] = False
        world.workloads[(NS, "job-a")] = [WorkloadView.from_body(workload)]
        await world.sync("a")
        assert world.api.take("workload-active") == []  # done once

        await world.ensure(body("a", queueName="tenant-a"))  # resumed: Kueue may admit it again
        assert world.api.take("workload-active") == [("workload-active", "job-a-1", True)]
        assert world.api.take("suspend") == [] and world.api.take("release") == []

    asyncio.run(scenario())


def test_a_videojob_created_paused_with_a_queue_gets_its_job_only_once_resumed() -> None:
    """Kueue would admit a new Job's Workload before the operator could deactivate it: no Job while paused."""

    async def scenario() -> None:
        world = World()
        await world.ensure(body("held", queueName="tenant-a", suspend=True))
        assert world.api.take("create") == []
        fields = world.api.take("status")[-1][2]
        assert fields["phase"] == "Suspended" and fields["conditions"][0]["reason"] == "Paused"
        assert "jobName" not in fields

        await world.ensure(body("held", status=fields, queueName="tenant-a"))  # resumed: Kueue admits it
        (create,) = world.api.take("create")
        assert create[2]["spec"]["suspend"] is True
        assert create[2]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tenant-a"

    asyncio.run(scenario())


def test_a_paused_job_does_not_hold_up_the_queue() -> None:
    async def scenario() -> None:
        world = World(max_running=1)
        world.add_videojob(body("paused", suspend=True))
        world.add_job(job_body("paused", suspend=True))
        await world.ensure(body("next"))
        assert world.api.take("create")[0][2]["spec"]["suspend"] is False

    asyncio.run(scenario())


def test_a_deleted_videojob_goes_once_its_artifacts_are_deleted() -> None:
    async def scenario() -> None:
        world = World()
        await world.ensure(body("a"))
        assert world.api.finalizers["a"] == ["videojobs.io/artifacts"]
        raw = body("a")
        raw["metadata"] |= {
            "finalizers": ["videojobs.io/artifacts"],
            "deletionTimestamp": "2026-01-01T00:01:00Z",
        }
        folder = world.storage.root / storage_job_id(NS, "a", "uid-a")
        folder.mkdir(parents=True)
        (folder / "video.mp4").write_bytes(b"v")
        world.add_job(job_body("a"))
        world.pods[(NS, "a")] = [PodView(name="a-x", created="t", phase="Running", job_uid="job-a")]
        await world.ensure(raw)
        assert world.api.take("delete-job") == [("delete-job", "a")]
        assert folder.exists() and world.api.finalizers["a"] == ["videojobs.io/artifacts"]  # pod stops

        world.pods[(NS, "a")] = []
        world.storage.down = True
        with pytest.raises(StorageOutage):
            await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["conditions"][-1]["type"] == "ArtifactsDeleted"
        assert world.api.take("event") == [("event", "a", "ArtifactDeletionFailed", True)]
        assert sample("videojobs_artifact_deletion_failures_total") >= 1

        world.storage.down = False
        await world.sync("a")
        assert not folder.exists() and world.api.finalizers["a"] == []

    asyncio.run(scenario())


def test_storage_down_past_the_timeout_leaves_the_artifacts_and_lets_the_videojob_go() -> None:
    async def scenario() -> None:
        world = World(artifact_deletion_timeout_seconds=60)
        world.storage.down = True
        failing = {
            "conditions": [
                {
                    "type": "ArtifactsDeleted",
                    "status": "False",
                    "reason": "StorageError",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
        raw = body("a", status=failing)
        raw["metadata"] |= {
            "finalizers": ["videojobs.io/artifacts"],
            "deletionTimestamp": "2026-01-01T00:01:00Z",
        }
        await world.ensure(raw)
        assert world.api.take("event") == [("event", "a", "ArtifactsLeft", True)]
        assert world.api.finalizers["a"] == []

    asyncio.run(scenario())


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_workload_event_kicks_the_videojob_of_its_job_found_once() -> None:
    """Kueue's Workload events name a Job by uid: its VideoJob is found by a scan once, then remembered."""

    async def scenario() -> None:
        world = World()
        for name in ("a", "b"):
            world.add_videojob(body(name, queueName="tenant-a"))
            world.add_job(job_body(name))
        controller = world.controller
        controller.kick_job(NS, "job-b")
        assert list(controller._work._queued) == [(NS, "b")]
        assert controller._job_keys == {(NS, "job-b"): (NS, "b")}
        await controller._work.get()
        controller._work.done((NS, "b"))

        del world.jobs[(NS, "b")]  # gone from the index: the remembered key still names its VideoJob
        controller.kick_job(NS, "job-b")
        assert list(controller._work._queued) == [(NS, "b")]

        controller.kick_job(NS, "job-unknown")  # a Job of no VideoJob (not ours): nothing to do
        controller.kick_job("other", "job-a")  # the uid in another namespace: not this one
        assert list(controller._work._queued) == [(NS, "b")] and len(controller._job_keys) == 1

        controller.forget((NS, "b"), "uid-b")
        assert controller._job_keys == {}

    asyncio.run(scenario())
