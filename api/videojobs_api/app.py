"""The app factory: settings in, a FastAPI app out, its backend started and stopped by the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videojobs.usage_metrics import UsageMeter
from videojobs_api.auth import KeyTable, UrlSigner
from videojobs_api.backends.base import JobBackend
from videojobs_api.backends.kubernetes import KubernetesBackend
from videojobs_api.backends.local import LocalBackend
from videojobs_api.events import EventBus
from videojobs_api.problems import install_problem_handlers
from videojobs_api.routes import InFlightKeys, Services, operations, router
from videojobs_api.settings import ApiSettings, BackendKind
from videojobs_api.web import install_web_app
from videojobs_api.webhooks import WebhookDispatcher, document_webhooks

DESCRIPTION = """Turn a topic into a narrated Manim explainer video.

Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem+json documents.
Jobs live under `/v1`; `/livez`, `/readyz` and `/metrics` are unversioned.
"""


def create_backend(
    settings: ApiSettings, bus: EventBus, webhooks: WebhookDispatcher, registry: CollectorRegistry
) -> JobBackend:
    """The backend the settings name (the kubernetes one elects the replica that sends webhooks).

    The local backend counts tokens and cost by model on `registry`; on Kubernetes the operator does
    (every API replica sees every job: each would count it again).
    """
    if settings.backend is BackendKind.LOCAL:
        return LocalBackend(settings, bus, UsageMeter(registry))
    return KubernetesBackend(settings, bus, webhooks=webhooks)


@dataclass(frozen=True)
class RequestMetrics:
    """Prometheus instruments for every HTTP request."""

    requests: Counter
    seconds: Histogram

    @classmethod
    def on(cls, registry: CollectorRegistry) -> RequestMetrics:
        """Instruments registered in `registry`."""
        return cls(
            Counter(
                "videojobs_api_requests",
                "HTTP requests by method, route and status.",
                ["method", "route", "status"],
                registry=registry,
            ),
            Histogram(
                "videojobs_api_request_seconds",
                "Time to answer by method and route (a whole stream for events).",
                ["method", "route"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            ),
        )


class MetricsMiddleware:
    """Counts and times requests, labelled by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.seconds.labels(scope["method"], route).observe(time.perf_counter() - start)


def create_app(settings: ApiSettings) -> FastAPI:
    """A FastAPI app serving the jobs of the configured backend."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_* (CPU, memory, file descriptors)
    PlatformCollector(registry=registry)  # python_info
    bus = EventBus()
    webhooks = WebhookDispatcher(settings, registry)
    bus.add_listener(webhooks.notify)
    backend = create_backend(settings, bus, webhooks, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()
            await webhooks.aclose()

    app = FastAPI(title="videojobs", version=version("videojobs"), description=DESCRIPTION, lifespan=lifespan)
    app.state.keys = KeyTable(settings.keys)
    app.state.signer = UrlSigner(settings.url_signing_secret.get_secret_value().encode())
    app.state.services = Services(
        settings=settings,
        backend=backend,
        webhooks=webhooks,
        registry=registry,
        in_flight=InFlightKeys(),
        bus=bus,
    )
    app.include_router(router)
    app.include_router(operations)
    app.add_middleware(MetricsMiddleware, metrics=RequestMetrics.on(registry))
    install_problem_handlers(app)
    document_webhooks(app)
    install_web_app(app, settings.runner)
    return app
