"""The operator's probes and the control path's deadlines, without a cluster (tests/test_network_faults.py
shows them against a real API server behind a faulty network)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Any

import kopf
import pytest
from kubernetes import client

from videojobs import deadlines
from videojobs_operator import health
from videojobs_operator.handlers import set_deadlines
from videojobs_operator.health import OperatorHealth, WatchTracker, serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StuckController:
    def __init__(self, stalled: float | None) -> None:
        self.seconds = stalled

    def stalled(self) -> float | None:
        return self.seconds


def test_watches_are_working_while_each_is_answered_within_its_deadline() -> None:
    clock = Clock()
    watches = WatchTracker(clock)
    assert watches.problem(2) == "0 of 2 watches opened"
    watches.answered("/apis/videojobs.io/v1alpha1/namespaces/ns/videojobs")
    watches.answered("/apis/batch/v1/namespaces/ns/jobs")
    assert watches.problem(2) is None
    clock.now += health.WATCH_STALE_SECONDS - 1
    watches.answered("/apis/batch/v1/namespaces/ns/jobs")  # reopened; the other one went silent
    clock.now += 2
    stale = f"no watch answered for {health.WATCH_STALE_SECONDS:.0f} s"
    assert watches.problem(2) == f"{stale}: /apis/videojobs.io/v1alpha1/namespaces/ns/videojobs"


def test_liveness_follows_the_work_readiness_the_role_and_the_watches() -> None:
    clock = Clock()
    watches = WatchTracker(clock)
    memo: dict[str, Any] = {}
    probes = OperatorHealth(memo, watches, 1, None)
    assert probes.role() == "running (no leader election)"
    assert probes.alive() is None and probes.ready() == "0 of 1 watches opened"
    watches.answered("/api/v1/namespaces/ns/pods")
    memo["controller"] = StuckController(None)
    assert probes.alive() is None and probes.ready() is None
    memo["controller"] = StuckController(75)
    assert probes.alive() == probes.ready() == "work pending and no reconcile done for 75 s"


def test_probes_are_served_beside_the_metrics() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    problems: dict[str, str | None] = {"alive": None, "ready": "0 of 3 watches opened"}
    serve(port, "127.0.0.1", lambda: problems["alive"], lambda: problems["ready"], lambda: "leading")

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    assert get("/livez") == (200, "leading: ok\n")
    assert get("/readyz") == (503, "leading: 0 of 3 watches opened\n")
    status, text = get("/metrics")
    assert status == 200 and "videojobs_reconcile_errors_total" in text


def test_kubernetes_client_connections_get_keepalive_and_no_hidden_read_retries() -> None:
    configuration = deadlines.configure(client.Configuration())
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in configuration.socket_options
    assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, deadlines.KEEPALIVE_IDLE) in configuration.socket_options
    assert configuration.retries.read == 0
    sock = deadlines.keepalive_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0)))
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_a_pooled_connection_idle_for_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    api = deadlines.api_client(client.Configuration(host="https://127.0.0.1:6443"))
    pool = api.rest_client.pool_manager.connection_from_url("https://127.0.0.1:6443")
    assert isinstance(pool, deadlines.FreshHTTPSConnectionPool)
    connection = pool._get_conn()
    ours, theirs = socket.socketpair()
    connection.sock = ours  # as if connected
    pool._put_conn(connection)
    assert pool._get_conn().sock is not None  # just used: reused as it is
    pool._put_conn(connection)
    clock = time.monotonic() + deadlines.IDLE_SECONDS + 1
    monkeypatch.setattr(deadlines.time, "monotonic", lambda: clock)
    assert pool._get_conn().sock is None  # idle too long: closed, so the request opens a new one
    theirs.close()


def test_kopf_watches_are_short_and_reopened_when_silent() -> None:
    settings = kopf.OperatorSettings()
    assert settings.watching.inactivity_timeout == 70  # Kopf's default: a silent watch went unnoticed
    set_deadlines(settings)
    assert settings.watching.server_timeout == deadlines.WATCH_SECONDS
    assert settings.watching.inactivity_timeout == deadlines.WATCH_SILENCE_SECONDS > deadlines.WATCH_SECONDS
    assert (
        settings.watching.connect_timeout == settings.networking.connect_timeout == deadlines.CONNECT_SECONDS
    )
    assert settings.networking.request_timeout is not None
