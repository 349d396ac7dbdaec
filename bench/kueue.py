"""Benchmark: N VideoJobs (default 500) over 3 tenants through the operator and a real Kueue, on a GPU quota
of 8 (the test cluster's 2 KWOK GPU nodes, 4 each).

Each tenant has a ClusterQueue in one cohort (nominal GPU quotas 3, 3 and 2: their fair shares; idle quota
is lent) and a LocalQueue in its namespace. VideoJobs (1 GPU each) are submitted round-robin. Prints:
- admission latency once quota frees: for the k-th admission after the first 8, its Workload's
  QuotaReserved time minus the later of its creation and the (k-8)-th Job completion (whole seconds);
- GPUs in use (admitted, unfinished Jobs, polled every 0.5 s) against the quota over time (never above);
- each tenant's share of GPU-seconds while every tenant still had work waiting, against its fair share.

Run: `.venv/bin/python bench/kueue.py [--count 500]`. It starts its own test cluster with Kueue
(TEST_CLUSTER_KUEUE=1; torn down afterwards) unless TEST_KUEUE_CLUSTER_DIR names one that is up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from k8s_cluster import K8sCluster, start_cluster, stop_cluster  # noqa: E402
from operator_process import Operator  # noqa: E402

OPERATOR_NS = "videojobs-system"
NAMESPACE = "bench"
"""The operator watches one namespace: the tenants' LocalQueues (one per tenant) are all in it."""
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
TENANTS = {"tenant-a": 3, "tenant-b": 3, "tenant-c": 2}
QUOTA = sum(TENANTS.values())
FINISHED = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}
K = "kueue.x-k8s.io/v1beta2"


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def apply(cluster: K8sCluster, objects: list[dict[str, Any]], namespace: str | None = None) -> None:
    ns = ["-n", namespace] if namespace else []
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    cluster.kubectl(*ns, "apply", "-f", "-", input=items, timeout=600)


def listed(cluster: K8sCluster, resource: str) -> list[dict[str, Any]]:
    done = cluster.kubectl("get", resource, "-A", "-o", "json", timeout=300)
    return list(json.loads(done.stdout)["items"])


def setup(cluster: K8sCluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "videojob.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
    if cluster.kubectl("get", "namespace", OPERATOR_NS, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", OPERATOR_NS)
    cluster.kubectl("apply", "-f", str(ROOT / "operator" / "rbac" / "operator.yaml"))
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": K,
            "kind": "ResourceFlavor",
            "metadata": {"name": "kwok-gpu"},
            "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
        }
    ]
    for tenant, gpus in TENANTS.items():
        quotas = [("cpu", "64"), ("memory", "512Gi"), ("nvidia.com/gpu", str(gpus))]
        objects.append(
            {
                "apiVersion": K,
                "kind": "ClusterQueue",
                "metadata": {"name": tenant},
                "spec": {
                    "cohortName": "videojobs",
                    "namespaceSelector": {},
                    "queueingStrategy": "BestEffortFIFO",
                    "resourceGroups": [
                        {
                            "coveredResources": [name for name, _ in quotas],
                            "flavors": [
                                {
                                    "name": "kwok-gpu",
                                    "resources": [{"name": n, "nominalQuota": q} for n, q in quotas],
                                }
                            ],
                        }
                    ],
                },
            }
        )
    apply(cluster, objects)
    if cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", NAMESPACE)
    locals_ = [
        {"apiVersion": K, "kind": "LocalQueue", "metadata": {"name": t}, "spec": {"clusterQueue": t}}
        for t in TENANTS
    ]
    apply(cluster, locals_, NAMESPACE)


class GpuSampler(threading.Thread):
    """GPUs held by admitted, unfinished Jobs, per tenant, every 0.5 s."""

    def __init__(self, cluster: K8sCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            held = dict.fromkeys(TENANTS, 0)
            for job in listed(self.cluster, "jobs"):
                done = {
                    c["type"] for c in job.get("status", {}).get("conditions", ()) if c["status"] == "True"
                }
                if not job["spec"].get("suspend") and not done & FINISHED:
                    held[job["metadata"]["labels"][QUEUE_LABEL]] += 1
            self.samples.append((time.time(), held))
            time.sleep(0.5)


def run(cluster: K8sCluster, count: int, timeout: float, log: Path) -> None:
    setup(cluster)
    kubeconfig = cluster.token_kubeconfig(
        OPERATOR_NS, "videojobs-operator", log.parent / "operator.kubeconfig"
    )
    operator = Operator(kubeconfig, NAMESPACE, log, {}).start()
    sampler = GpuSampler(cluster)
    sampler.start()
    try:
        start = time.time()
        tenants = list(TENANTS)
        by_tenant: dict[str, list[dict[str, Any]]] = {t: [] for t in tenants}
        for i in range(count):
            tenant = tenants[i % len(tenants)]
            by_tenant[tenant].append(
                {
                    "apiVersion": "videojobs.io/v1alpha1",
                    "kind": "VideoJob",
                    "metadata": {"name": f"bench-{i:04d}"},
                    "spec": {"topic": f"Topic {i}", "queueName": tenant, "resources": {"gpu": 1}},
                }
            )
        interleaved = [vj for group in zip(*by_tenant.values(), strict=False) for vj in group]
        for first in range(0, len(interleaved), 30):  # round-robin over the tenants, 30 per request
            apply(cluster, interleaved[first : first + 30], NAMESPACE)
        print(f"submitted {count} VideoJobs in {time.time() - start:.1f} s", flush=True)
        deadline = time.time() + timeout
        while True:
            phases = [vj.get("status", {}).get("phase") for vj in listed(cluster, "videojobs")]
            done = sum(phase == "Succeeded" for phase in phases)
            if done >= count:
                break
            if time.time() > deadline:
                raise SystemExit(f"timed out: {done}/{count} Succeeded\n{operator.tail()}")
            time.sleep(2)
        print(f"all {count} Succeeded after {time.time() - start:.0f} s", flush=True)
    finally:
        sampler.stop.set()
        sampler.join(timeout=30)
        operator.stop()
    report(cluster, sampler.samples)


def report(cluster: K8sCluster, samples: list[tuple[float, dict[str, int]]]) -> None:
    workloads = listed(cluster, "workloads")
    admitted: list[tuple[float, float]] = []  # (QuotaReserved time, created)
    for wl in workloads:
        for c in wl.get("status", {}).get("conditions", ()):
            if c["type"] == "QuotaReserved" and c["status"] == "True":
                admitted.append((at(c["lastTransitionTime"]), at(wl["metadata"]["creationTimestamp"])))
    finishes = sorted(
        at(job["status"]["completionTime"])
        for job in listed(cluster, "jobs")
        if job.get("status", {}).get("completionTime")
    )
    admitted.sort()
    latencies = [
        max(0.0, t - max(created, finishes[k - QUOTA]))
        for k, (t, created) in enumerate(admitted)
        if k >= QUOTA and k - QUOTA < len(finishes)
    ]
    if latencies:
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        print(
            f"admission latency once quota frees (n={len(latencies)}, 1 s resolution):"
            f" p50 {q[49]:.1f} s, p99 {q[98]:.1f} s, max {max(latencies):.1f} s"
        )
    peak = max((sum(held.values()) for _, held in samples), default=0)
    print(f"GPUs in use: peak {peak} of quota {QUOTA} ({'never above' if peak <= QUOTA else 'EXCEEDED'})")
    t0 = samples[0][0] if samples else 0
    line = []
    for t, held in samples[:: max(1, len(samples) // 20)]:
        line.append(f"{t - t0:.0f}s:{sum(held.values())}")
    print("GPUs over time: " + " ".join(line))
    # Shares of GPU-seconds while every tenant still had work: up to the first sample after which a
    # tenant never again held a GPU... approximated by the window before the first tenant's last admission.
    last_admit = {t: 0.0 for t in TENANTS}
    for wl in workloads:
        ns = wl["spec"]["queueName"]
        for c in wl.get("status", {}).get("conditions", ()):
            if c["type"] == "QuotaReserved" and c["status"] == "True":
                last_admit[ns] = max(last_admit[ns], at(c["lastTransitionTime"]))
    window_end = min(last_admit.values())
    used = dict.fromkeys(TENANTS, 0.0)
    for (t, held), (t_next, _) in itertools.pairwise(samples):
        if t_next <= window_end:
            for tenant, n in held.items():
                used[tenant] += n * (t_next - t)
    total = sum(used.values()) or 1.0
    for tenant, gpus in TENANTS.items():
        share, fair = used[tenant] / total, gpus / QUOTA
        print(
            f"{tenant}: {share:.1%} of GPU-seconds (fair {fair:.1%},"
            f" off by {abs(share - fair) / fair:.0%} of fair)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    state = os.environ.get("TEST_KUEUE_CLUSTER_DIR")
    with tempfile.TemporaryDirectory(prefix="vj-kueue-bench-") as tmp:
        cluster, was_up = start_cluster(
            Path(state) if state else Path(tmp) / "cluster", TEST_CLUSTER_KUEUE="1"
        )
        try:
            run(cluster, args.count, args.timeout, Path(tmp) / "operator.log")
        finally:
            if not was_up:
                stop_cluster(cluster)


if __name__ == "__main__":
    main()
