"""The whole system installed by the Helm chart on the real test control plane, one VideoJob end to end.

`helm install` puts charts/videojobs into a namespace that enforces the restricted Pod Security
Standard (the API server admits every manifest and every pod). The operator and the API then run as
local processes with the identities of the chart's ServiceAccounts (TokenRequest tokens) and the env
and args of the chart's Deployments, so the chart's RBAC and settings are what is tested. A VideoJob
applied with kubectl, and then a job submitted over REST, become Jobs with the chart's GPU settings;
the runner runs as a local process with exactly the env and args of the Job's pod template and the
token of the ServiceAccount the operator made for that VideoJob's runner, against the fake LLM and
the S3 server on 127.0.0.1; it renders each scene in a render pod (KWOK) whose container the test runs
as a local process too (test_render_pod_k8s.Kubelet). Where a pod would see a volume, the local
process sees a folder standing in for it (emptyDir: empty; Secret: its keys as files) and paths in its
env point there; the API and the runner read their credentials from a kubeconfig with their token
instead of the mounted one.
KWOK plays the node: Jobs go through the Kueue path (spec.queueName, the test admits them) so that
their pod stays Running while the local runner works, and ends with the runner's exit code.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from api_harness import Stream, read_events
from fake_llm import FakeLLM
from k8s_cluster import K8sCluster
from kubernetes import client, config
from s3_server import S3Server
from test_operator_k8s import RUN_FOR, Operator, get, jobs_of, pods_of, wait_for, wait_phase
from test_render_pod_k8s import RESTRICTED_CONTAINER, Kubelet
from videojob_objects import apply, videojob

from videojobs.contract import Stage, storage_job_id

pytestmark = [pytest.mark.k8s, pytest.mark.render, pytest.mark.s3]

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "videojobs"
VIDEOJOBS = Path(sys.executable).parent / "videojobs"
RELEASE = "e2e"
FULLNAME = f"{RELEASE}-videojobs"
MODEL = "openai/gpt-4o-mini"
QUEUE = "e2e"
"""spec.queueName of every VideoJob here (api.queueName for those the API creates): the test admits them."""
API_KEY = "e2e-" + secrets.token_hex(8)
ARTIFACTS = ("video.mp4", "thumbnail.jpg", "subtitles.vtt", "subtitles.srt", "metadata.json")


@dataclass
class Installed:
    """The chart's release in its namespace, with what the test set up around it."""

    cluster: K8sCluster
    namespace: str
    other_namespace: str
    """A second namespace the operator watches (operator.watchNamespaces)."""
    bucket: str
    helm_output: str

    def kubeconfig(self, account: str, path: Path) -> Path:
        """A kubeconfig whose only credential is `account`'s token."""
        return self.cluster.token_kubeconfig(self.namespace, account, path)

    def get(self, *what: str) -> Any:
        return get(self.cluster, self.namespace, *what)


def helm(cluster: K8sCluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.bin_dir / "helm"), *args],
        input=input,
        capture_output=True,
        text=True,
        env=cluster.env(),
        timeout=300,
        check=False,
    )


@pytest.fixture
def installed(k8s_cluster: K8sCluster, s3_server: S3Server, fake_llm: FakeLLM) -> Iterator[Installed]:
    """The chart installed with the fake LLM and the test S3 server as its LLM and storage."""
    namespace = f"vjchart-{secrets.token_hex(4)}"
    other_namespace = f"{namespace}-team"
    bucket = s3_server.create_bucket()
    kubectl = k8s_cluster.kubectl
    for name in (namespace, other_namespace):
        kubectl("create", "namespace", name)
        kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    # The Secrets the chart references by name (values secrets.*): created outside the chart.
    credentials = {
        "videojobs-llm": {"OPENAI_API_KEY": "test-key"},
        "videojobs-s3": {
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        },
        "videojobs-api": {"api-keys": f"alice:user:{API_KEY}"},
    }
    for name, data in credentials.items():
        literals = [f"--from-literal={key}={value}" for key, value in data.items()]
        kubectl("-n", namespace, "create", "secret", "generic", name, *literals)
    values = {
        "pipeline": {
            "models": {"planner": MODEL, "scene": MODEL, "helper": MODEL},
            "defaultQuality": "low",
            "maxFixAttempts": 2,
            "storage": {
                "bucket": bucket,
                "endpointUrl": s3_server.endpoint_url,
                "region": s3_server.region,
            },
            "extraEnv": {"OPENAI_API_BASE": fake_llm.url},
        },
        "runner": {"resources": {"cpu": "2", "memory": "6Gi", "gpu": 2}},
        "api": {"queueName": QUEUE, "cancelWaitSeconds": 30},
        "operator": {"watchNamespaces": [other_namespace]},
    }
    done = helm(
        k8s_cluster,
        *("install", RELEASE, str(CHART), "-n", namespace, "--values", "-", "--wait", "--timeout", "120s"),
        input=json.dumps(values),
    )
    assert done.returncode == 0, done.stderr
    yield Installed(k8s_cluster, namespace, other_namespace, bucket, done.stdout)
    helm(k8s_cluster, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "60s")
    for name in (namespace, other_namespace):
        kubectl("delete", "namespace", name, "--wait=false")


def manifests(installed: Installed) -> list[dict[str, Any]]:
    done = helm(installed.cluster, "get", "manifest", RELEASE, "-n", installed.namespace)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def container_of_deployment(installed: Installed, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod spec and the (only) container of Deployment `name`."""
    pod_spec = installed.get("deployment", name)["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    return pod_spec, container


def data_of(installed: Installed, kind: str, name: str) -> dict[str, str]:
    """The data of a ConfigMap or (decoded) Secret."""
    obj = installed.get(kind, name)
    if kind == "secret":
        return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
    return dict(obj.get("data", {}))


def pod_environment(
    installed: Installed,
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    root: Path,
    pod_metadata: dict[str, Any] | None = None,
) -> tuple[dict[str, str], Path]:
    """The env the kubelet would give `container` (envFrom, then env, references resolved) and its
    working dir, with the pod's volumes as folders under `root` and env paths into them rewritten.
    `pod_metadata` answers the downward API's metadata.name and metadata.uid (default: a name only)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data_of(installed, "configmap", source["configMapRef"]["name"]))
        else:
            env.update(data_of(installed, "secret", source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            # A local process stands in for a Deployment's pod: it is named after its container.
            metadata = {"namespace": installed.namespace, "name": f"{container['name']}-local"}
            metadata |= pod_metadata or {}
            env[item["name"]] = metadata[path.removeprefix("metadata.")]
            continue
        kind, key_ref = (
            ("secret", ref["secretKeyRef"])
            if "secretKeyRef" in ref
            else ("configmap", ref["configMapKeyRef"])
        )
        value = data_of(installed, kind, key_ref["name"]).get(key_ref["key"])
        assert value is not None or key_ref.get("optional"), item
        if value is not None:
            env[item["name"]] = value
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    folders: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        folder = folders[mount["mountPath"]] = root / mount["name"]
        folder.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "secret" in volume:
            data = data_of(installed, "secret", volume["secret"]["secretName"])
            items = volume["secret"].get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                (folder / item["path"]).write_text(data[item["key"]])
        else:
            assert "emptyDir" in volume, volume
    for name, value in env.items():
        for path, folder in folders.items():
            if value == path or value.startswith(path + "/"):
                env[name] = str(folder) + value.removeprefix(path)
    root.mkdir(parents=True, exist_ok=True)
    return env, folders.get(container.get("workingDir", ""), root)


def assert_can(
    installed: Installed,
    account: str,
    allowed: list[tuple[str, ...]],
    denied: tuple[tuple[str, ...], ...] = (),
    namespace: str | None = None,
) -> None:
    """`account` may do what `allowed` lists in `namespace` (default: the release's); neither what `denied`
    lists nor what no chart identity needs."""
    never = [("get", "secrets"), ("create", "pods"), ("update", "videojobs/x"), ("list", "nodes")]
    denied = [*denied, *(check for check in never if check not in allowed)]
    token = installed.cluster.token(installed.namespace, account, "1h")
    for check, expected in [(c, "yes") for c in allowed] + [(c, "no") for c in denied]:
        answer = installed.cluster.kubectl(
            "-n", namespace or installed.namespace, "auth", "can-i", *check, token=token, check=False
        )
        assert answer.stdout.strip() == expected, (account, namespace, check, expected)


def videojob_row(installed: Installed, name: str) -> list[str]:
    """The `kubectl get videojobs` row of `name`: NAME PHASE STAGE PROGRESS SCENES AGE."""
    done = installed.cluster.kubectl("-n", installed.namespace, "get", "videojobs", name, "--no-headers")
    return done.stdout.split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_like_the_job(installed: Installed, operator: Operator, name: str, root: Path) -> list[str]:
    """Admit VideoJob `name`'s Job, run its runner as a local process, end the pod with the runner's exit
    code; the distinct STAGE values `kubectl get videojobs` showed meanwhile."""
    cluster, namespace = installed.cluster, installed.namespace
    (job,) = wait_for(f"the Job of {name}", lambda: jobs_of(cluster, namespace, name), operator=operator)
    pod_spec = job["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    # The chart's runner defaults (values runner.*) as the operator applied them.
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "6Gi", "nvidia.com/gpu": "2"}
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{FULLNAME}-pipeline"}},
        {"secretRef": {"name": "videojobs-llm"}},
        {"secretRef": {"name": "videojobs-s3"}},
    ]
    # The runner's own identity, made by the operator with the chart's RBAC: its VideoJob and its render
    # pods (create, get, delete; runner.renderIsolation: pod), nothing else.
    account = pod_spec["serviceAccountName"]
    assert account == job["metadata"]["name"]
    assert_can(
        installed,
        account,
        [
            ("get", f"videojobs/{name}"),
            ("patch", f"videojobs/{name}", "--subresource=status"),
            ("create", "pods"),
            ("delete", "pods"),
        ],
        (("list", "pods"), ("create", "pods", "--subresource=exec"), ("get", "configmaps")),
    )
    # The chart's admission policy: the pods a runner may create are render pods, nothing that mounts a
    # Secret (or runs as another ServiceAccount, or gets a token).
    sneaky = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sneaky", "labels": {"videojobs.io/role": "render"}},
        "spec": {
            "serviceAccountName": f"{FULLNAME}-render",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "c", "image": container["image"], "securityContext": RESTRICTED_CONTAINER}
            ],
            "volumes": [{"name": "keys", "secret": {"secretName": "videojobs-llm"}}],
        },
    }
    runner_token = cluster.token(namespace, account, "1h")
    refused = cluster.kubectl(
        "-n",
        namespace,
        "create",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(sneaky),
        token=runner_token,
        check=False,
    )
    assert refused.returncode != 0 and "emptyDir volumes only" in refused.stderr, refused.stderr
    other = cluster.kubectl(
        "-n",
        namespace,
        "auth",
        "can-i",
        "get",
        "videojobs/other",
        token=installed.cluster.token(installed.namespace, account, "1h"),
        check=False,
    )
    assert other.stdout.strip() == "no"

    admit = {"spec": {"suspend": False, "template": {"metadata": {"annotations": {RUN_FOR: "1h"}}}}}
    cluster.kubectl(
        "-n", namespace, "patch", "job", job["metadata"]["name"], "--type=merge", "-p", json.dumps(admit)
    )

    def running_pod() -> dict[str, Any] | None:
        pods = [p for p in pods_of(cluster, namespace, name) if p["status"].get("phase") == "Running"]
        return pods[0] if pods else None

    pod = wait_for(f"{name}'s pod to run (restricted admission passed)", running_pod, operator=operator)
    assert pod["spec"]["nodeName"].startswith("gpu-node-")
    wait_for(f"{name} Running", lambda: videojob_row(installed, name)[1] == "Running", operator=operator)

    env, workdir = pod_environment(installed, pod_spec, container, root, pod["metadata"])
    assert env["RENDER_ISOLATION"] == "pod" and env["RENDER_IMAGE"] == container["image"]
    env["KUBECONFIG"] = str(installed.kubeconfig(account, root / "kubeconfig"))
    env["PATH"] = os.environ["PATH"]  # the image's PATH: ffmpeg, TeX, the venv's console scripts
    assert container["args"] == ["run-videojob"] and "command" not in container  # the image's entrypoint
    stages: list[str] = []
    log = root / "runner.log"
    # Each scene renders in a render pod (KWOK): the test plays its kubelet as test_render_pod_k8s does.
    kubelet = Kubelet(
        client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig))), namespace, root
    )
    kubelet_thread = threading.Thread(target=kubelet.loop, daemon=True)
    kubelet_thread.start()
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [str(VIDEOJOBS), *container["args"]], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 400
        while runner.poll() is None and time.monotonic() < deadline:
            row = videojob_row(installed, name)
            if len(row) > 2 and (not stages or stages[-1] != row[2]):
                stages.append(row[2])
                print("kubectl get videojobs:", " ".join(row))  # shown with pytest -s
            time.sleep(0.3)
        if runner.poll() is None:
            runner.kill()
    code = runner.wait()
    kubelet.stop.set()
    kubelet_thread.join(10)
    assert code == 0, log.read_text()[-4000:]
    assert not kubelet.errors and kubelet.seen, "no scene rendered in a render pod"
    for render_pod in kubelet.seen:
        assert render_pod["spec"]["serviceAccountName"] == f"{FULLNAME}-render"
        assert render_pod["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]

    # KWOK ends the pod now, as the container would have: the operator follows the Job to Succeeded.
    cluster.kubectl(
        "-n", namespace, "annotate", "pod", pod["metadata"]["name"], "--overwrite", f"{RUN_FOR}=0s"
    )
    wait_for(f"{name} Succeeded", lambda: videojob_row(installed, name)[1] == "Succeeded", operator=operator)
    row = videojob_row(installed, name)
    print("kubectl get videojobs:", " ".join(row))
    assert row[:5] == [name, "Succeeded", "completed", "100", "3/3"], row
    return stages


def stored_artifacts(installed: Installed, s3_server: S3Server, name: str) -> tuple[str, set[str]]:
    """The S3 prefix of VideoJob `name` and the keys under it."""
    uid = installed.get("videojob", name)["metadata"]["uid"]
    prefix = f"videojobs/{storage_job_id(installed.namespace, name, uid)}/"
    listing = s3_server.client().list_objects_v2(Bucket=installed.bucket, Prefix=prefix)
    return prefix, {o["Key"] for o in listing.get("Contents", [])}


class Api:
    """`videojobs serve` as a local process with the chart's API Deployment's args, env and identity."""

    def __init__(self, installed: Installed, root: Path) -> None:
        pod_spec, container = container_of_deployment(installed, f"{FULLNAME}-api")
        assert pod_spec["serviceAccountName"] == f"{FULLNAME}-api"
        args = list(container["args"])
        assert args[:3] == ["serve", "--host", "0.0.0.0"] and args[3] == "--port"
        self.port = free_port()  # 127.0.0.1 and a free port instead of the pod's 0.0.0.0:8000
        args[2], args[4] = "127.0.0.1", str(self.port)
        env, workdir = pod_environment(installed, pod_spec, container, root)
        assert (
            env["VIDEOJOBS_API_BACKEND"] == "kubernetes"
            and env["VIDEOJOBS_API_NAMESPACE"] == installed.namespace
        )
        env["VIDEOJOBS_API_KUBECONFIG"] = str(
            installed.kubeconfig(pod_spec["serviceAccountName"], root / "kubeconfig")
        )
        env["PATH"] = os.environ["PATH"]
        self.log = root / "api.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(VIDEOJOBS), *args], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}"

        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the API to be ready", ready)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_chart_installs_and_jobs_run_end_to_end(
    installed: Installed, s3_server: S3Server, tmp_path: Path
) -> None:
    cluster, namespace, other = installed.cluster, installed.namespace, installed.other_namespace

    # 1. Every manifest was accepted; the Deployments' pods passed restricted Pod Security admission.
    released = manifests(installed)
    kinds = {(m["kind"], m["metadata"]["name"]) for m in released}
    assert {
        ("Deployment", f"{FULLNAME}-operator"),
        ("Deployment", f"{FULLNAME}-api"),
        ("Service", f"{FULLNAME}-api"),
        ("ConfigMap", f"{FULLNAME}-pipeline"),
        ("NetworkPolicy", f"{FULLNAME}-runner"),
        ("NetworkPolicy", f"{FULLNAME}-render"),
        ("ServiceAccount", f"{FULLNAME}-render"),
        ("Role", f"{FULLNAME}-operator"),
    } <= kinds
    for component in ("operator", "api"):
        pods = installed.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
        assert len(pods) == 1, f"no {component} pod: restricted Pod Security admission refused it?"
    assert f"kubectl -n {namespace} get videojobs -w" in installed.helm_output  # NOTES.txt
    assert cluster.kubectl("get", "crd", "videojobs.videojobs.io").returncode == 0
    allowed = {  # a sample of the chart's RBAC, as the API server decides it
        f"{FULLNAME}-operator": [
            ("create", "jobs.batch"),
            ("patch", "videojobs/x", "--subresource=status"),
            ("patch", "videojobs/x"),  # its finalizer (JSON patches of metadata.finalizers alone)
            ("bind", "roles.rbac.authorization.k8s.io"),  # the runners' Roles, without the escalation check
            ("escalate", "roles.rbac.authorization.k8s.io"),
        ],
        f"{FULLNAME}-api": [("create", "videojobs"), ("watch", "videojobs")],
    }
    denied = {  # the operator never replaces a VideoJob, and never binds or widens ClusterRoles
        f"{FULLNAME}-operator": (
            ("bind", "clusterroles.rbac.authorization.k8s.io"),
            ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ),
    }
    for account, checks in allowed.items():
        assert_can(installed, account, checks, denied.get(account, ()))
    operator_account = f"{FULLNAME}-operator"  # the same Role in the namespace it also watches
    assert_can(installed, operator_account, allowed[operator_account], denied[operator_account], other)
    other_kinds = {
        (m["kind"], m["metadata"]["name"]) for m in released if m["metadata"].get("namespace") == other
    }
    assert {
        ("ConfigMap", f"{FULLNAME}-pipeline"),
        ("NetworkPolicy", f"{FULLNAME}-runner"),
        ("ServiceAccount", f"{FULLNAME}-render"),
        ("Role", f"{FULLNAME}-operator"),
    } <= other_kinds

    # 2. The operator: a local process with the chart's operator identity, args and env.
    pod_spec, container = container_of_deployment(installed, f"{FULLNAME}-operator")
    assert container["args"] == ["operator", "--namespace", namespace, "--namespace", other]
    operator_env, _ = pod_environment(installed, pod_spec, container, tmp_path / "operator")
    del operator_env["METRICS_PORT"]  # the Operator helper picks a free port
    kubeconfig = installed.kubeconfig(pod_spec["serviceAccountName"], tmp_path / "operator.kubeconfig")
    operator = Operator(kubeconfig, [namespace, other], tmp_path / "operator.log", operator_env).start()
    try:
        kubectl_videojob(installed, operator, s3_server, tmp_path / "kubectl")
        rest_videojobs(installed, operator, s3_server, tmp_path / "rest")
        videojob_in_the_other_namespace(installed, operator)
    finally:
        operator.stop()


def kubectl_videojob(installed: Installed, operator: Operator, s3_server: S3Server, root: Path) -> None:
    # 3. A VideoJob by kubectl apply runs through to its artifacts in S3.
    videojob = {
        "apiVersion": "videojobs.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": "pythagoras"},
        "spec": {"topic": "Test topic", "queueName": QUEUE},
    }
    installed.cluster.kubectl("-n", installed.namespace, "apply", "-f", "-", input=json.dumps(videojob))
    stages = run_like_the_job(installed, operator, "pythagoras", root)
    assert stages[-1] == "completed" and {"planning", "rendering"} <= set(stages), stages
    prefix, keys = stored_artifacts(installed, s3_server, "pythagoras")
    print("in S3:", *sorted(key for key in keys if key.removeprefix(prefix) in ARTIFACTS))
    assert {prefix + name for name in ARTIFACTS} <= keys
    result = installed.get("videojob", "pythagoras")["status"]["result"]
    assert result["video"] == f"s3://{installed.bucket}/{prefix}video.mp4"


def videojob_in_the_other_namespace(installed: Installed, operator: Operator) -> None:
    # 5. A VideoJob in the other watched namespace gets its Job there, with the chart's RBAC in that
    # namespace (the runner's ServiceAccount, Role and RoleBinding too) and the pipeline ConfigMap there.
    other = installed.other_namespace
    apply(installed.cluster, other, videojob("elsewhere", queueName=QUEUE))
    job = wait_for(
        "the Job in the other namespace",
        lambda: get(installed.cluster, other, "job", "elsewhere"),
        operator=operator,
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (config_map,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    assert get(installed.cluster, other, "configmap", config_map) is not None
    account = job["spec"]["template"]["spec"]["serviceAccountName"]
    assert get(installed.cluster, other, "rolebinding", account) is not None, account
    wait_phase(installed.cluster, other, "elsewhere", "Queued", operator)  # its Job waits for admission
    assert "elsewhere" not in [j["metadata"]["name"] for j in installed.get("jobs")["items"]]


def rest_videojobs(installed: Installed, operator: Operator, s3_server: S3Server, root: Path) -> None:
    # 4. The API with the chart's API identity: submit, follow (SSE), fetch with Range, cancel, delete.
    api = Api(installed, root / "api")
    try:
        with api.client() as alice:
            created = alice.post("/v1/videos/generate", json={"topic": "Test topic", "quality": "low"})
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            assert created.headers["location"].endswith(f"/v1/videos/jobs/{job_id}")
            videojob = installed.get("videojob", job_id)
            assert (
                videojob["spec"]["queueName"] == QUEUE
                and videojob["metadata"]["labels"]["videojobs.io/owner"] == "alice"
            )
            streams: list[Stream] = []
            follower = threading.Thread(
                target=lambda: streams.append(read_events(api.client(), job_id)), daemon=True
            )
            follower.start()
            stages = run_like_the_job(installed, operator, job_id, root / "runner")
            follower.join(timeout=60)
            (stream,) = streams
            seen = [event.data["stage"] for event in stream.events]
            print("SSE stages:", *dict.fromkeys(seen))
            assert stream.events[-1].data["phase"] == "Succeeded" and seen[-1] == "completed"
            order = list(Stage)
            assert [order.index(Stage(s)) for s in seen] == sorted(order.index(Stage(s)) for s in seen)
            assert {"planning", "rendering", "combining"} <= set(seen) and stages[-1] == "completed"
            assert [e.id for e in stream.events] == sorted(e.id for e in stream.events)

            status = alice.get(f"/v1/videos/jobs/{job_id}/status").json()
            assert (status["phase"], status["progress"]) == ("Succeeded", 100)
            _, keys = stored_artifacts(installed, s3_server, job_id)
            video = alice.get(f"/v1/videos/jobs/{job_id}/stream", headers={"Range": "bytes=0-99"})
            assert video.status_code == 307, video.text  # S3: a presigned URL
            request = urllib.request.Request(video.headers["location"], headers={"Range": "bytes=0-99"})
            with urllib.request.urlopen(request, timeout=30) as ranged:
                assert ranged.status == 206 and ranged.headers["Content-Range"].startswith("bytes 0-99/")
                assert len(ranged.read()) == 100
            for artifact in ("thumbnail", "subtitles", "metadata"):
                response = alice.get(f"/v1/videos/jobs/{job_id}/{artifact}", follow_redirects=True)
                assert response.status_code == 200 and response.content, artifact

            # Cancel a queued job; delete the finished one with its artifacts.
            queued = alice.post("/v1/videos/generate", json={"topic": "Cancelled topic"}).json()["id"]
            wait_for(
                "the queued job's Job",
                lambda: jobs_of(installed.cluster, installed.namespace, queued),
                operator=operator,
            )
            cancelled = alice.post(f"/v1/videos/jobs/{queued}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["phase"] == "Cancelled", cancelled.text
            assert installed.get("videojob", queued)["spec"]["cancel"] is True
            wait_for(
                "the cancelled job's Job to go",
                lambda: not jobs_of(installed.cluster, installed.namespace, queued),
                operator=operator,
            )
            print("kubectl get videojobs:", " ".join(videojob_row(installed, queued)))

            prefix, _ = stored_artifacts(installed, s3_server, job_id)
            assert alice.delete(f"/v1/videos/jobs/{job_id}").status_code == 204
            assert installed.get("videojob", job_id) is None
            listing = s3_server.client().list_objects_v2(Bucket=installed.bucket, Prefix=prefix)
            assert listing.get("KeyCount", 0) == 0, listing.get("Contents")
            assert alice.get(f"/v1/videos/jobs/{job_id}").status_code == 404
            assert keys  # it had stored its artifacts before
    finally:
        api.stop()
