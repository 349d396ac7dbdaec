"""Queue positions from Kueue's visibility API without a cluster: counted from 1, one request per
LocalQueue and not too often, VideoJobs kicked when they move, and quietly none where the API is absent.
The real Kueue: tests/test_kueue_k8s.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from test_operator_controller import NS, World, body, job_body

from videojobs.contract import JobStatus
from videojobs_operator import visibility
from videojobs_operator.status import OperatorStatus, QueuePosition, QueueStatus, WorkloadView
from videojobs_operator.visibility import QueuePositions


def pending(*jobs: str, offset: int = 0) -> list[dict[str, Any]]:
    """pendingworkloads items as Kueue lists them: the Workloads of those Jobs, in order, from 0."""
    return [
        {
            "metadata": {
                "name": f"job-{job}-wl",
                "namespace": NS,
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": f"job-{job}"}
                ],
            },
            "localQueueName": "tenant-a",
            "positionInLocalQueue": index,
            "positionInClusterQueue": index + offset,
            "priority": 0,
        }
        for index, job in enumerate(jobs)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Visibility:
    """A fake visibility API, and what QueuePositions reports back."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] | ApiException = []
        self.asked: list[tuple[str, str]] = []
        self.moved: list[str] = []
        self.clock = Clock()
        self.positions = QueuePositions(self.fetch, lambda _, uid: self.moved.append(uid), self.clock)

    async def fetch(self, namespace: str, local_queue: str) -> list[dict[str, Any]]:
        self.asked.append((namespace, local_queue))
        if isinstance(self.items, ApiException):
            raise self.items
        return self.items

    def refresh(self, *queues: str) -> float:
        return asyncio.run(self.positions.refresh({(NS, queue) for queue in queues}))

    def take_moved(self) -> list[str]:
        moved, self.moved = sorted(self.moved), []
        return moved


def test_positions_count_from_one_and_the_videojobs_that_moved_are_kicked() -> None:
    api = Visibility()
    api.items = pending("a", "b", offset=3)
    api.refresh("tenant-a")
    assert api.asked == [(NS, "tenant-a")]
    assert api.positions.position(NS, "tenant-a", "job-a-wl") == QueuePosition(1, 4)
    assert api.positions.position(NS, "tenant-a", "job-b-wl") == QueuePosition(2, 5)
    assert api.positions.position(NS, "tenant-b", "job-a-wl") is None
    assert api.take_moved() == ["job-a", "job-b"]

    # The running one finished, `a` was admitted: `b` moves up, `a` has no place any more.
    api.items = pending("b", "c", offset=3)
    api.positions.touch(NS, "tenant-a")
    wait = api.refresh("tenant-a")
    assert len(api.asked) == 1 and wait == pytest.approx(visibility.MIN_SECONDS)  # not yet: asked just now
    api.clock.now += visibility.MIN_SECONDS
    api.refresh("tenant-a")
    assert len(api.asked) == 2
    assert api.positions.position(NS, "tenant-a", "job-a-wl") is None
    assert api.positions.position(NS, "tenant-a", "job-b-wl") == QueuePosition(1, 4)
    assert api.take_moved() == ["job-a", "job-b", "job-c"]

    api.clock.now += visibility.MIN_SECONDS  # no Workload changed: asked again only after PERIOD_SECONDS
    api.refresh("tenant-a")
    assert len(api.asked) == 2
    api.clock.now += visibility.PERIOD_SECONDS
    api.refresh("tenant-a")
    assert len(api.asked) == 3 and api.take_moved() == []  # the same places: no VideoJob is kicked

    api.refresh()  # nothing waits in it any more: forgotten, its VideoJobs kicked (their places go)
    assert api.positions.position(NS, "tenant-a", "job-b-wl") is None
    assert api.take_moved() == ["job-b", "job-c"]


def test_a_long_queue_is_asked_less_often_as_each_refresh_may_write_every_status() -> None:
    api = Visibility()
    api.items = pending(*(f"j{i}" for i in range(200)))
    wait = api.refresh("tenant-a")
    assert wait == pytest.approx(max(visibility.PERIOD_SECONDS, 200 / visibility.WRITES_PER_SECOND))
    api.positions.touch(NS, "tenant-a")
    api.clock.now += visibility.MIN_SECONDS
    api.refresh("tenant-a")
    assert len(api.asked) == 1


@pytest.mark.parametrize("status", [404, 503])
def test_without_the_visibility_api_there_are_no_positions_and_it_is_asked_rarely(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    api = Visibility()
    api.items = pending("a")
    api.refresh("tenant-a")
    assert api.positions.position(NS, "tenant-a", "job-a-wl") == QueuePosition(1, 1)
    api.take_moved()

    api.items = ApiException(status=status, reason="gone")  # Kueue stopped serving it, say
    api.positions.touch(NS, "tenant-a")
    api.clock.now += visibility.MIN_SECONDS
    with caplog.at_level(logging.DEBUG, logger=visibility.__name__):
        wait = api.refresh("tenant-a")
    assert api.positions.position(NS, "tenant-a", "job-a-wl") is None
    assert api.take_moved() == ["job-a"]  # its place goes from the status
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]  # quietly
    assert wait == pytest.approx(visibility.UNAVAILABLE_SECONDS)

    for _ in range(5):  # Workload events do not make it ask again before UNAVAILABLE_SECONDS
        api.positions.touch(NS, "tenant-a")
        api.clock.now += visibility.MIN_SECONDS
        api.refresh("tenant-a")
    assert len(api.asked) == 2
    api.clock.now += visibility.UNAVAILABLE_SECONDS
    api.refresh("tenant-a")
    assert len(api.asked) == 3


def test_a_forbidden_visibility_api_is_logged_once_and_other_errors_keep_the_places(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = Visibility()
    api.items = ApiException(status=403, reason="Forbidden")
    with caplog.at_level(logging.WARNING, logger=visibility.__name__):
        api.refresh("tenant-a", "tenant-b")
    assert len(api.asked) == 2
    assert len(caplog.records) == 1 and "RBAC" in caplog.records[0].getMessage()

    other = Visibility()
    other.items = pending("a")
    other.refresh("tenant-a")
    other.items = ApiException(status=500, reason="Internal Server Error")
    other.clock.now += visibility.PERIOD_SECONDS
    wait = other.refresh("tenant-a")
    assert other.positions.position(NS, "tenant-a", "job-a-wl") == QueuePosition(1, 1)
    assert wait == pytest.approx(max(visibility.FAILED_SECONDS, visibility.PERIOD_SECONDS))


def test_queue_status_on_the_wire_is_the_contracts() -> None:
    queue = QueueStatus("tenant-a", QueuePosition(2, 5))
    wire = OperatorStatus(queue=queue).to_wire()
    assert wire["queue"] == {"name": "tenant-a", "position": 2, "positionInClusterQueue": 5}
    assert OperatorStatus.from_wire(wire).queue == queue
    contract = JobStatus.model_validate(wire).queue
    assert contract is not None and (contract.position, contract.position_in_cluster_queue) == (2, 5)
    assert OperatorStatus.from_wire({"queue": {"name": "tenant-a"}}).queue == QueueStatus("tenant-a")


# --- the controller --------------------------------------------------------------------------------


def kueue_world() -> tuple[World, dict[str, Any]]:
    """A VideoJob whose Job Kueue holds: its Workload pending in LocalQueue tenant-a."""
    world = World()
    job = job_body("a", suspend=True)
    job["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "tenant-a"}
    world.add_job(job)
    workload: dict[str, Any] = {
        "metadata": {"name": "job-a-wl", "ownerReferences": [{"kind": "Job", "uid": "job-a"}]},
        "spec": {"queueName": "tenant-a"},
        "status": {
            "conditions": [
                {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": "no quota"}
            ]
        },
    }
    world.workloads[(NS, "job-a")] = [WorkloadView.from_body(workload)]
    return world, workload


def test_a_queued_videojob_shows_its_position_and_none_without_the_visibility_api() -> None:
    async def scenario() -> None:
        world, workload = kueue_world()
        controller = world.controller
        await world.ensure(body("a", queueName="tenant-a"))
        ((_, _, fields),) = world.api.take("status")
        assert fields["phase"] == "Queued" and fields["queue"] == {"name": "tenant-a"}

        # No visibility API (FakeApi answers 404): asked once, nothing kicked, the status as before.
        assert controller._waiting_queues() == {(NS, "tenant-a")}
        await controller.positions.refresh(controller._waiting_queues())
        assert world.api.take("pending-workloads") == [("pending-workloads", NS, "tenant-a")]
        assert len(controller._work) == 0
        world.add_videojob(body("a", status=fields, queueName="tenant-a"))
        await world.sync("a")
        assert world.api.take("status") == []

        # With it: the place shows in status.queue and in the Queued condition's message.
        world.api.pending = {(NS, "tenant-a"): pending("other", "a", offset=1)}
        fresh = QueuePositions(world.api.pending_workloads, controller.kick_job)
        controller.positions = fresh
        await fresh.refresh(controller._waiting_queues())
        assert list(controller._work._queued) == [(NS, "a")]  # "other" is no VideoJob of ours
        await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["queue"] == {"name": "tenant-a", "position": 2, "positionInClusterQueue": 3}
        queued = fields["conditions"][0]
        assert queued["message"] == (
            "waiting for Kueue (LocalQueue tenant-a, Workload job-a-wl, position 2 in the LocalQueue, "
            "3 in the ClusterQueue): no quota"
        )
        assert fields["message"].startswith("QueuedByKueue: waiting for Kueue (LocalQueue tenant-a, ")

        # Admitted: the place goes (null: the API server drops the field).
        world.add_videojob(body("a", status=fields, queueName="tenant-a"))
        workload["status"] = {
            "admission": {"clusterQueue": "gpus"},
            "conditions": [{"type": "Admitted", "status": "True", "reason": "Admitted"}],
        }
        world.workloads[(NS, "job-a")] = [WorkloadView.from_body(workload)]
        job = job_body("a")
        job["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "tenant-a"}
        world.add_job(job)
        assert controller._waiting_queues() == set()
        await world.sync("a")
        ((_, _, fields),) = world.api.take("status")
        assert fields["queue"] is None and fields["phase"] != "Queued"

    asyncio.run(scenario())


def test_a_workload_event_kicks_its_videojob_and_marks_its_local_queue_stale() -> None:
    world, workload = kueue_world()
    controller = world.controller
    world.add_videojob(body("a", queueName="tenant-a"))
    touched: list[tuple[str, str]] = []
    controller.positions.touch = lambda namespace, queue: touched.append((namespace, queue))  # type: ignore[method-assign]
    controller.workload_changed(NS, WorkloadView.from_body(workload))
    assert list(controller._work._queued) == [(NS, "a")]
    assert touched == [(NS, "tenant-a")]
