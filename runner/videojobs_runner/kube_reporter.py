"""Publishes the runner's status fields to its VideoJob's status subresource: throttled, with a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from videojobs import deadlines
from videojobs.contract import JobStatus, Stage, utcnow
from videojobs.crd import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


class KubernetesStatusReporter:
    """Merge-patches only the runner-owned status fields; at most one patch per `min_interval` seconds.

    Statuses of one stage coalesce (the latest wins), but every stage is sent, in order: a stage that
    lasts less than `min_interval` still reaches the VideoJob, and so every client watching it. When the
    job ends, whatever is pending goes out at once. Use as an async context manager: it sends a
    heartbeat every `heartbeat_seconds` while open and flushes what is pending on exit. Every patch has
    the connect and read deadlines of videojobs.deadlines; a failed heartbeat is tried again at the next.
    """

    def __init__(
        self,
        api: client.CustomObjectsApi,
        namespace: str,
        name: str,
        *,
        min_interval: float = 0.5,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.min_interval = min_interval
        self.heartbeat_seconds = heartbeat_seconds
        self.patches = 0
        self._pending: list[JobStatus] = []
        """Statuses not sent yet: the latest of each stage, in stage order."""
        self._last_sent = 0.0
        self._drain_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> KubernetesStatusReporter:
        self._heartbeat_task = asyncio.create_task(self._heartbeat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._heartbeat_task, self._drain_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.flush()

    async def publish(self, status: JobStatus) -> None:
        """Send now if the last patch is old enough or the job has ended; otherwise send it later."""
        if self._pending and self._pending[-1].stage is status.stage:
            self._pending[-1] = status
        else:
            self._pending.append(status)
        if status.stage is Stage.COMPLETED or status.error is not None:
            await self.flush()
        elif self._draining:
            return  # the drain sends it when its turn comes
        elif time.monotonic() >= self._last_sent + self.min_interval:
            await self._send(1)
        if self._pending and not self._draining:
            self._drain_task = asyncio.create_task(self._drain())

    @property
    def _draining(self) -> bool:
        return self._drain_task is not None and not self._drain_task.done()

    async def flush(self) -> None:
        """Patch every pending status, in order."""
        await self._send(len(self._pending))

    async def _drain(self) -> None:
        """Send the pending statuses one at a time, `min_interval` apart."""
        while self._pending:
            await asyncio.sleep(max(0.0, self._last_sent + self.min_interval - time.monotonic()))
            await self._send(1)

    async def _send(self, count: int) -> None:
        async with self._lock:
            for _ in range(count):
                if not self._pending:
                    return
                status = self._pending.pop(0)
                await asyncio.to_thread(self._patch, status.owned_by_runner())
                self._last_sent = time.monotonic()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if not self._pending:
                    await asyncio.to_thread(self._patch, {"heartbeatTime": utcnow().isoformat()})
                else:
                    await self.flush()
            except (ApiException, HTTPError, OSError) as error:
                log.warning("status heartbeat of %s/%s failed: %s", self.namespace, self.name, error)

    def _patch(self, fields: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            {"status": fields},
            _request_timeout=deadlines.REQUEST_TIMEOUT,
        )
        self.patches += 1
