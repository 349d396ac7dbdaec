"""Job webhooks: Standard Webhooks signatures, SSRF-safe connections, retries with backoff, never blocking."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

import httpcore
import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field

from videojobs.contract import Stage, Webhook, WebhookEvent, utcnow
from videojobs_api.models import JobStatusResponse, StoredJob
from videojobs_api.problems import InvalidField
from videojobs_api.settings import ApiSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})
"""Besides 5xx, answers worth retrying; any other non-2xx answer is final."""


class WebhookRefused(Exception):
    """The target resolves only to addresses the deployment may not call (SSRF guard)."""


class Outcome(StrEnum):
    """How one delivery ended."""

    DELIVERED = "delivered"
    REFUSED = "refused"
    REJECTED = "rejected"
    FAILED = "failed"


class WebhookPayload(BaseModel):
    """The body of every webhook call (Standard Webhooks layout)."""

    type: str = Field(description="video.job.succeeded|failed|cancelled, or video.job.stage.")
    timestamp: datetime
    data: JobStatusResponse


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is globally routable unicast (not private, loopback, link-local, ...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class _GuardedNetwork(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses non-public addresses, and connects to the address it checked.

    Connecting to the checked address (TLS still verifies the host name) leaves no DNS-rebinding gap.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        public = [address for address in addresses if is_public(address)]
        if not public:
            raise WebhookRefused(f"{host} resolves to no public address ({', '.join(map(str, addresses))})")
        return await self._inner.connect_tcp(
            str(public[0]), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookRefused("webhooks never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _transport(allow_private: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    if not allow_private:
        # httpx takes no network backend, so its connection pool is replaced by one with the guarded one.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_GuardedNetwork()
        )
    return transport


Recorder = Callable[[StoredJob, str], Awaitable[None]]
"""Records that a job's final webhook event (its type) has been sent."""


class WebhookDispatcher:
    """Calls jobs' webhooks when they end (and at stage changes when asked), in background tasks."""

    def __init__(self, settings: ApiSettings, registry: CollectorRegistry) -> None:
        self.key = settings.webhook_key()
        self.allow_insecure = settings.allow_insecure_webhooks
        self.attempts = settings.webhook_attempts
        self.backoff_seconds = settings.webhook_backoff_seconds
        self._client = httpx.AsyncClient(
            transport=_transport(allow_private=settings.allow_insecure_webhooks),
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._stages: dict[str, Stage] = {}
        self.sending = True
        """False on a standby replica: it follows the jobs' stages but sends nothing."""
        self.record: Recorder | None = None
        """Called once a job's final event has been sent (or given up on), so that none sends it again."""
        self._deliveries = Counter(
            "videojobs_api_webhook_deliveries",
            "Webhook deliveries by final outcome.",
            ["outcome"],
            registry=registry,
        )

    def check_url(self, webhook: Webhook | None) -> None:
        """Refuse, as a 422 naming webhook.url, a URL this deployment will not call."""
        if webhook is None:
            return
        if self.key is None:
            raise InvalidField("webhook.url", "body", "webhooks are not enabled on this deployment")
        if not webhook.url.startswith("https://") and not self.allow_insecure:
            raise InvalidField("webhook.url", "body", "must be an https:// URL")

    def notify(self, job: StoredJob) -> None:
        """Event bus listener: start a delivery if this change is one the job's webhook wants."""
        webhook = job.request.webhook
        if webhook is None or self.key is None:
            return
        # Also on a standby: it must know the stage when it takes over.
        event = self._event_type(job, webhook.events)
        if event is None or not self.sending or event == job.webhook_sent:
            return
        payload = WebhookPayload(type=event, timestamp=utcnow(), data=JobStatusResponse.of(job))
        body = payload.model_dump_json().encode()
        task = asyncio.create_task(self._send_event(job, webhook.url, event, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_event(self, job: StoredJob, url: str, event: str, body: bytes) -> Outcome:
        final = job.status.phase.is_terminal
        # A job ends once: its final event's id is the same wherever and whenever it is sent.
        message_id = f"msg_{job.id}_{job.status.phase.value.lower() if final else job.event_id}"
        outcome = await self.deliver(url, message_id, body)
        if final and self.record is not None:
            await self.record(job, event)
        return outcome

    def _event_type(self, job: StoredJob, wanted: list[WebhookEvent]) -> str | None:
        status = job.status
        if status.phase.is_terminal:
            self._stages.pop(job.id, None)
            return f"video.job.{status.phase.value.lower()}" if WebhookEvent.COMPLETED in wanted else None
        previous = self._stages.get(job.id)
        self._stages[job.id] = status.stage
        changed = previous is not None and previous is not status.stage
        return "video.job.stage" if changed and WebhookEvent.STAGE in wanted else None

    async def deliver(self, url: str, message_id: str, body: bytes) -> Outcome:
        """Send until delivered, refused, rejected, or out of attempts (backing off between them)."""
        delay = self.backoff_seconds
        outcome = Outcome.FAILED
        for attempt in range(1, self.attempts + 1):
            outcome = await self.send(url, message_id, body)
            if outcome is not Outcome.FAILED or attempt == self.attempts:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay *= 2
        self._deliveries.labels(outcome.value).inc()
        return outcome

    async def send(self, url: str, message_id: str, body: bytes) -> Outcome:
        """One signed POST."""
        assert self.key is not None
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": "videojobs-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(self.key, message_id, timestamp, body),
        }
        host = urlsplit(url).hostname
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.InvalidURL as error:  # e.g. a port out of range
            log.warning("webhook %s to %s: invalid URL: %s", message_id, host, error)
            return Outcome.REJECTED
        except WebhookRefused as error:
            log.warning("webhook %s to %s refused: %s", message_id, host, error)
            return Outcome.REFUSED
        except httpx.HTTPError as error:
            log.info("webhook %s to %s failed: %s", message_id, host, type(error).__name__)
            return Outcome.FAILED
        if response.is_success:
            return Outcome.DELIVERED
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            return Outcome.FAILED
        log.warning("webhook %s to %s rejected with %d", message_id, host, response.status_code)
        return Outcome.REJECTED

    async def aclose(self) -> None:
        """Abandon pending deliveries and close connections."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()


def sign(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature header value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def document_webhooks(app: FastAPI) -> None:
    """Describe the webhook call in the app's OpenAPI (`webhooks`)."""

    @app.webhooks.post("video-job")
    def video_job(payload: WebhookPayload) -> None:
        """Sent to a job's webhook.url, signed with webhook-id, webhook-timestamp and webhook-signature."""
