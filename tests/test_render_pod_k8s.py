"""Render pods on the real test control plane: the runner creates them, the test plays their kubelet.

The namespace enforces the restricted Pod Security Standard. The runner's identity is the one the
operator makes (identity.runner_identity with render pods); its pod is a KWOK pod, and render_scene runs
here with that identity's token. KWOK schedules each render pod and marks it Running; the test then runs
its container's args as a local process with exactly the pod's env (plus the image's PATH) in a folder
standing in for its emptyDir, against the S3 test server reached only through the presigned URLs, and
marks the pod's phase from the exit code. The clip comes back to the runner through S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from k8s_cluster import K8sCluster, wait_for
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from s3_server import S3Server

from videojobs.contract import Quality
from videojobs.errors import RenderingError
from videojobs.keys import RENDER_ROLE, ROLE_LABEL
from videojobs.settings import RenderIsolation
from videojobs.storage import S3Storage
from videojobs_operator.identity import runner_identity
from videojobs_runner.render_pod import (
    WORK_DIR,
    RenderPodConfig,
    RenderPods,
    RenderUrls,
    RunnerPod,
    render_pod_manifest,
)
from videojobs_runner.sandbox import FailureKind, RenderLimits, RenderOutcome, SandboxConfig, render_scene

pytestmark = [pytest.mark.k8s, pytest.mark.render, pytest.mark.s3]

VIDEOJOBS = Path(sys.executable).parent / "videojobs"
LIMITS = RenderLimits(timeout_seconds=120, memory_mb=2048, cpu_seconds=120)
RUNNER = "runner"
RENDER_ACCOUNT = "videojobs-render"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class Kubelet:
    """Runs each Running render pod's container as a local process and ends the pod with its exit code.

    Each pod runs in a thread of its own, as pods on a node do: renders in flight at once overlap.
    """

    core: client.CoreV1Api
    namespace: str
    root: Path
    seen: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Each pod's container: when it started and ended (monotonic)."""
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        done: set[str] = set()
        threads: list[threading.Thread] = []
        while not self.stop.wait(0.3):
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"{ROLE_LABEL}={RENDER_ROLE}"
            ).items
            for pod in pods:
                if pod.metadata.name not in done and pod.status.phase == "Running":
                    done.add(pod.metadata.name)
                    manifest = self.core.api_client.sanitize_for_serialization(pod)
                    threads.append(threading.Thread(target=self.run_or_fail, args=(manifest,), daemon=True))
                    threads[-1].start()
        for thread in threads:
            thread.join(300)

    def run_or_fail(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        started = time.monotonic()
        try:
            self.run(pod)
        except Exception as error:  # the test reports it; the pod must still end
            self.errors.append(error)
            failed = {"status": {"phase": "Failed", "reason": "KubeletStandIn"}}
            self.core.patch_namespaced_pod_status(name, self.namespace, failed)
        self.spans[name] = (started, time.monotonic())

    def run(self, pod: dict[str, Any]) -> None:
        self.seen.append(pod)
        (container,) = pod["spec"]["containers"]
        folder = self.root / pod["metadata"]["name"]  # the emptyDir mounted at WORK_DIR
        folder.mkdir(parents=True)
        env = {item["name"]: item["value"] for item in container["env"]}
        env = {name: str(folder) if value == str(WORK_DIR) else value for name, value in env.items()}
        env["PATH"] = os.environ["PATH"]  # the image's PATH
        assert container["workingDir"] == str(WORK_DIR)
        with (folder.parent / f"{pod['metadata']['name']}.log").open("wb") as log:
            done = subprocess.run(
                [str(VIDEOJOBS), *container["args"]], env=env, cwd=folder, stdout=log, stderr=log, timeout=300
            )
        terminated = {"exitCode": done.returncode, "reason": "Completed" if done.returncode == 0 else "Error"}
        status = {
            "phase": "Succeeded" if done.returncode == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], self.namespace, {"status": status})


@pytest.fixture
def namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    name = f"vjrender-{os.urandom(4).hex()}"
    k8s_cluster.kubectl("create", "namespace", name)
    k8s_cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    k8s_cluster.kubectl("delete", "namespace", name, "--wait=false")


def apply(cluster: K8sCluster, namespace: str, *manifests: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(items))


def runner_pod(cluster: K8sCluster, namespace: str) -> RunnerPod:
    """A restricted KWOK pod standing in for the runner's (it owns the render pods)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": RUNNER},
        "spec": {
            "serviceAccountName": RUNNER,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "runner", "image": "runner", "securityContext": RESTRICTED_CONTAINER}],
        },
    }
    apply(cluster, namespace, pod)
    got = wait_for(
        "the runner pod to run",
        lambda: (
            (p := _get(cluster, namespace, "pod", RUNNER)) and p["status"].get("phase") == "Running" and p
        ),
    )
    return RunnerPod(namespace, RUNNER, got["metadata"]["uid"])


def _get(cluster: K8sCluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    done = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def can_i(cluster: K8sCluster, namespace: str, account: str, *check: str) -> str:
    token = cluster.token(namespace, account, "1h")
    return cluster.kubectl("-n", namespace, "auth", "can-i", *check, token=token, check=False).stdout.strip()


def write_scene(folder: Path, body: str) -> Path:
    path = folder / "scene.py"
    path.write_text(f"from manim import *\n\nclass Demo(Scene):\n    def construct(self):\n        {body}\n")
    return path


@dataclass
class Rig:
    """A namespace with the operator's runner identity (render pods allowed), a runner pod in KWOK and
    the render ServiceAccount (no RBAC); the runner's API client carries only its token."""

    cluster: K8sCluster
    namespace: str
    owner: RunnerPod
    runner: client.CoreV1Api
    storage: S3Storage
    root: Path

    def sandbox(self, config: RenderPodConfig | None = None) -> SandboxConfig:
        """RENDER_ISOLATION=pod with this runner's identity, pod and storage."""
        pods = RenderPods(self.runner, self.storage, self.owner, config or RenderPodConfig(image="runner"))
        return SandboxConfig(RenderIsolation.POD, pods=pods)

    def render(self, body: str, name: str, sandbox: SandboxConfig) -> Coroutine[Any, Any, RenderOutcome]:
        """render_scene of a scene whose construct() is `body`, in its own folder `name`."""
        folder = self.root / name
        folder.mkdir()
        return render_scene(
            write_scene(folder, body), "Demo", Quality.LOW, folder / "work", LIMITS, sandbox=sandbox
        )

    @contextlib.contextmanager
    def kubelet(self) -> Iterator[Kubelet]:
        """The stand-in kubelet for this namespace's render pods, while the block runs."""
        admin = client.CoreV1Api(config.new_client_from_config(str(self.cluster.kubeconfig)))
        kubelet = Kubelet(admin, self.namespace, self.root / "kubelet")
        thread = threading.Thread(target=kubelet.loop, daemon=True)
        thread.start()
        try:
            yield kubelet
        finally:
            kubelet.stop.set()
            thread.join(60)

    def terminating(self, name: str) -> bool:
        pod = _get(self.cluster, self.namespace, "pod", name)
        return pod is None or "deletionTimestamp" in pod["metadata"]


@pytest.fixture
def rig(k8s_cluster: K8sCluster, s3_server: S3Server, namespace: str, tmp_path: Path) -> Rig:
    apply(k8s_cluster, namespace, *runner_identity(namespace, "job", RUNNER, {}, render_pods=True))
    k8s_cluster.kubectl("-n", namespace, "create", "serviceaccount", RENDER_ACCOUNT)
    owner = runner_pod(k8s_cluster, namespace)
    kubeconfig = k8s_cluster.token_kubeconfig(namespace, RUNNER, tmp_path / "runner.kubeconfig")
    runner = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    session = s3_server.session()
    storage = S3Storage(
        s3_server.create_bucket(), "v", s3_server.endpoint_url, s3_server.region, session=session
    )
    return Rig(k8s_cluster, namespace, owner, runner, storage, tmp_path)


def test_runner_renders_in_a_render_pod_and_gets_the_clip_back(rig: Rig, s3_server: S3Server) -> None:
    cluster, namespace = rig.cluster, rig.namespace
    assert can_i(cluster, namespace, RUNNER, "create", "pods") == "yes"
    for check in (
        ("get", "secrets"),
        ("list", "pods"),
        ("patch", "pods"),
        ("create", "pods", "--subresource=exec"),
    ):
        assert can_i(cluster, namespace, RUNNER, *check) == "no", check
    for check in (("get", "pods"), ("get", "secrets"), ("get", "configmaps")):
        assert can_i(cluster, namespace, RENDER_ACCOUNT, *check) == "no", check

    sandbox = rig.sandbox(RenderPodConfig(image="registry.example/runner:test", start_seconds=60))
    with rig.kubelet() as kubelet:
        outcome = asyncio.run(rig.render("self.play(Create(Circle()), run_time=0.5)", "good", sandbox))
        assert outcome.ok, outcome.log
        assert outcome.video is not None and outcome.video.stat().st_size > 0
        assert outcome.video.is_relative_to((rig.root / "good" / "work" / "media").resolve())
        assert outcome.duration_seconds is not None and outcome.duration_seconds > 0.4

        failed = asyncio.run(rig.render("raise ValueError('the scene broke')", "bad", sandbox))
        assert not failed.ok and failed.failure is FailureKind.ERROR
        assert "the scene broke" in failed.error

    # What the API server admitted under the restricted profile: no token volume, no Secret, own uid.
    assert not kubelet.errors and len(kubelet.seen) == 2
    for pod in kubelet.seen:
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == RENDER_ACCOUNT
        assert [volume["name"] for volume in spec["volumes"]] == ["work"]  # no kube-api-access token volume
        assert spec["securityContext"]["runAsUser"] >= 200_000  # a uid of its own (RENDER_UID_BASE...)
        assert spec["nodeName"] == "cpu-node-0"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rig.owner.uid
        (container,) = spec["containers"]
        values = " ".join(item["value"] for item in container["env"])
        # The presigned URLs name the access key id (X-Amz-Credential, public); the secret never travels.
        assert s3_server.secret_key not in values and "AWS_" not in values
        assert all(
            "X-Amz-Signature=" in item["value"] for item in container["env"] if item["name"].endswith("_URL")
        )
        # The runner removed what it made: its render pods and their objects.
        assert rig.terminating(pod["metadata"]["name"])
    assert rig.storage.list_keys("_renders/") == []


def test_render_pods_go_with_the_runner_pod(rig: Rig) -> None:
    """A runner that dies mid-render leaves nothing behind: the garbage collector removes its render pods."""
    urls = RenderUrls(
        code="http://127.0.0.1:9/c", video="http://127.0.0.1:9/v", result="http://127.0.0.1:9/r"
    )
    manifest = render_pod_manifest(
        "orphan", rig.owner, RenderPodConfig(image="runner"), LIMITS, ["Demo"], urls
    )
    rig.runner.create_namespaced_pod(rig.namespace, manifest)
    rig.cluster.kubectl("-n", rig.namespace, "delete", "pod", RUNNER, "--wait=false")
    wait_for("the garbage collector to remove the render pod", lambda: rig.terminating("orphan"))
    with pytest.raises(ApiException):
        rig.runner.list_namespaced_pod(rig.namespace)  # no list: get by name only


def test_a_render_pod_that_cannot_start_is_the_clusters_fault(rig: Rig) -> None:
    """Unschedulable: a recoverable RenderingError naming why, not a scene error sent to the model."""
    nowhere = RenderPodConfig(image="runner", start_seconds=3, node_selector={"videojobs.test/no": "node"})
    with pytest.raises(RenderingError, match="did not start within 3 s") as raised:
        asyncio.run(rig.render("self.wait(0.1)", "w", rig.sandbox(nowhere)))
    assert raised.value.recoverable and "Unschedulable" in raised.value.message
    listed = rig.cluster.kubectl(
        "-n", rig.namespace, "get", "pods", "-l", f"{ROLE_LABEL}={RENDER_ROLE}", "-o", "json"
    )
    pods = json.loads(listed.stdout)
    assert all(rig.terminating(pod["metadata"]["name"]) for pod in pods["items"])
    assert rig.storage.list_keys("_renders/") == []


def test_a_render_pod_the_api_server_refuses_is_the_deployments_fault(rig: Rig) -> None:
    """No render ServiceAccount in the namespace: a recoverable RenderingError quoting the API server."""
    rig.cluster.kubectl("-n", rig.namespace, "delete", "serviceaccount", RENDER_ACCOUNT)
    with pytest.raises(RenderingError, match="cannot create render pod") as raised:
        asyncio.run(rig.render("self.wait(0.1)", "w", rig.sandbox()))
    assert raised.value.recoverable and RENDER_ACCOUNT in raised.value.message
    assert rig.storage.list_keys("_renders/") == []


def test_the_scenes_of_a_video_render_at_once_in_pods_of_their_own(rig: Rig) -> None:
    """Render pods are scheduled one by one: two renders in flight are two pods running at once."""
    sandbox = rig.sandbox()

    async def both() -> list[RenderOutcome]:
        body = "self.play(Create(Square()), run_time=1.5)"
        return await asyncio.gather(rig.render(body, "one", sandbox), rig.render(body, "two", sandbox))

    with rig.kubelet() as kubelet:
        outcomes = asyncio.run(both())
    assert not kubelet.errors and all(outcome.ok for outcome in outcomes), [o.log for o in outcomes]
    (first_start, first_end), (second_start, second_end) = kubelet.spans.values()
    assert first_start < second_end and second_start < first_end, kubelet.spans  # they overlapped
