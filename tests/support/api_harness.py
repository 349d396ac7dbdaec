"""Harness for the REST API tests: uvicorn on 127.0.0.1, scripted workers, SSE and webhook helpers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from k8s_api import QUEUE, StandInRunner, deployment, prepare_cluster
from k8s_cluster import K8sCluster

from videojobs.contract import Quality
from videojobs.settings import Settings
from videojobs_api.app import create_app
from videojobs_api.settings import ApiSettings

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789ab", "root": "root-key-0123456789ab"}
ROLES = {"alice": "user", "bob": "user", "root": "admin"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-bytes").decode()
PROBLEM = "application/problem+json"

SCRIPTED_WORKER = r'''
"""A stand-in worker: its behaviour comes from words in the topic (hang, once, fail; costly: $0.40 of
openai/gpt-4o, reported from the first line on)."""
import json, os, sys
from pathlib import Path

job_id = sys.argv[-1]
order = json.loads(sys.stdin.readline())
topic = order["request"]["topic"]
folder = Path(order["settings"]["output_dir"]) / job_id
folder.mkdir(parents=True, exist_ok=True)
runs = folder / "runs.txt"
run = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(run))
(folder / "environment.json").write_text(json.dumps(sorted(os.environ)))

SPENT = {"llmCalls": 1, "promptTokens": 100, "completionTokens": 20, "totalTokens": 120, "costUsd": 0.4}
USAGE = {"usage": SPENT, "usageByModel": {"openai/gpt-4o": SPENT}} if "costly" in topic else {}

def report(**status):
    print(json.dumps(USAGE | status), flush=True)

SCRIPTED_ETA = "2030-01-01T00:00:00Z"
report(stage="planning", progress=15, message="Creating scene outline")
if "hang" in topic and not ("once" in topic and run > 1):
    report(stage="rendering", progress=50, message="Rendering scene 1/3")
    sys.stdin.read()  # until the backend closes stdin
    sys.exit(1)
if "fail" in topic and not ("once" in topic and run > 1):
    error = {"stage": "rendering", "message": "scene 2 failed", "recoverable": True}
    report(stage="rendering", progress=60, message="scene 2 failed", error=error)
    sys.exit(1)
report(stage="rendering", progress=80, message="Rendered scene 3/3", scenes={"total": 3, "rendered": 3},
       estimatedCompletionTime=SCRIPTED_ETA)
if order["settings"]["storage_backend"] == "s3":
    from videojobs.settings import Settings
    from videojobs.storage import storage_from_settings

    storage = storage_from_settings(Settings.model_validate(order["settings"]))
    store = lambda name, data: storage.put_bytes(f"{job_id}/{name}", data)
else:
    store = lambda name, data: (folder / name).write_bytes(data)
store("video.mp4", bytes(range(256)) * 40)
store("thumbnail.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
store("subtitles.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n")
store("subtitles.srt", b"1\n00:00:00,000 --> 00:00:01,000\nHello\n")
store("metadata.json", json.dumps({"id": job_id, "duration_seconds": 1.0}).encode())
report(stage="completed", progress=100, message="Video generation completed",
       scenes={"total": 3, "rendered": 3}, result={"durationSeconds": 1.0})
'''
VIDEO_BYTES = bytes(range(256)) * 40


# --- harness (imported by the other test_api_* modules) ---------------------------------------------


def api_settings(out: Path, **overrides: Any) -> ApiSettings:
    """Settings for a test deployment storing under `out`, with three principals and webhooks allowed."""
    values: dict[str, Any] = {
        "keys": [f"{name}:{ROLES[name]}:{key}" for name, key in KEYS.items()],
        "runner": Settings(output_dir=out, default_quality=Quality.LOW, max_fix_attempts=2),
        "webhook_secret": WEBHOOK_SECRET,
        "allow_insecure_webhooks": True,
        "webhook_backoff_seconds": 0.05,
        "sse_ping_seconds": 0.2,
        "worker_stop_seconds": 5.0,
    }
    return ApiSettings(**(values | overrides))


class ApiServer:
    """The app under uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, who: str | None = "alice") -> httpx.Client:
        """An HTTP client authenticated as `who` (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {KEYS[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@dataclass
class Event:
    """One SSE event."""

    id: int
    event: str
    data: dict[str, Any]


@dataclass
class Stream:
    """What an events request returned: its events and how many keep-alive pings came with them."""

    events: list[Event]
    pings: int


def server_sent(lines: Iterable[str]) -> Iterator[Event | None]:
    """The events of an SSE body's lines, and None for each ping comment."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield None
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}


def read_events(client: httpx.Client, job_id: str, last_event_id: int | None = None) -> Stream:
    """Follow a job's events until the server ends the stream."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events, pings = [], 0
    with client.stream("GET", f"/v1/videos/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in server_sent(response.iter_lines()):
            if event is None:
                pings += 1
            else:
                events.append(event)
    return Stream(events, pings)


class EveryJobStream:
    """GET /v1/videos/events read in a thread: its events and pings so far, until the client closes."""

    def __init__(self, client: httpx.Client) -> None:
        self.events: list[Event] = []
        self.pings = 0
        self.status_code = 0
        self._client = client
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stream = self._client.stream("GET", "/v1/videos/events")
        with contextlib.suppress(httpx.HTTPError), stream as response:
            self.status_code = response.status_code
            for event in server_sent(response.iter_lines()):
                if event is None:
                    self.pings += 1
                else:
                    self.events.append(event)

    def wait(self, done: Callable[[list[Event]], bool], timeout: float = 60) -> list[Event]:
        """The events once `done` holds for them (the first ping means the stream is subscribed)."""
        deadline = time.monotonic() + timeout
        while not done(self.events):
            assert time.monotonic() < deadline and self._thread.is_alive(), self.events
            time.sleep(0.05)
        return list(self.events)

    def close(self) -> None:
        """End the stream (the server never does)."""
        self._client.close()
        self._thread.join(10)


FULL_REQUEST: dict[str, Any] = {
    "topic": "Fourier series",
    "description": "For second-year students",
    "language": "de",
    "models": {
        "default": "openai/gpt-4o-mini",
        "planner": "openai/gpt-4o",
        "scene": "openai/gpt-4.1",
        "helper": "openai/o4-mini",
    },
    "quality": "low",
    "max_scenes": 3,
    "voice": {"backend": "none", "voice": "en-gb"},
    "delivery": {"subtitles": False, "thumbnail": False, "chapters": False, "format": "mp4"},
    "max_cost_usd": 2.5,
    "priority": "high",
    "tags": ["maths", "term 2"],
    "webhook": {"url": "http://127.0.0.1:9/hook", "events": ["completed", "stage"]},
    "revision": {"parent": "fourier-series-1a2b3c", "instructions": "Slower, please", "scenes": [2]},
}
"""A REST body setting every request field to something other than its default (snake_case)."""


def create(client: httpx.Client, topic: str = "finish", **body: Any) -> dict[str, Any]:
    """POST a job; its JobResponse."""
    response = client.post("/v1/videos/generate", json={"topic": topic, **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for(client: httpx.Client, job_id: str, *phases: str, timeout: float = 30) -> dict[str, Any]:
    """Poll a job's status until its phase is one of `phases`."""
    deadline = time.monotonic() + timeout
    while True:
        status = dict(client.get(f"/v1/videos/jobs/{job_id}/status").json())
        if status["phase"] in phases:
            return status
        assert time.monotonic() < deadline, f"job {job_id} stayed {status['phase']}: {status['message']}"
        time.sleep(0.05)


def worker_processes(job_id: str) -> list[int]:
    """Pids of processes whose command line names the job (its worker)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if job_id.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording webhook calls; answers `statuses` in turn, then 204."""

    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""

    def wait(self, count: int, timeout: float = 30) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"{len(self.calls)} webhook calls, expected {count}"
            time.sleep(0.02)
        return self.calls


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A webhook receiver, running for the block."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.statuses.pop(0) if state.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver."""
    with receiving() as state:
        yield state


def verify_signature(headers: dict[str, str], body: bytes, secret: str = WEBHOOK_SECRET) -> None:
    """Check a Standard Webhooks signature as a receiver would."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 60


@pytest.fixture
def scripted_worker(tmp_path: Path) -> list[str]:
    """The command of the stand-in worker."""
    script = tmp_path / "scripted_worker.py"
    script.write_text(SCRIPTED_WORKER)
    return [sys.executable, str(script)]


BACKENDS = ["local", pytest.param("kubernetes", marks=pytest.mark.k8s)]
"""The `api` and `idle_api` fixtures run a test once per backend."""


@pytest.fixture(scope="session")
def api_operator_kubeconfig(k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test cluster with the CRD and the operator's RBAC; the operator's kubeconfig."""
    return prepare_cluster(k8s_cluster, tmp_path_factory.mktemp("api-operator"))


@contextlib.contextmanager
def kubernetes_api(
    request: pytest.FixtureRequest, folder: Path, *, run_jobs: bool, **overrides: Any
) -> Iterator[ApiServer]:
    """The API on the kubernetes backend in a fresh namespace with its operator; with `run_jobs`, the
    stand-in runner (tests/support/k8s_api.py) runs the jobs."""
    cluster: K8sCluster = request.getfixturevalue("k8s_cluster")
    operator_kubeconfig: Path = request.getfixturevalue("api_operator_kubeconfig")
    with deployment(cluster, operator_kubeconfig, folder) as (namespace, kubeconfig):
        settings = api_settings(
            folder / "out",
            backend="kubernetes",
            namespace=namespace,
            kubeconfig=kubeconfig,
            **({"queue_name": QUEUE} | overrides),
        )
        with ApiServer(settings) as server:
            if not run_jobs:
                yield server
                return
            with StandInRunner(cluster, namespace, server.app.state.services.backend.artifacts.storage):
                yield server


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path, scripted_worker: list[str]) -> Iterator[ApiServer]:
    """A deployment that runs its jobs: stand-in workers (local) or the stand-in runner (kubernetes)."""
    if request.param == "kubernetes":
        with kubernetes_api(request, tmp_path, run_jobs=True) as server:
            yield server
        return
    with ApiServer(api_settings(tmp_path / "out", worker_command=scripted_worker)) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def idle_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """A deployment that queues jobs but runs none (local: 0 workers; kubernetes: no one admits them)."""
    if request.param == "kubernetes":
        with kubernetes_api(request, tmp_path, run_jobs=False, max_active_jobs=3) as server:
            yield server
        return
    with ApiServer(api_settings(tmp_path / "out", local_workers=0, max_active_jobs=3)) as server:
        yield server


@pytest.fixture
def local_api(tmp_path: Path, scripted_worker: list[str]) -> Iterator[ApiServer]:
    """The local backend with the stand-in worker, for tests of its worker processes."""
    with ApiServer(api_settings(tmp_path / "out", worker_command=scripted_worker)) as server:
        yield server


@pytest.fixture
def local_idle_api(tmp_path: Path) -> Iterator[ApiServer]:
    """The local backend with 0 workers, for tests of routes that do not depend on the backend."""
    with ApiServer(api_settings(tmp_path / "out", local_workers=0, max_active_jobs=3)) as server:
        yield server


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status naming these fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = dict(response.json())
    assert problem["status"] == status and problem["title"]
    for name in fields:
        named = [e["field"] for e in problem["errors"] if f"{e['field']}.".startswith(f"{name}.")]
        assert named and name in problem["detail"], problem
    return problem


# --- creating, reading, following -------------------------------------------------------------------
