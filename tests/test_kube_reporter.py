"""The runner's status reporter's throttle, its API faked (tests/test_operator_k8s.py runs it for real)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

from videojobs.contract import JobStatus, Stage
from videojobs.deadlines import REQUEST_TIMEOUT
from videojobs_runner.kube_reporter import KubernetesStatusReporter

INTERVAL = 0.2


class RecordingApi:
    """Records each status patch with the time it was sent."""

    def __init__(self, expected: int) -> None:
        self.patches: list[tuple[float, dict[str, Any]]] = []
        self.expected = expected
        self.arrived = threading.Event()
        """Set once `expected` patches arrived."""

    def patch_namespaced_custom_object_status(self, *path_and_body: Any, **options: Any) -> None:
        assert options == {"_request_timeout": REQUEST_TIMEOUT}  # never without a deadline
        self.patches.append((time.monotonic(), path_and_body[-1]["status"]))
        if len(self.patches) >= self.expected:
            self.arrived.set()


def status(stage: Stage, progress: int) -> JobStatus:
    return JobStatus(stage=stage, progress=progress, message=f"{stage.value} {progress}")


def test_statuses_of_one_stage_coalesce_but_every_stage_is_sent_in_order() -> None:
    api = RecordingApi(expected=4)

    async def scenario() -> None:
        async with KubernetesStatusReporter(
            api,  # type: ignore[arg-type]
            "ns",
            "vj",
            min_interval=INTERVAL,
            heartbeat_seconds=60,
        ) as reporter:
            await reporter.publish(status(Stage.RENDERING, 50))  # sent at once: nothing sent before
            for progress in (60, 65, 70):  # within INTERVAL: only the latest of the stage goes out
                await reporter.publish(status(Stage.RENDERING, progress))
            await reporter.publish(status(Stage.COMBINING, 80))  # stages shorter than the interval
            await reporter.publish(status(Stage.STORAGE, 90))
            assert await asyncio.to_thread(api.arrived.wait, 30)  # sent one by one, INTERVAL apart
            await reporter.publish(status(Stage.STORAGE, 95))
            await reporter.publish(status(Stage.COMPLETED, 100))  # the end: everything at once

    asyncio.run(scenario())
    sent = [(fields["stage"], fields["progress"]) for _, fields in api.patches]
    assert sent == [
        ("rendering", 50),
        ("rendering", 70),
        ("combining", 80),
        ("storage", 90),
        ("storage", 95),
        ("completed", 100),
    ]
    times = [at for at, _ in api.patches]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:4])]
    assert all(gap >= INTERVAL * 0.95 for gap in gaps), gaps  # throttled until the job ended
