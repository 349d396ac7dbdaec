"""Benchmark: how long after a silent network returns until every VideoJob's status matches its Job.

For 1 and 2 `videojobs operator` replicas, each reaching the test control plane's API server through its
own faulty network (tests/support/faulty_network.py: a 127.0.0.1 TCP proxy that stops forwarding without
closing anything; the connections frozen stay silent for good, as after a dropped NAT entry), the
scenario of tests/support/fault_scenario.py freezes every network for 1 s, 20 s and 120 s while Jobs end
and VideoJobs are created, and prints the time from the network's return until every VideoJob's phase
matches its Job again. A replica that exits (a leader that could not renew its Lease) is restarted at
once, as the kubelet restarts a container, under the same Lease identity (the chart's pod name).

Run: `.venv/bin/python bench/network_faults.py [--freezes 1 20 120] [--replicas 1 2]`. It starts its own
test cluster (torn down afterwards) unless TEST_CLUSTER_DIR names one that is up.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from fault_scenario import scenario  # noqa: E402
from k8s_cluster import K8sCluster, start_cluster, stop_cluster  # noqa: E402

TIMEOUT_SECONDS = 300


def measure(cluster: K8sCluster, replicas: int, freeze: float) -> tuple[float, int]:
    """Seconds from the network's return until everything matches; operator restarts meanwhile."""
    namespace = f"bench-faults-{secrets.token_hex(3)}"
    folder = Path(tempfile.mkdtemp(prefix="vjbench-faults-"))
    cluster.kubectl("create", "namespace", namespace)
    try:
        with scenario(cluster, namespace, replicas, folder) as run:
            run.prepare()
            recovered = run.freeze(freeze, timeout=TIMEOUT_SECONDS)
            return recovered, sum(operator.restarts for operator in run.operators)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freezes", type=float, nargs="+", default=[1, 20, 120])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    state = os.environ.get("TEST_CLUSTER_DIR")
    cluster, was_up = start_cluster(
        Path(state) if state else Path(tempfile.mkdtemp(prefix="vjbench-")) / "cluster"
    )
    try:
        cluster.kubectl("apply", "-f", str(ROOT / "crds" / "videojob.yaml"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
        print(f"{'replicas':>8}  {'freeze s':>8}  {'recovery s':>10}  {'restarts':>8}")
        for replicas in args.replicas:
            for freeze in args.freezes:
                recovered, restarts = measure(cluster, replicas, freeze)
                print(f"{replicas:>8}  {freeze:>8g}  {recovered:>10.1f}  {restarts:>8}", flush=True)
    finally:
        if not was_up:
            stop_cluster(cluster)


if __name__ == "__main__":
    main()
