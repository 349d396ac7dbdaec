"""The REST API's kubernetes backend under test: a namespace, the real operator, and a stand-in runner.

The API runs with the token of its own ServiceAccount (api/rbac.yaml), so the tests prove that Role
is enough; the operator is `videojobs operator --namespace NS` as its ServiceAccount. New VideoJobs go
to a Kueue queue (VIDEOJOBS_API_QUEUE_NAME), so the operator creates their Jobs suspended (phase
Queued) and nothing runs unless the stand-in runner plays Kueue and the runner pod:
- it admits each suspended Job (its KWOK pod then runs until told otherwise);
- once the VideoJob is Running it reports progress as the runner does (KubernetesStatusReporter
  patches of the status subresource), stores the artifacts at the runner's storage_job_id, and ends
  the pod as the runner's exit would (a pod status patch: Succeeded, or Failed with exit code 2).
Words in the topic script it like the local backend's stand-in worker: `hang` stops in rendering,
`fail` fails in rendering, anything else succeeds; `costly` reports $0.40 of openai/gpt-4o from the
first report on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from k8s_cluster import K8sCluster
from kubernetes import client, config

from videojobs.contract import JobError, JobResult, JobStatus, SceneCounts, Stage, Usage, storage_job_id
from videojobs.crd import GROUP, PLURAL, VERSION
from videojobs.storage import Storage
from videojobs_runner.kube_reporter import KubernetesStatusReporter

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "videojobs-system"
QUEUE = "kueue"
SCRIPTED_ETA = datetime(2030, 1, 1, tzinfo=UTC)
"""The estimated completion time the stand-in reports while rendering (the local stand-in's too)."""
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
VIDEOJOBS = Path(sys.executable).parent / "videojobs"
ARTIFACTS = {
    "video.mp4": bytes(range(256)) * 40,
    "thumbnail.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
    "subtitles.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n",
    "subtitles.srt": b"1\n00:00:00,000 --> 00:00:01,000\nHello\n",
}


def install(cluster: K8sCluster, manifest: Path, namespace: str) -> None:
    """Apply an RBAC manifest with its `namespace:` fields set to `namespace`."""
    objects = list(yaml.safe_load_all(manifest.read_text()))
    for obj in objects:
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
    items = {"apiVersion": "v1", "kind": "List", "items": objects}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(items))


def prepare_cluster(cluster: K8sCluster, folder: Path) -> Path:
    """The CRD and the operator's ServiceAccount; a kubeconfig for the operator."""
    cluster.kubectl("apply", "-f", str(REPO / "crds" / "videojob.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/videojobs.videojobs.io", "--timeout=60s")
    if cluster.kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    install(cluster, REPO / "operator" / "rbac" / "operator.yaml", OPERATOR_NAMESPACE)
    return cluster.token_kubeconfig(OPERATOR_NAMESPACE, "videojobs-operator", folder / "operator.kubeconfig")


@contextlib.contextmanager
def deployment(cluster: K8sCluster, operator_kubeconfig: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    """A fresh namespace with the runner's and the API's RBAC and an operator; (namespace, kubeconfig)."""
    namespace = f"vj-api-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", namespace)
    install(cluster, REPO / "operator" / "rbac" / "runner.yaml", namespace)
    install(cluster, REPO / "api" / "rbac.yaml", namespace)
    api_kubeconfig = cluster.token_kubeconfig(namespace, "videojobs-api", folder / "api.kubeconfig")
    env = {
        "OUTPUT_DIR": str(folder / "out"),  # the API's storage (api_harness.kubernetes_api): the finalizer's
        **os.environ,
        "KUBECONFIG": str(operator_kubeconfig),
        "METRICS_PORT": "0",
        "API_QPS": "200",
    }
    with (folder / "operator.log").open("ab") as log:
        operator = subprocess.Popen(
            [str(VIDEOJOBS), "operator", "--namespace", namespace], env=env, stdout=log, stderr=log
        )
    try:
        yield namespace, api_kubeconfig
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


class StandInRunner:
    """Plays Kueue and the runner pods for the VideoJobs of a namespace (see the module docstring)."""

    def __init__(self, cluster: K8sCluster, namespace: str, storage: Storage) -> None:
        self.namespace = namespace
        self.storage = storage
        api = config.new_client_from_config(str(cluster.kubeconfig))
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._admitted: set[str] = set()
        self._started: set[str] = set()

    def __enter__(self) -> StandInRunner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            for job in self.batch.list_namespaced_job(self.namespace).items:
                if job.spec.suspend and job.metadata.uid not in self._admitted:
                    self._admitted.add(job.metadata.uid)
                    template = {"metadata": {"annotations": {RUN_FOR: "1h"}}}
                    patch = {"spec": {"suspend": False, "template": template}}
                    with contextlib.suppress(client.ApiException):  # cancelled meanwhile
                        self.batch.patch_namespaced_job(job.metadata.name, self.namespace, patch)
            videojobs = self.objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
            for videojob in videojobs["items"]:
                status = videojob.get("status") or {}
                run = (videojob["metadata"]["uid"], status.get("attempt") or 0)  # once per attempt
                if status.get("phase") == "Running" and run not in self._started:
                    self._started.add(run)
                    threading.Thread(target=asyncio.run, args=(self._run(videojob),), daemon=True).start()

    async def _run(self, videojob: dict[str, Any]) -> None:
        name, topic = videojob["metadata"]["name"], videojob["spec"]["topic"]
        job_id = storage_job_id(self.namespace, name, videojob["metadata"]["uid"])
        status = JobStatus()
        if "costly" in topic:
            status.usage = Usage(
                llm_calls=1, prompt_tokens=100, completion_tokens=20, total_tokens=120, cost_usd=0.4
            )
            status.usage_by_model = {"openai/gpt-4o": status.usage.model_copy()}
        async with KubernetesStatusReporter(self.objects, self.namespace, name, min_interval=0) as reporter:
            status.enter(Stage.PLANNING)
            await reporter.publish(status)
            if "hang" in topic:
                status.enter(Stage.RENDERING, 0.5, "Rendering scene 1/3")
                await reporter.publish(status)
                return  # the pod keeps running until the Job is deleted
            retried = ((videojob.get("status") or {}).get("attempt") or 0) > 0
            if "fail" in topic and not ("once" in topic and retried):
                status.enter(Stage.RENDERING, 0.5, "scene 2 failed")
                status.error = JobError(stage=Stage.RENDERING, message="scene 2 failed", recoverable=True)
                await reporter.publish(status)
                await asyncio.to_thread(self._end_pod, name, 2)
                return
            status.scenes = SceneCounts(total=3, rendered=3)
            status.enter(Stage.RENDERING, 1.0, "Rendered scene 3/3")
            status.estimated_completion_time = SCRIPTED_ETA
            await reporter.publish(status)
            await asyncio.to_thread(self._store, job_id, name)
            status.enter(Stage.COMPLETED, 1.0)
            status.estimated_completion_time = None
            status.result = JobResult(duration_seconds=1.0)
            await reporter.publish(status)
        await asyncio.to_thread(self._end_pod, name, 0)

    def _store(self, job_id: str, name: str) -> None:
        for file, data in ARTIFACTS.items():
            self.storage.put_bytes(f"{job_id}/{file}", data)
        metadata = {"id": name, "duration_seconds": 1.0}
        self.storage.put_bytes(f"{job_id}/metadata.json", json.dumps(metadata).encode())

    def _end_pod(self, name: str, exit_code: int) -> None:
        """What the runner's exit does to its pod (KWOK would otherwise keep it running)."""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"videojobs.io/name={name}")
        (pod,) = [pod for pod in pods.items if pod.status.phase not in ("Succeeded", "Failed")]
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
        image = pod.spec.containers[0].image
        container = {"name": "runner", "image": image, "ready": False, "restartCount": 0}
        patch = {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [container | {"state": {"terminated": terminated}}],
            }
        }
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, patch)
