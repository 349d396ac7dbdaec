"""Benchmark: N VideoJobs (default 1000) through the operator on the test control plane's KWOK GPU nodes.

Prints how long until every VideoJob has its Job, how long after their pods ended until every
VideoJob is terminal (split into the Job controller's part and the operator's), the operator's peak
RSS and CPU time, and the API requests it made per VideoJob (counted by the API server through a
FlowSchema that matches only the operator's ServiceAccount, plus the operator's own client counter).
Times come from the objects themselves (creation timestamps, condition transition times, the pods'
finishedAt; whole seconds, one clock), read once everything is done.

Run: `.venv/bin/python bench/operator_load.py [--count 1000]`. It starts its own test cluster (torn down
afterwards) unless TEST_CLUSTER_DIR names one that is up. The operator runs cluster-wide as
`videojobs operator` with its ServiceAccount (operator/rbac/operator.yaml) and default settings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from k8s_cluster import K8sCluster, start_cluster, stop_cluster  # noqa: E402

VIDEOJOBS = Path(sys.executable).parent / "videojobs"
OPERATOR_NS = "videojobs-system"
FLOW_SCHEMA = "videojobs-operator-bench"
PODS_PER_NODE = 110
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
FINISHED = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}


def names_where(cluster: K8sCluster, namespace: str, resource: str, path: str, values: set[str]) -> set[str]:
    """Names of the objects whose `path` (a jsonpath) is one of `values` - a light poll."""
    template = f"{{range .items[*]}}{{.metadata.name}}|{{{path}}}{{'\\n'}}{{end}}"
    lines = cluster.kubectl(
        "-n", namespace, "get", resource, "-o", f"jsonpath={template}"
    ).stdout.splitlines()
    return {name for name, _, value in (line.partition("|") for line in lines) if value in values}


def listed(cluster: K8sCluster, namespace: str, resource: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("-n", namespace, "get", resource, "-o", "json", timeout=600).stdout
    )["items"]
    return items


def at(stamp: str) -> float:
    """A Kubernetes timestamp as epoch seconds."""
    return datetime.fromisoformat(stamp).timestamp()


@dataclass
class Times:
    """Per VideoJob name, from the objects: created, its Job created, its pod ended, its Job finished,
    it became terminal."""

    created: dict[str, float] = field(default_factory=dict)
    job_created: dict[str, float] = field(default_factory=dict)
    pod_ended: dict[str, float] = field(default_factory=dict)
    job_finished: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, float] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, cluster: K8sCluster, namespace: str) -> Times:
        times = cls()
        for videojob in listed(cluster, namespace, "videojobs"):
            name, status = videojob["metadata"]["name"], videojob.get("status", {})
            times.created[name] = at(videojob["metadata"]["creationTimestamp"])
            times.phases[name] = status.get("phase", "")
            for condition in status.get("conditions", []):
                if condition["type"] in TERMINAL and condition["status"] == "True":
                    times.terminal[name] = at(condition["lastTransitionTime"])
        for job in listed(cluster, namespace, "jobs"):
            name = job["metadata"]["name"]
            times.job_created[name] = at(job["metadata"]["creationTimestamp"])
            finished = [
                at(c["lastTransitionTime"])
                for c in job.get("status", {}).get("conditions", [])
                if c["type"] in FINISHED and c["status"] == "True"
            ]
            if finished:
                times.job_finished[name] = min(finished)
        for pod in listed(cluster, namespace, "pods"):
            name = pod["metadata"]["labels"].get("videojobs.io/name", "")
            for container in pod.get("status", {}).get("containerStatuses", []):
                ended = container.get("state", {}).get("terminated", {}).get("finishedAt")
                if ended:
                    times.pod_ended[name] = max(times.pod_ended.get(name, 0.0), at(ended))
        return times


def kubectl_apply(cluster: K8sCluster, *objects: dict[str, Any], namespace: str | None = None) -> None:
    scope = ["-n", namespace] if namespace else []
    cluster.kubectl(
        *scope,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def gpu_node(name: str) -> dict[str, Any]:
    """A KWOK node with room for PODS_PER_NODE one-GPU runner pods."""
    resources = {
        "cpu": "1000",
        "memory": "4Ti",
        "pods": str(PODS_PER_NODE),
        "nvidia.com/gpu": str(PODS_PER_NODE),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.present": "true",
                "videojobs.io/bench": "true",
            },
        },
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {"allocatable": resources, "capacity": resources},
    }


def flow_schema() -> dict[str, Any]:
    """Routes exactly the operator's requests to one FlowSchema, whose counter the API server exports."""
    everything = {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
        "namespaces": ["*"],
        "clusterScope": True,
    }
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": FLOW_SCHEMA},
        "spec": {
            "matchingPrecedence": 500,
            "priorityLevelConfiguration": {"name": "workload-high"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"name": "videojobs-operator", "namespace": OPERATOR_NS},
                        }
                    ],
                    "resourceRules": [everything],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def operator_requests(cluster: K8sCluster) -> int:
    """Requests the API server dispatched for the operator's ServiceAccount so far."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    pattern = (
        rf'^apiserver_flowcontrol_dispatched_requests_total{{[^}}]*flow_schema="{FLOW_SCHEMA}"[^}}]*}} (\S+)$'
    )
    return int(sum(float(match) for match in re.findall(pattern, text, re.MULTILINE)))


def client_requests(port: int) -> dict[str, int]:
    """The operator's own client counter (videojobs_operator_api_requests_total) by verb and resource."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, int] = {}
    for labels, value in re.findall(
        r"^videojobs_operator_api_requests_total{(.*)} (\S+)$", text, re.MULTILINE
    ):
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = f"{parsed['verb']} {parsed['resource']}"
        counts[key] = counts.get(key, 0) + int(float(value))
    return counts


def proc_figures(pid: int) -> tuple[float, float]:
    """Peak RSS (MiB) and CPU seconds of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return peak_kib / 1024, cpu


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {statistics.median(ordered):.0f} s, p99 {p(0.99):.0f} s, max {ordered[-1]:.0f} s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(cluster: K8sCluster, count: int, timeout: float, env: dict[str, str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="vjbench-"))
    namespace = f"bench-{secrets.token_hex(3)}"
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "videojob.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
    for name in (OPERATOR_NS, namespace):
        if cluster.kubectl("get", "namespace", name, check=False).returncode != 0:
            cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-f", str(ROOT / "operator" / "rbac" / "operator.yaml"))
    runner = list(yaml.safe_load_all((ROOT / "operator" / "rbac" / "runner.yaml").read_text()))
    for obj in runner:
        obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
    kubectl_apply(cluster, *runner, namespace=namespace)
    nodes = [gpu_node(f"bench-gpu-{i}") for i in range(-(-(count + 1) // PODS_PER_NODE))]
    kubectl_apply(cluster, flow_schema(), *nodes)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "node", "-l", "videojobs.io/bench=true", "--timeout=120s"
    )

    port = free_port()
    log = work / "operator.log"
    operator_env = {
        **os.environ,
        **env,
        "KUBECONFIG": str(
            cluster.token_kubeconfig(OPERATOR_NS, "videojobs-operator", work / "operator.kubeconfig")
        ),
        "METRICS_PORT": str(port),
    }
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [str(VIDEOJOBS), "operator"], env=operator_env, stdout=out, stderr=subprocess.STDOUT
        )
    api = client.CustomObjectsApi(config.new_client_from_config(str(cluster.kubeconfig)))

    def create(name: str) -> None:
        body = {
            "apiVersion": "videojobs.io/v1alpha1",
            "kind": "VideoJob",
            "metadata": {"name": name},
            "spec": {"topic": f"Benchmark topic {name}", "resources": {"cpu": "1", "memory": "1Gi"}},
        }
        api.create_namespaced_custom_object(
            "videojobs.io", "v1alpha1", namespace, "videojobs", body, _preload_content=False
        )

    def terminal(names: set[str]) -> bool:
        return names <= names_where(cluster, namespace, "videojobs", ".status.phase", TERMINAL)

    try:
        create("warmup")  # the operator is ready once it has run one VideoJob end to end
        wait_until("the warm-up VideoJob", lambda: terminal({"warmup"}), 120)
        requests_before, client_before = operator_requests(cluster), client_requests(port)
        names = [f"vj-{i:05d}" for i in range(count)]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, names))
        created = time.monotonic() - started
        wait_until("every VideoJob to be terminal", lambda: terminal(set(names)), timeout)
        time.sleep(1)  # let trailing requests (Events) land in the counters
        requests = operator_requests(cluster) - requests_before
        client_after = client_requests(port)
        peak_mib, cpu = proc_figures(operator.pid)
        times = Times.read(cluster, namespace)
    finally:
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        cluster.kubectl("delete", "node", "-l", "videojobs.io/bench=true", "--wait=false")
        cluster.kubectl("delete", "flowschema", FLOW_SCHEMA, "--ignore-not-found")
    report(times, names, created, requests, client_before, client_after, peak_mib, cpu)
    print(f"operator log: {log}")


def report(
    times: Times,
    names: list[str],
    created: float,
    requests: int,
    client_before: dict[str, int],
    client_after: dict[str, int],
    peak_mib: float,
    cpu: float,
) -> None:
    first = min(times.created[name] for name in names)
    last_created = max(times.created[name] for name in names)
    all_jobs = max(times.job_created[name] for name in names)
    last_pod = max(times.pod_ended[name] for name in names)
    last_terminal = max(times.terminal[name] for name in names)
    phases = Counter(times.phases[name] for name in names)
    job_latency = [times.job_created[name] - times.created[name] for name in names]
    job_lag = [times.job_finished[name] - times.pod_ended[name] for name in names]
    operator_lag = [times.terminal[name] - times.job_finished[name] for name in names]
    ours = {key: client_after.get(key, 0) - client_before.get(key, 0) for key in client_after}
    print(f"VideoJobs: {len(names)}, created in {created:.1f} s by 16 client threads; phases {dict(phases)}")
    after_last = all_jobs - last_created
    print(f"all Jobs exist: {all_jobs - first:.0f} s after the first one, {after_last:+.0f} s after the last")
    print(f"  VideoJob created -> its Job created: {percentiles(job_latency)}")
    print(
        f"last pod ended {last_pod - first:.0f} s after the first VideoJob (Job controller, scheduler, KWOK)"
    )
    print(f"all VideoJobs terminal: {last_terminal - last_pod:.0f} s after the last pod ended")
    print(f"  pod ended -> Job finished (Job controller): {percentiles(job_lag)}")
    print(f"  Job finished -> VideoJob terminal (operator): {percentiles(operator_lag)}")
    print(f"operator: peak RSS {peak_mib:.0f} MiB, CPU {cpu:.1f} s")
    per_videojob = requests / len(names)
    print(f"API requests by the operator (API server count): {requests}, {per_videojob:.2f} per VideoJob")
    print(
        "  of which its own client: "
        + ", ".join(f"{key} {value}" for key, value in sorted(ours.items()) if value)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="VideoJobs to create (default 1000)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each phase")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="operator setting, e.g. API_QPS=100"
    )
    args = parser.parse_args()
    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit("terminated")
    )  # clean up (operator, cluster) on SIGTERM
    env = dict(item.split("=", 1) for item in args.set)
    state = os.environ.get("TEST_CLUSTER_DIR")
    cluster, was_up = start_cluster(
        Path(state) if state else Path(tempfile.mkdtemp(prefix="vjbench-")) / "cluster"
    )
    try:
        run(cluster, args.count, args.timeout, env)
    finally:
        if not was_up:
            stop_cluster(cluster)


if __name__ == "__main__":
    main()
