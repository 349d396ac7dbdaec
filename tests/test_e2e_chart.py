"""The whole system installed by the Helm chart on the real test control plane, one VideoJob end to end.

`helm install` puts charts/videojobs into a namespace that enforces the restricted Pod Security
Standard (the API server admits every manifest and every pod). The operator then runs as a local
process with the chart's operator ServiceAccount (a TokenRequest token) and the env and args of the
chart's operator Deployment, so the chart's RBAC and settings are what is tested. A VideoJob applied
with kubectl becomes a Job with the chart's GPU settings; the runner runs as a local process with
exactly the env and args of that Job's pod template (ConfigMap and Secret references resolved from
the cluster, emptyDir mount paths mapped to local folders) and the token of the ServiceAccount the
operator made for that VideoJob's runner, against the fake LLM and the S3 server on 127.0.0.1. KWOK
plays the node: the Job goes through the Kueue path (spec.queueName, the test admits it) so that its
pod stays Running while the local runner works, and ends with the runner's exit code.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_llm import FakeLLM
from k8s_cluster import K8sCluster
from s3_server import S3Server
from test_operator_k8s import RUN_FOR, Operator, get, jobs_of, pods_of, wait_for

from videojobs.contract import storage_job_id

pytestmark = [pytest.mark.k8s, pytest.mark.render, pytest.mark.s3]

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "videojobs"
VIDEOJOBS = Path(sys.executable).parent / "videojobs"
RELEASE = "e2e"
FULLNAME = f"{RELEASE}-videojobs"
MODEL = "openai/gpt-4o-mini"
EXIT_CODE = "videojobs.test/kwok-exit-code"
ARTIFACTS = ("video.mp4", "thumbnail.jpg", "subtitles.vtt", "subtitles.srt", "metadata.json")


@dataclass
class Installed:
    """The chart's release in its namespace, with what the test set up around it."""

    cluster: K8sCluster
    namespace: str
    bucket: str
    helm_output: str

    def token(self, account: str) -> str:
        """A TokenRequest token of ServiceAccount `account` in the release namespace."""
        return self.cluster.kubectl(
            "-n", self.namespace, "create", "token", account, "--duration=1h"
        ).stdout.strip()

    def kubeconfig(self, account: str, path: Path) -> Path:
        """A kubeconfig whose only credential is `account`'s token."""
        cluster = {"server": self.cluster.server, "certificate-authority": str(self.cluster.ca_cert)}
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": cluster}],
                    "users": [{"name": account, "user": {"token": self.token(account)}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": account}}],
                    "current-context": "test",
                }
            )
        )
        return path

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
    bucket = s3_server.create_bucket()
    kubectl = k8s_cluster.kubectl
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # The Secrets the chart references by name (values secrets.*): created outside the chart.
    credentials = {
        "videojobs-llm": {"OPENAI_API_KEY": "test-key"},
        "videojobs-s3": {
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        },
        "videojobs-api": {"api-keys": "e2e:user:k"},
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
    }
    done = helm(
        k8s_cluster,
        *("install", RELEASE, str(CHART), "-n", namespace, "--values", "-", "--wait", "--timeout", "120s"),
        input=json.dumps(values),
    )
    assert done.returncode == 0, done.stderr
    yield Installed(k8s_cluster, namespace, bucket, done.stdout)
    helm(k8s_cluster, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "60s")
    kubectl("delete", "namespace", namespace, "--wait=false")


def manifests(installed: Installed) -> list[dict[str, Any]]:
    done = helm(installed.cluster, "get", "manifest", RELEASE, "-n", installed.namespace)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def container_of_deployment(installed: Installed, name: str) -> dict[str, Any]:
    (container,) = installed.get("deployment", name)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def resolved_env(installed: Installed, container: dict[str, Any]) -> dict[str, str]:
    """The environment the kubelet would give `container`: envFrom first, then env, references resolved."""

    def data_of(kind: str, name: str) -> dict[str, str]:
        obj = installed.get(kind, name)
        if kind == "secret":
            return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return dict(obj.get("data", {}))

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data_of("configmap", source["configMapRef"]["name"]))
        else:
            env.update(data_of("secret", source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.namespace", ref
            env[item["name"]] = installed.namespace
        else:
            kind, key_ref = (
                ("secret", ref["secretKeyRef"])
                if "secretKeyRef" in ref
                else ("configmap", ref["configMapKeyRef"])
            )
            value = data_of(kind, key_ref["name"]).get(key_ref["key"])
            if value is not None:
                env[item["name"]] = value
    return env


def assert_can(installed: Installed, account: str, allowed: list[tuple[str, ...]]) -> None:
    """`account` may do what `allowed` lists and none of a few things no identity of the chart needs."""
    denied = [("get", "secrets"), ("create", "pods"), ("update", "videojobs/x"), ("list", "nodes")]
    token = installed.token(account)
    for check, expected in [(c, "yes") for c in allowed] + [(c, "no") for c in denied]:
        answer = installed.cluster.kubectl(
            "-n", installed.namespace, "auth", "can-i", *check, token=token, check=False
        )
        assert answer.stdout.strip() == expected, (account, check, expected)


def videojob_rows(installed: Installed) -> list[list[str]]:
    done = installed.cluster.kubectl("-n", installed.namespace, "get", "videojobs", "--no-headers")
    return [line.split() for line in done.stdout.splitlines()]


def test_chart_installs_and_a_videojob_runs_end_to_end(
    installed: Installed, s3_server: S3Server, tmp_path: Path
) -> None:
    cluster, namespace = installed.cluster, installed.namespace

    # 1. Every manifest was accepted; the Deployments' pods passed restricted Pod Security admission.
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests(installed)}
    assert {
        ("Deployment", f"{FULLNAME}-operator"),
        ("Deployment", f"{FULLNAME}-api"),
        ("Service", f"{FULLNAME}-api"),
        ("ConfigMap", f"{FULLNAME}-pipeline"),
        ("NetworkPolicy", f"{FULLNAME}-runner"),
        ("Role", f"{FULLNAME}-operator"),
    } <= kinds
    for component in ("operator", "api"):
        pods = installed.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
        assert len(pods) == 1, f"no {component} pod: restricted Pod Security admission refused it?"
    assert "kubectl -n " + namespace + " get videojobs -w" in installed.helm_output  # NOTES.txt
    assert cluster.kubectl("get", "crd", "videojobs.videojobs.io").returncode == 0
    allowed = {  # a sample of the chart's RBAC, as the API server decides it
        f"{FULLNAME}-operator": [("create", "jobs.batch"), ("patch", "videojobs/x", "--subresource=status")],
        f"{FULLNAME}-api": [("create", "videojobs"), ("watch", "videojobs")],
    }
    for account, checks in allowed.items():
        assert_can(installed, account, checks)

    # 2. The operator: a local process with the chart's operator identity, args and env.
    deployment = container_of_deployment(installed, f"{FULLNAME}-operator")
    assert deployment["args"] == ["operator", "--namespace", namespace]
    operator_env = resolved_env(installed, deployment)
    del operator_env["METRICS_PORT"]  # the Operator helper picks a free port
    operator_kubeconfig = installed.kubeconfig(f"{FULLNAME}-operator", tmp_path / "operator.kubeconfig")
    operator = Operator(operator_kubeconfig, namespace, tmp_path / "operator.log", operator_env).start()
    try:
        run_videojob(installed, operator, s3_server, tmp_path)
    finally:
        operator.stop()


def run_videojob(installed: Installed, operator: Operator, s3_server: S3Server, tmp_path: Path) -> None:
    cluster, namespace = installed.cluster, installed.namespace

    # 3. A VideoJob by kubectl apply; its Job carries the chart's GPU settings. queueName: the test admits
    # the Job like Kueue would, with a pod KWOK keeps Running until the local runner is done.
    videojob = {
        "apiVersion": "videojobs.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": "pythagoras"},
        "spec": {"topic": "Test topic", "queueName": "e2e"},
    }
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(videojob))
    (job,) = wait_for("the Job", lambda: jobs_of(cluster, namespace, "pythagoras"), operator=operator)
    pod_spec = job["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "6Gi", "nvidia.com/gpu": "2"}
    # The runner's own identity, made by the operator with the chart's RBAC: its VideoJob and nothing else.
    assert pod_spec["serviceAccountName"] == job["metadata"]["name"]
    own = [("get", "videojobs/pythagoras"), ("patch", "videojobs/pythagoras", "--subresource=status")]
    assert_can(installed, pod_spec["serviceAccountName"], own)
    other = installed.token(pod_spec["serviceAccountName"])
    answer = cluster.kubectl(
        "-n", namespace, "auth", "can-i", "get", "videojobs/other", token=other, check=False
    )
    assert answer.stdout.strip() == "no"
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{FULLNAME}-pipeline"}},
        {"secretRef": {"name": "videojobs-llm"}},
        {"secretRef": {"name": "videojobs-s3"}},
    ]
    admit = {"spec": {"suspend": False, "template": {"metadata": {"annotations": {RUN_FOR: "1h"}}}}}
    cluster.kubectl(
        "-n", namespace, "patch", "job", job["metadata"]["name"], "--type=merge", "-p", json.dumps(admit)
    )

    def running_pod() -> dict[str, Any] | None:
        pods = [p for p in pods_of(cluster, namespace, "pythagoras") if p["status"].get("phase") == "Running"]
        return pods[0] if pods else None

    pod = wait_for("the runner pod to run (restricted admission passed)", running_pod, operator=operator)
    assert pod["spec"]["nodeName"].startswith("gpu-node-")
    wait_for("phase Running", lambda: videojob_rows(installed)[0][1] == "Running", operator=operator)

    # 4. The runner: the pod template's command and env, with the runner ServiceAccount's token.
    env = resolved_env(installed, container)
    local = {mount["mountPath"]: tmp_path / "pod" / mount["name"] for mount in container["volumeMounts"]}
    for folder in local.values():
        folder.mkdir(parents=True)
    for name, value in env.items():  # paths inside emptyDir mounts point into their local stand-ins
        for mount, folder in local.items():
            if value == mount or value.startswith(mount + "/"):
                env[name] = str(folder) + value.removeprefix(mount)
    env["KUBECONFIG"] = str(
        installed.kubeconfig(pod_spec["serviceAccountName"], tmp_path / "runner.kubeconfig")
    )
    env["PATH"] = os.environ["PATH"]  # the image's PATH: ffmpeg, TeX, the venv's console scripts
    assert container["args"] == ["run-videojob"] and "command" not in container  # the image's entrypoint
    stages: list[str] = []
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [str(VIDEOJOBS), *container["args"]],
            env=env,
            cwd=local[container["workingDir"]],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 400
        while runner.poll() is None and time.monotonic() < deadline:
            row = videojob_rows(installed)[0]
            if len(row) > 2 and (not stages or stages[-1] != row[2]):
                stages.append(row[2])
                print("kubectl get videojobs:", " ".join(row))  # shown with pytest -s
            time.sleep(0.3)
        if runner.poll() is None:
            runner.kill()
    assert runner.wait() == 0, log.read_text()[-4000:]

    # 5. The pod ends with the runner's exit code; the operator follows the Job to Succeeded.
    cluster.kubectl(
        "-n", namespace, "annotate", "pod", pod["metadata"]["name"], "--overwrite", f"{RUN_FOR}=0s"
    )
    wait_for("phase Succeeded", lambda: videojob_rows(installed)[0][1] == "Succeeded", operator=operator)
    row = videojob_rows(installed)[0]
    print("kubectl get videojobs:", " ".join(row))
    assert row[:5] == ["pythagoras", "Succeeded", "completed", "100", "3/3"], row
    assert stages[-1] == "completed" and {"planning", "rendering"} <= set(stages), stages

    # 6. The artifacts are in S3 where the status says.
    obj = installed.get("videojob", "pythagoras")
    prefix = f"videojobs/{storage_job_id(namespace, 'pythagoras', obj['metadata']['uid'])}/"
    keys = {
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket=installed.bucket, Prefix=prefix)["Contents"]
    }
    print("in S3:", *sorted(key for key in keys if key.removeprefix(prefix) in ARTIFACTS))
    assert {prefix + name for name in ARTIFACTS} <= keys
    result = obj["status"]["result"]
    assert result["video"] == f"s3://{installed.bucket}/{prefix}video.mp4"
