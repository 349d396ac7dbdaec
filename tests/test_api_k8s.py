"""The kubernetes backend's own behaviour: VideoJobs with owner labels, cancel by spec.cancel, delete of the
VideoJob (its artifacts go by the operator's finalizer), reads from the watch cache, RBAC, and a cluster
that cannot be reached.

The shared REST contract runs on this backend too (tests/test_api_contract.py); the deployment and the
stand-in runner are in tests/support/k8s_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from api_harness import (
    FULL_REQUEST,
    KEYS,
    VIDEO_BYTES,
    ApiServer,
    Receiver,
    api_settings,
    assert_problem,
    create,
    kubernetes_api,
    wait_for,
)
from cli_runs import VIDEOJOBS, cli_env
from k8s_cluster import K8sCluster
from k8s_cluster import wait_for as poll
from kubernetes import client
from s3_server import S3Server

from videojobs import deadlines
from videojobs.contract import GenerationRequest, storage_job_id
from videojobs.crd import API_VERSION, KIND
from videojobs.settings import Settings
from videojobs_api.auth import Principal, Role
from videojobs_api.backends.apiserver import (
    CREDENTIALS_SECONDS,
    ApiServerError,
    VideoJobApi,
    load_configuration,
)
from videojobs_api.backends.kubernetes import KubernetesBackend, owner_label
from videojobs_api.events import EventBus
from videojobs_api.problems import BackendUnavailable, JobNotFound
from videojobs_api.settings import ApiSettings

URGENT = "videojobs-api-test-urgent"


@pytest.fixture
def k8s_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """The kubernetes backend with the stand-in runner."""
    with kubernetes_api(request, tmp_path, run_jobs=True) as server:
        yield server


@pytest.fixture
def k8s_idle_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """The kubernetes backend; its jobs stay Queued (nobody admits them)."""
    with kubernetes_api(request, tmp_path, run_jobs=False) as server:
        yield server


def kubectl_json(cluster: K8sCluster, api: ApiServer, *what: str) -> Any:
    done = cluster.kubectl("-n", api.settings.namespace, "get", *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.mark.k8s
def test_a_job_is_a_videojob_labelled_with_its_owner(
    request: pytest.FixtureRequest, k8s_cluster: K8sCluster, tmp_path: Path
) -> None:
    urgent = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": URGENT}}
    k8s_cluster.kubectl("apply", "-f", "-", input=json.dumps(urgent | {"value": 1000}))
    body = {key: value for key, value in FULL_REQUEST.items() if key != "revision"} | {"priority": "urgent"}
    with (
        kubernetes_api(request, tmp_path, run_jobs=False, priority_classes={"urgent": URGENT}) as api,
        api.client() as alice,
        api.client("root") as root,
    ):
        headers = {"Idempotency-Key": "k1"}
        job = alice.post("/v1/videos/generate", json=body, headers=headers).json()
        namespace = api.settings.namespace
        obj = kubectl_json(k8s_cluster, api, "videojob", job["id"])
        meta, spec = obj["metadata"], obj["spec"]
        assert meta["labels"]["videojobs.io/owner"] == "alice"
        assert "videojobs.io/idempotency-key" in meta["labels"]
        assert meta["annotations"]["videojobs.io/owner"] == "alice"
        assert set(meta["annotations"]) == {"videojobs.io/owner", "videojobs.io/created-at"} | {
            "videojobs.io/request-fingerprint"
        }, "the request lives in the spec, not in an annotation"
        assert job["request"] == body | {"revision": None}
        request_part = {key: spec[key] for key in GenerationRequest(**body).to_wire()}
        assert request_part == GenerationRequest.model_validate(body).to_wire()
        assert spec["maxCostUsd"] == 2.5 and spec["delivery"]["subtitles"] is False
        assert spec["queueName"] == "kueue" and spec["suspend"] is False
        assert spec["priorityClassName"] == URGENT
        listed = k8s_cluster.kubectl(
            "-n", namespace, "get", "vj", "-l", "videojobs.io/owner=alice", "-o", "name"
        )
        assert listed.stdout.split() == [f"videojob.videojobs.io/{job['id']}"]
        wait_for(alice, job["id"], "Queued")  # the operator's phase, read through the watch

        # A status patch as the runner makes it reaches status reads without a request of ours.
        patch = {"status": {"stage": "planning", "progress": 15, "message": "Creating scene outline"}}
        k8s_cluster.kubectl(
            "-n",
            namespace,
            "patch",
            "vj",
            job["id"],
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(patch),
        )

        def patched() -> dict[str, Any] | None:
            status = dict(alice.get(f"/v1/videos/jobs/{job['id']}/status").json())
            return status if status["progress"] == 15 else None

        status = poll("the patched status", patched, 10)
        assert status["stage"] == "planning" and status["phase"] == "Queued"

        # A VideoJob made with kubectl has no owner: only an admin sees it.
        manual = {
            "apiVersion": "videojobs.io/v1alpha1",
            "kind": "VideoJob",
            "metadata": {"name": "by-hand"},
            "spec": {"topic": "Made by hand", "suspend": True},
        }
        k8s_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manual))
        poll("the admin to see it", lambda: root.get("/v1/videos/jobs/by-hand").status_code == 200, 10)
        assert root.get("/v1/videos/jobs/by-hand").json()["request"]["topic"] == "Made by hand"
        assert_problem(alice.get("/v1/videos/jobs/by-hand"), 404)
        assert [j["id"] for j in alice.get("/v1/videos/jobs").json()["data"]] == [job["id"]]


@pytest.mark.k8s
def test_each_tenant_gets_its_own_local_queue(
    request: pytest.FixtureRequest, k8s_cluster: K8sCluster, tmp_path: Path
) -> None:
    queues = {"queue_name": "team-{principal}", "tenant_queues": {"bob": "shared-b"}}
    with (
        kubernetes_api(request, tmp_path, run_jobs=False, **queues) as api,
        api.client() as alice,
        api.client("bob") as bob,
    ):
        for client_, queue in ((alice, "team-alice"), (bob, "shared-b")):
            job = create(client_)
            assert kubectl_json(k8s_cluster, api, "videojob", job["id"])["spec"]["queueName"] == queue
            wait_for(client_, job["id"], "Queued")  # the operator leaves its admission to Kueue


def test_tenant_queues_by_name_or_by_pattern() -> None:
    settings = ApiSettings(queue_name="vj-{principal}", tenant_queues={"alice": "team-a"})
    assert settings.queue_for("alice") == "team-a"
    assert settings.queue_for("bob") == "vj-bob"
    odd = settings.queue_for("Carol@Example.com")
    assert odd is not None and odd.startswith("vj-carol-example-com-") and len(odd) <= 63
    assert ApiSettings().queue_for("bob") is None
    assert ApiSettings(queue_name="one").queue_for("bob") == "one"


def test_principal_names_become_label_values() -> None:
    assert owner_label("alice") == "alice"
    odd = owner_label("carol@example.com")
    assert odd.startswith("carol-example.com-") and len(odd) <= 63 and odd != owner_label("carol@example.org")


@pytest.mark.k8s
def test_cancel_sets_cancel_and_the_operator_deletes_the_job(
    k8s_cluster: K8sCluster, k8s_api: ApiServer
) -> None:
    namespace = k8s_api.settings.namespace
    with k8s_api.client() as alice:
        job_id = create(alice, "hang")["id"]
        wait_for(alice, job_id, "Running")
        assert kubectl_json(k8s_cluster, k8s_api, "jobs", "-l", f"videojobs.io/name={job_id}")["items"]

        response = alice.post(f"/v1/videos/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["phase"] == "Cancelled"
        assert kubectl_json(k8s_cluster, k8s_api, "videojob", job_id)["spec"]["cancel"] is True
        poll(
            "the operator to delete the Job",
            lambda: (
                not kubectl_json(k8s_cluster, k8s_api, "jobs", "-l", f"videojobs.io/name={job_id}")["items"]
            ),
        )
        problem = assert_problem(alice.post(f"/v1/videos/jobs/{job_id}/cancel"), 409)
        assert problem["job"]["phase"] == "Cancelled"
        conditions = kubectl_json(k8s_cluster, k8s_api, "videojob", job_id)["status"]["conditions"]
        assert any(c["type"] == "Cancelled" and c["reason"] == "Cancelled" for c in conditions), namespace


@pytest.mark.k8s
def test_delete_removes_the_videojob_its_job_and_its_artifacts(
    k8s_cluster: K8sCluster, k8s_api: ApiServer
) -> None:
    out = k8s_api.settings.runner.output_dir
    with k8s_api.client() as alice:
        finished = create(alice)["id"]
        running = create(alice, "hang")["id"]
        wait_for(alice, finished, "Succeeded")
        wait_for(alice, running, "Running")
        uid = kubectl_json(k8s_cluster, k8s_api, "videojob", finished)["metadata"]["uid"]
        stored = out / storage_job_id(k8s_api.settings.namespace, finished, uid)
        assert (stored / "video.mp4").exists()

        assert kubectl_json(k8s_cluster, k8s_api, "pods", "-l", f"videojobs.io/name={running}")["items"]
        for job_id in (finished, running):
            assert alice.delete(f"/v1/videos/jobs/{job_id}").status_code == 204
            # Foreground deletion: by the time the call returns, the Job and its pod are gone too
            # (a pod still stopping could write into the deleted artifacts).
            assert kubectl_json(k8s_cluster, k8s_api, "videojob", job_id) is None
            selector = f"videojobs.io/name={job_id}"
            for kind in ("jobs", "pods"):
                assert not kubectl_json(k8s_cluster, k8s_api, kind, "-l", selector)["items"]
            assert_problem(alice.get(f"/v1/videos/jobs/{job_id}"), 404)
            assert_problem(alice.delete(f"/v1/videos/jobs/{job_id}"), 404)
        assert not stored.exists()
        assert alice.get("/v1/videos/jobs").json()["data"] == []


@pytest.mark.k8s
def test_the_api_service_account_may_do_what_the_backend_needs_and_no_more(
    k8s_cluster: K8sCluster, k8s_idle_api: ApiServer
) -> None:
    namespace = k8s_idle_api.settings.namespace
    kubeconfig = yaml.safe_load(Path(k8s_idle_api.settings.kubeconfig or "").read_text())
    token = kubeconfig["users"][0]["user"]["token"]

    def can_i(*args: str) -> str:
        return k8s_cluster.kubectl(
            "-n", namespace, "auth", "can-i", *args, token=token, check=False
        ).stdout.strip()

    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert can_i(verb, "videojobs.videojobs.io") == "yes", verb
    for verb in ("get", "create", "update"):  # the Lease that elects the webhook sender
        assert can_i(verb, "leases.coordination.k8s.io") == "yes", verb
    for verb, resource in (
        ("patch", "videojobs.videojobs.io/x --subresource=status"),
        ("create", "jobs.batch"),
        ("get", "secrets"),
        ("list", "pods"),
        ("list", "videojobs.videojobs.io --namespace=default"),
    ):
        assert can_i(verb, *resource.split()) == "no", f"the API may {verb} {resource}"
    with k8s_idle_api.client(None) as anonymous:
        assert anonymous.get("/readyz").json() == {"status": "ok"}


@pytest.mark.k8s
def test_the_api_server_client_logs_in_by_certificate_or_token_and_renews_the_token(
    k8s_cluster: K8sCluster, k8s_idle_api: ApiServer
) -> None:
    namespace = k8s_idle_api.settings.namespace
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "by-client"}}
    manifest["spec"] = {"topic": "Made by the client"}
    service_account = load_configuration(k8s_idle_api.settings.kubeconfig)
    token = service_account.api_key["BearerToken"]
    tokens = itertools.chain(["Bearer not-a-token"], itertools.repeat(token))  # rotated after the first ask
    service_account.refresh_api_key_hook = lambda configuration: configuration.api_key.update(
        BearerToken=next(tokens)
    )

    async def scenario() -> None:
        admin = VideoJobApi(load_configuration(k8s_cluster.kubeconfig), namespace)  # a client certificate
        made = await admin.create(manifest)
        patched = await admin.patch("by-client", {"metadata": {"labels": {"checked": "yes"}}})
        assert patched["metadata"]["uid"] == made["metadata"]["uid"]
        assert patched["metadata"]["labels"] == {"checked": "yes"}
        with pytest.raises(ApiServerError) as taken:
            await admin.create(manifest)
        assert taken.value.status == 409 and "already exists" in taken.value.message
        await admin.delete("by-client", made["metadata"]["uid"])
        with pytest.raises(ApiServerError) as missing:
            await admin.get("never-made")
        assert missing.value.status == 404 and '"never-made" not found' in missing.value.message
        await admin.close()

        api = VideoJobApi(service_account, namespace)  # a token, renewed by the loaders' refresh hook
        with pytest.raises(ApiServerError) as refused:
            await api.list(limit=1)
        assert refused.value.status == 401
        await asyncio.sleep(CREDENTIALS_SECONDS)
        assert (await api.list(limit=1))["kind"] == "VideoJobList"
        await api.close()

    asyncio.run(scenario())


@pytest.mark.k8s
def test_of_several_replicas_one_sends_each_webhook_and_none_sends_a_final_event_twice(
    k8s_cluster: K8sCluster, k8s_api: ApiServer, receiver: Receiver
) -> None:
    def final_events() -> list[tuple[str, str]]:
        time.sleep(3)  # a second sender, or a restarted one, would have called by now
        return [(headers["webhook-id"], json.loads(body)["type"]) for headers, body in receiver.calls]

    hook = {"webhook": {"url": receiver.url, "events": ["completed"]}}
    with ApiServer(k8s_api.settings) as standby:  # the first replica took the free Lease at its start
        with k8s_api.client() as alice:
            first = create(alice, **hook)["id"]
            wait_for(alice, first, "Succeeded")
        receiver.wait(1)
        assert final_events() == [(f"msg_{first}_succeeded", "video.job.succeeded")]
        recorded = kubectl_json(k8s_cluster, k8s_api, "videojob", first)["metadata"]["annotations"]
        assert recorded["videojobs.io/webhook-sent"] == "video.job.succeeded"

        k8s_api.__exit__()  # the leader stops cleanly: it releases the Lease, the standby takes over
        with standby.client() as alice:
            second = create(alice, **hook)["id"]
            wait_for(alice, second, "Succeeded")
        receiver.wait(2)
        assert final_events()[1:] == [(f"msg_{second}_succeeded", "video.job.succeeded")]

    with ApiServer(k8s_api.settings):  # a restart lists both finished jobs again, and sends nothing
        assert len(final_events()) == 2


@pytest.mark.k8s
@pytest.mark.s3
def test_artifacts_come_from_s3_at_the_runners_job_id(
    request: pytest.FixtureRequest,
    k8s_cluster: K8sCluster,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.create_bucket()
    for name, value in s3_server.env(bucket).items():
        monkeypatch.setenv(name, value)
    with (
        kubernetes_api(request, tmp_path, run_jobs=True, runner=Settings()) as api,
        api.client() as alice,
        httpx.Client() as outside,
    ):
        job_id = create(alice, "Waves & Sound")["id"]
        wait_for(alice, job_id, "Succeeded")
        uid = kubectl_json(k8s_cluster, api, "videojob", job_id)["metadata"]["uid"]
        prefix = f"videojobs/{storage_job_id(api.settings.namespace, job_id, uid)}/"
        stored = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert f"{prefix}video.mp4" in {item["Key"] for item in stored["Contents"]}

        video = alice.get(f"/v1/videos/jobs/{job_id}/video-url").json()
        assert video["kind"] == "presigned" and video["url"].startswith(s3_server.endpoint_url)
        assert outside.get(video["url"]).content == VIDEO_BYTES
        download = outside.get(alice.get(f"/v1/videos/jobs/{job_id}/download").headers["location"])
        assert download.headers["content-disposition"] == 'attachment; filename="waves-sound.mp4"'
        assert alice.get(f"/v1/videos/jobs/{job_id}/metadata").json()["duration_seconds"] == 1.0

        assert alice.delete(f"/v1/videos/jobs/{job_id}").status_code == 204
        assert s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0


def _unreachable_kubeconfig(path: Path) -> Path:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    cluster = {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    return path


def test_an_unreachable_cluster_is_a_one_line_error_and_not_ready(tmp_path: Path) -> None:
    kubeconfig = _unreachable_kubeconfig(tmp_path / "kubeconfig")
    env = cli_env(
        OUTPUT_DIR=str(tmp_path),
        VIDEOJOBS_API_KEYS=f"alice:user:{KEYS['alice']}",
        VIDEOJOBS_API_BACKEND="kubernetes",
        VIDEOJOBS_API_KUBECONFIG=str(kubeconfig),
    )
    done = subprocess.run(
        [VIDEOJOBS, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "the kubernetes backend cannot use https://127.0.0.1:" in line and "not reachable" in line

    settings = api_settings(tmp_path / "out", backend="kubernetes", kubeconfig=kubeconfig, namespace="ns")
    with ApiServer(settings) as api, api.client() as alice:
        problem = assert_problem(api.client(None).get("/readyz"), 503)
        assert "Kubernetes" in problem["detail"]
        assert_problem(alice.get("/v1/videos/jobs"), 503)
        assert_problem(alice.post("/v1/videos/generate", json={"topic": "t"}), 503)


# --- the cache, without a cluster -------------------------------------------------------------------


def _videojob(name: str, version: int, owner: str = "alice", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-of-{name}",
            "resourceVersion": str(version),
            "creationTimestamp": "2026-11-25T12:00:00Z",
            "annotations": {"videojobs.io/owner": owner},
        },
        "spec": {"topic": f"Topic {name}"},
        "status": status,
    }


def test_the_cache_publishes_status_changes_only_and_drops_what_a_relist_lacks(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, backend="kubernetes", namespace="ns")
    alice = Principal("alice", Role.USER)

    async def scenario() -> list[tuple[int, str, int]]:
        backend = KubernetesBackend(settings, EventBus(), VideoJobApi(client.Configuration(), "ns"))
        backend.cache._replace_all([_videojob("a", 10, phase="Queued")])
        events = await backend.events(alice, "a", after=None)
        seen = []

        async def follow() -> None:
            async for job in events:
                seen.append((job.event_id, job.status.phase.value, job.status.progress))

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0)
        for version, status in [
            (11, {"phase": "Queued", "heartbeatTime": "2026-11-25T12:00:05Z"}),  # a heartbeat: no event
            (13, {"phase": "Running", "progress": 15}),
            (12, {"phase": "Running", "progress": 5}),  # older than what the cache has: ignored
            (14, {"phase": "Running", "progress": 15, "conditions": []}),  # same view: no event
            (15, {"phase": "Running", "progress": 50}),
        ]:
            backend.cache.changed(_videojob("a", version, **status))
            await asyncio.sleep(0)
        assert (await backend.get(alice, "a")).event_id == 15
        resumed = await anext(aiter(await backend.events(alice, "a", after=13)))
        assert resumed.event_id == 15 and resumed.status.progress == 50
        backend.cache._replace_all([_videojob("b", 20, owner="bob")])  # a relist without "a": it was deleted
        await asyncio.wait_for(follower, 5)
        assert [
            job.id for job in (await backend.list_jobs(alice, cursor=None, limit=10, phases=())).jobs
        ] == []
        return seen

    assert asyncio.run(scenario()) == [(10, "Queued", 0), (13, "Running", 15), (15, "Running", 50)]


class ScriptedApi(VideoJobApi):
    """The API server as the backend's list, watch and get calls meet it, answered from a script."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[dict[str, Any]] | Exception]) -> None:
        super().__init__(client.Configuration(), "ns")
        self.lists = lists
        self.watches = watches
        self.calls: list[tuple[str, str | None]] = []
        self.elsewhere: dict[str, dict[str, Any]] = {}
        self._gates: dict[int, asyncio.Event] = {}

    def gate(self, call: int) -> asyncio.Event:
        """An event the `call`-th list or watch (counting from 1) waits for before it answers."""
        return self._gates.setdefault(call, asyncio.Event())

    async def _answer(self, call: tuple[str, str | None]) -> None:
        self.calls.append(call)
        gate = self._gates.get(len(self.calls))
        if gate is not None:
            await asyncio.wait_for(gate.wait(), 10)

    async def get(self, name: str) -> dict[str, Any]:
        """A GET: the object made elsewhere (`self.elsewhere`), else the API server's 404."""
        self.calls.append(("get", name))
        if name not in self.elsewhere:
            raise ApiServerError(404, "NotFound", f'videojobs.videojobs.io "{name}" not found')
        return self.elsewhere[name]

    async def list(self, limit: int, continue_token: str | None = None) -> dict[str, Any]:
        await self._answer(("list", None))
        return self.lists.pop(0)

    async def delete(self, name: str, uid: str) -> None:
        """A DELETE the API server accepts (the object goes when the script's watch says so)."""
        self.calls.append(("delete", name))

    @contextlib.asynccontextmanager
    async def watch(
        self, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Its events, then the end (for an exhausted script: silence until cancelled)."""
        await self._answer(("watch", resource_version))
        script = self.watches.pop(0) if self.watches else None
        if isinstance(script, Exception):
            raise script
        yield self._events(script)

    async def _events(self, script: list[dict[str, Any]] | None) -> AsyncIterator[dict[str, Any]]:
        if script is None:
            await asyncio.Event().wait()
        for event in script or []:
            if event["type"] == "ERROR":
                raise ApiServerError.of(event["object"])
            yield event


async def scripted_backend(tmp_path: Path, api: ScriptedApi, **settings: Any) -> KubernetesBackend:
    """A started kubernetes backend whose list, watch and get calls `api` answers."""
    backend = KubernetesBackend(
        api_settings(tmp_path, backend="kubernetes", namespace="ns", **settings), EventBus(), api
    )
    await backend.start()
    return backend


def test_the_watch_resumes_from_bookmarks_and_relists_after_410_gone(tmp_path: Path) -> None:
    a = _videojob("a", 10, phase="Queued")
    lists = [
        {"items": [a], "metadata": {"resourceVersion": "10"}},
        {"items": [_videojob("b", 30, owner="bob")], "metadata": {"resourceVersion": "30"}},  # "a" is gone
    ]
    watches = [
        [
            {"type": "MODIFIED", "object": _videojob("a", 11, phase="Running", progress=15)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
        ],
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}],
    ]
    api = ScriptedApi(lists, watches)
    relist = api.gate(4)
    root = Principal("root", Role.ADMIN)

    async def scenario() -> list[int]:
        backend = await scripted_backend(tmp_path, api)
        await backend.ready()
        events = await backend.events(root, "a", after=0)
        seen = [(await anext(events)).event_id]  # subscribed now: the relist may come
        relist.set()
        seen += [job.event_id async for job in events]
        await asyncio.to_thread(poll, "the watch after the relist", lambda: len(api.calls) == 5, 10)
        await backend.ready()
        names = [job.id for job in (await backend.list_jobs(root, cursor=None, limit=10, phases=())).jobs]
        await backend.stop()
        assert names == ["b"]
        return seen

    assert asyncio.run(scenario()) == [10, 11]  # then the relist closed the stream of the deleted job
    assert api.calls == [
        ("list", None),
        ("watch", "10"),
        ("watch", "20"),
        ("list", None),
        ("watch", "30"),
    ]


def test_a_job_made_by_another_replica_is_found_before_this_replicas_watch_tells_of_it(
    tmp_path: Path,
) -> None:
    api = ScriptedApi([{"items": [], "metadata": {"resourceVersion": "5"}}], [])  # a silent watch
    api.elsewhere["fresh"] = _videojob("fresh", 7, phase="Queued")
    alice, bob = Principal("alice", Role.USER), Principal("bob", Role.USER)

    async def scenario() -> None:
        backend = await scripted_backend(tmp_path, api)
        job = await backend.get(alice, "fresh")  # its creator follows Location to this replica
        assert (job.id, job.owner, job.status.phase.value) == ("fresh", "alice", "Queued")
        assert (await backend.get(alice, "fresh")).event_id == 7  # cached now: no second GET
        with pytest.raises(JobNotFound):
            await backend.get(bob, "fresh")  # someone else's: still a 404
        with pytest.raises(JobNotFound):
            await backend.get(alice, "never-made")
        await backend.stop()

    asyncio.run(scenario())
    assert [call for call in api.calls if call[0] == "get"] == [
        ("get", "fresh"),
        ("get", "never-made"),
    ]


def test_readiness_follows_the_watch(tmp_path: Path) -> None:
    reset = aiohttp.ServerDisconnectedError("connection reset")
    api = ScriptedApi([{"items": [], "metadata": {"resourceVersion": "5"}}], [reset, reset])
    reconnect = api.gate(4)  # list, two failed watches, then this one

    async def scenario() -> None:
        backend = await scripted_backend(tmp_path, api)
        await asyncio.to_thread(poll, "the third watch", lambda: len(api.calls) == 4, 10)
        with pytest.raises(BackendUnavailable, match="not reachable: connection reset"):
            await backend.ready()
        reconnect.set()
        for _ in range(100):
            with contextlib.suppress(BackendUnavailable):
                await backend.ready()
                break
            await asyncio.sleep(0.05)
        await backend.ready()
        await backend.stop()

    asyncio.run(scenario())


def test_a_watch_that_falls_silent_makes_the_api_unready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ScriptedApi([{"items": [], "metadata": {"resourceVersion": "5"}}], [])  # a silent watch
    monkeypatch.setattr(deadlines, "WATCH_SILENCE_SECONDS", 0.3)  # a healthy watch answers within this

    async def scenario() -> None:
        backend = await scripted_backend(tmp_path, api)
        await backend.ready()
        await asyncio.sleep(0.5)
        with pytest.raises(BackendUnavailable, match="watch has been silent"):
            await backend.ready()
        await backend.stop()

    asyncio.run(scenario())


def test_delete_waits_for_the_watch_to_say_the_videojob_is_gone_and_leaves_the_artifacts_to_the_operator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _videojob("a", 10, phase="Running"), _videojob("b", 11, phase="Running")
    lists = [{"items": [a, b], "metadata": {"resourceVersion": "11"}}]
    a_deleting = _videojob("a", 12, phase="Running")
    a_deleting["metadata"]["deletionTimestamp"] = "2026-11-25T12:01:00Z"
    watches: list[list[dict[str, Any]] | Exception] = [
        [{"type": "MODIFIED", "object": a_deleting}],  # the foreground deletion began
        [{"type": "DELETED", "object": a_deleting}],  # its Job and pod are gone
    ]
    api = ScriptedApi(lists, watches)
    deletion_began, pod_stopped = api.gate(2), api.gate(4)  # list, watch, DELETE, watch
    alice = Principal("alice", Role.USER)

    async def scenario() -> None:
        backend = await scripted_backend(tmp_path, api, delete_wait_seconds=30)
        folders = {name: tmp_path / (await backend.get(alice, name)).storage_key for name in "ab"}
        for folder in folders.values():
            folder.mkdir(parents=True)
            (folder / "status.json").write_text("{}")
        deleting = asyncio.create_task(backend.delete(alice, "a"))
        await asyncio.to_thread(poll, "the DELETE", lambda: ("delete", "a") in api.calls, 10)
        deletion_began.set()
        await asyncio.to_thread(poll, "the next watch", lambda: len(api.calls) == 4, 10)
        with pytest.raises(JobNotFound):
            await backend.get(alice, "a")  # hidden at once, also from the watch's MODIFIED
        await asyncio.sleep(0.2)
        assert not deleting.done()  # the operator's finalizer is still at work
        pod_stopped.set()
        await asyncio.wait_for(deleting, 5)
        assert folders["a"].exists()  # the finalizer deletes them (in the cluster), never the API

        backend.settings.delete_wait_seconds = 0.5
        with caplog.at_level(logging.WARNING):  # no DELETED comes for "b": the call returns anyway
            await asyncio.wait_for(backend.delete(alice, "b"), 5)
        assert "VideoJob ns/b is still being deleted after 0.5 s" in caplog.text
        await backend.stop()

    asyncio.run(scenario())
