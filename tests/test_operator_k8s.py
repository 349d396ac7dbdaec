"""The operator against the real test control plane (hack/test-cluster): Jobs on KWOK GPU nodes, phases,
failure reasons, queueing, restarts, cascading deletes, and the runner's ServiceAccount.

The operator runs as `videojobs operator --namespace <test namespace>` in a subprocess, authenticated
with a TokenRequest token of its ServiceAccount bound by operator/rbac/operator.yaml - so these tests
also prove that RBAC is enough. KWOK runs a Job's pod for ~2 s, then marks it Succeeded. Where a test
needs a pod to fail or run longer, the VideoJob goes through Kueue's path (spec.queueName: the Job is
created suspended) and the test plays Kueue: it sets the pod template's annotations KWOK reads and
unsuspends the Job.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from k8s_cluster import K8sCluster
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from operator_process import Operator
from s3_server import running_s3_server
from videojob_objects import apply, conditions, get, videojob, wait_for

from videojobs.contract import JobStatus, Stage, storage_job_id
from videojobs_operator.kube import KubeApi
from videojobs_operator.settings import OperatorSettings
from videojobs_runner.kube_reporter import KubernetesStatusReporter

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[1]
VIDEOJOBS = Path(sys.executable).parent / "videojobs"
OPERATOR_NAMESPACE = "videojobs-system"
EXIT_CODE = "videojobs.test/kwok-exit-code"
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
LEASE = "videojobs-operator"
FINISHED = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}
"""Job conditions after which its pod no longer holds a slot."""


# --- helpers ---------------------------------------------------------------------------------------


def phase_of(cluster: K8sCluster, namespace: str, name: str) -> str | None:
    obj = get(cluster, namespace, "videojob", name)
    return (obj or {}).get("status", {}).get("phase")


def wait_phase(
    cluster: K8sCluster, namespace: str, name: str, phase: str, operator: Operator
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "videojob", name)
        return obj if obj and obj.get("status", {}).get("phase") == phase else None

    return wait_for(f"VideoJob {name} to be {phase}", probe, operator=operator)


def jobs_of(cluster: K8sCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    found = get(cluster, namespace, "jobs", "-l", f"videojobs.io/name={name}")
    return list(found["items"]) if found else []


def pods_of(cluster: K8sCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    found = get(cluster, namespace, "pods", "-l", f"videojobs.io/name={name}")
    return list(found["items"]) if found else []


def admit_like_kueue(
    cluster: K8sCluster, namespace: str, name: str, operator: Operator, job: str = "", **annotations: str
) -> None:
    """Unsuspend the (suspended, Kueue-labelled) Job (`job`, else the first attempt's), with annotations
    for KWOK on its pod template."""
    job = job or name
    wait_for(f"the suspended Job {job}", lambda: get(cluster, namespace, "job", job), operator=operator)
    patch = {"spec": {"suspend": False, "template": {"metadata": {"annotations": annotations}}}}
    cluster.kubectl("-n", namespace, "patch", "job", job, "--type=merge", "-p", json.dumps(patch))


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(k8s_cluster: K8sCluster) -> K8sCluster:
    """The control plane with the CRD installed."""
    k8s_cluster.kubectl("apply", "-f", str(REPO / "crds" / "videojob.yaml"))
    k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
    return k8s_cluster


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the operator's ServiceAccount (operator/rbac/operator.yaml), by TokenRequest."""
    if cluster.kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    cluster.kubectl("apply", "-f", str(REPO / "operator" / "rbac" / "operator.yaml"))
    return cluster.token_kubeconfig(
        OPERATOR_NAMESPACE, "videojobs-operator", tmp_path_factory.mktemp("operator") / "kubeconfig"
    )


@pytest.fixture
def namespace(cluster: K8sCluster) -> Iterator[str]:
    """A fresh namespace (the operator gives each runner its own ServiceAccount there)."""
    name = f"vj-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def start_operator(
    operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Operator]]:
    """Start (and at the end stop) operators watching the test's namespace."""
    started: list[Operator] = []

    def start(**env: str) -> Operator:
        operator = Operator(operator_kubeconfig, namespace, tmp_path / "operator.log", env).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        operator.stop()


# --- tests -----------------------------------------------------------------------------------------


def test_videojob_runs_as_a_gpu_job_and_succeeds(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        apply(cluster, other, videojob("elsewhere"))  # not the operator's namespace: left alone
        operator = start_operator()
        apply(cluster, namespace, videojob("pythagoras", resources={"gpu": 2}, activeDeadlineSeconds=600))

        (job,) = wait_for("the Job", lambda: jobs_of(cluster, namespace, "pythagoras"), operator=operator)
        vj = get(cluster, namespace, "videojob", "pythagoras")
        (owner,) = job["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "VideoJob",
            "pythagoras",
            vj["metadata"]["uid"],
        )
        assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
        assert job["spec"]["activeDeadlineSeconds"] == 600
        pod_spec = job["spec"]["template"]["spec"]
        assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert pod_spec["serviceAccountName"] == "pythagoras"  # the runner's own identity
        for kind in ("serviceaccount", "role", "rolebinding"):
            (identity_owner,) = get(cluster, namespace, kind, "pythagoras")["metadata"]["ownerReferences"]
            assert identity_owner["uid"] == vj["metadata"]["uid"], kind

        def scheduled() -> list[dict[str, Any]]:
            return [p for p in pods_of(cluster, namespace, "pythagoras") if p["spec"].get("nodeName")]

        (pod,) = wait_for("the pod on a node", scheduled, operator=operator)
        node = json.loads(cluster.kubectl("get", "node", pod["spec"]["nodeName"], "-o", "json").stdout)
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"

        done = wait_phase(cluster, namespace, "pythagoras", "Succeeded", operator)
        status = done["status"]
        assert status["jobName"] == "pythagoras" and status["observedGeneration"] == 1
        assert status["startTime"] <= status["completionTime"]
        found = conditions(done)
        assert found["Succeeded"]["status"] == "True" and found["Succeeded"]["reason"] == "Completed"
        assert found["Running"]["status"] == "False"

        events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=pythagoras")
        reasons = {e["reason"] for e in events["items"] if e["involvedObject"]["kind"] == "VideoJob"}
        assert {"Running", "Succeeded"} <= reasons, reasons

        table = cluster.kubectl("-n", namespace, "get", "videojobs").stdout.splitlines()
        assert table[0].split() == ["NAME", "PHASE", "STAGE", "PROGRESS", "SCENES", "AGE"]
        assert table[1].split()[:2] == ["pythagoras", "Succeeded"]
        no_runner = table[1][table[0].index("STAGE") : table[0].index("AGE")]
        assert no_runner.strip() == ""  # no runner ever reported (KWOK's pods run none): no stage, no 0 %
        wide = cluster.kubectl("-n", namespace, "get", "vj", "-o", "wide").stdout.splitlines()
        assert wide[0].split()[-4:] == ["TOPIC", "JOB", "POSITION", "MESSAGE"]
        assert wide[1].endswith("Completed: Job pythagoras completed")  # the reason, from the operator

        gauge = 'videojobs_videojobs{phase="Succeeded"} 1.0'
        wait_for("the by-phase gauge", lambda: gauge in operator.metrics(), timeout=10, operator=operator)
        assert get(cluster, other, "jobs")["items"] == []
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_failures_surface_their_reason(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(
        cluster,
        namespace,
        videojob("permanent", queueName="kueue", backoffLimit=3),
        videojob("retryable", queueName="kueue", backoffLimit=0),
        videojob("too-big", resources={"gpu": 8}),  # the GPU nodes have 4 each
    )
    queued = wait_phase(cluster, namespace, "permanent", "Queued", operator)
    assert conditions(queued)["Queued"]["reason"] == "WaitingForKueue"
    admit_like_kueue(cluster, namespace, "permanent", operator, **{EXIT_CODE: "2"})
    admit_like_kueue(cluster, namespace, "retryable", operator, **{EXIT_CODE: "1"})

    failed = conditions(wait_phase(cluster, namespace, "permanent", "Failed", operator))["Failed"]
    assert failed["reason"] == "PodFailurePolicy" and "exit code 2" in failed["message"]
    assert len(pods_of(cluster, namespace, "permanent")) == 1  # no retry despite backoffLimit 3
    failed = conditions(wait_phase(cluster, namespace, "retryable", "Failed", operator))["Failed"]
    assert failed["reason"] == "BackoffLimitExceeded" and "exited with code 1" in failed["message"]

    def unschedulable() -> dict[str, Any] | None:
        running = conditions(get(cluster, namespace, "videojob", "too-big")).get("Running", {})
        return running if running.get("reason") == "Unschedulable" else None

    running = wait_for("too-big to be Unschedulable", unschedulable, operator=operator)
    assert "nvidia.com/gpu" in running["message"]
    assert phase_of(cluster, namespace, "too-big") == "Pending"
    events = get(
        cluster, namespace, "events", "--field-selector", "involvedObject.name=permanent,type=Warning"
    )
    assert any(e["reason"] == "Failed" for e in events["items"])


def test_invalid_specs_are_refused_naming_the_field(cluster: K8sCluster, namespace: str) -> None:
    def refused(*objects: dict[str, Any]) -> str:
        items = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        # --validate=false: no client-side schema check, so the API server is the one refusing.
        done = cluster.kubectl(
            "-n", namespace, "apply", "--validate=false", "-f", "-", input=items, check=False
        )
        assert done.returncode != 0
        return done.stderr

    no_topic = videojob("no-topic")
    del no_topic["spec"]["topic"]
    assert "spec.topic: Required value" in refused(no_topic)
    assert 'spec.quality: Unsupported value: "ultra"' in refused(videojob("bad-quality", quality="ultra"))
    assert "spec.maxScenes" in refused(videojob("too-many", maxScenes=50))
    apply(cluster, namespace, videojob("fixed", suspend=True))
    patch = json.dumps({"spec": {"topic": "Something else"}})
    done = cluster.kubectl("-n", namespace, "patch", "vj", "fixed", "--type=merge", "-p", patch, check=False)
    assert done.returncode != 0 and "spec.topic" in done.stderr and "immutable" in done.stderr
    budget = json.dumps({"spec": {"maxCostUsd": 5}})  # the budget may still change
    cluster.kubectl("-n", namespace, "patch", "vj", "fixed", "--type=merge", "-p", budget)


def test_operator_killed_and_restarted_converges_without_duplicates(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(cluster, namespace, videojob("long", queueName="kueue"))
    admit_like_kueue(cluster, namespace, "long", operator, **{RUN_FOR: "4s"})
    wait_phase(cluster, namespace, "long", "Running", operator)
    operator.stop(signal.SIGKILL)

    apply(cluster, namespace, videojob("while-down"))  # created while no operator runs
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/long", "--timeout=60s")
    assert phase_of(cluster, namespace, "long") == "Running"  # nobody updated it
    assert jobs_of(cluster, namespace, "while-down") == []

    operator = start_operator()
    wait_phase(cluster, namespace, "long", "Succeeded", operator)
    wait_phase(cluster, namespace, "while-down", "Succeeded", operator)
    operator.stop(signal.SIGKILL)
    operator = start_operator()  # and once more, with everything finished: nothing is created again
    wait_for("the new operator to lead (the old Lease to expire)", operator.leading, operator=operator)
    time.sleep(3)
    for name in ("long", "while-down"):
        assert len(jobs_of(cluster, namespace, name)) == 1
        assert phase_of(cluster, namespace, name) == "Succeeded"


def test_a_raised_attempt_runs_a_failed_or_cancelled_videojob_again_in_a_new_job(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(
        cluster,
        namespace,
        videojob("again", queueName="kueue", backoffLimit=0),
        videojob("resumed", queueName="kueue"),
    )
    admit_like_kueue(cluster, namespace, "again", operator, **{EXIT_CODE: "1"})
    failed = wait_phase(cluster, namespace, "again", "Failed", operator)
    assert (failed["status"]["attempt"], failed["status"]["jobName"]) == (0, "again")

    def patch(name: str, spec: dict[str, Any]) -> None:
        cluster.kubectl(
            "-n", namespace, "patch", "vj", name, "--type=merge", "-p", json.dumps({"spec": spec})
        )

    patch("again", {"attempt": 1})
    queued = wait_phase(cluster, namespace, "again", "Queued", operator)  # Pending, then Kueue's turn
    assert (queued["status"]["attempt"], queued["status"]["jobName"]) == (1, "again-a1")
    assert "completionTime" not in queued["status"] and "Failed" not in conditions(queued)
    operator.stop(signal.SIGKILL)  # a restart while the new Job waits: it is found, not made again
    operator = start_operator()
    wait_for("the new operator to lead (the old Lease to expire)", operator.leading, operator=operator)
    admit_like_kueue(cluster, namespace, "again", operator, job="again-a1", **{RUN_FOR: "2s"})
    done = wait_phase(cluster, namespace, "again", "Succeeded", operator)
    assert (done["status"]["attempt"], done["status"]["jobName"]) == (1, "again-a1")
    assert sorted(job["metadata"]["name"] for job in jobs_of(cluster, namespace, "again")) == [
        "again",
        "again-a1",
    ]
    events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=again")
    assert "Retrying" in {event["reason"] for event in events["items"]}

    lowered = cluster.kubectl(
        "-n", namespace, "patch", "vj", "again", "--type=merge", "-p", '{"spec":{"attempt":0}}', check=False
    )
    assert lowered.returncode != 0 and "spec.attempt may only be raised" in lowered.stderr

    wait_phase(cluster, namespace, "resumed", "Queued", operator)
    patch("resumed", {"cancel": True})
    wait_phase(cluster, namespace, "resumed", "Cancelled", operator)
    patch("resumed", {"cancel": False, "attempt": 1})  # a retry: cancel cleared and attempt raised at once
    admit_like_kueue(cluster, namespace, "resumed", operator, job="resumed-a1", **{RUN_FOR: "1s"})
    done = wait_phase(cluster, namespace, "resumed", "Succeeded", operator)
    assert (done["status"]["attempt"], done["status"]["jobName"]) == (1, "resumed-a1")


def lease(cluster: K8sCluster, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = get(cluster, namespace, "lease", LEASE)["spec"]
    return spec


def test_replicas_elect_one_leader_and_a_standby_takes_over_when_it_is_lost(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    first = start_operator()
    wait_for("the first replica to lead", first.leading, operator=first)
    leader = lease(cluster, namespace)["holderIdentity"]
    second = start_operator()
    wait_for("the second replica to stand by", lambda: second.leader_gauge() == "0.0", operator=second)
    apply(cluster, namespace, videojob("while-first-leads"))
    wait_for("the leader's Job", lambda: jobs_of(cluster, namespace, "while-first-leads"), operator=first)
    time.sleep(2)  # the standby's renew attempts come and go: it still only stands by
    assert not second.leading() and lease(cluster, namespace)["holderIdentity"] == leader

    first.stop(signal.SIGKILL)  # no release: the standby takes over once the Lease has expired
    wait_for("the standby to take over", second.leading, timeout=30, operator=second)
    taken = lease(cluster, namespace)
    assert taken["holderIdentity"] not in ("", leader) and taken["leaseTransitions"] == 1
    apply(cluster, namespace, videojob("after-failover"))
    wait_phase(cluster, namespace, "after-failover", "Succeeded", second)
    wait_phase(cluster, namespace, "while-first-leads", "Succeeded", second)
    assert len(jobs_of(cluster, namespace, "while-first-leads")) == 1

    assert second.process is not None
    second.stop()  # SIGTERM: it stops cleanly and gives the Lease up for the next replica at once
    assert second.process.returncode == 0
    assert not lease(cluster, namespace).get("holderIdentity")


def test_a_leader_that_cannot_renew_its_lease_stops_and_exits_1(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    wait_for("the operator to lead", operator.leading, operator=operator)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    taken = {"spec": {"holderIdentity": "someone-else", "renewTime": now, "leaseDurationSeconds": 60}}
    cluster.kubectl("-n", namespace, "patch", "lease", LEASE, "--type=merge", "-p", json.dumps(taken))
    process = operator.process
    assert process is not None
    wait_for("the operator to stop", lambda: process.poll() is not None, timeout=30, operator=operator)
    assert process.returncode == 1
    assert "lost Lease" in operator.tail()
    assert lease(cluster, namespace)["holderIdentity"] == "someone-else"  # not released: not its own


def test_deleting_a_videojob_deletes_its_job_and_pods(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(cluster, namespace, videojob("doomed", queueName="kueue"), videojob("cancelled", queueName="kueue"))
    admit_like_kueue(cluster, namespace, "doomed", operator, **{RUN_FOR: "5m"})
    admit_like_kueue(cluster, namespace, "cancelled", operator, **{RUN_FOR: "5m"})
    wait_phase(cluster, namespace, "doomed", "Running", operator)
    wait_phase(cluster, namespace, "cancelled", "Running", operator)

    cluster.kubectl("-n", namespace, "delete", "videojob", "doomed", "--wait=true")
    wait_for(
        "the garbage collector to delete the Job and its pods",
        lambda: not jobs_of(cluster, namespace, "doomed") and not pods_of(cluster, namespace, "doomed"),
        operator=operator,
    )

    cancel = json.dumps({"spec": {"cancel": True}})
    cluster.kubectl("-n", namespace, "patch", "vj", "cancelled", "--type=merge", "-p", cancel)
    cancelled = wait_phase(cluster, namespace, "cancelled", "Cancelled", operator)
    assert conditions(cancelled)["Cancelled"]["reason"] == "Cancelled"
    wait_for(
        "the cancelled VideoJob's Job and pods to go",
        lambda: not jobs_of(cluster, namespace, "cancelled") and not pods_of(cluster, namespace, "cancelled"),
        operator=operator,
    )


def test_max_running_queues_and_releases_by_priority_then_age(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    high = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "videojobs-test-high"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps({**high, "value": 1000}))
    operator = start_operator(MAX_RUNNING="1")
    # "first" holds the only slot until cancelled: no GPU node is big enough for its pod.
    apply(cluster, namespace, videojob("first", resources={"gpu": 16}))
    wait_for("first to be admitted", lambda: jobs_of(cluster, namespace, "first"), operator=operator)
    apply(cluster, namespace, videojob("older"))
    time.sleep(1.1)  # creationTimestamp has whole seconds
    apply(cluster, namespace, videojob("urgent", priorityClassName="videojobs-test-high"), videojob("newer"))
    for name in ("older", "urgent", "newer"):
        queued = wait_phase(cluster, namespace, name, "Queued", operator)
        assert conditions(queued)["Queued"]["reason"] == "WaitingForSlot"
    assert not jobs_of(cluster, namespace, "first")[0]["spec"].get("suspend")

    cancel = json.dumps({"spec": {"cancel": True}})
    cluster.kubectl("-n", namespace, "patch", "vj", "first", "--type=merge", "-p", cancel)
    wait_phase(cluster, namespace, "first", "Cancelled", operator)
    names = ("older", "urgent", "newer")

    def all_done() -> bool:
        jobs = get(cluster, namespace, "jobs")["items"]  # one list: a consistent snapshot
        running = [
            job
            for job in jobs
            if not job["spec"].get("suspend")
            and not any(
                c["type"] in FINISHED and c["status"] == "True" for c in job["status"].get("conditions", [])
            )
        ]
        assert len(running) <= 1, [job["metadata"]["name"] for job in running]
        return all(phase_of(cluster, namespace, name) == "Succeeded" for name in names)

    wait_for("the three to succeed, one at a time", all_done, timeout=90, operator=operator)
    started = {name: jobs_of(cluster, namespace, name)[0]["status"]["startTime"] for name in names}
    assert sorted(names, key=lambda name: started[name]) == ["urgent", "older", "newer"], started


def test_finished_videojobs_are_deleted_after_their_ttl(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(cluster, namespace, videojob("short-lived", ttlSecondsAfterFinished=1), videojob("kept"))
    wait_phase(cluster, namespace, "kept", "Succeeded", operator)
    wait_for(
        "the finished VideoJob to be deleted",
        lambda: get(cluster, namespace, "videojob", "short-lived") is None,
        operator=operator,
    )
    assert phase_of(cluster, namespace, "kept") == "Succeeded"


def _runner_api(cluster: K8sCluster, token: str) -> client.CustomObjectsApi:
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.CustomObjectsApi(client.ApiClient(configuration))


def test_runner_service_account_moves_the_status_and_can_do_nothing_else(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(cluster, namespace, videojob("mine", queueName="kueue"), videojob("theirs", queueName="kueue"))
    wait_phase(cluster, namespace, "mine", "Queued", operator)
    token = cluster.token(namespace, "mine", "10m")

    async def run_stages() -> int:
        api = _runner_api(cluster, token)
        status = JobStatus()
        async with KubernetesStatusReporter(api, namespace, "mine", min_interval=0.05) as reporter:
            status.enter(Stage.PLANNING)
            await reporter.publish(status)
            status.scenes.total = 3
            status.scenes.rendered = 2
            status.enter(Stage.RENDERING, 2 / 3)
            await reporter.publish(status)
        return reporter.patches

    assert asyncio.run(run_stages()) >= 1
    mine = get(cluster, namespace, "videojob", "mine")
    assert mine["status"]["stage"] == "rendering" and mine["status"]["progress"] == 70
    assert mine["status"]["scenes"]["ready"] == "2/3"
    assert mine["status"]["phase"] == "Queued"  # the operator's fields are left alone
    row = cluster.kubectl("-n", namespace, "get", "vj", "mine", "--no-headers").stdout.split()
    assert row[:5] == ["mine", "Queued", "rendering", "70", "2/3"]

    def can_i(*args: str) -> str:
        return cluster.kubectl(
            "-n", namespace, "auth", "can-i", *args, token=token, check=False
        ).stdout.strip()

    assert can_i("get", "videojobs/mine") == "yes"
    assert can_i("patch", "videojobs/mine", "--subresource=status") == "yes"
    for verb, resource, *flags in (
        ("list", "videojobs"),
        ("watch", "videojobs"),
        ("get", "videojobs/theirs"),
        ("patch", "videojobs/theirs"),
        ("patch", "videojobs/theirs", "--subresource=status"),
        ("patch", "videojobs/mine"),
        ("delete", "videojobs/mine"),
        ("create", "videojobs"),
        ("create", "jobs.batch"),
        ("get", "secrets"),
        ("list", "pods"),
    ):
        assert can_i(verb, resource, *flags) == "no", f"the runner may {verb} {resource} {flags}"
    spec_patch = json.dumps({"spec": {"maxCostUsd": 1000}})
    denied = cluster.kubectl(
        "-n", namespace, "patch", "vj", "theirs", "--type=merge", "-p", spec_patch, token=token, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    listing = cluster.kubectl("-n", namespace, "get", "videojobs", token=token, check=False)
    assert listing.returncode != 0 and "forbidden" in listing.stderr.lower()


def test_status_patches_only_reach_the_incarnation_they_were_computed_for(
    cluster: K8sCluster, namespace: str
) -> None:
    api = KubeApi(OperatorSettings(), config.new_client_from_config(str(cluster.kubeconfig)))
    admin = client.CustomObjectsApi(config.new_client_from_config(str(cluster.kubeconfig)))
    apply(cluster, namespace, videojob("reused"))
    old_uid = get(cluster, namespace, "videojob", "reused")["metadata"]["uid"]
    cluster.kubectl("-n", namespace, "delete", "videojob", "reused")
    apply(cluster, namespace, videojob("reused"))
    uid = get(cluster, namespace, "videojob", "reused")["metadata"]["uid"]

    async def patches() -> None:
        with pytest.raises(ApiException) as refused:  # meant for the deleted one: refused
            await api.patch_status(namespace, "reused", old_uid, {"phase": "Succeeded"}, exists=False)
        assert refused.value.status == 422
        await api.patch_status(namespace, "reused", uid, {"phase": "Pending"})  # no status yet: added whole
        runner = {"status": {"stage": "planning", "progress": 15}}
        admin.patch_namespaced_custom_object_status(
            "videojobs.io", "v1alpha1", namespace, "videojobs", "reused", runner
        )
        await api.patch_status(namespace, "reused", uid, {"phase": "Running", "jobName": "reused"})

    try:
        asyncio.run(patches())
    finally:
        api.close()
    status = get(cluster, namespace, "videojob", "reused")["status"]
    assert (status["phase"], status["jobName"]) == ("Running", "reused")
    assert (status["stage"], status["progress"]) == ("planning", 15)  # the runner's fields are left alone


def patch_spec(cluster: K8sCluster, namespace: str, name: str, check: bool = True, **spec: Any) -> Any:
    body = json.dumps({"spec": spec})
    return cluster.kubectl("-n", namespace, "patch", "vj", name, "--type=merge", "-p", body, check=check)


def test_suspend_pauses_the_same_job_and_resumes_it_while_cancel_is_final(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    apply(cluster, namespace, videojob("paused", queueName="kueue"))
    admit_like_kueue(cluster, namespace, "paused", operator, **{RUN_FOR: "5m"})
    wait_phase(cluster, namespace, "paused", "Running", operator)

    patch_spec(cluster, namespace, "paused", suspend=True)
    wait_phase(cluster, namespace, "paused", "Suspended", operator)
    wait_for(
        "the Job suspended and its pod gone",
        lambda: (
            jobs_of(cluster, namespace, "paused")[0]["spec"]["suspend"]
            and not pods_of(cluster, namespace, "paused")
        ),
        operator=operator,
    )
    paused = wait_for(
        "the pause to settle",
        lambda: (
            (obj := get(cluster, namespace, "videojob", "paused"))
            and "resumes it" in conditions(obj)["Suspended"]["message"]
            and obj
        ),
        operator=operator,
    )
    assert conditions(paused)["Suspended"]["reason"] == "Paused"
    events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=paused")
    assert "Suspended" in {event["reason"] for event in events["items"]}

    patch_spec(cluster, namespace, "paused", suspend=False)
    queued = wait_phase(cluster, namespace, "paused", "Queued", operator)  # Kueue's turn again
    assert conditions(queued)["Queued"]["reason"] == "WaitingForKueue"
    admit_like_kueue(cluster, namespace, "paused", operator, **{RUN_FOR: "1s"})
    wait_phase(cluster, namespace, "paused", "Succeeded", operator)
    assert [job["metadata"]["name"] for job in jobs_of(cluster, namespace, "paused")] == ["paused"]

    apply(cluster, namespace, videojob("final", queueName="kueue"))
    patch_spec(cluster, namespace, "final", cancel=True)
    wait_phase(cluster, namespace, "final", "Cancelled", operator)
    undone = patch_spec(cluster, namespace, "final", check=False, cancel=False)
    assert undone.returncode != 0 and "spec.cancel is final" in undone.stderr


def test_videojobs_managed_by_another_controller_are_left_alone(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    manager = videojob("dispatched", managedBy="kueue.x-k8s.io/multikueue")
    worker_copy = videojob("dispatched-copy")  # as MultiKueue puts it on a worker: managedBy unset
    apply(cluster, namespace, manager, worker_copy)
    wait_phase(cluster, namespace, "dispatched-copy", "Succeeded", operator)
    ignored = get(cluster, namespace, "videojob", "dispatched")
    assert "status" not in ignored and not ignored["metadata"].get("finalizers")
    assert jobs_of(cluster, namespace, "dispatched") == []
    changed = patch_spec(cluster, namespace, "dispatched", check=False, managedBy="videojobs.io/operator")
    assert changed.returncode != 0 and "spec.managedBy is immutable" in changed.stderr


def deletion_failures(operator: Operator) -> float:
    """The operator's videojobs_artifact_deletion_failures_total."""
    name = "videojobs_artifact_deletion_failures_total "
    return next(
        (float(line.split()[1]) for line in operator.metrics().splitlines() if line.startswith(name)), 0.0
    )


def test_a_storage_outage_holds_a_delete_which_retries_with_backoff_until_storage_is_back(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    """The artifacts finalizer against the real S3 test server (versitygw) stopped and started again: while
    it is down the deleted VideoJob stays, each failed try a Warning Event and a count in the metric,
    the status' ArtifactsDeleted=False; once it is back the next retry deletes the artifacts and the
    VideoJob goes."""
    workdir = tmp_path / "s3"
    with running_s3_server(workdir) as s3:
        bucket = s3.create_bucket()
        operator = start_operator(**s3.env(bucket))
        apply(cluster, namespace, videojob("stored"))
        done = wait_phase(cluster, namespace, "stored", "Succeeded", operator)
        key = f"videojobs/{storage_job_id(namespace, 'stored', done['metadata']['uid'])}/video.mp4"
        s3.client().put_object(Bucket=bucket, Key=key, Body=b"video")
    # The server is stopped: storage is down.
    outage = time.monotonic()
    cluster.kubectl("-n", namespace, "delete", "videojob", "stored", "--wait=false")

    def failed_events() -> list[dict[str, Any]]:
        events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=stored")
        return [e for e in (events or {}).get("items", ()) if e["reason"] == "ArtifactDeletionFailed"]

    def backoff() -> list[int]:
        """The delays the operator logged before each retry of the deletion."""
        pattern = re.compile(rf"artifacts of {namespace}/stored failed \(retry in (\d+) s\)")
        return [int(m.group(1)) for m in pattern.finditer(operator.log.read_text(errors="replace"))]

    # Each failure doubles the wait before the next try (2, 4, 8 s; boto3's own retries of a refused
    # connection take no time): the third is within seconds.
    wait_for("three failed deletions", lambda: len(backoff()) >= 3, timeout=60, operator=operator)
    assert backoff()[:3] == [2, 4, 8], backoff()
    wait_for("their Events", lambda: len(failed_events()) >= 3, timeout=10, operator=operator)
    held = get(cluster, namespace, "videojob", "stored")
    assert held is not None and held["metadata"]["deletionTimestamp"], held
    assert held["metadata"]["finalizers"] == ["videojobs.io/artifacts"]
    deleted = conditions(held)["ArtifactsDeleted"]
    assert (deleted["status"], deleted["reason"]) == ("False", "StorageError"), deleted
    events = failed_events()
    assert all(e["type"] == "Warning" for e in events), events
    assert deletion_failures(operator) >= len(events)
    tries = sorted(e["message"] for e in events)
    assert tries[0].startswith("deleting the artifacts failed (try 1; retried with backoff)"), tries

    with running_s3_server(workdir, again=s3):  # storage is back: same port, keys and data
        wait_for(
            "the VideoJob to be deleted",
            lambda: get(cluster, namespace, "videojob", "stored") is None,
            timeout=90,
            operator=operator,
        )
        assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket, Prefix=key)
    print(f"storage outage: VideoJob deleted {time.monotonic() - outage:.1f}s after the delete")
    assert "deleted 1 artifact(s)" in operator.log.read_text(), operator.tail()


def test_deleting_a_videojob_deletes_its_artifacts_first(
    cluster: K8sCluster, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    operator = start_operator(OUTPUT_DIR=str(tmp_path / "out"))
    apply(cluster, namespace, videojob("kept-briefly"))
    done = wait_phase(cluster, namespace, "kept-briefly", "Succeeded", operator)
    assert done["metadata"]["finalizers"] == ["videojobs.io/artifacts"]
    folder = tmp_path / "out" / storage_job_id(namespace, "kept-briefly", done["metadata"]["uid"])
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"video")
    cluster.kubectl("-n", namespace, "delete", "videojob", "kept-briefly", "--wait=true")
    assert not folder.exists()
