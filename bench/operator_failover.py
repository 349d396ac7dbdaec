"""Benchmark: how long VideoJobs wait when the leading operator replica dies or is rolled.

Two `videojobs operator` replicas (leader election with its default timing: 15 s Lease, renewed
every 2 s) watch one namespace of the test control plane. Each round stops the leader, creates a
VideoJob at once, and prints how long until the standby leads and until that VideoJob has its Job;
a new standby then replaces the stopped replica. `--crashes` rounds kill the leader (SIGKILL: its
Lease must expire), then one round stops it cleanly (SIGTERM: it releases the Lease, as in a rollout).

Run: `.venv/bin/python bench/operator_failover.py [--crashes 3]`. It starts its own test cluster (torn
down afterwards) unless TEST_CLUSTER_DIR names one that is up.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))

from k8s_cluster import K8sCluster, start_cluster, stop_cluster  # noqa: E402
from operator_load import VIDEOJOBS, free_port, kubectl_apply, wait_until  # noqa: E402

TIMEOUT_SECONDS = 120


class Replica:
    """One `videojobs operator --namespace NS` process with its own metrics port."""

    def __init__(self, cluster: K8sCluster, namespace: str, log: Path) -> None:
        self.port = free_port()
        env = cluster.env() | {"METRICS_PORT": str(self.port)}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(VIDEOJOBS), "operator", "--namespace", namespace], env=env, stdout=out, stderr=out
            )

    def leading(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                return "\nvideojobs_operator_leader 1.0" in response.read().decode()
        except OSError:
            return False

    def stop(self, signum: signal.Signals) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=60)


def has_job(cluster: K8sCluster, namespace: str, name: str) -> bool:
    done = cluster.kubectl("-n", namespace, "get", "job", name, check=False)
    return done.returncode == 0


def run(cluster: K8sCluster, crashes: int) -> None:
    namespace = f"bench-failover-{secrets.token_hex(3)}"
    log = Path(tempfile.mkdtemp(prefix="vjbench-")) / "operators.log"
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "videojob.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
    cluster.kubectl("create", "namespace", namespace)
    replicas = [Replica(cluster, namespace, log), Replica(cluster, namespace, log)]
    rows: list[tuple[str, float, float]] = []
    try:
        wait_until("a leader", lambda: any(r.leading() for r in replicas), TIMEOUT_SECONDS)
        for round_number, signum in enumerate([signal.SIGKILL] * crashes + [signal.SIGTERM], 1):
            leader = next(r for r in replicas if r.leading())
            standby = next(r for r in replicas if r is not leader)
            name = f"after-{signum.name.lower()}-{round_number}"
            started = time.monotonic()
            leader.stop(signum)
            video_job = {
                "apiVersion": "videojobs.io/v1alpha1",
                "kind": "VideoJob",
                "metadata": {"name": name},
                "spec": {"topic": "Failover"},
            }
            kubectl_apply(cluster, video_job, namespace=namespace)
            wait_until("the standby to lead", standby.leading, TIMEOUT_SECONDS)
            led = time.monotonic() - started
            made = functools.partial(has_job, cluster, namespace, name)
            wait_until(f"the Job of {name}", made, TIMEOUT_SECONDS)
            rows.append((signum.name, led, time.monotonic() - started))
            replicas = [standby, Replica(cluster, namespace, log)]
    finally:
        for replica in replicas:
            replica.stop(signal.SIGTERM)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    print(f"operator failover, 2 replicas, default Lease timing (log: {log})")
    print(f"{'leader stopped by':<18} {'standby leads after':>20} {'new VideoJob has its Job after':>31}")
    for how, led, job in rows:
        print(f"{how:<18} {led:>18.1f} s {job:>29.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=3, help="rounds that kill the leader (default 3)")
    args = parser.parse_args()
    state = os.environ.get("TEST_CLUSTER_DIR")
    cluster, was_up = start_cluster(
        Path(state) if state else Path(tempfile.mkdtemp(prefix="vjbench-")) / "cluster"
    )
    try:
        run(cluster, args.crashes)
    finally:
        if not was_up:
            stop_cluster(cluster)


if __name__ == "__main__":
    main()
