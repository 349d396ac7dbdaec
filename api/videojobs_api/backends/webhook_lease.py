"""Kubernetes backend: one API replica sends the webhooks, and each VideoJob records its final one.

Every replica watches every VideoJob, so each would send each webhook. The replicas elect a sender
with a Lease (videojobs.leader); the others follow the jobs' stages and send nothing. Once a job's
final event (succeeded, failed, cancelled) has been sent, the sender records it in the VideoJob's
annotation `videojobs.io/webhook-sent`: a restarted replica or a new sender, which sees every job
anew in its first list, sends only the final events that are not recorded there. So a final event
goes out at least once (twice only when a sender stops between the call and the record, with the
same `webhook-id`); a stage event is sent by the replica leading at that moment, or by none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client

from videojobs import deadlines
from videojobs.keys import WEBHOOK_SENT_ANNOTATION
from videojobs.leader import LeaderElector, candidate_identity
from videojobs_api.backends.apiserver import UNREACHABLE, ApiServerError, VideoJobApi
from videojobs_api.models import StoredJob
from videojobs_api.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)


class WebhookLease:
    """Makes `webhooks` send only while this replica holds the Lease, and records final events."""

    def __init__(
        self,
        webhooks: WebhookDispatcher,
        api: VideoJobApi,
        namespace: str,
        lease: str,
        jobs: Callable[[], Iterable[StoredJob]],
        changed: Callable[[dict[str, Any]], None],
    ) -> None:
        self.webhooks = webhooks
        self.api = api
        self._jobs = jobs
        self._changed = changed
        coordination = client.CoordinationV1Api(deadlines.api_client(api.configuration))
        self.elector = LeaderElector(coordination, namespace, lease, candidate_identity())
        self._task: asyncio.Task[None] | None = None
        webhooks.sending = False  # not even for the first list's jobs: they may have been sent before
        webhooks.record = self._record

    async def start(self) -> None:
        """Take the Lease if it is free (then a lone replica sends from the start), then keep at it."""
        leading = await self.elector.try_acquire()
        if leading:
            self._lead()
        self._task = asyncio.create_task(self._elect(leading), name="videojobs-webhook-lease")

    async def stop(self) -> None:
        """Stop sending and give the Lease up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.webhooks.sending = False
        await self.elector.release()

    async def _elect(self, leading: bool) -> None:
        while True:
            if not leading:
                await self.elector.acquire()
                self._lead()
            await self.elector.hold()
            self.webhooks.sending = leading = False

    def _lead(self) -> None:
        """Send from now on, beginning with the final events that no sender has recorded yet."""
        self.webhooks.sending = True
        for job in list(self._jobs()):
            self.webhooks.notify(job)

    async def _record(self, job: StoredJob, event: str) -> None:
        patch = {"metadata": {"annotations": {WEBHOOK_SENT_ANNOTATION: event}}}
        try:
            self._changed(await self.api.patch(job.id, patch))
        except ApiServerError as error:
            if error.status != 404:  # a deleted job needs no record
                log.warning("could not record the %s webhook of %s: %s", event, job.id, error)
        except UNREACHABLE as error:
            log.warning("could not record the %s webhook of %s: %s", event, job.id, error)
