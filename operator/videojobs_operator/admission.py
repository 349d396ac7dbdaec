"""The MAX_RUNNING queue: new Jobs start while slots are free; waiting ones go by priority, then age."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from videojobs_operator.kube import GONE, KubeApi, api_message
from videojobs_operator.metrics import RECONCILE_ERRORS
from videojobs_operator.status import JobView, Key

RESERVATION_SECONDS = 30.0
"""How long a slot handed to a Job (or a Job just created) counts before the Job's watch event confirms it."""
RETRY_SECONDS = 2.0

logger = logging.getLogger(__name__)


class Admission:
    """Hands out running slots (0: no cap); `releasable` says if a waiting Job's VideoJob still wants it."""

    def __init__(
        self,
        limit: int,
        api: KubeApi,
        releasable: Callable[[Key, JobView], bool],
        wake: Callable[[], None],
    ) -> None:
        self.limit = limit
        self.api = api
        self.releasable = releasable
        self.wake = wake
        """Asks for another release round (after a failed release)."""
        self.reserved: dict[Key, float] = {}
        """Slots handed out, not yet seen in the index."""

    def admit(self, key: Key, jobs: list[tuple[Key, JobView]]) -> bool:
        """Whether a new Job may start at once: a slot is free and nothing waits for one (takes it).

        A paused VideoJob's suspended Job does not wait for a slot (it is not releasable).
        """
        if self.limit == 0:
            return True
        self._prune_reservations(jobs)
        waiting = any(job.waiting and self.releasable(key, job) for key, job in jobs)
        if waiting or len(self._running(jobs)) >= self.limit:
            return False
        self.reserved[key] = time.monotonic()
        return True

    async def release(self, jobs: list[tuple[Key, JobView]]) -> None:
        """Unsuspend waiting Jobs while slots are free: higher priority first, then older first.

        Without a cap only resumed Jobs (paused before) wait: all of them go.
        """
        self._prune_reservations(jobs)
        waiting = [
            (key, job)
            for key, job in jobs
            if job.waiting and key not in self.reserved and self.releasable(key, job)
        ]
        free = len(waiting) if self.limit == 0 else self.limit - len(self._running(jobs))
        if free <= 0:
            return
        waiting.sort(key=lambda pair: pair[1].queue_order())
        for key, job in waiting[:free]:
            self.reserved[key] = time.monotonic()
            try:
                await self.api.release_job(key[0], job.name, job.uid)
            except ApiException as error:
                self.reserved.pop(key, None)
                if error.status not in GONE:
                    RECONCILE_ERRORS.labels("release").inc()
                    logger.warning("releasing Job %s/%s failed: %s", key[0], job.name, api_message(error))
                    asyncio.get_running_loop().call_later(RETRY_SECONDS, self.wake)
            else:
                logger.info("released Job %s/%s from the queue", key[0], job.name)

    def _running(self, jobs: list[tuple[Key, JobView]]) -> set[Key]:
        return {key for key, job in jobs if job.running and job.kueue_queue is None} | set(self.reserved)

    def _prune_reservations(self, jobs: list[tuple[Key, JobView]]) -> None:
        settled = {key for key, job in jobs if not job.waiting}
        expired = time.monotonic() - RESERVATION_SECONDS
        for key, since in list(self.reserved.items()):
            if key in settled or since < expired:
                del self.reserved[key]
