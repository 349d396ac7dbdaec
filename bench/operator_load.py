"""Benchmark: N VideoJobs (default 1000) through the operator on the test control plane's KWOK GPU nodes.

Prints how long until every VideoJob has its Job, how long after their pods ended until every
VideoJob is terminal (split into the Job controller's part and the operator's), the operator's peak
RSS and CPU time, and the API requests it made per VideoJob (counted by the API server through a
FlowSchema that matches only the operator's ServiceAccount, plus the operator's own client counter).

Run: `.venv/bin/python bench/operator_load.py [--count 1000]`. It starts its own test cluster (torn down
afterwards) unless TEST_CLUSTER_DIR names one that is up. The operator runs cluster-wide as
`videojobs operator` with its ServiceAccount (operator/rbac/operator.yaml) and default settings.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path, where "operator" would shadow the
# standard library's module of that name: drop it before anything imports `operator`.
HERE = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100, PTH120  (pathlib imports operator)
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]  # noqa: PTH100

import argparse
import json
import re
import secrets
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
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

from k8s_cluster import K8sCluster, start_cluster, stop_cluster

VIDEOJOBS = Path(sys.executable).parent / "videojobs"
OPERATOR_NS = "videojobs-system"
FLOW_SCHEMA = "videojobs-operator-bench"
PODS_PER_NODE = 110
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
FINISHED = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}


@dataclass
class Timeline:
    """When (monotonic seconds) the bench saw each VideoJob's Job appear, its pod end, its Job end,
    and the VideoJob become terminal - from `kubectl get --watch` streams."""

    job_seen: dict[str, float] = field(default_factory=dict)
    pod_done: dict[str, float] = field(default_factory=dict)
    job_done: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, float] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first(self, table: dict[str, float], name: str) -> None:
        with self.lock:
            table.setdefault(name, time.monotonic())


class Watch:
    """`kubectl get -w -o jsonpath` in a thread (restarted if it exits): one |-separated line per event."""

    def __init__(self, cluster: K8sCluster, namespace: str, resource: str, template: str, log: Path) -> None:
        self.command = [
            str(cluster.bin_dir / "kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
            "get",
            resource,
            "--watch",
            "-o",
            f"jsonpath={template}" + r"{'\n'}",
        ]
        self.log = log
        self.stopped = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def start(self, on_line: Callable[[list[str]], None]) -> Watch:
        threading.Thread(target=self._pump, args=(on_line,), daemon=True).start()
        return self

    def _pump(self, on_line: Callable[[list[str]], None]) -> None:
        while not self.stopped.is_set():
            with self.log.open("a") as errors:
                self.process = subprocess.Popen(
                    self.command, stdout=subprocess.PIPE, stderr=errors, text=True
                )
                assert self.process.stdout is not None
                for line in self.process.stdout:
                    on_line(line.rstrip("\n").split("|"))
                self.process.wait()

    def stop(self) -> None:
        self.stopped.set()
        if self.process is not None:
            self.process.terminate()


def start_watches(
    cluster: K8sCluster, namespace: str, timeline: Timeline, log: Path
) -> list[threading.Event]:
    def on_job(fields: list[str]) -> None:
        name, types = fields[0], set(fields[1].split()) if len(fields) > 1 else set()
        timeline.first(timeline.job_seen, name)
        if types & FINISHED:
            timeline.first(timeline.job_done, name)

    def on_pod(fields: list[str]) -> None:
        if len(fields) > 1 and fields[1] in ("Succeeded", "Failed"):
            timeline.first(timeline.pod_done, fields[0])

    def on_videojob(fields: list[str]) -> None:
        phase = fields[1] if len(fields) > 1 else ""
        with timeline.lock:
            timeline.phases[fields[0]] = phase
        if phase in TERMINAL:
            timeline.first(timeline.terminal, fields[0])

    return [
        Watch(cluster, namespace, "jobs", r"{.metadata.name}{'|'}{.status.conditions[*].type}", log).start(
            on_job
        ),
        Watch(
            cluster, namespace, "pods", r"{.metadata.labels.videojobs\.io/name}{'|'}{.status.phase}", log
        ).start(on_pod),
        Watch(cluster, namespace, "videojobs", r"{.metadata.name}{'|'}{.status.phase}", log).start(
            on_videojob
        ),
    ]


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


def operator_kubeconfig(cluster: K8sCluster, folder: Path) -> Path:
    token = cluster.kubectl(
        "-n", OPERATOR_NS, "create", "token", "videojobs-operator", "--duration=2h"
    ).stdout.strip()
    path = folder / "operator.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_cert)},
                    }
                ],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "operator"}}],
                "current-context": "c",
            }
        )
    )
    return path


def proc_figures(pid: int) -> tuple[float, float]:
    """Peak RSS (MiB) and CPU seconds of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return peak_kib / 1024, cpu


def status_lag(videojob: dict[str, Any]) -> float:
    """Seconds from the Job's end (status.completionTime) to the operator's terminal condition."""
    status = videojob["status"]
    terminal = [c for c in status["conditions"] if c["type"] in TERMINAL and c["status"] == "True"]
    finished = datetime.fromisoformat(status["completionTime"])
    return (datetime.fromisoformat(terminal[0]["lastTransitionTime"]) - finished).total_seconds()


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {statistics.median(ordered):.2f} s, p99 {p(0.99):.2f} s, max {ordered[-1]:.2f} s"


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

    timeline = Timeline()
    watchers = start_watches(cluster, namespace, timeline, work / "watch-errors.log")
    port = free_port()
    log = work / "operator.log"
    operator_env = {
        **os.environ,
        **env,
        "KUBECONFIG": str(operator_kubeconfig(cluster, work)),
        "METRICS_PORT": str(port),
    }
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [str(VIDEOJOBS), "operator"], env=operator_env, stdout=out, stderr=subprocess.STDOUT
        )
    api = client.CustomObjectsApi(config.new_client_from_config(str(cluster.kubeconfig)))

    def create(name: str) -> float:
        body = {
            "apiVersion": "videojobs.io/v1alpha1",
            "kind": "VideoJob",
            "metadata": {"name": name},
            "spec": {"topic": f"Benchmark topic {name}", "resources": {"cpu": "1", "memory": "1Gi"}},
        }
        api.create_namespaced_custom_object(
            "videojobs.io", "v1alpha1", namespace, "videojobs", body, _preload_content=False
        )
        return time.monotonic()

    try:
        create("warmup")  # the operator is ready once it has run one VideoJob end to end
        wait_until("the warm-up VideoJob", lambda: "warmup" in timeline.terminal, 120)
        requests_before, client_before = operator_requests(cluster), client_requests(port)
        names = [f"vj-{i:05d}" for i in range(count)]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            created_at = dict(zip(names, pool.map(create, names), strict=True))
        created = time.monotonic()
        wait_until("every Job", lambda: all(name in timeline.job_seen for name in names), timeout)
        all_jobs = max(timeline.job_seen[name] for name in names)
        wait_until(
            "every VideoJob to be terminal", lambda: all(name in timeline.terminal for name in names), timeout
        )
        time.sleep(1)  # let trailing requests (Events) land in the counters
        requests = operator_requests(cluster) - requests_before
        client_after = client_requests(port)
        peak_mib, cpu = proc_figures(operator.pid)
        listed = json.loads(cluster.kubectl("-n", namespace, "get", "videojobs", "-o", "json").stdout)[
            "items"
        ]
    finally:
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)
        for watcher in watchers:
            watcher.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        cluster.kubectl("delete", "node", "-l", "videojobs.io/bench=true", "--wait=false")
        cluster.kubectl("delete", "flowschema", FLOW_SCHEMA, "--ignore-not-found")
    ours = {key: client_after.get(key, 0) - client_before.get(key, 0) for key in client_after}
    last_pod = max(timeline.pod_done[name] for name in names)
    last_terminal = max(timeline.terminal[name] for name in names)
    phases = {phase: sum(1 for name in names if timeline.phases.get(name) == phase) for phase in TERMINAL}
    job_seen = [timeline.job_seen[name] - created_at[name] for name in names]
    job_lag = [timeline.job_done[name] - timeline.pod_done[name] for name in names]
    operator_lag = [status_lag(videojob) for videojob in listed if videojob["metadata"]["name"] in created_at]
    print(f"VideoJobs: {count}, created in {created - started:.1f} s (16 client threads); phases {phases}")
    after_last = all_jobs - created
    print(
        f"all Jobs exist: {all_jobs - started:.1f} s after the first create ({after_last:+.1f} s after last)"
    )
    print(f"  VideoJob created -> its Job seen: {percentiles(job_seen)}")
    print(
        f"last pod ended {last_pod - started:.1f} s after the first create (Job controller, scheduler, KWOK)"
    )
    print(f"all VideoJobs terminal: {last_terminal - last_pod:.1f} s after the last pod ended")
    print(f"  pod ended -> Job finished (Job controller): {percentiles(job_lag)}")
    print(f"  Job finished -> VideoJob terminal (operator, status times, 1 s): {percentiles(operator_lag)}")
    print(f"operator: peak RSS {peak_mib:.0f} MiB, CPU {cpu:.1f} s")
    print(f"API requests by the operator (API server count): {requests}, {requests / count:.2f} per VideoJob")
    print(
        "  of which its own client: "
        + ", ".join(f"{key} {value}" for key, value in sorted(ours.items()) if value)
    )
    print(f"operator log: {log}")


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
