"""The operator's own Kubernetes API calls: client-side rate limited, counted, run off the event loop.

Kopf has no client-side rate limit. Every request this module makes first takes a token from one
bucket (API_QPS per second, bursts of API_BURST) and at most API_CONCURRENCY run at once. Kopf's own
traffic is the watch streams plus one annotation patch per handled VideoJob change.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from videojobs.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION
from videojobs_operator.jobs import MANAGER
from videojobs_operator.metrics import API_REQUESTS, API_THROTTLED_SECONDS
from videojobs_operator.settings import OperatorSettings

MERGE_PATCH = "application/merge-patch+json"
GONE = frozenset({404, 409, 410, 422})
"""Answers that mean the object is gone or was replaced (a uid precondition failed)."""


class TokenBucket:
    """Up to `burst` calls at once, then `rate` per second; waiters are served in order."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns how long it waited."""
        started = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return self._clock() - started
                await asyncio.sleep((1 - self._tokens) / self.rate)


def api_client(concurrency: int) -> client.ApiClient:
    """A client with the pod's ServiceAccount inside a cluster, the kubeconfig elsewhere."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = concurrency
    return client.ApiClient(configuration)


class KubeApi:
    """The handful of calls the operator makes besides Kopf's."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient | None = None) -> None:
        self._api = api if api is not None else api_client(settings.api_concurrency)
        self._bucket = TokenBucket(settings.api_qps, settings.api_burst)
        self._executor = ThreadPoolExecutor(settings.api_concurrency, thread_name_prefix="kube-api")
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._scheduling = client.SchedulingV1Api(self._api)
        self._priorities: dict[str, int] = {}
        self._instance = socket.gethostname()

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _call(
        self, verb: str, resource: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        waited = await self._bucket.acquire()
        if waited:
            API_THROTTLED_SECONDS.inc(waited)
        call = functools.partial(method, *args, _preload_content=False, **kwargs)
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ApiException as error:
            API_REQUESTS.labels(verb, resource, str(error.status)).inc()
            raise
        API_REQUESTS.labels(verb, resource, str(response.status)).inc()
        data = response.data
        return json.loads(data) if data else None

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create a Job (ApiException 409 when one of that name exists)."""
        await self._call("create", "jobs", self._batch.create_namespaced_job, namespace, manifest)

    async def read_job(self, namespace: str, name: str) -> dict[str, Any]:
        """The Job as the API server has it."""
        job: dict[str, Any] = await self._call(
            "get", "jobs", self._batch.read_namespaced_job, name, namespace
        )
        return job

    async def release_job(self, namespace: str, name: str, uid: str) -> None:
        """Unsuspend a queued Job (only that incarnation of it)."""
        patch = {"metadata": {"uid": uid}, "spec": {"suspend": False}}
        await self._call(
            "patch",
            "jobs",
            self._batch.patch_namespaced_job,
            name,
            namespace,
            patch,
            _content_type=MERGE_PATCH,
        )

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job; the garbage collector deletes its pods. Absent already is fine."""
        try:
            await self._call(
                "delete",
                "jobs",
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(self, namespace: str, name: str, uid: str, fields: dict[str, Any]) -> None:
        """Merge-patch status fields of that incarnation of the VideoJob (status subresource)."""
        await self._call(
            "patch",
            "videojobs/status",
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"uid": uid}, "status": fields},
            _content_type=MERGE_PATCH,
        )

    async def delete_videojob(self, namespace: str, name: str, uid: str) -> None:
        """Delete that incarnation of the VideoJob (its Job and pods follow by garbage collection)."""
        try:
            await self._call(
                "delete",
                "videojobs",
                self._custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                propagation_policy="Background",
                body={"preconditions": {"uid": uid}},
            )
        except ApiException as error:
            if error.status not in GONE:
                raise

    async def priority(self, priority_class: str) -> int | None:
        """The value of a PriorityClass (immutable, so cached); None when it does not exist."""
        if priority_class not in self._priorities:
            try:
                found = await self._call(
                    "get", "priorityclasses", self._scheduling.read_priority_class, priority_class
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            self._priorities[priority_class] = int(found.get("value", 0))
        return self._priorities[priority_class]

    async def post_event(
        self, namespace: str, name: str, uid: str, *, warning: bool, reason: str, message: str
    ) -> None:
        """Record a Kubernetes Event on the VideoJob (shown by `kubectl describe videojob`)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        event = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGER},
            "reportingComponent": f"{GROUP}/operator",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call("create", "events", self._core.create_namespaced_event, namespace, event)
