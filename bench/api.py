"""Benchmark: the REST API on the local backend, served by `videojobs serve` (uvicorn) on 127.0.0.1.

1. Job creation, then status reads, by N concurrent clients, each on its own keep-alive connection:
   saturated (each client sends its next request as soon as it has an answer) and paced (each client
   sends one request every --interval seconds). p50/p99 latency and throughput. The server runs no
   workers (VIDEOJOBS_API_LOCAL_WORKERS=0), so this measures the API alone. The clients speak minimal
   HTTP/1.1 over asyncio streams: httpx costs several times the server's CPU per request here, and on
   a 2-core machine it would measure itself.
2. The delay from a worker's status report to the SSE event a subscribed client (httpx) receives: a
   stand-in worker (this file with --worker) reports a status every 100 ms, stamped with its send time.

Run: `.venv/bin/python bench/api.py [--clients 50] [--creates 20] [--reads 100] [--interval 0.2]`.
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

import httpx

KEY = "bench-key-0123456789"
TICK_SECONDS = 0.1


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
    command = [sys.executable, "-m", "videojobs.cli", "serve", "--port", str(port)]
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


Call = Callable[[Connection, int], Awaitable[tuple[int, bytes]]]


async def load(
    port: int, clients: int, requests: int, call: Call, interval: float
) -> tuple[list[float], float]:
    """`clients` clients making `requests` calls each (every `interval` s, or back to back when 0).

    A paced call's latency counts from when it was due, so a late start is not hidden.
    """
    latencies: list[float] = []

    async def client(number: int) -> None:
        connection = await Connection.open(port)
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
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, time.perf_counter() - start


def summary(name: str, seconds: list[float], wall: float) -> str:
    """One line: count, p50, p99, max (ms) and throughput."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return (
        f"{name:<32} n={len(seconds):<5} p50={cuts[49] * 1000:7.2f} ms  p99={cuts[98] * 1000:7.2f} ms  "
        f"max={max(seconds) * 1000:7.2f} ms  {len(seconds) / wall:6.0f} req/s"
    )


async def creation_and_status(port: int, clients: int, creates: int, reads: int, interval: float) -> None:
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
    for pace, label in ((0.0, "saturated"), (interval, f"every {interval:g} s per client")):
        print(summary(f"create, {label}", *await load(port, clients, creates, create, pace)))
        print(summary(f"status, {label}", *await load(port, clients, reads, read, pace)))


async def sse_delay(port: int, ticks: int) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        job_id = (await client.post("/v1/videos/generate", json={"topic": "SSE delay"})).json()["id"]
        delays: list[float] = []
        async with client.stream("GET", f"/v1/videos/jobs/{job_id}/events") as events:
            async for line in events.aiter_lines():
                if line.startswith("data: "):
                    received = time.time()
                    message = json.loads(line.removeprefix("data: "))["message"]
                    if message.startswith("tick "):
                        delays.append(received - float(message.split()[1]))
    print(summary("status report → SSE event", delays, ticks * TICK_SECONDS))


def stand_in_worker(ticks: int) -> None:
    """A worker that reports `ticks` statuses stamped with their send time, TICK_SECONDS apart."""
    sys.stdin.readline()  # the work order
    for tick in range(ticks):
        time.sleep(TICK_SECONDS)
        status = {"stage": "rendering", "progress": 50, "message": f"tick {time.time():.6f} {tick}"}
        print(json.dumps(status), flush=True)
    print(json.dumps({"stage": "completed", "progress": 100, "message": "done"}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--creates", type=int, default=20, help="Jobs created per client and mode.")
    parser.add_argument("--reads", type=int, default=100, help="Status reads per client and mode.")
    parser.add_argument("--interval", type=float, default=0.2, help="Seconds between a paced client's calls.")
    parser.add_argument("--ticks", type=int, default=40, help="Status reports of the SSE job.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # a worker also gets its job id
    if args.worker:
        stand_in_worker(args.ticks)
        return
    print(f"{os.cpu_count()} CPUs; server: videojobs serve (uvicorn, 1 process); {args.clients} clients")
    with tempfile.TemporaryDirectory() as folder:
        api, sse = Path(folder) / "api", Path(folder) / "sse"
        api.mkdir()
        sse.mkdir()
        with serving(api, VIDEOJOBS_API_LOCAL_WORKERS="0") as port:
            asyncio.run(creation_and_status(port, args.clients, args.creates, args.reads, args.interval))
        worker = [sys.executable, "-P", str(Path(__file__).resolve()), "--worker", f"--ticks={args.ticks}"]
        environment = {"VIDEOJOBS_API_LOCAL_WORKERS": "1", "VIDEOJOBS_API_WORKER_COMMAND": json.dumps(worker)}
        with serving(sse, **environment) as port:
            asyncio.run(sse_delay(port, args.ticks))


if __name__ == "__main__":
    main()
