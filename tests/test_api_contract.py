"""The REST contract over real HTTP (uvicorn on 127.0.0.1), on both backends where it is the backend's.

Written against the routes only: tests with the `api` and `idle_api` fixtures run once on the local
backend (scripted workers: a small script speaking the worker protocol, a WorkOrder line in, JobStatus
lines out, stop at the end of stdin) and once on the kubernetes backend (the real test control plane and
operator, a stand-in runner patching the VideoJob status: tests/support/k8s_api.py). Tests of what only
the local backend has (worker processes, its database) use `local_api`; tests of routes alone use
`local_idle_api`. The runner itself runs in tests/test_api_e2e.py; the kubernetes backend's own
behaviour (labels, suspend, the watch) is tested in tests/test_api_k8s.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import (
    BACKENDS,
    KEYS,
    PROBLEM,
    VIDEO_BYTES,
    ApiServer,
    Event,
    EveryJobStream,
    Receiver,
    api_settings,
    assert_problem,
    create,
    kubernetes_api,
    read_events,
    verify_signature,
    wait_for,
    worker_processes,
)
from cli_runs import VIDEOJOBS, cli_env
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from s3_server import S3Server

from videojobs.artifacts import OUTLINE_FILE, SceneFiles
from videojobs.settings import Settings
from videojobs_api import routes
from videojobs_api.auth import KeyTable
from videojobs_api.backends.base import ArtifactStore
from videojobs_api.routes import InFlightKeys
from videojobs_api.settings import ApiSettings
from videojobs_api.webhooks import Outcome, WebhookDispatcher, is_public


def test_a_job_runs_to_succeeded_and_its_events_come_in_order(api: ApiServer) -> None:
    with api.client() as alice:
        response = alice.post("/v1/videos/generate", json={"topic": "finish", "tags": ["demo"]})
        assert response.status_code == 202
        job = response.json()
        assert response.headers["location"] == f"{api.url}/v1/videos/jobs/{job['id']}"
        assert job["phase"] in {"Pending", "Queued", "Running"} and job["owner"] == "alice"
        assert job["request"]["tags"] == ["demo"] and job["urls"]["events"].endswith("/events")

        stream = read_events(alice, job["id"], last_event_id=0)
        ids = [event.id for event in stream.events]
        assert ids == sorted(set(ids)) and ids[0] >= 1
        phases = [event.data["phase"] for event in stream.events]
        assert phases[0] in {"Pending", "Queued"} and phases[-1] == "Succeeded" and "Running" in phases
        progress = [event.data["progress"] for event in stream.events]
        assert progress == sorted(progress) and progress[-1] == 100
        assert all(event.event == "status" for event in stream.events)
        etas = [event.data["estimated_completion_time"] for event in stream.events]
        assert "2030-01-01T00:00:00Z" in etas and etas[-1] is None  # the runner's ETA, cleared at the end
        assert alice.get(f"/v1/videos/jobs/{job['id']}").json()["estimated_completion_time"] is None

        status = alice.get(f"/v1/videos/jobs/{job['id']}/status").json()
        assert status == stream.events[-1].data
        assert status["scenes"] == {"total": 3, "rendered": 3, "failed": 0, "ready": "3/3"}
        assert status["duration_seconds"] == 1.0 and status["completed_at"] is not None


def test_every_job_stream_shows_the_callers_jobs_live_and_an_admin_every_job(api: ApiServer) -> None:
    alice_stream = EveryJobStream(api.client())
    root_stream = EveryJobStream(api.client("root"))
    try:
        alice_stream.wait(lambda _: alice_stream.pings > 0)
        root_stream.wait(lambda _: root_stream.pings > 0)
        with api.client() as alice, api.client("bob") as bob:
            mine = {create(alice)["id"], create(alice)["id"]}
            theirs = create(bob)["id"]

            def ended(ids: set[str]) -> Callable[[list[Event]], bool]:
                return lambda events: {e.data["id"] for e in events if e.data["phase"] == "Succeeded"} >= ids

            seen = alice_stream.wait(ended(mine))
            assert alice_stream.status_code == 200
            assert {event.data["id"] for event in seen} == mine  # never bob's
            for job_id in mine:
                progress = [e.data["progress"] for e in seen if e.data["id"] == job_id]
                assert len(progress) > 1 and progress == sorted(progress) and progress[-1] == 100
                assert seen[-1].data == alice.get(f"/v1/videos/jobs/{seen[-1].data['id']}/status").json()
            assert {e.data["id"] for e in root_stream.wait(ended(mine | {theirs}))} == mine | {theirs}
    finally:
        alice_stream.close()
        root_stream.close()
    with api.client(None) as anonymous:
        assert_problem(anonymous.get("/v1/videos/events"), 401)


def test_events_resume_after_last_event_id_and_close_after_the_end(api: ApiServer) -> None:
    with api.client() as alice:
        job_id = create(alice)["id"]
        wait_for(alice, job_id, "Succeeded")
        everything = read_events(alice, job_id, last_event_id=0).events
        assert len(everything) >= 4

        assert [e.id for e in read_events(alice, job_id).events] == [everything[-1].id]  # latest only
        resumed = read_events(alice, job_id, last_event_id=everything[1].id).events
        assert [e.data for e in resumed] == [e.data for e in everything[2:]]
        assert read_events(alice, job_id, last_event_id=everything[-1].id).events == []


def test_a_live_stream_pings_and_ends_with_the_cancellation(api: ApiServer) -> None:
    with api.client() as alice, api.client() as other:
        job_id = create(alice, "hang")["id"]
        wait_for(alice, job_id, "Running")
        timer = threading.Timer(0.7, lambda: other.post(f"/v1/videos/jobs/{job_id}/cancel"))
        timer.start()
        stream = read_events(alice, job_id)
        timer.join()
        assert stream.pings >= 2  # every 0.2 s while the job sat in rendering
        assert stream.events[-1].data["phase"] == "Cancelled"


def test_a_failed_job_says_where_and_why(api: ApiServer) -> None:
    with api.client() as alice:
        job_id = create(alice, "fail")["id"]
        status = wait_for(alice, job_id, "Failed")
        assert status["error"] == {
            "stage": "rendering",
            "message": "scene 2 failed",
            "recoverable": True,
            "suggestion": "",
        }
        assert_problem(alice.get(f"/v1/videos/jobs/{job_id}/download"), 409)


def test_a_failed_job_is_retried_from_where_it_stopped(api: ApiServer) -> None:
    with api.client() as alice, api.client("bob") as bob:
        job_id = create(alice, "fail once")["id"]
        wait_for(alice, job_id, "Failed")
        assert_problem(bob.post(f"/v1/videos/jobs/{job_id}/retry"), 404)
        retried = alice.post(f"/v1/videos/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        status = wait_for(alice, job_id, "Succeeded", timeout=60)
        assert status["error"] is None and status["progress"] == 100
        assert_problem(alice.post(f"/v1/videos/jobs/{job_id}/retry"), 409)


def test_jobs_are_listed_newest_first_a_page_at_a_time(idle_api: ApiServer) -> None:
    with idle_api.client() as alice, idle_api.client("bob") as bob:
        ids = [create(alice, f"topic {n}")["id"] for n in range(3)]
        for job_id in ids:
            wait_for(alice, job_id, "Queued")
        alice.post(f"/v1/videos/jobs/{ids[1]}/cancel")
        bobs = create(bob, "bob's")["id"]

        seen, cursor = [], None
        while True:
            page = alice.get("/v1/videos/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            body = page.json()
            seen += [job["id"] for job in body["data"]]
            assert body["has_more"] == (body["next_cursor"] is not None)
            if not body["has_more"]:
                break
            cursor = body["next_cursor"]
        assert seen == ids[::-1]

        queued = alice.get("/v1/videos/jobs", params={"status": "Queued"}).json()["data"]
        assert [job["id"] for job in queued] == [ids[2], ids[0]]
        both = alice.get("/v1/videos/jobs", params=[("status", "Queued"), ("status", "Cancelled")])
        assert len(both.json()["data"]) == 3
        assert_problem(alice.get("/v1/videos/jobs", params={"cursor": "not-a-cursor"}), 422, "cursor")
        assert_problem(alice.get("/v1/videos/jobs", params={"limit": 0}), 422, "limit")
        assert_problem(alice.get("/v1/videos/jobs", params={"status": "Sleeping"}), 422, "status")
        assert [job["id"] for job in bob.get("/v1/videos/jobs").json()["data"]] == [bobs]


# --- validation, auth, isolation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": ""}, "topic"),
        ({"topic": "x" * 501}, "topic"),
        ({"topic": "t", "quality": "ultra"}, "quality"),
        ({"topic": "t", "priority": "asap"}, "priority"),
        ({"topic": "t", "delivery": {"format": "webm"}}, "delivery.format"),
        ({"topic": "t", "max_cost_usd": 0}, "max_cost_usd"),
        ({"topic": "t", "tags": ["x"] * 21}, "tags"),
        ({"topic": "t", "webhook": {"url": "not a url"}}, "webhook.url"),
        ({"topic": "t", "delivery": {"subtitles": "perhaps"}}, "delivery.subtitles"),
        ({"topic": "t", "delivery": {"thumbnail": 0}}, "delivery.thumbnail"),
        ({"topic": "t", "max_cost_usd": "5"}, "max_cost_usd"),
        ({"topic": "t", "max_scenes": "5"}, "max_scenes"),
        ({"topic": "t", "max_scenes": 13}, "max_scenes"),
        ({"topic": "t", "models": {"default": ""}}, "models.default"),
        ({"topic": "t", "maxScenes": 3}, "maxScenes"),
        ({"topic": "t", "webhook": {"url": "ftp://example.com/hook"}}, "webhook.url"),
        ({"topic": "t", "webhook": {"url": "https://example.com/h", "events": ["always"]}}, "webhook.events"),
        ({"topic": "t", "surprise": 1}, "surprise"),
        ({"topic": "t", "language": "not a tag"}, "language"),
        ({"topic": "t", "language": "sw", "voice": {"backend": "espeak"}}, "language"),
        ({"topic": "t", "language": "sw"}, "language"),  # the deployment's default backend is espeak
        ({}, "topic"),
    ],
)
def test_invalid_bodies_are_422_problems_naming_the_field(
    local_idle_api: ApiServer, body: dict[str, Any], field: str
) -> None:
    with local_idle_api.client() as alice:
        assert_problem(alice.post("/v1/videos/generate", json=body), 422, field)
        assert alice.get("/v1/videos/jobs").json()["data"] == []


def test_unparsable_json_is_a_422_problem(local_idle_api: ApiServer) -> None:
    with local_idle_api.client() as alice:
        response = alice.post(
            "/v1/videos/generate", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(response, 422, "body")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": f"Basic {KEYS['alice']}"}],
)
def test_missing_or_invalid_keys_are_401_problems(local_idle_api: ApiServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=local_idle_api.url, headers=headers) as anonymous:
        for response in (
            anonymous.post("/v1/videos/generate", json={"topic": "t"}),
            anonymous.get("/v1/videos/jobs"),
            anonymous.get("/v1/videos/jobs/some-job/stream"),
        ):
            problem = assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            assert KEYS["alice"] not in response.text and "wrong-key" not in problem["detail"]


def test_keys_are_held_hashed_and_never_echoed(tmp_path: Path) -> None:
    secret_file = tmp_path / "keys"
    digest = hashlib.sha256(b"carol-key-0123456789").hexdigest()
    secret_file.write_text(f"# mounted from a Secret\ncarol:admin:sha256:{digest}\n")
    settings = ApiSettings(keys=f"alice:user:{KEYS['alice']}", keys_file=secret_file)
    assert [(key.name, key.role.value) for key in settings.keys] == [("alice", "user"), ("carol", "admin")]
    assert KEYS["alice"] not in repr(settings) and KEYS["alice"] not in settings.model_dump_json()
    table = KeyTable(settings.keys)
    assert table.authenticate(
        HTTPAuthorizationCredentials(scheme="Bearer", credentials="carol-key-0123456789")
    )
    with pytest.raises(ValidationError) as error:
        ApiSettings(keys="dave:user:too-short")
    assert "too-short" not in str(error.value)


def test_another_principals_job_is_404_and_an_admin_sees_all(idle_api: ApiServer) -> None:
    with idle_api.client() as alice, idle_api.client("bob") as bob, idle_api.client("root") as root:
        job_id = wait_for(alice, create(alice)["id"], "Queued")["id"]
        for method, path in [
            ("GET", ""),
            ("GET", "/status"),
            ("GET", "/events"),
            ("GET", "/stream"),
            ("GET", "/metadata"),
            ("POST", "/cancel"),
            ("DELETE", ""),
        ]:
            assert_problem(bob.request(method, f"/v1/videos/jobs/{job_id}{path}"), 404)
        assert bob.get("/v1/videos/jobs").json()["data"] == []
        assert [job["id"] for job in root.get("/v1/videos/jobs").json()["data"]] == [job_id]
        assert root.get(f"/v1/videos/jobs/{job_id}").json()["owner"] == "alice"
        assert alice.get(f"/v1/videos/jobs/{job_id}/status").json()["phase"] == "Queued"  # untouched


@pytest.mark.parametrize(
    "path",
    [
        "/v1/videos/jobs/..%2F..%2Fetc%2Fpasswd/stream",
        "/v1/videos/jobs/%2e%2e/metadata",
        "/v1/videos/jobs/..%2F.videojobs-api.sqlite3/download",
        "/v1/videos/jobs/Upper-Case/status",
        "/v1/videos/jobs/under_score/thumbnail",
        "/v1/videos/jobs/-leading-dash/subtitles",
        "/v1/videos/jobs/job%00id/status",
        "/v1/videos/jobs/" + "a" * 64 + "/status",
        "/v1/videos/jobs/a%20b/events",
        "/v1/videos/jobs/..%2F..%2Fetc/scenes",
        "/v1/videos/jobs/%2e%2e/scenes/1/thumbnail",
    ],
)
def test_malformed_ids_never_reach_storage(
    local_idle_api: ApiServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("storage was touched")

    monkeypatch.setattr(ArtifactStore, "locate_file", forbidden)
    monkeypatch.setattr(ArtifactStore, "read", forbidden)
    monkeypatch.setattr(routes, "stored_scenes", forbidden)
    with local_idle_api.client() as alice:
        response = alice.get(path)
        assert response.status_code in {404, 422}, response.text
        assert response.headers["content-type"] == PROBLEM


# --- idempotency and limits ---------------------------------------------------------------------------


def test_idempotency_key_replays_the_job_and_refuses_another_body(idle_api: ApiServer) -> None:
    with idle_api.client() as alice, idle_api.client("bob") as bob:
        key = {"Idempotency-Key": "order-42"}
        first = alice.post("/v1/videos/generate", json={"topic": "t"}, headers=key)
        again = alice.post("/v1/videos/generate", json={"topic": "t", "priority": "normal"}, headers=key)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]

        other = alice.post("/v1/videos/generate", json={"topic": "another"}, headers=key)
        assert_problem(other, 422, "Idempotency-Key")
        assert (
            bob.post("/v1/videos/generate", json={"topic": "t"}, headers=key).json()["id"]
            != first.json()["id"]
        )
        assert_problem(
            alice.post("/v1/videos/generate", json={"topic": "t"}, headers={"Idempotency-Key": ""}), 422
        )
        assert len(alice.get("/v1/videos/jobs").json()["data"]) == 1

        assert alice.delete(f"/v1/videos/jobs/{first.json()['id']}").status_code == 204
        fresh = alice.post("/v1/videos/generate", json={"topic": "another"}, headers=key)  # the key is free
        assert fresh.status_code == 202 and "idempotent-replayed" not in fresh.headers
        assert [job["request"]["topic"] for job in alice.get("/v1/videos/jobs").json()["data"]] == ["another"]


def test_concurrent_retries_make_one_job(idle_api: ApiServer) -> None:
    def post(_: int) -> httpx.Response:
        with idle_api.client() as alice:
            return alice.post("/v1/videos/generate", json={"topic": "t"}, headers={"Idempotency-Key": "same"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert {r.status_code for r in responses} <= {202, 409}
    assert len({r.json()["id"] for r in responses if r.status_code == 202}) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"].endswith("idempotency-key-in-use")


def test_a_retry_while_the_first_request_is_in_flight_is_a_conflict() -> None:
    keys = InFlightKeys()
    with keys.hold("alice", "k"):
        with pytest.raises(Exception, match="Retry once the first request"), keys.hold("alice", "k"):
            pass
        with keys.hold("bob", "k"), keys.hold("alice", None), keys.hold("alice", None):
            pass
    with keys.hold("alice", "k"):
        pass


def test_over_the_active_job_cap_is_429_with_retry_after(idle_api: ApiServer) -> None:
    with idle_api.client() as alice, idle_api.client("bob") as bob:
        ids = [create(alice, f"t{n}")["id"] for n in range(3)]
        response = alice.post("/v1/videos/generate", json={"topic": "one too many"})
        assert_problem(response, 429)
        assert response.headers["retry-after"] == "30"
        create(bob)  # the cap is per principal
        alice.post(f"/v1/videos/jobs/{ids[0]}/cancel")
        create(alice, "fits again")


# --- daily budgets ----------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def budget_api(
    request: pytest.FixtureRequest, tmp_path: Path, scripted_worker: list[str]
) -> Iterator[ApiServer]:
    """A deployment running its jobs, with a $1 daily budget per principal and $0.30 for bob."""
    budgets: dict[str, Any] = {"daily_budget_usd": 1.0, "daily_budgets_usd": {"bob": 0.3}}
    if request.param == "kubernetes":
        with kubernetes_api(request, tmp_path, run_jobs=True, **budgets) as server:
            yield server
        return
    with ApiServer(api_settings(tmp_path / "out", worker_command=scripted_worker, **budgets)) as server:
        yield server


def spent(client: httpx.Client, job_id: str, cost: float) -> None:
    """Wait until the job's usage shows `cost`."""
    deadline = time.monotonic() + 30
    while client.get(f"/v1/videos/jobs/{job_id}/status").json()["usage"]["cost_usd"] != cost:
        assert time.monotonic() < deadline, f"job {job_id} never reported ${cost}"
        time.sleep(0.05)


def test_a_daily_budget_caps_each_job_and_then_refuses_until_utc_midnight(budget_api: ApiServer) -> None:
    with budget_api.client() as alice, budget_api.client("bob") as bob:
        first = create(alice, "costly", max_cost_usd=5.0)
        assert first["request"]["max_cost_usd"] == 1.0  # capped to the whole budget
        wait_for(alice, first["id"], "Succeeded")
        second = create(alice, "costly hang")
        assert second["request"]["max_cost_usd"] == 0.6  # what is left
        wait_for(alice, second["id"], "Running")
        spent(alice, second["id"], 0.4)

        # $0.80 spent and $0.20 held by the running job: nothing left
        refused = alice.post("/v1/videos/generate", json={"topic": "one more"})
        problem = assert_problem(refused, 429)
        assert problem["type"].endswith(":daily-budget-exhausted")
        midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
        assert datetime.fromisoformat(problem["resets_at"]) == midnight
        assert 0 < int(refused.headers["retry-after"]) <= 86400
        assert "of your $1.00 daily budget" in problem["detail"]

        alice.post(f"/v1/videos/jobs/{second['id']}/cancel")  # frees what it held
        third = create(alice, "hang", max_cost_usd=0.1)
        assert third["request"]["max_cost_usd"] == 0.1  # under what is left: kept
        retried = alice.post(f"/v1/videos/jobs/{second['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["request"]["max_cost_usd"] == 0.5  # its $0.40 and the $0.10 left
        assert_problem(alice.post("/v1/videos/generate", json={"topic": "none left"}), 429)

        assert create(bob, max_cost_usd=1.0)["request"]["max_cost_usd"] == 0.3  # bob's own budget


# --- cancel, delete, restart --------------------------------------------------------------------------


def test_cancel_stops_the_running_worker(local_api: ApiServer) -> None:
    with local_api.client() as alice:
        job_id = create(alice, "hang")["id"]
        wait_for(alice, job_id, "Running")
        deadline = time.monotonic() + 10
        while not worker_processes(job_id):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        response = alice.post(f"/v1/videos/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["phase"] == "Cancelled"
        assert worker_processes(job_id) == []
        problem = assert_problem(alice.post(f"/v1/videos/jobs/{job_id}/cancel"), 409)
        assert problem["job"]["phase"] == "Cancelled"
        assert alice.get(f"/v1/videos/jobs/{job_id}/status").json()["phase"] == "Cancelled"


def test_delete_removes_the_job_and_its_artifacts(local_api: ApiServer) -> None:
    out = local_api.settings.runner.output_dir
    with local_api.client() as alice:
        finished = create(alice)["id"]
        wait_for(alice, finished, "Succeeded")
        running = create(alice, "hang")["id"]
        wait_for(alice, running, "Running")
        assert (out / finished / "video.mp4").exists()

        for job_id in (finished, running):
            assert alice.delete(f"/v1/videos/jobs/{job_id}").status_code == 204
            assert not (out / job_id).exists()
            assert not (out / ".work" / f"{job_id}.worker.log").exists()
            assert_problem(alice.get(f"/v1/videos/jobs/{job_id}"), 404)
            assert_problem(alice.delete(f"/v1/videos/jobs/{job_id}"), 404)
        assert worker_processes(running) == []


def test_queued_jobs_start_by_priority(tmp_path: Path, scripted_worker: list[str]) -> None:
    settings = api_settings(tmp_path / "out", worker_command=scripted_worker, local_workers=1)
    with ApiServer(settings) as api, api.client() as alice:
        first = create(alice, "hang")["id"]
        wait_for(alice, first, "Running")
        low = create(alice, "hang low", priority="low")["id"]
        urgent = create(alice, "hang urgent", priority="urgent")["id"]
        alice.post(f"/v1/videos/jobs/{first}/cancel")
        wait_for(alice, urgent, "Running")
        assert alice.get(f"/v1/videos/jobs/{low}/status").json()["phase"] == "Queued"
        alice.post(f"/v1/videos/jobs/{urgent}/cancel")
        wait_for(alice, low, "Running")
        alice.post(f"/v1/videos/jobs/{low}/cancel")


def test_workers_inherit_no_api_settings(
    tmp_path: Path, scripted_worker: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOJOBS_API_WEBHOOK_SECRET", "whsec_c2VjcmV0")
    monkeypatch.setenv("OPENAI_API_KEY", "for-the-runner")
    with ApiServer(api_settings(tmp_path, worker_command=scripted_worker)) as api, api.client() as alice:
        job_id = create(alice)["id"]
        wait_for(alice, job_id, "Succeeded")
    names = json.loads((tmp_path / job_id / "environment.json").read_text())
    assert "OPENAI_API_KEY" in names and not [name for name in names if name.startswith("VIDEOJOBS_API_")]


def test_a_restarted_server_resumes_interrupted_jobs(tmp_path: Path, scripted_worker: list[str]) -> None:
    settings = api_settings(tmp_path / "out", worker_command=scripted_worker)
    with ApiServer(settings) as first, first.client() as alice:
        job_id = create(alice, "hang once")["id"]
        wait_for(alice, job_id, "Running")
    assert worker_processes(job_id) == []  # stopped with the server, still Running in its database

    with ApiServer(settings) as second, second.client() as alice:
        status = wait_for(alice, job_id, "Succeeded")
        assert status["progress"] == 100
        events = read_events(alice, job_id, last_event_id=0).events
        interrupted = [e for e in events if "Interrupted by a server restart" in e.data["message"]]
        assert len(interrupted) == 1 and interrupted[0].data["phase"] == "Queued"
        assert [e.data["phase"] for e in events].count("Running") >= 2
    assert (settings.runner.output_dir / job_id / "runs.txt").read_text() == "2"


# --- video routes -------------------------------------------------------------------------------------


def test_video_routes_of_an_unfinished_job_are_409_with_its_status(idle_api: ApiServer) -> None:
    with idle_api.client() as alice:
        job_id = wait_for(alice, create(alice)["id"], "Queued")["id"]
        for route in ("video-url", "stream", "download", "thumbnail", "subtitles", "metadata"):
            problem = assert_problem(alice.get(f"/v1/videos/jobs/{job_id}/{route}"), 409)
            assert problem["job"]["id"] == job_id and problem["job"]["phase"] == "Queued"


def test_stream_serves_ranges(api: ApiServer) -> None:
    size = len(VIDEO_BYTES)
    with api.client() as alice:
        job_id = create(alice, "The Pythagorean Theorem!")["id"]
        wait_for(alice, job_id, "Succeeded")
        stream = f"/v1/videos/jobs/{job_id}/stream"

        whole = alice.get(stream)
        assert (whole.status_code, whole.content) == (200, VIDEO_BYTES)
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
        assert whole.headers["content-disposition"] == 'inline; filename="the-pythagorean-theorem.mp4"'

        for header, start, end in [
            ("bytes=0-99", 0, 99),
            ("bytes=-100", size - 100, size - 1),
            ("bytes=10000-", 10000, size - 1),
        ]:
            part = alice.get(stream, headers={"Range": header})
            assert part.status_code == 206, header
            assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
            assert part.content == VIDEO_BYTES[start : end + 1]
        multi = alice.get(stream, headers={"Range": "bytes=0-9,20-29"})
        assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")

        unsatisfiable = alice.get(stream, headers={"Range": f"bytes={size}-"})
        assert (
            unsatisfiable.status_code == 416 and unsatisfiable.headers["content-range"] == f"bytes */{size}"
        )
        assert alice.get(stream, headers={"Range": "bytes=9-1"}).status_code in {400, 416}
        assert alice.get(stream, headers={"Range": "pages=1-2"}).status_code in {200, 400, 416}


def test_download_thumbnail_subtitles_and_metadata(api: ApiServer) -> None:
    with api.client() as alice:
        job_id = create(alice, "Waves & Sound")["id"]
        bare = create(alice, "bare", delivery={"subtitles": False, "thumbnail": False})["id"]
        wait_for(alice, job_id, "Succeeded")
        wait_for(alice, bare, "Succeeded")
        base = f"/v1/videos/jobs/{job_id}"

        download = alice.get(f"{base}/download")
        assert download.content == VIDEO_BYTES
        assert download.headers["content-disposition"] == 'attachment; filename="waves-sound.mp4"'
        thumbnail = alice.get(f"{base}/thumbnail")
        assert thumbnail.headers["content-type"] == "image/jpeg" and thumbnail.content.startswith(b"\xff\xd8")
        vtt = alice.get(f"{base}/subtitles")
        assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
        srt = alice.get(f"{base}/subtitles", params={"format": "srt"})
        assert srt.headers["content-type"].startswith("application/x-subrip") and srt.text.startswith("1\n")
        assert_problem(alice.get(f"{base}/subtitles", params={"format": "ass"}), 422, "format")
        assert alice.get(f"{base}/metadata").json() == {"id": job_id, "duration_seconds": 1.0}

        assert_problem(alice.get(f"/v1/videos/jobs/{bare}/subtitles"), 404)
        assert_problem(alice.get(f"/v1/videos/jobs/{bare}/thumbnail"), 404)


def test_video_url_is_signed_and_expires(api: ApiServer) -> None:
    with api.client() as alice, api.client(None) as anonymous:
        job_id = create(alice)["id"]
        wait_for(alice, job_id, "Succeeded")
        video = alice.get(f"/v1/videos/jobs/{job_id}/video-url").json()
        assert video["kind"] == "api" and video["url"].startswith(
            f"{api.url}/v1/videos/jobs/{job_id}/stream?"
        )
        assert (
            3500
            < time.mktime(time.strptime(video["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
            - time.mktime(time.gmtime())
            < 3700
        )

        signed = anonymous.get(video["url"], headers={"Range": "bytes=0-9"})
        assert (signed.status_code, signed.content) == (206, VIDEO_BYTES[:10])
        download = anonymous.get(video["download_url"])
        assert video["download_url"].startswith(f"{api.url}/v1/videos/jobs/{job_id}/download?")
        assert (download.status_code, download.content) == (200, VIDEO_BYTES)
        assert download.headers["content-disposition"] == 'attachment; filename="finish.mp4"'
        url = httpx.URL(video["url"])
        expires, signature = url.params["expires"], url.params["signature"]
        for params in (
            {"expires": str(int(expires) + 1), "signature": signature},
            {"expires": expires, "signature": signature[:-2] + "AA"},
            {"expires": expires, "signature": "i\u00f2\u00b3z"},  # non-ASCII: a 401, not a 500
            {"expires": "1", "signature": signature},
            {"expires": expires},
        ):
            assert_problem(anonymous.get(url.copy_with(params=params)), 401)
        other = create(alice)["id"]
        wait_for(alice, other, "Succeeded")
        assert_problem(
            anonymous.get(
                f"/v1/videos/jobs/{other}/stream", params={"expires": expires, "signature": signature}
            ),
            401,
        )


@pytest.mark.s3
def test_with_s3_storage_video_routes_redirect_to_presigned_urls(
    tmp_path: Path, scripted_worker: list[str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.create_bucket()
    for name, value in s3_server.env(bucket).items():  # credentials for the server and its workers
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "out"))  # the database and worker logs stay local
    settings = api_settings(tmp_path / "out", worker_command=scripted_worker, runner=Settings())
    with ApiServer(settings) as api, api.client() as alice, httpx.Client() as outside:
        job_id = create(alice)["id"]
        wait_for(alice, job_id, "Succeeded")
        video = alice.get(f"/v1/videos/jobs/{job_id}/video-url").json()
        assert video["kind"] == "presigned" and video["url"].startswith(s3_server.endpoint_url)
        presigned_download = outside.get(video["download_url"])
        assert presigned_download.content == VIDEO_BYTES
        assert presigned_download.headers["content-disposition"] == 'attachment; filename="finish.mp4"'
        part = outside.get(video["url"], headers={"Range": "bytes=0-9"})
        assert (part.status_code, part.content) == (206, VIDEO_BYTES[:10])

        redirect = alice.get(f"/v1/videos/jobs/{job_id}/stream")
        assert redirect.status_code == 307 and redirect.headers["location"].startswith(s3_server.endpoint_url)
        assert outside.get(redirect.headers["location"]).content == VIDEO_BYTES
        download = outside.get(alice.get(f"/v1/videos/jobs/{job_id}/download").headers["location"])
        assert download.headers["content-disposition"] == 'attachment; filename="finish.mp4"'
        assert alice.get(f"/v1/videos/jobs/{job_id}/metadata").json()["id"] == job_id

        one = SceneFiles(1)
        store(api, job_id, {OUTLINE_FILE: OUTLINE, one.render: b"{}", one.thumbnail: POSTER})
        (scene,) = [s for s in alice.get(f"/v1/videos/jobs/{job_id}/scenes").json()["data"] if s["thumbnail"]]
        poster = alice.get(scene["thumbnail"])
        assert poster.status_code == 307 and poster.headers["location"].startswith(s3_server.endpoint_url)
        assert outside.get(poster.headers["location"]).content == POSTER
        assert_problem(alice.get(f"/v1/videos/jobs/{job_id}/scenes/2/thumbnail"), 404)  # none yet, on S3 too

        assert alice.delete(f"/v1/videos/jobs/{job_id}").status_code == 204
        listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="videojobs/")
        assert listed.get("KeyCount", 0) == 0


# --- scenes -------------------------------------------------------------------------------------------

OUTLINE = json.dumps(
    {"title": "Shapes", "scenes": [{"title": t, "purpose": "p"} for t in ("Circle", "Square", "Sum")]}
).encode()
POSTER = b"\xff\xd8\xff\xe0 a scene's poster"


def store(api: ApiServer, job_id: str, files: dict[str, bytes]) -> None:
    """Put artifacts of a job into the deployment's storage, as its runner would."""
    storage = api.app.state.services.backend.artifacts.storage
    for name, data in files.items():
        storage.put_bytes(f"{job_id}/{name}", data)


def test_a_running_jobs_scenes_show_their_states_and_thumbnails(local_api: ApiServer) -> None:
    with local_api.client() as alice, local_api.client("bob") as bob:
        job_id = create(alice, "hang")["id"]
        wait_for(alice, job_id, "Running")
        scenes = f"/v1/videos/jobs/{job_id}/scenes"
        assert alice.get(f"/v1/videos/jobs/{job_id}").json()["urls"]["scenes"] == scenes
        assert alice.get(scenes).json() == {"data": []}  # no outline yet

        one, two = SceneFiles(1), SceneFiles(2)
        store(local_api, job_id, {OUTLINE_FILE: OUTLINE, one.code(1): b"", two.code(1): b""})
        store(local_api, job_id, {two.error(1): b"its first try failed"})
        listed = alice.get(scenes).json()["data"]
        assert [(s["index"], s["title"], s["state"]) for s in listed] == [
            (1, "Circle", "rendering"),
            (2, "Square", "rendering"),  # being fixed
            (3, "Sum", "planned"),
        ]
        assert [(s["code_versions"], s["thumbnail"]) for s in listed] == [(1, None), (1, None), (0, None)]
        assert_problem(alice.get(f"{scenes}/1/thumbnail"), 404)  # not yet

        store(local_api, job_id, {one.video: b"", one.render: b"{}", one.thumbnail: POSTER, two.code(2): b""})
        first, second, _ = alice.get(scenes).json()["data"]
        assert (first["state"], first["thumbnail"]) == ("rendered", f"{scenes}/1/thumbnail")
        assert (second["state"], second["code_versions"]) == ("rendering", 2)
        poster = alice.get(first["thumbnail"])
        assert (poster.status_code, poster.content) == (200, POSTER)
        assert poster.headers["content-type"] == "image/jpeg"
        assert poster.headers["content-disposition"] == 'inline; filename="hang-scene-01.jpg"'
        for index in (2, 3, 4, 99):
            assert_problem(alice.get(f"{scenes}/{index}/thumbnail"), 404)
        assert_problem(alice.get(f"{scenes}/0/thumbnail"), 422, "index")
        assert_problem(bob.get(scenes), 404)
        assert_problem(bob.get(f"{scenes}/1/thumbnail"), 404)

        store(local_api, job_id, {two.error(2): b"still broken"})  # its last fix failed, then the job stops
        assert alice.post(f"/v1/videos/jobs/{job_id}/cancel").status_code == 200
        listed = alice.get(scenes).json()["data"]
        assert [s["state"] for s in listed] == ["rendered", "failed", "planned"]
        assert alice.get(listed[0]["thumbnail"]).content == POSTER  # in any phase


# --- webhooks -----------------------------------------------------------------------------------------


def test_webhooks_are_signed_and_sent_at_stage_changes_and_the_end(
    api: ApiServer, receiver: Receiver
) -> None:
    with api.client() as alice:
        job_id = create(alice, webhook={"url": receiver.url, "events": ["completed", "stage"]})["id"]
        wait_for(alice, job_id, "Succeeded")
        calls = receiver.wait(1)
        deadline = time.monotonic() + 10
        # Each event is its own delivery (with its own retries): they may arrive in any order.
        while "video.job.succeeded" not in [json.loads(body)["type"] for _, body in calls]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    for headers, body in calls:
        verify_signature(headers, body)
        assert headers["webhook-id"].startswith(f"msg_{job_id}_")
    types = [json.loads(body)["type"] for _, body in calls]
    assert types.count("video.job.succeeded") == 1 and types.count("video.job.stage") >= 2
    (final,) = [json.loads(body) for _, body in calls if json.loads(body)["type"] == "video.job.succeeded"]
    assert final["data"]["id"] == job_id and final["data"]["phase"] == "Succeeded"


def deliveries(settings: ApiSettings, *sends: tuple[str, str]) -> list[Outcome]:
    """Deliver `(url, message id)` pairs in turn with a fresh dispatcher; their outcomes."""

    async def deliver() -> list[Outcome]:
        dispatcher = WebhookDispatcher(settings, CollectorRegistry())
        try:
            return [await dispatcher.deliver(url, message_id, b"{}") for url, message_id in sends]
        finally:
            await dispatcher.aclose()

    return asyncio.run(deliver())


def test_webhook_deliveries_retry_after_server_errors(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [503, 500, 200, 400]
    outcomes = deliveries(api_settings(tmp_path), (receiver.url, "msg_1"), (receiver.url, "msg_2"))
    assert outcomes == [Outcome.DELIVERED, Outcome.REJECTED]
    assert [headers["webhook-id"] for headers, _ in receiver.calls] == ["msg_1"] * 3 + ["msg_2"]


def test_webhooks_to_private_addresses_are_refused_at_connect_time(
    tmp_path: Path, receiver: Receiver
) -> None:
    port = httpx.URL(receiver.url).port
    urls = [f"https://127.0.0.1:{port}/hook", f"https://localhost:{port}/hook", receiver.url]
    outcomes = deliveries(
        api_settings(tmp_path, allow_insecure_webhooks=False), *((url, "m") for url in urls)
    )
    assert outcomes == [Outcome.REFUSED] * 3 and receiver.calls == []
    private = [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
    ]
    for address in [
        *private,
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ]:
        assert not is_public(ipaddress.ip_address(address)), address
    assert is_public(ipaddress.ip_address("93.184.215.14")) and is_public(
        ipaddress.ip_address("2606:4700::1")
    )


def test_webhook_urls_must_be_https_unless_allowed(tmp_path: Path) -> None:
    with (
        ApiServer(api_settings(tmp_path, allow_insecure_webhooks=False, local_workers=0)) as api,
        api.client() as alice,
    ):
        assert_problem(
            alice.post(
                "/v1/videos/generate", json={"topic": "t", "webhook": {"url": "http://example.com/h"}}
            ),
            422,
            "webhook.url",
        )
        create(alice, webhook={"url": "https://example.com/h"})
    with (
        ApiServer(api_settings(tmp_path / "b", webhook_secret=None, local_workers=0)) as api,
        api.client() as alice,
    ):
        assert_problem(
            alice.post(
                "/v1/videos/generate", json={"topic": "t", "webhook": {"url": "https://example.com/h"}}
            ),
            422,
            "webhook.url",
        )


# --- operations ---------------------------------------------------------------------------------------


def test_health_and_metrics(idle_api: ApiServer) -> None:
    with idle_api.client(None) as anonymous, idle_api.client() as alice:
        assert anonymous.get("/livez").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ok"}
        job_id = create(alice)["id"]
        alice.get(f"/v1/videos/jobs/{job_id}/status")
        metrics = anonymous.get("/metrics").text
        assert (
            'videojobs_api_requests_total{method="POST",route="/v1/videos/generate",status="202"} 1.0'
            in metrics
        )
        assert 'route="/v1/videos/jobs/{job_id}/status"' in metrics and job_id not in metrics
        assert KEYS["alice"] not in metrics
        assert "process_resident_memory_bytes " in metrics and "python_info{" in metrics


def test_the_local_backend_counts_tokens_and_cost_by_model(local_api: ApiServer) -> None:
    with local_api.client() as alice:
        wait_for(alice, create(alice, "costly")["id"], "Succeeded")
        metrics = alice.get("/metrics").text
        assert 'videojobs_llm_cost_usd_total{model="openai/gpt-4o"} 0.4' in metrics
        assert 'videojobs_llm_tokens_total{model="openai/gpt-4o",type="prompt"} 100.0' in metrics
        assert 'videojobs_llm_calls_total{model="openai/gpt-4o"} 1.0' in metrics


def test_videojobs_serve_starts_the_api(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = cli_env(
        OUTPUT_DIR=str(tmp_path),
        VIDEOJOBS_API_KEYS=f"alice:user:{KEYS['alice']}",
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    server = subprocess.Popen(
        [VIDEOJOBS, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            assert server.poll() is None and time.monotonic() < deadline, server.stdout
            time.sleep(0.1)
        jobs = httpx.get(
            f"http://127.0.0.1:{port}/v1/videos/jobs", headers={"Authorization": f"Bearer {KEYS['alice']}"}
        )
        assert jobs.json() == {"data": [], "next_cursor": None, "has_more": False}
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode()
    assert "Application shutdown complete" in log  # a graceful stop (uvicorn then re-raises the SIGTERM)
    assert "GET /v1/videos/jobs" in log and KEYS["alice"] not in log
    assert (tmp_path / ".videojobs-api.sqlite3").exists()
    assert not (tmp_path / "state").exists()  # configured keys: no key of its own (tests/test_serve_keys.py)


def test_a_finished_job_shows_when_it_expires_and_goes_then(
    tmp_path: Path, scripted_worker: list[str]
) -> None:
    settings = api_settings(tmp_path, job_ttl_seconds=2, worker_command=scripted_worker)
    with ApiServer(settings) as api, api.client() as alice:
        job_id = create(alice)["id"]
        assert alice.get(f"/v1/videos/jobs/{job_id}").json()["expires_at"] is None  # not finished yet
        status = wait_for(alice, job_id, "Succeeded")
        ended, expires = (datetime.fromisoformat(status[key]) for key in ("completed_at", "expires_at"))
        assert expires - ended == timedelta(seconds=2)
        deadline = time.monotonic() + 30
        while alice.get(f"/v1/videos/jobs/{job_id}").status_code != 404:
            assert time.monotonic() < deadline, "the expired job was not deleted"
            time.sleep(0.2)
        assert not (settings.runner.output_dir / job_id).exists()  # its artifacts went with it


@pytest.mark.k8s
def test_on_kubernetes_the_ttl_is_the_videojobs_and_expires_at_follows_it(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with kubernetes_api(request, tmp_path, run_jobs=True, job_ttl_seconds=3600) as api, api.client() as alice:
        job_id = create(alice)["id"]
        status = wait_for(alice, job_id, "Succeeded")
        ended, expires = (datetime.fromisoformat(status[key]) for key in ("completed_at", "expires_at"))
        assert expires - ended == timedelta(hours=1)
