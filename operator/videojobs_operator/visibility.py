"""Places of queued VideoJobs in Kueue's queues, from Kueue's visibility API.

Kueue says where a pending Workload stands only on demand, through its visibility API
(visibility.kueue.x-k8s.io, an aggregated API served by Kueue's manager with the VisibilityOnDemand feature
gate): `GET .../namespaces/{ns}/localqueues/{lq}/pendingworkloads` lists a LocalQueue's pending
Workloads with positionInLocalQueue and positionInClusterQueue (from 0). The Workloads themselves carry
no position.

One request per LocalQueue that has a waiting VideoJob, never per VideoJob: when a Workload of that
LocalQueue changed (`touch`), at most every MIN_SECONDS, and every PERIOD_SECONDS without a change (the
places also move when Workloads the operator does not watch are admitted). Each refresh that moves
VideoJobs kicks them, and each reconcile of one writes its status: a LocalQueue of many waiting
VideoJobs is refreshed less often (WRITES_PER_SECOND). Where the API is not served (404), unavailable
(503) or forbidden (403), there are no places (a debug log) and that LocalQueue is asked again only
after UNAVAILABLE_SECONDS: clusters without it work as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from videojobs_operator.kube import UNREACHABLE, api_message
from videojobs_operator.status import QueuePosition

MIN_SECONDS = 2.0
"""The shortest time between two requests for one LocalQueue."""
PERIOD_SECONDS = 10.0
"""How often a LocalQueue with waiting VideoJobs is asked when none of its Workloads changed."""
WRITES_PER_SECOND = 20.0
"""A refresh may move every waiting VideoJob (one status write each): a LocalQueue with n of them is
asked at most every n / WRITES_PER_SECOND seconds."""
UNAVAILABLE_SECONDS = 60.0
"""How long a LocalQueue is not asked again after the API said it is absent, unavailable or forbidden."""
FAILED_SECONDS = 10.0
"""... or after another error (places kept meanwhile)."""
ABSENT = frozenset({403, 404, 503})
"""Answers meaning there is no visibility API to ask (not served, its server down, no RBAC), or the
LocalQueue is unknown to Kueue: no places."""

QueueKey = tuple[str, str]
"""(namespace, LocalQueue name)."""

logger = logging.getLogger(__name__)


@dataclass
class _Queue:
    places: dict[str, tuple[str, QueuePosition]] = field(default_factory=dict)
    """Pending Workload name -> (its Job's uid, its place)."""
    asked: float = float("-inf")
    """When it was last asked."""
    gap: float = MIN_SECONDS
    """The least time from then to the next request."""
    stale: bool = True
    """A Workload of it changed since it was last asked."""

    @property
    def due(self) -> float:
        """When to ask next: `gap` after the last time once stale, else PERIOD_SECONDS (or `gap`) after."""
        return self.asked + (self.gap if self.stale else max(self.gap, PERIOD_SECONDS))


def _parse(items: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, QueuePosition]]:
    """pendingworkloads items -> {Workload name: (its Job's uid, place counted from 1)}."""
    places = {}
    for item in items:
        meta = item.get("metadata") or {}
        owners = [ref for ref in meta.get("ownerReferences") or () if ref.get("kind") == "Job"]
        name = meta.get("name")
        if not name or not owners:
            continue
        position = QueuePosition(
            local_queue=int(item.get("positionInLocalQueue", 0)) + 1,
            cluster_queue=int(item.get("positionInClusterQueue", 0)) + 1,
        )
        places[str(name)] = (str(owners[0].get("uid", "")), position)
    return places


class QueuePositions:
    """Places of pending Workloads, by LocalQueue, as Kueue's visibility API last reported them.

    `fetch(namespace, local_queue)` returns the pendingworkloads items (KubeApi.pending_workloads);
    `moved(namespace, job_uid)` is called for each Job whose Workload's place changed (appeared, moved
    or went).
    """

    def __init__(
        self,
        fetch: Callable[[str, str], Awaitable[list[dict[str, Any]]]],
        moved: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._moved = moved
        self._clock = clock
        self._queues: dict[QueueKey, _Queue] = {}
        self._wake = asyncio.Event()
        self._forbidden_logged = False

    def position(self, namespace: str, local_queue: str, workload: str) -> QueuePosition | None:
        """The Workload's place as last reported (None: not reported)."""
        queue = self._queues.get((namespace, local_queue))
        found = queue.places.get(workload) if queue is not None else None
        return found[1] if found is not None else None

    def touch(self, namespace: str, local_queue: str) -> None:
        """A Workload of that LocalQueue changed (made, admitted, finished): places may have moved, or the
        LocalQueue may have a waiting VideoJob now."""
        queue = self._queues.get((namespace, local_queue))
        if queue is not None:
            queue.stale = True
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or until `touch` wakes it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))
        self._wake.clear()

    async def refresh(self, waiting: Iterable[QueueKey]) -> float:
        """Ask for the places in each LocalQueue of `waiting` (those with a waiting VideoJob) that is due,
        forget the others'; the seconds until one is due next."""
        wanted = set(waiting)
        for key in [key for key in self._queues if key not in wanted]:
            self._set(key, self._queues.pop(key), {})
        for key in sorted(wanted):
            queue = self._queues.setdefault(key, _Queue())
            if self._clock() >= queue.due:
                await self._refresh(key, queue)
        if not self._queues:
            return PERIOD_SECONDS
        return max(0.0, min(queue.due for queue in self._queues.values()) - self._clock())

    async def _refresh(self, key: QueueKey, queue: _Queue) -> None:
        queue.stale = False
        queue.asked = self._clock()
        try:
            items = await self._fetch(*key)
        except ApiException as error:
            if error.status not in ABSENT:
                logger.debug("queue positions of LocalQueue %s/%s failed: %s", *key, api_message(error))
                queue.gap = FAILED_SECONDS  # the places it had are kept meanwhile
                return
            if error.status == 403 and not self._forbidden_logged:
                self._forbidden_logged = True
                logger.warning(
                    "no queue positions: the operator may not get Kueue's localqueues/pendingworkloads "
                    "(visibility.kueue.x-k8s.io; see its RBAC): %s",
                    api_message(error),
                )
            logger.debug(
                "no queue positions for LocalQueue %s/%s (Kueue's visibility API: %s %s); asking again "
                "in %.0f s",
                *key,
                error.status,
                api_message(error),
                UNAVAILABLE_SECONDS,
            )
            self._set(key, queue, {})
            queue.gap = UNAVAILABLE_SECONDS
            return
        except UNREACHABLE as error:
            logger.debug("queue positions of LocalQueue %s/%s failed: %s", *key, error)
            queue.gap = FAILED_SECONDS
            return
        places = _parse(items)
        self._set(key, queue, places)
        queue.gap = max(MIN_SECONDS, len(places) / WRITES_PER_SECOND)

    def _set(self, key: QueueKey, queue: _Queue, places: dict[str, tuple[str, QueuePosition]]) -> None:
        """Take the new places; kick the Jobs whose place changed."""
        old, queue.places = queue.places, places
        for name in old.keys() | places.keys():
            before, after = old.get(name), places.get(name)
            if before != after:
                uid = (after or before or ("", None))[0]
                if uid:
                    self._moved(key[0], uid)
