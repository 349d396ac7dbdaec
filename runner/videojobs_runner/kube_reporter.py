"""Publishes the runner's status fields to its VideoJob's status subresource: throttled, with a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from kubernetes import client

from videojobs.contract import JobStatus, Stage, utcnow
from videojobs.crd import GROUP, PLURAL, VERSION


class KubernetesStatusReporter:
    """Merge-patches only the runner-owned status fields; at most one patch per `min_interval` seconds.

    Use as an async context manager: it sends a heartbeat every `heartbeat_seconds` while open and
    flushes the last status on exit.
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
        self._latest: JobStatus | None = None
        self._last_sent = 0.0
        self._flush_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> KubernetesStatusReporter:
        self._heartbeat_task = asyncio.create_task(self._heartbeat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._heartbeat_task, self._flush_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.flush()

    async def publish(self, status: JobStatus) -> None:
        """Send now if the last patch is old enough or the job has ended; otherwise coalesce."""
        self._latest = status
        finished = status.stage is Stage.COMPLETED or status.error is not None
        wait = self._last_sent + self.min_interval - time.monotonic()
        if finished or wait <= 0:
            await self.flush()
        elif self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_after(wait))

    async def flush(self) -> None:
        """Patch the latest status, if any is pending."""
        async with self._lock:
            status, self._latest = self._latest, None
            if status is None:
                return
            await asyncio.to_thread(self._patch, status.owned_by_runner())
            self._last_sent = time.monotonic()

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            if self._latest is None:
                await asyncio.to_thread(self._patch, {"heartbeatTime": utcnow().isoformat()})
            else:
                await self.flush()

    def _patch(self, fields: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"status": fields}
        )
        self.patches += 1
