"""`videojobs operator --namespace NS ...` (one or more) in a subprocess for tests and benchmarks: its probes,
its metrics, and optionally a stand-in for the kubelet that restarts it when it exits (as its pod's container
would be).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

VIDEOJOBS = Path(sys.executable).parent / "videojobs"
LEADER_METRIC = "videojobs_operator_leader "
FAST_LEASE = {
    "LEASE_DURATION_SECONDS": "4",
    "LEASE_RENEW_DEADLINE_SECONDS": "3",
    "LEASE_RETRY_SECONDS": "0.5",
}
"""A killed leader's Lease expires in 4 s (15 s by default), so that restarts in tests stay quick."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Operator:
    """One operator process, authenticated by `kubeconfig`; `restart` brings it back whenever it exits."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str | Sequence[str],
        log: Path,
        env: dict[str, str],
        *,
        restart: bool = False,
    ) -> None:
        self.namespaces = [namespace] if isinstance(namespace, str) else list(namespace)
        self.namespace = self.namespaces[0]
        self.log = log
        self.metrics_port = free_port()
        self._env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "METRICS_PORT": str(self.metrics_port),
            "METRICS_ADDRESS": "127.0.0.1",
            "API_QPS": "200",
            **FAST_LEASE,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._restart = restart
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> Operator:
        self._spawn()
        if self._restart:
            self._supervisor = threading.Thread(target=self._supervise, name="kubelet", daemon=True)
            self._supervisor.start()
        return self

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(VIDEOJOBS), "operator", *(arg for ns in self.namespaces for arg in ("--namespace", ns))],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            if self.process is not None and self.process.poll() is not None:
                self.restarts += 1
                self._spawn()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:]) if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        """GET a path of its metrics port: the status and the body (OSError: not serving)."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def leader_gauge(self) -> str | None:
        """Its videojobs_operator_leader metric ("1.0" leading, "0.0" standing by; None: not serving yet)."""
        try:
            text = self.metrics()
        except OSError:
            return None
        return next((line.split()[1] for line in text.splitlines() if line.startswith(LEADER_METRIC)), None)

    def leading(self) -> bool:
        return self.leader_gauge() == "1.0"

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False


def wait_ready(operators: list[Operator], timeout: float = 60) -> None:
    """Until one operator leads and every one is ready."""
    deadline = time.monotonic() + timeout
    while not (any(op.leading() for op in operators) and all(op.ready() for op in operators)):
        if time.monotonic() > deadline:
            raise AssertionError("operators not ready:\n" + "\n".join(op.tail() for op in operators))
        time.sleep(0.2)
