"""The operator with a real Kueue (hack/test-cluster, TEST_CLUSTER_KUEUE=1): VideoJobs with spec.queueName
are admitted by Kueue's controller manager within a ClusterQueue's GPU quota over the KWOK GPU nodes, and
their status shows Kueue's admission state.

The cluster is one of its own (k8s_cluster.kueue_cluster): the other k8s tests play Kueue themselves.
Skipped unless Kueue is built (`hack/test-cluster build-kueue`) or TEST_CLUSTER_KUEUE=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_llm import FakeLLM
from k8s_cluster import K8sCluster
from operator_process import Operator
from videojob_objects import apply, conditions, get, videojob, wait_for

from videojobs.contract import storage_job_id
from videojobs_api.backends.videojob_cache import stored_job
from videojobs_api.models import JobStatusResponse

REPO = Path(__file__).resolve().parents[1]
OPERATOR_NAMESPACE = "videojobs-system"
FINISHED = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}
VIDEOJOBS = Path(sys.executable).parent / "videojobs"
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
EXIT_CODE = "videojobs.test/kwok-exit-code"

pytestmark = [pytest.mark.k8s, pytest.mark.kueue]

GPU_QUOTA = 2
FLAVOR = "kwok-gpu"
CLUSTER_QUEUE = "videojobs-gpu"


def kueue_objects(cluster_queue: str, gpus: int) -> list[dict[str, Any]]:
    """A ResourceFlavor for the KWOK GPU nodes and a ClusterQueue with a GPU quota (cpu and memory are
    covered too, as Kueue needs every requested resource covered), preempting lower priorities."""
    return [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {},
                "queueingStrategy": "StrictFIFO",
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": FLAVOR,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "256"},
                                    {"name": "memory", "nominalQuota": "2Ti"},
                                    {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
    ]


def local_queue(name: str, cluster_queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": name},
        "spec": {"clusterQueue": cluster_queue},
    }


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(kueue_cluster: K8sCluster) -> K8sCluster:
    """The Kueue cluster with the VideoJob CRD, the operator's RBAC, a flavor and a GPU ClusterQueue."""
    kueue_cluster.kubectl("apply", "-f", str(REPO / "crds" / "videojob.yaml"))
    kueue_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s"
    )
    if kueue_cluster.kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0:
        kueue_cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    kueue_cluster.kubectl("apply", "-f", str(REPO / "operator" / "rbac" / "operator.yaml"))
    items = {"apiVersion": "v1", "kind": "List", "items": kueue_objects(CLUSTER_QUEUE, GPU_QUOTA)}
    kueue_cluster.kubectl("apply", "-f", "-", input=json.dumps(items))
    return kueue_cluster


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cluster.token_kubeconfig(
        OPERATOR_NAMESPACE, "videojobs-operator", tmp_path_factory.mktemp("operator") / "kubeconfig"
    )


@contextlib.contextmanager
def tenant_namespace(cluster: K8sCluster, prefix: str) -> Iterator[str]:
    """A fresh namespace with a LocalQueue per tenant (tenant-a, tenant-b) on the GPU ClusterQueue."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    apply(cluster, name, local_queue("tenant-a", CLUSTER_QUEUE), local_queue("tenant-b", CLUSTER_QUEUE))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def namespace(cluster: K8sCluster) -> Iterator[str]:
    """The namespace the tests' VideoJobs are made in."""
    with tenant_namespace(cluster, "vjq") as name:
        yield name


@pytest.fixture
def operator(operator_kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    started = Operator(operator_kubeconfig, namespace, tmp_path / "operator.log", {}).start()
    yield started
    started.stop()


class JobWatcher:
    """Polls the namespace's Jobs in a thread: when each was first unsuspended (admitted by Kueue), and
    the most GPUs held at once by admitted, unfinished Jobs."""

    def __init__(self, cluster: K8sCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.admitted: dict[str, float] = {}
        self.peak_gpus = 0
        self.reasons: dict[str, list[str]] = {}
        """Per VideoJob, the reasons its Queued condition had (in order, without repeats)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = get(self.cluster, self.namespace, "jobs")
            held = 0
            for job in (found or {}).get("items", ()):
                if job["spec"].get("suspend"):
                    continue
                self.admitted.setdefault(job["metadata"]["name"], time.monotonic())
                done = {
                    c["type"] for c in job.get("status", {}).get("conditions", ()) if c["status"] == "True"
                }
                if not done & FINISHED:
                    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
                    held += int(limits.get("nvidia.com/gpu", 0))
            self.peak_gpus = max(self.peak_gpus, held)
            for vj in (get(self.cluster, self.namespace, "videojobs") or {}).get("items", ()):
                queued = conditions(vj).get("Queued") if vj.get("status") else None
                seen = self.reasons.setdefault(vj["metadata"]["name"], [])
                if queued and (not seen or seen[-1] != queued["reason"]):
                    seen.append(queued["reason"])
            time.sleep(0.2)


def workload_created(cluster: K8sCluster, namespace: str, name: str) -> str | None:
    """The creationTimestamp of the Workload Kueue made for VideoJob `name`'s Job, once it exists."""
    job = get(cluster, namespace, "job", name)
    if job is None:
        return None
    uid = job["metadata"]["uid"]
    found = get(cluster, namespace, "workloads", "-l", f"kueue.x-k8s.io/job-uid={uid}")
    items = (found or {}).get("items", ())
    return str(items[0]["metadata"]["creationTimestamp"]) if items else None


def kueue_condition(cluster: K8sCluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = get(cluster, namespace, "videojob", name)
    return conditions(obj).get("Queued") if obj and obj.get("status") else None


# --- tests -----------------------------------------------------------------------------------------


def test_kueue_admits_videojobs_in_order_within_the_gpu_quota(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    names = [f"q{i}" for i in range(5)]
    created: dict[str, str] = {}
    with JobWatcher(cluster, namespace) as watcher:
        # StrictFIFO orders equal priorities by their Workloads' creationTimestamp, which has whole
        # seconds, and a tie by the Workloads' (random) uids. A Workload is made when Kueue sees the Job
        # the operator made: VideoJobs a second apart could get Workloads in the same second under load
        # (and be admitted in either order). So each VideoJob is created once the previous one's
        # Workload exists and the clock (the API server's: the same machine) has passed its second.
        for name in names:
            apply(cluster, namespace, videojob(name, queueName="tenant-a", resources={"gpu": 1}))
            stamp = wait_for(
                f"{name}'s Workload",
                lambda name=name: workload_created(cluster, namespace, name),
                operator=operator,
            )
            created[name] = stamp
            second = datetime.fromisoformat(stamp).replace(microsecond=0)
            time.sleep(max(0.0, (second + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds()))
        assert sorted(created.values()) == list(created.values()) and len(set(created.values())) == 5, created

        # The ones beyond the quota wait, and their status says so in Kueue's words.
        def waiting() -> dict[str, Any] | None:
            condition = kueue_condition(cluster, namespace, names[-1])
            if condition and condition["reason"] == "QueuedByKueue" and "quota" in condition["message"]:
                return condition  # Kueue's reason: no quota left
            return None

        condition = wait_for("the last VideoJob queued by Kueue", waiting, operator=operator)
        assert condition["status"] == "True"
        assert "LocalQueue tenant-a" in condition["message"]
        obj = get(cluster, namespace, "videojob", names[-1])
        assert obj["status"]["phase"] == "Queued"
        assert obj["status"]["message"].startswith("QueuedByKueue: waiting for Kueue")

        for name in names:
            wait_for(
                f"{name} to succeed",
                lambda name=name: (
                    (get(cluster, namespace, "videojob", name) or {}).get("status", {}).get("phase")
                    == "Succeeded"
                ),
                timeout=120,
                operator=operator,
            )
    assert watcher.peak_gpus <= GPU_QUOTA, watcher.peak_gpus
    assert watcher.peak_gpus == GPU_QUOTA  # the quota was used, not just respected
    assert sorted(watcher.admitted, key=watcher.admitted.__getitem__) == names, (watcher.admitted, created)
    done = conditions(get(cluster, namespace, "videojob", names[-1]))["Queued"]
    assert (done["status"], done["reason"]) == ("False", "Admitted")
    assert f"ClusterQueue {CLUSTER_QUEUE}" in done["message"]


def test_a_missing_local_queue_is_reported_as_inadmissible(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    apply(cluster, namespace, videojob("lost", queueName="no-such-queue"))

    def inadmissible() -> dict[str, Any] | None:
        condition = kueue_condition(cluster, namespace, "lost")
        return condition if condition and condition["reason"] == "Inadmissible" else None

    condition = wait_for("the Inadmissible condition", inadmissible, operator=operator)
    assert "no-such-queue" in condition["message"]
    assert get(cluster, namespace, "job", "lost")["spec"]["suspend"] is True


def queue_positions(cluster: K8sCluster, namespace: str) -> dict[str, tuple[int, int] | None]:
    """Each VideoJob's status.queue place: (position, positionInClusterQueue); None where it shows none."""
    found = get(cluster, namespace, "videojobs") or {}
    places: dict[str, tuple[int, int] | None] = {}
    for item in found.get("items", ()):
        queue = (item.get("status") or {}).get("queue") or {}
        place = (queue["position"], queue["positionInClusterQueue"]) if "position" in queue else None
        places[item["metadata"]["name"]] = place
    return places


def test_queued_videojobs_show_their_positions_which_move_up_as_the_ones_ahead_are_admitted(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    """Kueue reports positions through its visibility API (the test cluster serves it through the API
    server's aggregation layer): with the quota held, the waiting VideoJobs show 1, 2, 3 in creation order
    (StrictFIFO), and move up each time the one ahead is admitted."""
    whole_quota = {"queueName": "tenant-a", "resources": {"gpu": GPU_QUOTA}}

    def pods(name: str) -> list[dict[str, Any]]:
        found = get(cluster, namespace, "pods", "-l", f"videojobs.io/name={name}")
        return [p for p in (found or {}).get("items", ()) if not p["metadata"].get("deletionTimestamp")]

    held: list[str] = []

    def hold(name: str) -> str:
        """Keep the VideoJob's pod Running (KWOK's delay) until `release`."""
        (pod,) = wait_for(f"{name}'s pod", lambda: pods(name), operator=operator)
        cluster.kubectl("-n", namespace, "annotate", "pod", pod["metadata"]["name"], f"{RUN_FOR}=1h")
        held.append(pod["metadata"]["name"])
        return str(pod["metadata"]["name"])

    def release(pod: str) -> None:
        cluster.kubectl("-n", namespace, "annotate", "pod", pod, "--overwrite", f"{RUN_FOR}=0s", check=False)

    def places_are(expected: dict[str, int | None]) -> dict[str, tuple[int, int] | None] | None:
        places = queue_positions(cluster, namespace)
        found = {name: place[0] if place else None for name, place in places.items() if name in expected}
        return places if found == expected else None

    try:
        apply(cluster, namespace, videojob("first", **whole_quota))
        running = hold("first")
        waiting = ["w0", "w1", "w2"]
        for name in waiting:  # distinct Workload creation seconds: StrictFIFO's order (see the first test)
            apply(cluster, namespace, videojob(name, **whole_quota))
            stamp = wait_for(
                f"{name}'s Workload",
                lambda name=name: workload_created(cluster, namespace, name),
                operator=operator,
            )
            second = datetime.fromisoformat(stamp).replace(microsecond=0)
            time.sleep(max(0.0, (second + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds()))

        places = wait_for(
            "positions 1, 2, 3",
            lambda: places_are({"first": None, "w0": 1, "w1": 2, "w2": 3}),
            operator=operator,
        )
        in_cluster_queue = [places[name][1] for name in waiting]  # type: ignore[index]
        # Other tests' leftovers may wait in the same ClusterQueue ahead of them, never between them.
        assert in_cluster_queue == list(range(in_cluster_queue[0], in_cluster_queue[0] + 3)), places
        obj = get(cluster, namespace, "videojob", "w1")
        assert obj["status"]["queue"]["name"] == "tenant-a"
        queued = conditions(obj)["Queued"]
        assert (queued["status"], queued["reason"]) == ("True", "QueuedByKueue"), queued
        assert "position 2 in the LocalQueue" in queued["message"], queued
        assert "position 2 in the LocalQueue" in obj["status"]["message"]
        # The API's Kubernetes backend shows the same place in a job's status.
        view = JobStatusResponse.of(stored_job(obj, namespace)).model_dump(mode="json")
        assert view["queue"] == {
            "name": "tenant-a",
            "position": 2,
            "position_in_cluster_queue": in_cluster_queue[1],
        }
        wide = cluster.kubectl("-n", namespace, "get", "videojobs", "-o", "wide").stdout.splitlines()
        start, end = (
            wide[0].index("POSITION"),
            wide[0].index("MESSAGE"),
        )  # columns aligned; topics have spaces
        shown = {line.split()[0]: line[start:end].strip() for line in wide[1:]}
        assert shown == {"first": "", "w0": "1", "w1": "2", "w2": "3"}, wide  # an admitted one shows none

        release(running)  # the running one finishes: w0 is admitted, the others move up
        running = hold("w0")
        wait_for("w1 and w2 moved up", lambda: places_are({"w0": None, "w1": 1, "w2": 2}), operator=operator)
        admitted = get(cluster, namespace, "videojob", "w0")["status"]
        assert "queue" not in admitted and admitted["phase"] != "Queued", admitted
        release(running)
        running = hold("w1")
        wait_for("w2 moved up", lambda: places_are({"w1": None, "w2": 1}), operator=operator)
        release(running)
        wait_for(
            "w2 admitted", lambda: phase(cluster, namespace, "w2") not in (None, "Queued"), operator=operator
        )
        assert queue_positions(cluster, namespace)["w2"] is None
        log = operator.log.read_text()
        assert "queue positions" not in log, operator.tail()  # the visibility API answered every time
    finally:  # a held pod (1h) left behind would keep the quota from the tests after this one
        for pod in held:
            release(pod)


def test_a_higher_priority_videojob_preempts_a_lower_one_which_runs_again_when_readmitted(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    classes = [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": f"videojobs-test-{level}"},
            "value": value,
        }
        for level, value in (("low", 100), ("high", 1000))
    ]
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": classes})
    )
    low = {"queueName": "tenant-a", "resources": {"gpu": 1}, "priorityClassName": "videojobs-test-low"}
    with JobWatcher(cluster, namespace) as watcher:
        apply(cluster, namespace, videojob("low-0", **low), videojob("low-1", **low))
        wait_for(
            "both low-priority Jobs admitted",
            lambda: {"low-0", "low-1"} <= watcher.admitted.keys(),
            operator=operator,
        )
        apply(
            cluster,
            namespace,
            videojob(
                "high", queueName="tenant-b", resources={"gpu": 1}, priorityClassName="videojobs-test-high"
            ),
        )
        for name in ("high", "low-0", "low-1"):
            wait_for(
                f"{name} to succeed",
                lambda name=name: (
                    (get(cluster, namespace, "videojob", name) or {}).get("status", {}).get("phase")
                    == "Succeeded"
                ),
                timeout=120,
                operator=operator,
            )
    assert watcher.peak_gpus <= GPU_QUOTA, watcher.peak_gpus
    preempted = [name for name in ("low-0", "low-1") if "PreemptedByKueue" in watcher.reasons.get(name, ())]
    assert len(preempted) == 1, watcher.reasons  # one GPU was needed: one low-priority VideoJob gave it up
    # ... and its status said so, then showed it admitted again.
    assert watcher.reasons[preempted[0]][-1] == "Admitted", watcher.reasons


# --- a runner that really runs ---------------------------------------------------------------------


@dataclass
class Run:
    """One pod of a VideoJob's Job, and the runner process the test ran for it."""

    pod: str
    started: float
    process: subprocess.Popen[bytes]
    stopped: float | None = None
    """When the pod went away (Kueue suspended the Job) and the runner was stopped."""
    tasks_before_stop: list[str] = field(default_factory=list)


class RunnerKubelet:
    """Plays the kubelet for VideoJob `name`'s pods: each pod of its Job that appears runs the real
    `videojobs run-videojob` as a local process, with the pod's env and the runner ServiceAccount's token,
    against the fake LLM and local storage (`storage`, shared by every pod, as S3 would be). The pod stays
    Running while the runner works (KWOK's delay annotation), and ends with its exit code; a pod that goes
    away (a preemption suspends the Job and the Job controller deletes its pods) gets SIGTERM, as a
    container does."""

    def __init__(
        self, cluster: K8sCluster, namespace: str, name: str, root: Path, storage: Path, llm: FakeLLM
    ) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.root, self.storage, self.llm = root, storage, llm
        self.runs: list[Run] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RunnerKubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for run in self.runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()

    def _pods(self) -> list[dict[str, Any]]:
        found = get(self.cluster, self.namespace, "pods", "-l", f"videojobs.io/name={self.name}")
        return list(found["items"]) if found else []

    def _annotate(self, pod: str, key: str, value: str) -> None:
        self.cluster.kubectl(
            "-n", self.namespace, "annotate", "pod", pod, "--overwrite", f"{key}={value}", check=False
        )

    def _start(self, pod: dict[str, Any]) -> Run:
        name = pod["metadata"]["name"]
        self._annotate(name, RUN_FOR, "1h")  # runs until the runner exits (KWOK's default is 4 s)
        folder = self.root / f"pod-{len(self.runs)}"
        (folder / "home").mkdir(parents=True)
        (folder / "work").mkdir()
        (container,) = pod["spec"]["containers"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env |= {item["name"]: item["value"] for item in container.get("env", ()) if "value" in item}
        env |= {
            "VIDEOJOB_NAMESPACE": self.namespace,
            "HOME": str(folder / "home"),
            "KUBECONFIG": str(
                self.cluster.token_kubeconfig(
                    self.namespace, pod["spec"]["serviceAccountName"], folder / "kubeconfig"
                )
            ),
            "RENDER_ISOLATION": "bwrap",  # no render pods: the scenes render in the local sandbox
            "STORAGE_BACKEND": "local",
            "OUTPUT_DIR": str(self.storage),
            "DEFAULT_QUALITY": "low",
            "MAX_SCENE_CONCURRENCY": "1",  # one scene after another: a preemption finds some stored
            "MAX_CONCURRENT_RENDERS": "1",
        }
        log = (folder / "runner.log").open("wb")
        process = subprocess.Popen(
            [str(VIDEOJOBS), *container["args"]],
            env=env,
            cwd=folder / "work",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return Run(name, time.monotonic(), process)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            pods = {p["metadata"]["name"]: p for p in self._pods()}
            current = self.runs[-1] if self.runs else None
            if current and current.stopped is None:
                pod = pods.get(current.pod)
                if pod is None or pod["metadata"].get("deletionTimestamp"):
                    current.process.terminate()  # the container's SIGTERM
                    current.stopped = time.monotonic()
                    current.tasks_before_stop = [r["task"] for r in self.llm.requests]
                    try:
                        current.process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        current.process.kill()
                        current.process.wait()
                elif current.process.poll() is not None:
                    code = current.process.returncode
                    if code:
                        self.errors.append(f"{current.pod}: runner exited {code}")
                        self._annotate(current.pod, EXIT_CODE, str(code))
                    else:
                        self._annotate(current.pod, RUN_FOR, "0s")
                    current.stopped = time.monotonic()
                continue
            for name, pod in pods.items():
                if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") in (
                    "Succeeded",
                    "Failed",
                ):
                    continue
                if any(run.pod == name for run in self.runs):
                    continue
                self.runs.append(self._start(pod))
                break


SCENE_TASK = re.compile(r"(?:fix-)?scene-(?:plan|code)-(\d+)")


def stored_work(storage: Path) -> dict[str, set[int]]:
    """What the job's checkpoint holds: the outline (scene 0), and the scenes with a plan, code or render."""
    stored: dict[str, set[int]] = {"outline": set(), "plan": set(), "code": set(), "render": set()}
    folders = [path.parent for path in storage.glob("*/job.json")]  # not _cache/
    if not folders:
        return stored
    (folder,) = folders
    if (folder / "outline.json").exists():
        stored["outline"].add(0)
    for path in folder.glob("scenes/*/*"):
        index = int(path.parent.name)
        if path.name == "plan.json":
            stored["plan"].add(index)
        elif path.name == "render.json":
            stored["render"].add(index)
        elif path.name.startswith("code_v") and path.suffix == ".py":
            stored["code"].add(index)
    return stored


def repeated_for_stored_work(asked: list[str], stored: dict[str, set[int]]) -> list[str]:
    """The LLM tasks in `asked` whose result the checkpoint already held."""
    repeated = []
    for task in asked:
        if task == "outline" and stored["outline"]:
            repeated.append(task)
            continue
        match = SCENE_TASK.fullmatch(task.split("-of-")[0])
        if not match:
            continue
        index = int(match.group(1))
        done = stored["render"]
        if (
            index in done
            or ("plan" in task and index in stored["plan"])
            or (task.startswith("scene-code") and index in stored["code"])
        ):
            repeated.append(task)
    return repeated


def phase(cluster: K8sCluster, namespace: str, name: str) -> str | None:
    found = (get(cluster, namespace, "videojob", name) or {}).get("status", {}).get("phase")
    return str(found) if found else None


@pytest.mark.render
def test_a_preempted_videojob_stops_and_resumes_from_its_checkpoint_without_repeating_llm_calls(
    cluster: K8sCluster, namespace: str, operator: Operator, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    classes = [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": f"videojobs-test-{level}"},
            "value": value,
        }
        for level, value in (("low", 100), ("high", 1000))
    ]
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": classes})
    )
    fake_llm.delay_seconds = 0.3  # time for a preemption between two scenes
    storage = tmp_path / "storage"
    low = videojob(
        "low", queueName="tenant-a", resources={"gpu": GPU_QUOTA}, priorityClassName="videojobs-test-low"
    )
    with RunnerKubelet(cluster, namespace, "low", tmp_path / "kubelet", storage, fake_llm) as kubelet:
        apply(cluster, namespace, low)
        wait_for(
            "a scene of the low-priority VideoJob rendered and stored",
            lambda: stored_work(storage)["render"],
            timeout=300,
            operator=operator,
        )
        high = videojob(
            "high", queueName="tenant-b", resources={"gpu": 1}, priorityClassName="videojobs-test-high"
        )
        preempting = time.monotonic()
        apply(cluster, namespace, high)
        first = kubelet.runs[0]
        wait_for("the preempted runner to stop", lambda: first.stopped, timeout=60, operator=operator)
        stored = stored_work(storage)
        assert len(stored["render"]) < 3, "the job finished before the preemption"
        wait_for("the runner to run again", lambda: len(kubelet.runs) > 1, timeout=120, operator=operator)
        resumed = kubelet.runs[1]
        for name in ("high", "low"):
            wait_for(
                f"{name} to succeed",
                lambda name=name: phase(cluster, namespace, name) == "Succeeded",
                timeout=400,
                operator=operator,
            )
    assert not kubelet.errors, kubelet.errors
    assert first.process.returncode is not None and first.stopped is not None
    before = len(first.tasks_before_stop)
    asked_after = [task for task in (r["task"] for r in fake_llm.requests[before:]) if task != "speech"]
    print(
        f"preemption: runner stopped {first.stopped - preempting:.1f}s after the higher-priority VideoJob "
        f"was created; resumed {resumed.started - first.stopped:.1f}s after it stopped "
        f"(preemption-to-resume {resumed.started - preempting:.1f}s); stored before: "
        f"{ {k: sorted(v) for k, v in stored.items()} }; asked after: {asked_after}"
    )
    assert repeated_for_stored_work(asked_after, stored) == [], asked_after
    assert "outline" in first.tasks_before_stop and "outline" not in asked_after
    status = get(cluster, namespace, "videojob", "low")["status"]
    assert status["phase"] == "Succeeded"
    uid = get(cluster, namespace, "videojob", "low")["metadata"]["uid"]
    assert (storage / storage_job_id(namespace, "low", uid) / "video.mp4").is_file()


def test_pausing_a_kueue_videojob_deactivates_its_workload_freeing_the_quota_and_resume_readmits_it(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    both = {"queueName": "tenant-a", "resources": {"gpu": GPU_QUOTA}}

    def pods(name: str) -> list[dict[str, Any]]:
        found = get(cluster, namespace, "pods", "-l", f"videojobs.io/name={name}")
        return [p for p in (found or {}).get("items", ()) if not p["metadata"].get("deletionTimestamp")]

    def workload(name: str) -> dict[str, Any] | None:
        job = get(cluster, namespace, "job", name)
        found = get(cluster, namespace, "workloads", "-l", f"kueue.x-k8s.io/job-uid={job['metadata']['uid']}")
        items = (found or {}).get("items", ())
        return items[0] if items else None

    with JobWatcher(cluster, namespace) as watcher:
        apply(cluster, namespace, videojob("first", **both))
        (pod,) = wait_for("first's pod", lambda: pods("first"), operator=operator)
        cluster.kubectl("-n", namespace, "annotate", "pod", pod["metadata"]["name"], f"{RUN_FOR}=1h")
        time.sleep(1.1)  # StrictFIFO: a later creationTimestamp
        apply(cluster, namespace, videojob("second", **both))
        wait_for(
            "second queued by Kueue for quota",
            lambda: (kueue_condition(cluster, namespace, "second") or {}).get("reason") == "QueuedByKueue",
            operator=operator,
        )
        assert "second" not in watcher.admitted

        paused_at = time.monotonic()
        cluster.kubectl(
            "-n", namespace, "patch", "videojob", "first", "--type=merge", "-p", '{"spec":{"suspend":true}}'
        )
        wait_for("first's Workload deactivated", lambda: workload("first")["spec"]["active"] is False)
        wait_for(
            "second admitted with the freed quota", lambda: "second" in watcher.admitted, operator=operator
        )
        freed = watcher.admitted["second"] - paused_at
        wait_for("first's pod gone", lambda: not pods("first"), operator=operator)  # deleted, not at once
        assert get(cluster, namespace, "job", "first")["spec"]["suspend"] is True  # Kueue suspended it
        wait_for("first Suspended", lambda: phase(cluster, namespace, "first") == "Suspended")
        wait_for("second to succeed", lambda: phase(cluster, namespace, "second") == "Succeeded", timeout=120)

        cluster.kubectl(
            "-n", namespace, "patch", "videojob", "first", "--type=merge", "-p", '{"spec":{"suspend":false}}'
        )
        wait_for("first's Workload reactivated", lambda: workload("first")["spec"]["active"] is True)
        wait_for(
            "first to succeed after resuming",
            lambda: phase(cluster, namespace, "first") == "Succeeded",
            timeout=120,
            operator=operator,
        )
    print(f"pause to the next VideoJob admitted: {freed:.1f}s")
    assert watcher.peak_gpus <= GPU_QUOTA, watcher.peak_gpus
    log = operator.log.read_text()
    assert "deactivated Kueue's Workload" in log and "reactivated Kueue's Workload" in log, operator.tail()
    assert "suspended Job" not in log, operator.tail()  # the operator left the Job's spec.suspend to Kueue


def test_a_videojob_created_paused_with_a_queue_never_starts_until_resumed_and_admitted(
    cluster: K8sCluster, namespace: str, operator: Operator
) -> None:
    """Kueue admits a Job's Workload as soon as it exists (active): a Job made for a paused VideoJob could
    start before the operator deactivated its Workload. A VideoJob created paused gets no Job (so no
    Workload, no quota, no pod) until it is resumed; then Kueue admits it and it runs."""
    started: list[str] = []
    with JobWatcher(cluster, namespace) as watcher:
        apply(cluster, namespace, videojob("held", queueName="tenant-a", resources={"gpu": 1}, suspend=True))
        wait_for(
            "held Suspended", lambda: phase(cluster, namespace, "held") == "Suspended", operator=operator
        )
        deadline = time.monotonic() + 8  # long enough for Kueue to admit a Workload (well under a second)
        while time.monotonic() < deadline:
            for kind in ("jobs", "pods", "workloads"):
                started += [item["metadata"]["name"] for item in get(cluster, namespace, kind)["items"]]
            time.sleep(0.3)
        assert not started, started
        assert not watcher.admitted, watcher.admitted
        obj = get(cluster, namespace, "videojob", "held")
        assert obj["status"]["phase"] == "Suspended"
        paused = conditions(obj)["Suspended"]
        assert (paused["status"], paused["reason"]) == ("True", "Paused"), paused

        cluster.kubectl(
            "-n", namespace, "patch", "videojob", "held", "--type=merge", "-p", '{"spec":{"suspend":false}}'
        )
        wait_for(
            "held to succeed after resuming",
            lambda: phase(cluster, namespace, "held") == "Succeeded",
            timeout=120,
            operator=operator,
        )
    done = conditions(get(cluster, namespace, "videojob", "held"))["Queued"]
    assert (done["status"], done["reason"]) == ("False", "Admitted"), done
    assert "held" in watcher.admitted


MULTIKUEUE = "kueue.x-k8s.io/multikueue"
PREBUILT_WORKLOAD_LABEL = "kueue.x-k8s.io/prebuilt-workload-name"
MULTIKUEUE_ORIGIN_LABEL = "kueue.x-k8s.io/multikueue-origin"


def multikueue_worker_copy(manager: dict[str, Any], namespace: str, workload: str) -> dict[str, Any]:
    """What MultiKueue's generic adapter for custom jobs (MultiKueueAdaptersForCustomJobs; Kueue v0.17
    pkg/controller/admissionchecks/multikueue/externalframeworks, createRemoteObject) creates on a worker
    cluster: a copy of the manager's object without resourceVersion and spec.managedBy, labelled with the
    manager's Workload (a prebuilt Workload on the worker) and the manager's origin name. The namespace is
    the same name on the worker; here the worker is a second namespace of this cluster."""
    copy = json.loads(json.dumps(manager))
    meta = copy["metadata"]
    for server_field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        meta.pop(server_field, None)
    meta.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    meta["namespace"] = namespace
    meta["labels"] = {
        **meta.get("labels", {}),
        PREBUILT_WORKLOAD_LABEL: workload,
        MULTIKUEUE_ORIGIN_LABEL: "multikueue",
    }
    del copy["spec"]["managedBy"]
    copy.pop("status", None)
    return copy


def prebuilt_workload(name: str, queue: str, job: dict[str, Any]) -> dict[str, Any]:
    """The Workload MultiKueue creates on a worker for a dispatched job (a copy of the manager's, labelled
    with its origin), with the one pod set Kueue's batch/v1 Job integration derives from `job`."""
    template = job["spec"]["template"]
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": name, "labels": {MULTIKUEUE_ORIGIN_LABEL: "multikueue"}},
        "spec": {
            "queueName": queue,
            "podSets": [{"name": "main", "count": job["spec"]["parallelism"], "template": template}],
        },
    }


@pytest.fixture
def worker_namespace(cluster: K8sCluster) -> Iterator[str]:
    """A second namespace, standing for a MultiKueue worker cluster's copy of the first, with its queues."""
    with tenant_namespace(cluster, "vjw") as name:
        yield name


def test_a_videojob_multikueue_dispatches_is_left_alone_and_its_worker_copy_runs_in_another_namespace(
    cluster: K8sCluster, namespace: str, worker_namespace: str, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    """One operator watching two namespaces (`--namespace A --namespace B`): in A a VideoJob that names
    MultiKueue in spec.managedBy gets nothing from the operator (no Job, finalizer or status); its copy
    as MultiKueue creates it on a worker, in B, runs to a Job there."""
    operator = Operator(
        operator_kubeconfig, [namespace, worker_namespace], tmp_path / "operator.log", {}
    ).start()
    try:
        wait_for(
            "the operator ready (a watch per resource in each namespace)", operator.ready, operator=operator
        )
        apply(
            cluster,
            namespace,
            videojob("dispatched", queueName="tenant-a", resources={"gpu": 1}, managedBy=MULTIKUEUE),
        )
        manager = get(cluster, namespace, "videojob", "dispatched")
        workload = "videojob-dispatched-1"
        apply(
            cluster,
            worker_namespace,
            multikueue_worker_copy(manager, worker_namespace, workload),
        )
        # The worker copy's Job carries the VideoJob's labels, MultiKueue's among them: Kueue runs it under
        # the prebuilt Workload MultiKueue made on the worker (quota counted once, its admission the one
        # the manager follows). Made here as MultiKueue would, with the pod set Kueue derives from the Job.
        (job,) = wait_for(
            "the worker copy's Job",
            lambda: get(cluster, worker_namespace, "jobs")["items"],
            operator=operator,
        )
        assert job["metadata"]["labels"][PREBUILT_WORKLOAD_LABEL] == workload
        assert job["spec"]["suspend"] is True  # Kueue's until its Workload is admitted
        apply(cluster, worker_namespace, prebuilt_workload(workload, "tenant-a", job))
        wait_for(
            "the worker copy to succeed",
            lambda: phase(cluster, worker_namespace, "dispatched") == "Succeeded",
            timeout=60,
            operator=operator,
        )
        assert job["metadata"]["ownerReferences"][0]["name"] == "dispatched"
        owners = get(cluster, worker_namespace, "workload", workload)["metadata"]["ownerReferences"]
        assert [(owner["kind"], owner["uid"]) for owner in owners] == [("Job", job["metadata"]["uid"])]
        ignored = get(cluster, namespace, "videojob", "dispatched")
        assert "status" not in ignored and not ignored["metadata"].get("finalizers"), ignored
        assert get(cluster, namespace, "jobs")["items"] == []
    finally:
        operator.stop()
