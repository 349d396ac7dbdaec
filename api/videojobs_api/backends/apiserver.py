"""The kubernetes backend's calls to the API server: one namespace's VideoJobs, aiohttp on the event loop.

Credentials come from the kubernetes client's own loaders (a kubeconfig, with its exec plugins and token
refresh, or the pod's ServiceAccount, whose token is re-read as it rotates), as Kopf takes them. The
requests are plain aiohttp calls: a create costs no thread hop and no generated-client validation,
which were a quarter of the API's CPU per create (docs/benchmarks.md). Every request has the connect
and read deadlines of videojobs.deadlines, and the connections TCP keep-alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from videojobs import deadlines
from videojobs.crd import GROUP, PLURAL, VERSION
from videojobs.errors import ConfigurationError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
CREDENTIALS_SECONDS = 1.0
"""How long the credentials' headers are reused before the loaders' refresh hook is asked again."""
MAX_LINE_BYTES = 2**21
"""The longest watch event read: one object, and etcd stores objects of up to 1.5 MiB."""

UNREACHABLE = (aiohttp.ClientError, TimeoutError, OSError)
"""What a call raises when the API server could not be asked or did not answer in time."""


class ApiServerError(Exception):
    """The API server answered with an error status; `message` is its Status object's message."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def of(cls, status: Mapping[str, Any], http_reason: str = "") -> ApiServerError:
        """The error a `Status` object describes."""
        code, reason = int(status.get("code") or 500), str(status.get("reason") or http_reason)
        return cls(code, reason, str(status.get("message") or ""))


def load_configuration(kubeconfig: Path | None) -> client.Configuration:
    """Where the API server is and how to log in: `kubeconfig`, the pod's ServiceAccount, or the default."""
    configuration = client.Configuration()
    try:
        if kubeconfig is not None:
            config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError) as error:
        raise ConfigurationError(
            f"no Kubernetes cluster is configured for the kubernetes backend ({error})",
            suggestion="Set VIDEOJOBS_API_KUBECONFIG (or KUBECONFIG), run in a cluster, "
            "or use VIDEOJOBS_API_BACKEND=local.",
        ) from error
    return deadlines.configure(configuration)


def _tls(configuration: client.Configuration) -> ssl.SSLContext | bool:
    """The TLS settings of the configuration: its CA, its client certificate, or no verification."""
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    text = await response.text(errors="replace")
    try:
        status = json.loads(text)
    except ValueError:
        status = {"code": response.status, "message": text.strip()[:200]}
    if not isinstance(status, dict):
        status = {}
    raise ApiServerError.of(status | {"code": response.status}, response.reason or "")


class VideoJobApi:
    """List, watch, get, create, patch and delete the VideoJobs of one namespace."""

    def __init__(self, configuration: client.Configuration, namespace: str, pool: int = 32) -> None:
        self.configuration = configuration
        self.host: str = configuration.host
        self._collection = f"{self.host.rstrip('/')}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None
        self._credentials: dict[str, str] = {}
        self._credentials_until = 0.0

    def _http(self) -> aiohttp.ClientSession:
        """The connection pool, opened on first use (inside the running event loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool,
                ssl=_tls(self.configuration),
                socket_factory=deadlines.keepalive_socket,
                keepalive_timeout=deadlines.IDLE_SECONDS,
            )
            self._session = aiohttp.ClientSession(connector=connector, read_bufsize=MAX_LINE_BYTES)
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        """Accept, Content-Type, and the credentials (a refresh hook renews a rotated or expiring token)."""
        now = time.monotonic()
        if now >= self._credentials_until:  # the hook re-reads the kubeconfig: not once per request
            settings = self.configuration.auth_settings().values()
            self._credentials = {auth["key"]: auth["value"] for auth in settings if auth["value"]}
            self._credentials_until = now + CREDENTIALS_SECONDS
        headers = {"Accept": JSON} | self._credentials
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        name: str = "",
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
        read_seconds: float = deadlines.READ_SECONDS,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The answer to one request on the collection or one of its objects; ApiServerError for an error."""
        url = f"{self._collection}/{name}" if name else self._collection
        data = json.dumps(body).encode() if body is not None else None
        async with self._http().request(
            method,
            url,
            data=data,
            params=params,
            headers=self._headers(content_type if data is not None else None),
            timeout=aiohttp.ClientTimeout(sock_connect=deadlines.CONNECT_SECONDS, sock_read=read_seconds),
            proxy=self.configuration.proxy,
            server_hostname=self.configuration.tls_server_name,
        ) as response:
            await _raise_for_status(response)
            yield response

    async def _call(
        self,
        method: str,
        name: str = "",
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        async with self._request(
            method, name, body=body, content_type=content_type, params=params
        ) as response:
            answer: dict[str, Any] = json.loads(await response.read())
            return answer

    async def list(self, limit: int, continue_token: str | None = None) -> dict[str, Any]:
        """One page of the namespace's VideoJobs (`metadata.continue` names the next)."""
        params = {"limit": str(limit)} | ({"continue": continue_token} if continue_token else {})
        return await self._call("GET", params=params)

    @contextlib.asynccontextmanager
    async def watch(
        self, resource_version: str, timeout_seconds: int = deadlines.WATCH_SECONDS
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """The changes after `resource_version`, with bookmarks, until the server ends the watch.

        Entering the context opens the watch (raising as a call does); an ERROR event raises it, and so
        does silence longer than the watch should last (a connection lost without a close).
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        read_seconds = timeout_seconds + deadlines.WATCH_SILENCE_SECONDS - deadlines.WATCH_SECONDS
        async with self._request("GET", params=params, read_seconds=read_seconds) as response:
            yield _events(response)

    async def get(self, name: str) -> dict[str, Any]:
        """That VideoJob."""
        return await self._call("GET", name)

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the VideoJob `manifest` describes; the object as stored."""
        return await self._call("POST", body=manifest)

    async def patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch that VideoJob; the object as stored."""
        return await self._call("PATCH", name, body=patch, content_type=MERGE_PATCH)

    async def delete(self, name: str, uid: str) -> None:
        """Delete that VideoJob if it is still the one with `uid`, in the foreground.

        It stays (with a deletionTimestamp) until the garbage collector has deleted what it owns,
        its Job only once the Job's pods are gone: the watch's DELETED says everything has stopped.
        """
        options = {"preconditions": {"uid": uid}, "propagationPolicy": "Foreground"}
        await self._call("DELETE", name, body=options)

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for line in response.content:
        if not line.strip():
            continue
        event: dict[str, Any] = json.loads(line)
        if event["type"] == "ERROR":
            raise ApiServerError.of(event["object"])
        yield event
