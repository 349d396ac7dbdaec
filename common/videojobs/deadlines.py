"""Deadlines of the control path's calls to the API server, and TCP keep-alive on its connections.

A network that goes silent (a dropped NAT entry, a partition, a stuck load balancer) closes nothing:
without a deadline a call waits for as long as the process runs. So every request has a connect and a
read timeout, a watch is ended by the server every WATCH_SECONDS and dropped by the client after
WATCH_SILENCE_SECONDS without a byte, and idle connections are probed by TCP keep-alive.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.utils.keepalive import tcp_keepalive_socket_options
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

CONNECT_SECONDS = 5.0
"""TCP connect + TLS handshake: milliseconds in a cluster; 5 s covers two lost SYNs (1 s, then 3 s)."""
READ_SECONDS = 10.0
"""Between bytes of an answer. The API server answers a request in milliseconds, admission webhooks take
at most 10 s by default; a retry of a longer one is harmless (every write is idempotent or guarded)."""
REQUEST_TIMEOUT = (CONNECT_SECONDS, READ_SECONDS)
"""The kubernetes client's `_request_timeout`: (connect, read)."""
WATCH_SECONDS = 5
"""A watch's `timeoutSeconds`: the server ends it then (with a bookmark 2 s before), and the client resumes
from the last resourceVersion (no relist); so a healthy watch is never silent for longer than this. A
reopened watch costs the API server little (served from its watch cache): 0.2 requests/s per watch."""
WATCH_SILENCE_SECONDS = WATCH_SECONDS + 3.0
"""A watch silent for this long is dead (its connection lost without a close); it is reopened. The 3 s
margin covers a loaded API server ending the watch late."""
IDLE_SECONDS = 5.0
"""The longest a pooled connection may sit idle and still be reused: one idle for longer may have gone
silent meanwhile (a new connection costs a TLS handshake, milliseconds; a silent one a read timeout)."""
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3
"""TCP keep-alive: an idle connection is probed after 10 s, and dropped after 3 probes 5 s apart
unanswered (25 s), before the connection pool hands out a connection whose peer is gone."""


def socket_options() -> list[tuple[int, int, int]]:
    """The socket options of every connection to the API server: no Nagle, TCP keep-alive."""
    options: list[tuple[int, int, int]] = tcp_keepalive_socket_options(
        KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT
    )
    return options


class _FreshConnections(HTTPConnectionPool):
    """A pool that does not reuse a connection idle for longer than IDLE_SECONDS (it reconnects it)."""

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        connection = super()._get_conn(timeout)
        idle_since = getattr(connection, "videojobs_idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since > IDLE_SECONDS:
            connection.close()  # urllib3 opens it again for the request
        return connection

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        if conn is not None:
            conn.videojobs_idle_since = time.monotonic()  # type: ignore[attr-defined]
        super()._put_conn(conn)


class FreshHTTPConnectionPool(_FreshConnections, HTTPConnectionPool):
    """HTTP, no stale connections."""


class FreshHTTPSConnectionPool(_FreshConnections, HTTPSConnectionPool):
    """HTTPS, no stale connections."""


def api_client(configuration: client.Configuration) -> client.ApiClient:
    """A kubernetes ApiClient with `configure`d sockets whose pool drops connections idle too long."""
    api = client.ApiClient(configure(configuration))
    pools = api.rest_client.pool_manager
    pools.pool_classes_by_scheme = {"http": FreshHTTPConnectionPool, "https": FreshHTTPSConnectionPool}
    return api


def configure(configuration: client.Configuration) -> client.Configuration:
    """Keep-alive for the kubernetes client's connections; no hidden retries of a timed-out read.

    urllib3 retries idempotent requests 3 times by default, which turns one read timeout into four.
    A failed connect is retried once (a stale pooled connection); the caller retries the rest.
    """
    configuration.socket_options = socket_options()
    configuration.retries = Retry(total=1, connect=1, read=0, redirect=0, status=0)
    return configuration


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """An aiohttp `socket_factory`: a socket with `socket_options()`."""
    family, kind, proto, *_ = addr_info
    sock = socket.socket(family, kind, proto)
    for level, option, value in socket_options():
        sock.setsockopt(level, option, value)
    return sock
