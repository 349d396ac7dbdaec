"""The test control plane (hack/test-cluster) is a real one, not a mock API server.

Each test pins down a part that only a full control plane has: version stamping of the built
binaries, KWOK's simulated GPU nodes, scheduling + the Job controller + KWOK's pod lifecycle,
owner-reference garbage collection, TokenRequest-issued ServiceAccount tokens and RBAC.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from k8s_cluster import SCRIPT, K8sCluster, wait_for

pytestmark = pytest.mark.k8s

GPU_NODE_NAMES = {"gpu-node-0", "gpu-node-1"}


def _pinned_k8s_version() -> str:
    match = re.search(r'^K8S_VERSION="(v[0-9.]+)"$', SCRIPT.read_text(), re.MULTILINE)
    assert match, f"K8S_VERSION not found in {SCRIPT}"
    return match.group(1)


def get_json(cluster: K8sCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


@pytest.fixture
def namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount in place), deleted afterwards."""
    name = f"t-{secrets.token_hex(4)}"
    k8s_cluster.kubectl("create", "namespace", name)
    # Pods are rejected until the serviceaccount controller has created "default".
    wait_for(
        f"ServiceAccount {name}/default",
        lambda: (
            k8s_cluster.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
    )
    yield name
    k8s_cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_server_reports_the_stamped_version(k8s_cluster: K8sCluster) -> None:
    version = json.loads(k8s_cluster.kubectl("version", "-o", "json").stdout)
    expected = _pinned_k8s_version()
    minor = expected.split(".")[1]
    assert version["serverVersion"]["gitVersion"] == expected
    assert (version["serverVersion"]["major"], version["serverVersion"]["minor"]) == ("1", minor)
    assert version["clientVersion"]["gitVersion"] == expected


def test_gpu_nodes_are_ready_with_gpus_and_taint(k8s_cluster: K8sCluster) -> None:
    nodes = get_json(k8s_cluster, "nodes", "-l", "nvidia.com/gpu.present=true")["items"]
    assert {node["metadata"]["name"] for node in nodes} == GPU_NODE_NAMES
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
        taints = [(t["key"], t.get("value"), t["effect"]) for t in node["spec"].get("taints", [])]
        assert ("nvidia.com/gpu", "present", "NoSchedule") in taints
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"


def _gpu_job(name: str, pod_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": pod_annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "render",
                            "image": "example.invalid/render:never-pulled",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                                "limits": {"nvidia.com/gpu": "1"},
                            },
                        }
                    ],
                },
            },
        },
    }


def test_gpu_job_is_scheduled_completes_and_its_pod_is_garbage_collected(
    k8s_cluster: K8sCluster, namespace: str
) -> None:
    kubectl = k8s_cluster.kubectl
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(_gpu_job("render")))

    def job_pods() -> list[dict[str, Any]]:
        return list(get_json(k8s_cluster, "-n", namespace, "pods", "-l", "job-name=render")["items"])

    # Job controller created the pod; the scheduler bound it to a (tainted) GPU node.
    pod = wait_for(
        "the Job's pod to be scheduled", lambda: [p for p in job_pods() if p["spec"].get("nodeName")]
    )[0]
    assert pod["spec"]["nodeName"] in GPU_NODE_NAMES
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"

    # KWOK ran it: Running, then Succeeded; the Job controller marked the Job Complete.
    pod = wait_for(
        "the pod to succeed", lambda: [p for p in job_pods() if p["status"].get("phase") == "Succeeded"]
    )[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/render", "--timeout=60s")
    job = get_json(k8s_cluster, "-n", namespace, "job", "render")
    assert job["status"]["succeeded"] == 1

    # Background deletion: the Job goes at once, the garbage collector then deletes its pod.
    kubectl("-n", namespace, "delete", "job", "render", "--cascade=background", "--wait=true")
    wait_for("the garbage collector to delete the Job's pod", lambda: not job_pods() or None)


def test_pod_annotated_to_fail_fails_its_job(k8s_cluster: K8sCluster, namespace: str) -> None:
    """hack/test-cluster's own KWOK stage: videojobs.test/kwok-exit-code=<n> makes the pod fail with n."""
    job = _gpu_job("doomed", {"videojobs.test/kwok-exit-code": "3"})
    k8s_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job))
    k8s_cluster.kubectl("-n", namespace, "wait", "--for=condition=Failed", "job/doomed", "--timeout=60s")
    (pod,) = get_json(k8s_cluster, "-n", namespace, "pods", "-l", "job-name=doomed")["items"]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_service_account_token_authenticates_and_rbac_applies(
    k8s_cluster: K8sCluster, namespace: str
) -> None:
    kubectl = k8s_cluster.kubectl
    kubectl("-n", namespace, "create", "serviceaccount", "renderer")
    token = kubectl("-n", namespace, "create", "token", "renderer", "--duration=10m").stdout.strip()
    assert token.count(".") == 2, "TokenRequest should return a JWT"

    whoami = kubectl("auth", "whoami", "-o", "json", token=token)
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:renderer"

    def can_i(verb: str, resource: str) -> str:
        done = kubectl("-n", namespace, "auth", "can-i", verb, resource, token=token, check=False)
        return done.stdout.strip()

    # No Role bound: RBAC denies it.
    assert can_i("list", "pods") == "no"
    forbidden = kubectl("-n", namespace, "get", "pods", token=token, check=False)
    assert forbidden.returncode != 0
    assert "forbidden" in forbidden.stderr.lower()

    # A Role grants exactly what it names.
    kubectl("-n", namespace, "create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps")
    kubectl(
        "-n", namespace, "create", "rolebinding", "renderer-read-configmaps",
        "--role=read-configmaps", f"--serviceaccount={namespace}:renderer",
    )  # fmt: skip
    wait_for("the RoleBinding to take effect", lambda: can_i("list", "configmaps") == "yes", timeout=30)
    kubectl("-n", namespace, "get", "configmaps", token=token)
    assert can_i("create", "jobs.batch") == "no"
    assert can_i("list", "pods") == "no"

    # A made-up token is not authenticated at all.
    bogus = kubectl("-n", namespace, "get", "configmaps", token="not-a-real-token", check=False)
    assert bogus.returncode != 0
    assert "unauthorized" in bogus.stderr.lower()
