"""Benchmark: the REST API served by `videojobs serve` (uvicorn) on 127.0.0.1, on either backend.

1. Job creation, then status reads, by N concurrent clients, each on its own keep-alive connection:
   saturated (each client sends its next request as soon as it has an answer) and paced (each client
   sends one request every --interval seconds; --sweep adds creations at more paces). p50/p99 latency,
   throughput, and the CPU time per request of the server and (kubernetes) of the test control plane
   (kube-apiserver, etcd, kube-controller-manager), which shares the machine's cores. Nothing runs the jobs
   (local: VIDEOJOBS_API_LOCAL_WORKERS=0; kubernetes: no operator), so this measures the API alone
   (with the kubernetes backend: the API plus the API server's create). The clients speak minimal
   HTTP/1.1 over asyncio streams: httpx costs several times the server's CPU per request here, and on
   a 2-core machine it would measure itself.
2. The delay from a status report to the SSE event a subscribed client (httpx) receives, one report
   every 100 ms stamped with its send time. local: a stand-in worker (this file with --worker) reports;
   kubernetes: this script patches the VideoJob's status subresource as the runner does.
3. kubernetes only: VideoJob creation straight against the API server by as many clients at the same
   paces (the backend's own aiohttp client): the floor under the REST API's creation latency here.

The kubernetes backend runs against the test control plane (`hack/test-cluster up`, reused when up;
TEST_CLUSTER_DIR picks its state dir), in a fresh namespace, as the API's ServiceAccount (api/rbac.yaml).

Run: `.venv/bin/python bench/api.py [--backend local|kubernetes] [--clients 50] [--creates 20] ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from k8s_cluster import K8sCluster, start_cluster, wait_for  # noqa: E402

from videojobs_api.backends.apiserver import VideoJobApi, load_configuration  # noqa: E402

KEY = "bench-key-0123456789"
TICK_SECONDS = 0.1


SERVER_PIDS: dict[int, int] = {}
"""The pid of the server on each port, for its CPU time."""
CONTROL_PLANE_PIDS: list[int] = []
"""kube-apiserver, etcd and kube-controller-manager of the test cluster (kubernetes backend)."""


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time these processes have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def control_plane_pids(cluster: K8sCluster) -> list[int]:
    """The pids of the cluster's kube-apiserver, etcd and kube-controller-manager."""
    wanted = {str(cluster.bin_dir / name) for name in ("kube-apiserver", "etcd", "kube-controller-manager")}
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and str((entry / "exe").readlink()) in wanted:
                pids.append(int(entry.name))
    return pids


def free_port() -> int:
    """A port free right now on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(out: Path, **environment: str) -> Iterator[int]:
    """`videojobs serve` storing under `out`; yields its port once ready."""
    port = free_port()
    env = os.environ | {
        "OUTPUT_DIR": str(out),
        "VIDEOJOBS_API_KEYS": f"bench:user:{KEY}",
        "VIDEOJOBS_API_MAX_ACTIVE_JOBS": "1000000",
        **environment,
    }
    command = [sys.executable, "-m", "videojobs_cli.main", "serve", "--port", str(port)]
    with (out / "server.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {out / 'server.log'}")
            time.sleep(0.1)
        SERVER_PIDS[port] = process.pid
        yield port
    finally:
        process.terminate()
        process.wait(30)


class Connection:
    """One keep-alive HTTP/1.1 connection, authenticated, answering (status, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
        return int(lines[0].split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


Call = Callable[[Any, int], Awaitable[tuple[int, bytes]]]


async def load(
    port: int | None, clients: int, requests: int, call: Call, interval: float
) -> tuple[list[float], float, tuple[float, float]]:
    """`clients` clients making `requests` calls each (every `interval` s, or back to back when 0).

    Each client has its own connection to the server on `port` (None: `call` brings its own). A paced
    call's latency counts from when it was due, so a late start is not hidden.
    """
    latencies: list[float] = []

    async def client(number: int) -> None:
        connection = await Connection.open(port) if port is not None else None
        due = time.perf_counter() + random.uniform(0, interval)
        try:
            for index in range(requests):
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                start = due if interval else time.perf_counter()
                status, body = await call(connection, number * requests + index)
                latencies.append(time.perf_counter() - start)
                assert status < 300, (status, body[:200])
                due += interval
        finally:
            if connection is not None:
                connection.close()

    pids = [SERVER_PIDS[port]] if port is not None else []
    start, cpu, control_plane = time.perf_counter(), cpu_seconds(pids), cpu_seconds(CONTROL_PLANE_PIDS)
    await asyncio.gather(*(client(n) for n in range(clients)))
    used = (cpu_seconds(pids) - cpu, cpu_seconds(CONTROL_PLANE_PIDS) - control_plane)
    return latencies, time.perf_counter() - start, used


def summary(name: str, seconds: list[float], wall: float, cpu: tuple[float, float] | None = None) -> str:
    """One line: count, p50, p99, max (ms), throughput, the server's (and control plane's) CPU per request."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    per_request = ""
    if cpu is not None:
        server, control_plane = (used / len(seconds) * 1000 for used in cpu)
        parts = [f"server {server:4.2f}"] if server else []
        parts += [f"control plane {control_plane:4.2f}"] if CONTROL_PLANE_PIDS else []
        per_request = f"  CPU ms/req: {', '.join(parts)}"
    return (
        f"{name:<40} n={len(seconds):<5} p50={cuts[49] * 1000:7.2f} ms  p99={cuts[98] * 1000:7.2f} ms  "
        f"max={max(seconds) * 1000:7.2f} ms  {len(seconds) / wall:6.0f} req/s{per_request}"
    )


async def creation_and_status(
    port: int, clients: int, creates: int, reads: int, intervals: list[float], sweep: list[float]
) -> None:
    """Creates and status reads, saturated and every `intervals` s; then creates every `sweep` s."""
    ids: list[str] = []

    async def create(connection: Connection, n: int) -> tuple[int, bytes]:
        status, body = await connection.request(
            "POST", "/v1/videos/generate", b'{"topic": "Benchmark topic"}'
        )
        ids.append(json.loads(body)["id"])
        return status, body

    async def read(connection: Connection, n: int) -> tuple[int, bytes]:
        return await connection.request("GET", f"/v1/videos/jobs/{random.choice(ids)}/status")

    async def warm(connection: Connection, n: int) -> tuple[int, bytes]:
        return await connection.request("GET", "/livez")

    await load(port, clients, 10, warm, 0)
    for pace in (0.0, *intervals):
        label = f"every {pace:g} s per client" if pace else "saturated"
        print(summary(f"create, {label}", *await load(port, clients, creates, create, pace)))
        print(summary(f"status, {label}", *await load(port, clients, reads, read, pace)))
    for pace in sweep:
        print(
            summary(f"create, every {pace:g} s per client", *await load(port, clients, creates, create, pace))
        )


async def sse_delay(port: int, ticks: int, reporter: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Follow a new job's events; `reporter(job_id)` reports its statuses (else the server's worker does)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        job_id = (await http.post("/v1/videos/generate", json={"topic": "SSE delay"})).json()["id"]
        delays: list[float] = []
        reporting = asyncio.create_task(reporter(job_id)) if reporter else None
        async with http.stream("GET", f"/v1/videos/jobs/{job_id}/events") as events:
            async for line in events.aiter_lines():
                if line.startswith("data: "):
                    received = time.time()
                    message = json.loads(line.removeprefix("data: "))["message"]
                    if message.startswith("tick "):
                        delays.append(received - float(message.split()[1]))
                        if len(delays) == ticks and reporting is not None:
                            break
        if reporting is not None:
            await reporting
    print(summary("status report → SSE event", delays, ticks * TICK_SECONDS))


def api_namespace(cluster: K8sCluster, folder: Path) -> tuple[str, Path]:
    """A fresh namespace with the CRD and api/rbac.yaml; (namespace, the API ServiceAccount's kubeconfig)."""
    namespace = f"bench-api-{os.getpid()}"

    def earlier_runs_gone() -> bool:  # their deletion would take this run's CPU
        names = cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
        return not any(name.startswith("namespace/bench-api-") for name in names)

    wait_for("earlier benchmark namespaces to be deleted", earlier_runs_gone, 600)
    cluster.kubectl("apply", "-f", str(REPO / "crds" / "videojob.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io")
    cluster.kubectl("create", "namespace", namespace)
    rbac = (REPO / "api" / "rbac.yaml").read_text().replace("namespace: videojobs", f"namespace: {namespace}")
    cluster.kubectl("apply", "-f", "-", input=rbac)
    return namespace, cluster.token_kubeconfig(namespace, "videojobs-api", folder / "api.kubeconfig")


def status_patcher(kubeconfig: Path, namespace: str, ticks: int) -> Callable[[str], Awaitable[None]]:
    """Patches a VideoJob's status `ticks` times, TICK_SECONDS apart, as the runner's reporter does."""
    objects = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))

    async def report(job_id: str) -> None:
        for tick in range(ticks):
            await asyncio.sleep(TICK_SECONDS)
            body = {"status": stamped(tick)}
            await asyncio.to_thread(
                objects.patch_namespaced_custom_object_status,
                "videojobs.io",
                "v1alpha1",
                namespace,
                "videojobs",
                job_id,
                body,
            )

    return report


async def apiserver_creates(
    kubeconfig: Path, namespace: str, clients: int, creates: int, intervals: list[float]
) -> None:
    """The floor under the API's creates: VideoJobs created straight at the API server, by as many clients
    at the same paces, through the kubernetes backend's own client (aiohttp, one connection each)."""
    api = VideoJobApi(load_configuration(kubeconfig), namespace, pool=clients)

    async def create(_: None, number: int) -> tuple[int, bytes]:
        body = {
            "apiVersion": "videojobs.io/v1alpha1",
            "kind": "VideoJob",
            "metadata": {"name": f"direct-{number}-{random.getrandbits(32):08x}"},
            "spec": {"topic": "Benchmark topic"},
        }
        await api.create(body)
        return 201, b""

    try:
        for pace in (0.0, *intervals):
            label = f"every {pace:g} s per client" if pace else "saturated"
            print(summary(f"API server alone, {label}", *await load(None, clients, creates, create, pace)))
    finally:
        await api.close()


def run_kubernetes(args: argparse.Namespace, folder: Path) -> None:
    state = os.environ.get("TEST_CLUSTER_DIR")
    cluster, _ = start_cluster(Path(state) if state else None)  # reused when up; left up afterwards
    kubeconfig = cluster.kubeconfig
    namespace, api_kubeconfig = api_namespace(cluster, folder)
    CONTROL_PLANE_PIDS[:] = control_plane_pids(cluster)
    environment = {
        "VIDEOJOBS_API_BACKEND": "kubernetes",
        "VIDEOJOBS_API_NAMESPACE": namespace,
        "VIDEOJOBS_API_KUBECONFIG": str(api_kubeconfig),
    }
    try:
        with serving(folder, **environment) as port:
            asyncio.run(
                creation_and_status(port, args.clients, args.creates, args.reads, args.interval, args.sweep)
            )
            asyncio.run(sse_delay(port, args.ticks, status_patcher(kubeconfig, namespace, args.ticks)))
        asyncio.run(apiserver_creates(kubeconfig, namespace, args.clients, args.creates, args.interval))
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def run_local(args: argparse.Namespace, folder: Path) -> None:
    api, sse = folder / "api", folder / "sse"
    api.mkdir()
    sse.mkdir()
    with serving(api, VIDEOJOBS_API_LOCAL_WORKERS="0") as port:
        asyncio.run(
            creation_and_status(port, args.clients, args.creates, args.reads, args.interval, args.sweep)
        )
    worker = [sys.executable, "-P", str(Path(__file__).resolve()), "--worker", f"--ticks={args.ticks}"]
    environment = {"VIDEOJOBS_API_LOCAL_WORKERS": "1", "VIDEOJOBS_API_WORKER_COMMAND": json.dumps(worker)}
    with serving(sse, **environment) as port:
        asyncio.run(sse_delay(port, args.ticks))


def stamped(tick: int) -> dict[str, object]:
    """A status report whose message carries its send time."""
    return {"stage": "rendering", "progress": 50, "message": f"tick {time.time():.6f} {tick}"}


def stand_in_worker(ticks: int) -> None:
    """A worker that reports `ticks` statuses stamped with their send time, TICK_SECONDS apart."""
    sys.stdin.readline()  # the work order
    for tick in range(ticks):
        time.sleep(TICK_SECONDS)
        print(json.dumps(stamped(tick)), flush=True)
    print(json.dumps({"stage": "completed", "progress": 100, "message": "done"}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("local", "kubernetes"), default="local")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--creates", type=int, default=20, help="Jobs created per client and mode.")
    parser.add_argument("--reads", type=int, default=100, help="Status reads per client and mode.")
    parser.add_argument(
        "--interval", type=float, nargs="+", default=[0.2], help="Seconds between a paced client's calls."
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[],
        metavar="SECONDS",
        help="Then creations only, paced at each of these intervals (e.g. 1 0.5 0.33 0.25).",
    )
    parser.add_argument("--ticks", type=int, default=40, help="Status reports of the SSE job.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # a worker also gets its job id
    if args.worker:
        stand_in_worker(args.ticks)
        return
    print(
        f"{os.cpu_count()} CPUs; server: videojobs serve (uvicorn, 1 process), {args.backend} backend; "
        f"{args.clients} clients"
    )
    with tempfile.TemporaryDirectory() as folder:
        (run_kubernetes if args.backend == "kubernetes" else run_local)(args, Path(folder))


if __name__ == "__main__":
    main()
