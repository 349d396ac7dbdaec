"""TTL deletion: finished VideoJobs are deleted once past their ttlSecondsAfterFinished."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from videojobs_operator.kube import KubeApi
from videojobs_operator.status import OperatorStatus, VideoJobView

logger = logging.getLogger(__name__)


class Expiry:
    """Deletes VideoJobs finished longer than their TTL ago (`current`: each one's status as last written)."""

    def __init__(self, api: KubeApi, current: Callable[[VideoJobView], OperatorStatus]) -> None:
        self.api = api
        self.current = current
        self.deleting: set[str] = set()
        """Uids being deleted for their TTL."""

    async def expire(self, stores: Iterable[Iterable[VideoJobView]]) -> float:
        """Delete the VideoJobs whose TTL has passed; seconds until the next is due."""
        now = datetime.now(UTC)
        due: list[VideoJobView] = []
        next_due = math.inf
        for store in stores:
            for videojob in store:
                status = self.current(videojob)
                ttl = videojob.ttl_seconds_after_finished
                if (
                    ttl is None
                    or status.phase is None
                    or not status.phase.is_terminal
                    or status.completion_time is None
                    or videojob.deleting
                    or videojob.uid in self.deleting
                ):
                    continue
                remaining = ttl - (now - datetime.fromisoformat(status.completion_time)).total_seconds()
                if remaining <= 0:
                    due.append(videojob)
                else:
                    next_due = min(next_due, remaining)
        for videojob in due:
            self.deleting.add(videojob.uid)
            try:
                await self.api.delete_videojob(videojob.namespace, videojob.name, videojob.uid)
            except ApiException:
                self.deleting.discard(videojob.uid)
                raise
            logger.info("deleted %s/%s: finished longer than its TTL ago", videojob.namespace, videojob.name)
        return next_due
