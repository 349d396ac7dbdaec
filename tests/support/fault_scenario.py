"""The silent-network scenario of tests/test_network_faults.py and bench/network_faults.py.

Operators (and optionally the API) reach the test API server only through FaultyNetwork proxies. Two
VideoJobs go through Kueue's path, so the scenario decides when their Jobs run: `ok` succeeds and `bad`
fails while the network is frozen, and two new VideoJobs are created meanwhile. (Every pod ends by
itself: KWOK leaves a pod that is still running when its namespace goes stuck on the Job's finalizer.)
After the network returns (its frozen connections staying silent for good), the recovery time is how
long until every VideoJob's phase matches its Job, `ok` and `bad` have ended, and the new ones have Jobs.
The test's own kubectl calls go to the API server directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from faulty_network import FaultyNetwork
from k8s_cluster import K8sCluster, wait_for
from operator_process import Operator, wait_ready
from videojob_objects import videojob

EXIT_CODE = "videojobs.test/kwok-exit-code"
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
DEFAULT_LEASE = {
    "LEASE_DURATION_SECONDS": "15",
    "LEASE_RENEW_DEADLINE_SECONDS": "10",
    "LEASE_RETRY_SECONDS": "2",
}
"""The operator's own Lease timing (the tests' usual 4 s Lease gives up within one request deadline)."""
FINISHED_JOB = {
    "Complete": "Succeeded",
    "SuccessCriteriaMet": "Succeeded",
    "Failed": "Failed",
    "FailureTarget": "Failed",
}


def proxied_kubeconfig(cluster: K8sCluster, network: FaultyNetwork, path: Path) -> Path:
    """The cluster's admin kubeconfig with the API server reached through `network`."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{network.port}"
    path.write_text(yaml.safe_dump(config))
    return path


def expected_phase(job: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    """The VideoJob phase that matches its Job (and the Job's pods) as they are."""
    for condition in job.get("status", {}).get("conditions") or ():
        if condition.get("status") == "True" and condition["type"] in FINISHED_JOB:
            return FINISHED_JOB[condition["type"]]
    if job["spec"].get("suspend"):
        return "Queued"
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    latest = max(live, key=lambda pod: pod["metadata"]["creationTimestamp"], default=None)
    running = latest is not None and latest.get("status", {}).get("phase") in ("Running", "Succeeded")
    return "Running" if running else "Pending"


def mismatches(cluster: K8sCluster, namespace: str) -> list[str]:
    """Each VideoJob whose phase does not match its Job, saying how."""
    found = json.loads(cluster.kubectl("-n", namespace, "get", "videojobs,jobs,pods", "-o", "json").stdout)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in found["items"]:
        by_kind.setdefault(item["kind"], []).append(item)
    jobs = {job["metadata"]["name"]: job for job in by_kind.get("Job", [])}
    wrong = []
    for vj in by_kind.get("VideoJob", []):
        name, phase = vj["metadata"]["name"], vj.get("status", {}).get("phase")
        job = jobs.get(name)
        if job is None:
            wrong.append(f"{name}: {phase}, no Job")
            continue
        pods = [p for p in by_kind.get("Pod", []) if p["metadata"].get("labels", {}).get("job-name") == name]
        if phase != (expected := expected_phase(job, pods)):
            wrong.append(f"{name}: {phase}, its Job says {expected}")
    return wrong


@dataclass
class Scenario:
    """Operators (and an API) behind faulty networks, watching `namespace`."""

    cluster: K8sCluster
    namespace: str
    operators: list[Operator]
    networks: list[FaultyNetwork]
    folder: Path
    rounds: int = 0
    log: list[str] = field(default_factory=list)

    def apply(self, *objects: dict[str, Any]) -> None:
        items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.cluster.kubectl("-n", self.namespace, "apply", "-f", "-", input=json.dumps(items))

    def phase(self, name: str) -> str | None:
        done = self.cluster.kubectl("-n", self.namespace, "get", "videojob", name, "-o", "json", check=False)
        return json.loads(done.stdout).get("status", {}).get("phase") if done.returncode == 0 else None

    def admit(self, name: str, **annotations: str) -> None:
        """Play Kueue: unsuspend the VideoJob's (suspended) Job, telling KWOK how its pod ends."""
        wait_for(f"the Job of {name}", lambda: self._has_job(name), 60, self._tails)
        patch = {"spec": {"suspend": False, "template": {"metadata": {"annotations": annotations}}}}
        self.cluster.kubectl(
            "-n", self.namespace, "patch", "job", name, "--type=merge", "-p", json.dumps(patch)
        )

    def _has_job(self, name: str) -> bool:
        return self.cluster.kubectl("-n", self.namespace, "get", "job", name, check=False).returncode == 0

    def _tails(self) -> str:
        return "".join(f"\noperator log:\n{operator.tail()}" for operator in self.operators[:1])

    def prepare(self) -> None:
        """The operators ready, and a first VideoJob done."""
        wait_ready(self.operators)
        self.apply(videojob("first"))
        wait_for("first to succeed", lambda: self.phase("first") == "Succeeded", 60, self._tails)

    def freeze(self, seconds: float, timeout: float = 120) -> float:
        """Freeze every network for `seconds` while Jobs end and VideoJobs come; seconds until all match."""
        self.rounds += 1
        ok, bad, new = f"ok-{self.rounds}", f"bad-{self.rounds}", [f"new-{self.rounds}-{i}" for i in (1, 2)]
        self.apply(videojob(ok, queueName="kueue"), videojob(bad, queueName="kueue", backoffLimit=0))
        wait_for("their Jobs", lambda: self._has_job(ok) and self._has_job(bad), 60, self._tails)
        for network in self.networks:
            network.freeze()
        frozen = time.monotonic()
        self.admit(ok, **{RUN_FOR: "1s"})  # they end while the network is silent (or right after 1 s)
        self.admit(bad, **{RUN_FOR: "1s", EXIT_CODE: "1"})
        self.apply(*(videojob(name) for name in new))
        time.sleep(max(0.0, frozen + seconds - time.monotonic()))
        for network in self.networks:
            network.thaw()
        back = time.monotonic()

        def settled() -> bool:
            return not mismatches(self.cluster, self.namespace) and (self.phase(ok), self.phase(bad)) == (
                "Succeeded",
                "Failed",
            )

        wait_for(
            f"every VideoJob to match its Job after a {seconds:g} s freeze",
            settled,
            timeout,
            lambda: f"\n{mismatches(self.cluster, self.namespace)}{self._tails()}",
        )
        return time.monotonic() - back


@contextmanager
def scenario(
    cluster: K8sCluster, namespace: str, replicas: int, folder: Path, env: dict[str, str] | None = None
) -> Iterator[Scenario]:
    """`replicas` operators, each behind its own faulty network and restarted when it exits (as a kubelet
    would, keeping the pod's name as its Lease identity), with the operator's own Lease timing."""
    host, port = cluster.server.removeprefix("https://").split(":")
    with ExitStack() as stack:
        operators, networks = [], []
        for number in range(replicas):
            network = FaultyNetwork(host, int(port)).start()
            stack.callback(network.stop)
            kubeconfig = proxied_kubeconfig(cluster, network, folder / f"kubeconfig-{number}")
            settings = DEFAULT_LEASE | {"LEADER_ELECTION_IDENTITY": f"operator-{number}"} | (env or {})
            operator = Operator(
                kubeconfig, namespace, folder / f"operator-{number}.log", settings, restart=True
            )
            stack.callback(operator.stop)
            operators.append(operator.start())
            networks.append(network)
        yield Scenario(cluster, namespace, operators, networks, folder)
