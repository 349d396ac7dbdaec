"""Benchmark: N VideoJobs (default 500) over 3 tenants through the operator and a real Kueue, on a GPU quota
of 8 (the test cluster's 2 KWOK GPU nodes, 4 each).

Each tenant has a ClusterQueue in one cohort (nominal GPU quotas 3, 3 and 2: their fair shares; idle quota
is lent, and reclaimed by preemption once its owner has work again) and a LocalQueue in its namespace.
VideoJobs (1 GPU each) are submitted round-robin. Every time is taken from two `kubectl get --watch` streams
(the run's Workloads and Jobs), stamped as each event arrives here: milliseconds, not the API's whole
seconds, and no polling that would load the cluster it measures (a list of 600 Jobs is ~9 MB and ~1.5 s of
kubectl CPU). Prints:
- Workloads preempted (evicted after admission: lent quota reclaimed) and admitted again, and the time
  from each eviction to its next reservation (preemption to resume);
- admission latency once quota frees: for the k-th QuotaReserved after the first 8, its time minus the
  later of when its Workload began to wait (created, or evicted) and the (k-8)-th release of quota
  (a Workload Finished or evicted);
- each reservation's stages: reserved -> Job unsuspended -> Job Complete -> quota released;
- GPUs in use (Kueue's reservations, QuotaReserved to Finished) against the quota: the peak (never
  above), the mean while some Workload waited, and over time;
- each tenant's share of reserved GPU-seconds while every tenant had a Workload waiting (before that,
  idle quota is lent and no fair share is owed), against its fair share; and the machine's load.

Run: `.venv/bin/python bench/kueue.py [--count 500]`. It starts its own test cluster with Kueue
(TEST_CLUSTER_KUEUE=1; torn down afterwards) unless TEST_KUEUE_CLUSTER_DIR names one that is up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from k8s_cluster import K8sCluster, start_cluster, stop_cluster  # noqa: E402
from operator_process import Operator  # noqa: E402

OPERATOR_NS = "videojobs-system"
NAMESPACE = "bench"
"""The operator watches one namespace: the tenants' LocalQueues (one per tenant) are all in it."""
TENANTS = {"tenant-a": 3, "tenant-b": 3, "tenant-c": 2}
QUOTA = sum(TENANTS.values())
K = "kueue.x-k8s.io/v1beta2"


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
                    # Quota lent while its owner was idle is taken back (the borrower is preempted and
                    # resumes later) once the owner has work again: else the borrower keeps it.
                    "preemption": {"reclaimWithinCohort": "Any"},
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


CONDITIONS = '{{range .status.conditions}}{{.type}}={{.status}} {{end}}{{"\\n"}}'
WORKLOAD_LINE = (
    "{{.metadata.name}} {{.spec.queueName}} {{range .metadata.ownerReferences}}{{.name}}{{end}} " + CONDITIONS
)
JOB_LINE = "{{.metadata.name}} {{.spec.suspend}} " + CONDITIONS


class Watch(threading.Thread):
    """`kubectl get RESOURCE --watch`, one line an event: when each object was first seen, and when each
    of its conditions first became True, by this machine's clock as the event arrived (milliseconds, not
    the API's whole-second timestamps; no polling: the watch costs the API server next to nothing).
    """

    def __init__(self, cluster: K8sCluster, resource: str, template: str, mine: str) -> None:
        super().__init__(daemon=True)
        kubectl = [str(cluster.bin_dir / "kubectl"), "get", resource, "-n", NAMESPACE, "--watch"]
        self.command = [*kubectl, "-o", f"go-template={template}"]
        self.env = cluster.env()
        self.process: subprocess.Popen[str] | None = None
        self.closing = threading.Event()
        self.mine = mine  # only objects whose name holds this
        self.seen: dict[str, float] = {}
        self.fields: dict[str, list[str]] = {}  # the line's fields before the conditions, as first seen
        self.true: dict[str, dict[str, float]] = {}  # name -> condition type -> first seen True
        self.unsuspended: dict[str, float] = {}  # (Jobs) first seen with spec.suspend false
        self.spans: dict[str, list[list[float]]] = {}
        """(Workloads) each time it held quota: [QuotaReserved, released (evicted or Finished)]; an open span
        ends with -1. More than one: it was preempted (or its lent quota reclaimed) and admitted again."""

    def run(self) -> None:
        while not self.closing.is_set():  # a watch the API server ends is opened again (it lists first)
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=subprocess.PIPE, text=True, bufsize=1
            )
            if self.closing.is_set():  # closed while it started
                self.process.terminate()
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.take(time.time(), line.split())
            self.process.wait()

    def take(self, now: float, parts: list[str]) -> None:
        """One event's line: Workloads are named job-<the Job's name>-<hash>, Jobs after their VideoJob."""
        if not parts or self.mine not in parts[0]:
            return
        name = parts[0]
        self.seen.setdefault(name, now)
        conditions = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        self.fields.setdefault(name, [p for p in parts[1:] if "=" not in p])
        if "false" in parts[1:2]:
            self.unsuspended.setdefault(name, now)
        for kind, status in conditions.items():
            if status == "True":
                self.true.setdefault(name, {}).setdefault(kind, now)
        holds = conditions.get("QuotaReserved") == "True" and conditions.get("Finished") != "True"
        spans = self.spans.setdefault(name, [])
        if holds and (not spans or spans[-1][1] >= 0):
            spans.append([now, -1.0])
        elif not holds and spans and spans[-1][1] < 0:
            spans[-1][1] = now

    def close(self) -> None:
        self.closing.set()
        if self.process is not None:
            self.process.terminate()
        self.join(timeout=30)


def run(cluster: K8sCluster, count: int, timeout: float, log: Path) -> None:
    setup(cluster)
    kubeconfig = cluster.token_kubeconfig(
        OPERATOR_NS, "videojobs-operator", log.parent / "operator.kubeconfig"
    )
    operator = Operator(kubeconfig, NAMESPACE, log, {}).start()
    # Names of this run's own (a reused cluster keeps an earlier run's VideoJobs, Jobs and Workloads).
    prefix = f"b{int(time.time()) % 100000}-"
    workloads = Watch(cluster, "workloads", WORKLOAD_LINE, prefix)
    jobs = Watch(cluster, "jobs", JOB_LINE, prefix)
    workloads.start()
    jobs.start()
    try:
        start = time.time()
        tenants = list(TENANTS)
        videojobs: list[dict[str, Any]] = [  # round-robin over the tenants
            {
                "apiVersion": "videojobs.io/v1alpha1",
                "kind": "VideoJob",
                "metadata": {"name": f"{prefix}{i:04d}"},
                "spec": {
                    "topic": f"Topic {i}",
                    "queueName": tenants[i % len(tenants)],
                    "resources": {"gpu": 1},
                },
            }
            for i in range(count)
        ]
        for first in range(0, count, 30):  # 30 per request
            apply(cluster, videojobs[first : first + 30], NAMESPACE)
        print(f"submitted {count} VideoJobs in {time.time() - start:.1f} s", flush=True)
        loads = [os.getloadavg()[0]]
        deadline = time.time() + timeout
        while True:  # the watch tells when Kueue released each Workload's quota
            done = sum("Finished" in c for c in list(workloads.true.values()))
            if done >= count:
                break
            if time.time() > deadline:
                raise SystemExit(f"timed out: {done}/{count} Workloads Finished\n{operator.tail()}")
            time.sleep(1)
            loads.append(os.getloadavg()[0])
        succeeded = 0
        while succeeded < count and time.time() < deadline:  # the operator's status follows the Jobs
            ours = (vj for vj in listed(cluster, "videojobs") if vj["metadata"]["name"].startswith(prefix))
            succeeded = sum(vj.get("status", {}).get("phase") == "Succeeded" for vj in ours)
            time.sleep(0 if succeeded >= count else 2)
        print(
            f"all {count} Workloads Finished after"
            f" {max(t['Finished'] for t in workloads.true.values()) - start:.0f} s,"
            f" {succeeded} VideoJobs Succeeded",
            flush=True,
        )
        print(
            f"machine: {os.cpu_count()} cores, 1-min load average {statistics.median(loads):.1f} (median),"
            f" max {max(loads):.1f}"
        )
    finally:
        workloads.close()
        jobs.close()
        operator.stop()
    report(workloads, jobs, start)


def quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return f"p50 {q[49]:.2f} s, p99 {q[98]:.2f} s, max {max(values):.2f} s (n={len(values)})"


def report(workloads: Watch, jobs: Watch, start: float) -> None:
    """Every time below is when the watch event arrived here (sub-second), not an API timestamp."""
    held: list[tuple[str, float, float]] = []  # (tenant, quota reserved, released)
    reserved: list[tuple[float, float, str]] = []  # (QuotaReserved, waiting since: seen or evicted, tenant)
    for name, spans in workloads.spans.items():
        waited_since = workloads.seen[name]
        for begin, end in spans:
            reserved.append((begin, waited_since, workloads.fields[name][0]))
            if end >= 0:
                held.append((workloads.fields[name][0], begin, end))
                waited_since = end
    reserved.sort()
    freed = sorted(t for _, _, t in held)
    readmitted = [
        later[0] - earlier[1]
        for spans in workloads.spans.values()
        for earlier, later in itertools.pairwise(spans)
    ]
    print(f"Workloads preempted (evicted after admission, admitted again): {len(readmitted)}")
    print(f"  preemption to resume (evicted -> quota reserved again): {quantiles(readmitted)}")
    # The k-th reservation after the first QUOTA waited for the (k-QUOTA)-th release (1 GPU each).
    latencies = [
        max(0.0, t - max(seen, freed[k - QUOTA]))
        for k, (t, seen, _) in enumerate(reserved)
        if k >= QUOTA and k - QUOTA < len(freed)
    ]
    print(
        "admission latency once quota frees (Workload Finished -> next QuotaReserved):",
        quantiles(latencies),
    )
    # Stages of each Workload's slot, from its reservation to its release.
    job_of = {name: fields[1] for name, fields in workloads.fields.items() if len(fields) > 1}
    stages: dict[str, list[float]] = {
        "reserved -> Job unsuspended": [],
        "unsuspended -> Job Complete": [],
        "Job Complete -> quota released": [],
    }
    for name, conditions in workloads.true.items():
        job = job_of.get(name)
        if job is None or len(workloads.spans.get(name, ())) != 1 or "Finished" not in conditions:
            continue
        unsuspended, complete = jobs.unsuspended.get(job), jobs.true.get(job, {}).get("Complete")
        if unsuspended is None or complete is None:
            continue
        stages["reserved -> Job unsuspended"].append(unsuspended - conditions["QuotaReserved"])
        stages["unsuspended -> Job Complete"].append(complete - unsuspended)
        stages["Job Complete -> quota released"].append(conditions["Finished"] - complete)
    for stage, values in stages.items():
        print(f"  {stage}: {quantiles(values)}")
    # GPUs reserved over time (Kueue's own reservations, 1 GPU each), and while work was waiting.
    changes = sorted([(t, 1) for _, t, _ in held] + [(t, -1) for _, _, t in held], key=lambda c: (c[0], c[1]))
    waiting_changes = sorted([(since, 1) for _, since, _ in reserved] + [(t, -1) for t, _, _ in reserved])
    in_use, peak, timeline = 0, 0, []
    for t, delta in changes:
        in_use += delta
        peak = max(peak, in_use)
        timeline.append((t, in_use))
    print(
        f"GPUs in use (reserved by Kueue): peak {peak} of quota {QUOTA}",
        "(never above)" if peak <= QUOTA else "(EXCEEDED)",
    )
    events = sorted([(t, "use", d) for t, d in changes] + [(t, "wait", d) for t, d in waiting_changes])
    busy = waited = 0.0
    in_use = waiting = 0
    previous = events[0][0] if events else 0.0
    for t, kind, delta in events:
        if waiting > 0:
            waited += t - previous
            busy += in_use * (t - previous)
        previous = t
        if kind == "use":
            in_use += delta
        else:
            waiting += delta
    if waited:
        print(
            f"  while Workloads were waiting ({waited:.0f} s): {busy / waited:.2f} GPUs in use on average"
            f" ({busy / waited / QUOTA:.0%} of the quota)"
        )
    line, step = [], max(1.0, (timeline[-1][0] - start) / 20) if timeline else 1.0
    mark = start
    for t, n in timeline:
        if t >= mark:
            line.append(f"{t - start:.0f}s:{n}")
            mark = t + step
    print("GPUs over time: " + " ".join(line))
    # Shares of GPU-seconds while every tenant had a Workload waiting (contention: only then is a fair
    # share owed), from each tenant's reservations and waiting Workloads over time.
    sweep: list[tuple[float, str, str, int]] = []
    for tenant, begin, end in held:
        sweep += [(begin, tenant, "use", 1), (end, tenant, "use", -1)]
    for t, since, tenant in reserved:
        sweep += [(since, tenant, "wait", 1), (t, tenant, "wait", -1)]
    sweep.sort(key=lambda e: (e[0], e[3]))
    using, queued = dict.fromkeys(TENANTS, 0), dict.fromkeys(TENANTS, 0)
    used, borrowed = dict.fromkeys(TENANTS, 0.0), dict.fromkeys(TENANTS, 0.0)
    contended, previous = 0.0, sweep[0][0] if sweep else 0.0
    for t, tenant, kind, delta in sweep:
        if all(queued.values()):
            contended += t - previous
            for name, nominal in TENANTS.items():
                used[name] += using[name] * (t - previous)
                borrowed[name] += max(0, using[name] - nominal) * (t - previous)
        previous = t
        (using if kind == "use" else queued)[tenant] += delta
    total = sum(used.values()) or 1.0
    print(f"tenant shares while every tenant had a Workload waiting ({contended:.0f} s):")
    for tenant, gpus in TENANTS.items():
        share, fair = used[tenant] / total, gpus / QUOTA
        slots = [end - begin for name, begin, end in held if name == tenant]
        print(
            f"{tenant}: {share:.1%} of GPU-seconds (fair {fair:.1%},"
            f" off by {abs(share - fair) / fair:.0%} of fair); over its nominal quota"
            f" {borrowed[tenant] / total:.1%}; a reservation lasts {statistics.mean(slots):.2f} s on average"
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
