"""The operator's own Kubernetes API calls: client-side rate limited, counted, run off the event loop.

Kopf has no client-side rate limit. Every request this module makes first takes a token from one
bucket (API_QPS per second, bursts of API_BURST) and at most API_CONCURRENCY run at once. Kopf's own
traffic is the watch streams plus one annotation patch per handled VideoJob change. Every request has
the connect and read deadlines of videojobs.deadlines; one that times out drops the idle pooled
connections too (they most likely went silent with it).
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
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from videojobs import deadlines
from videojobs.contract import CONTROLLER_NAME
from videojobs.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION
from videojobs_operator.metrics import API_REQUESTS, API_THROTTLED_SECONDS
from videojobs_operator.settings import OperatorSettings
from videojobs_operator.status import PhaseEvent

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JOBS = ("batch", "v1", "jobs")
WORKLOADS = ("kueue.x-k8s.io", "v1beta2", "workloads")
VISIBILITY = ("visibility.kueue.x-k8s.io", "v1beta1")
"""Kueue's visibility API (on-demand, aggregated): v1beta1 is served by Kueue v0.9 and later (v0.17 also
serves v1beta2, with the same pendingworkloads)."""
PRIORITY_CLASSES = ("scheduling.k8s.io", "v1", "priorityclasses")
BUILTIN_PLURALS = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}
"""The built-in kinds the operator creates besides Jobs (the runner's identity, see identity.py)."""
GONE = frozenset({404, 409, 410, 422})
"""Answers that mean the object is gone or was replaced (a uid precondition failed)."""
UNREACHABLE = (HTTPError, OSError)
"""What a call raises when the API server could not be reached or did not answer within its deadline."""


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


def _collection(api_version: str, namespace: str) -> str:
    """The URL path of a namespace's objects of an API version ("v1" is the core group under /api)."""
    root = "/apis" if "/" in api_version else "/api"
    return f"{root}/{api_version}/namespaces/{namespace}"


def api_client(concurrency: int) -> client.ApiClient:
    """A client with the pod's ServiceAccount inside a cluster, the kubeconfig elsewhere."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 2 * concurrency  # headroom: responses release late
    return deadlines.api_client(configuration)


class KubeApi:
    """The handful of calls the operator makes besides Kopf's.

    Only the generic custom-objects API and events.k8s.io are used: the typed batch and core clients
    would add some 30 MiB of generated models to the operator's memory for five calls.
    """

    def __init__(self, settings: OperatorSettings, api: client.ApiClient | None = None) -> None:
        self._api = api if api is not None else api_client(settings.api_concurrency)
        self._bucket = TokenBucket(settings.api_qps, settings.api_burst)
        self._executor = ThreadPoolExecutor(settings.api_concurrency, thread_name_prefix="kube-api")
        self._objects = client.CustomObjectsApi(self._api)
        self._events = client.EventsV1Api(self._api)
        self._priorities: dict[str, int] = {}
        self._instance = socket.gethostname()

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _call(
        self, verb: str, resource: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call a method of the generated client; the decoded JSON answer."""
        return await self._request(
            verb,
            resource,
            functools.partial(
                method, *args, _preload_content=False, _request_timeout=deadlines.REQUEST_TIMEOUT, **kwargs
            ),
        )

    async def _request(self, verb: str, resource: str, call: Callable[[], Any]) -> Any:
        """Run `call` (it returns the raw urllib3 response) rate limited and counted; the decoded JSON."""
        waited = await self._bucket.acquire()
        if waited:
            API_THROTTLED_SECONDS.inc(waited)
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ApiException as error:
            API_REQUESTS.labels(verb, resource, str(error.status)).inc()
            raise
        except UNREACHABLE:
            API_REQUESTS.labels(verb, resource, "unreachable").inc()
            self._api.rest_client.pool_manager.clear()
            raise
        API_REQUESTS.labels(verb, resource, str(response.status)).inc()
        data = response.data
        response.release_conn()
        return json.loads(data) if data else None

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create a Job (ApiException 409 when one of that name exists)."""
        create = self._objects.create_namespaced_custom_object
        await self._call("create", "jobs", create, *JOBS[:2], namespace, JOBS[2], manifest)

    async def create_object(self, manifest: dict[str, Any]) -> None:
        """Create a namespaced object of a kind in BUILTIN_PLURALS (ApiException 409 when it exists)."""
        plural = BUILTIN_PLURALS[manifest["kind"]]
        path = f"{_collection(manifest['apiVersion'], manifest['metadata']['namespace'])}/{plural}"
        await self._request("create", plural, functools.partial(self._send, "POST", path, manifest))

    async def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """An object of a kind in BUILTIN_PLURALS as the API server has it."""
        plural = BUILTIN_PLURALS[kind]
        path = f"{_collection(api_version, namespace)}/{plural}/{name}"
        found: dict[str, Any] = await self._request("get", plural, functools.partial(self._send, "GET", path))
        return found

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A request to any API path; the generic custom-objects client only knows paths under /apis."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        request = self._api.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(*request, _request_timeout=deadlines.REQUEST_TIMEOUT)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    async def read_job(self, namespace: str, name: str) -> dict[str, Any]:
        """The Job as the API server has it."""
        read = self._objects.get_namespaced_custom_object
        job: dict[str, Any] = await self._call("get", "jobs", read, *JOBS[:2], namespace, JOBS[2], name)
        return job

    async def release_job(self, namespace: str, name: str, uid: str) -> None:
        """Unsuspend a queued Job (only that incarnation of it)."""
        await self.suspend_job(namespace, name, uid, suspend=False)

    async def set_workload_active(self, namespace: str, name: str, *, active: bool) -> None:
        """Set a Kueue Workload's spec.active: false evicts it (Kueue suspends its Job, the quota frees up)
        and keeps it from being admitted; true lets it queue again."""
        await self._call(
            "patch",
            "workloads",
            self._objects.patch_namespaced_custom_object,
            *WORKLOADS[:2],
            namespace,
            WORKLOADS[2],
            name,
            {"spec": {"active": active}},
            _content_type=MERGE_PATCH,
        )

    async def pending_workloads(self, namespace: str, local_queue: str) -> list[dict[str, Any]]:
        """The pending Workloads of a Kueue LocalQueue, in order, with their positions (Kueue's visibility
        API: visibility.QueuePositions). ApiException 404 or 503 where that API is not served."""
        path = "/apis/{}/{}/namespaces/{}/localqueues/{}/pendingworkloads".format(
            *VISIBILITY, namespace, local_queue
        )
        found = await self._request(
            "get", "localqueues/pendingworkloads", functools.partial(self._send, "GET", path)
        )
        return list((found or {}).get("items") or ())

    async def suspend_job(self, namespace: str, name: str, uid: str, *, suspend: bool) -> None:
        """Set a Job's spec.suspend (only that incarnation of it): true stops its pods, false lets it run."""
        patch = {"metadata": {"uid": uid}, "spec": {"suspend": suspend}}
        await self._call(
            "patch",
            "jobs",
            self._objects.patch_namespaced_custom_object,
            *JOBS[:2],
            namespace,
            JOBS[2],
            name,
            patch,
            _content_type=MERGE_PATCH,
        )

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job; the garbage collector deletes its pods. Absent already is fine."""
        try:
            await self._call(
                "delete",
                "jobs",
                self._objects.delete_namespaced_custom_object,
                *JOBS[:2],
                namespace,
                JOBS[2],
                name,
                propagation_policy="Background",
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, namespace: str, name: str, uid: str, fields: dict[str, Any], *, exists: bool = True
    ) -> None:
        """Set status fields of that incarnation of the VideoJob (status subresource), leaving the rest.

        A JSON patch: its first operation tests metadata.uid (a merge patch's uid is ignored on the
        status subresource), so a status meant for a deleted VideoJob never lands on a new one of the
        same name. Fields are added one by one; without a status yet (`exists` False, or the per-field
        patch finds none) the status is added whole.
        """
        test: dict[str, Any] = {"op": "test", "path": "/metadata/uid", "value": uid}
        whole = [test, {"op": "add", "path": "/status", "value": fields}]
        if exists:
            per_field = [test] + [
                {"op": "add", "path": f"/status/{key}", "value": value} for key, value in fields.items()
            ]
            try:
                await self._patch_status(namespace, name, per_field)
                return
            except ApiException as error:
                if error.status != 422:  # 422: no status yet (or a uid mismatch, which fails again below)
                    raise
        await self._patch_status(namespace, name, whole)

    async def _patch_status(self, namespace: str, name: str, operations: list[dict[str, Any]]) -> None:
        await self._call(
            "patch",
            "videojobs/status",
            self._objects.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            operations,
            _content_type=JSON_PATCH,
        )

    async def delete_videojob(self, namespace: str, name: str, uid: str) -> None:
        """Delete that incarnation of the VideoJob (its Job and pods follow by garbage collection)."""
        try:
            await self._call(
                "delete",
                "videojobs",
                self._objects.delete_namespaced_custom_object,
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

    async def set_finalizers(
        self, namespace: str, name: str, uid: str, old: tuple[str, ...], new: list[str]
    ) -> None:
        """Replace the VideoJob's finalizers `old` (as last seen) by `new`; a JSON patch that tests the uid
        and the old list, so that a finalizer another controller added meanwhile is never lost (422)."""
        operations: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
        if old:
            operations.append({"op": "test", "path": "/metadata/finalizers", "value": list(old)})
        operations.append({"op": "add", "path": "/metadata/finalizers", "value": new})
        await self._call(
            "patch",
            "videojobs",
            self._objects.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            operations,
            _content_type=JSON_PATCH,
        )

    async def priority(self, priority_class: str) -> int | None:
        """The value of a PriorityClass (immutable, so cached); None when it does not exist."""
        if priority_class not in self._priorities:
            read = self._objects.get_cluster_custom_object
            try:
                found = await self._call("get", "priorityclasses", read, *PRIORITY_CLASSES, priority_class)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            self._priorities[priority_class] = int(found.get("value", 0))
        return self._priorities[priority_class]

    async def post_event(self, namespace: str, name: str, uid: str, event: PhaseEvent) -> None:
        """Record an events.k8s.io Event on the VideoJob (`kubectl describe`); one posted already is fine."""
        manifest = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": event.name, "namespace": namespace},
            "regarding": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "type": "Warning" if event.warning else "Normal",
            "reason": event.reason,
            "action": event.action,
            "note": event.message[:1024],
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reportingController": CONTROLLER_NAME,
            "reportingInstance": self._instance,
        }
        try:
            await self._call("create", "events", self._events.create_namespaced_event, namespace, manifest)
        except ApiException as error:
            if error.status != 409:  # 409: this change's Event exists (posted before a restart)
                raise


def api_message(error: ApiException) -> str:
    """The API server's own message in an error, or its status and reason."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return f"{error.status} {error.reason}"
