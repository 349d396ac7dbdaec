"""The runner inside a Kubernetes Job: reads its VideoJob, runs the pipeline, reports into the status."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes import client, config

from videojobs import deadlines
from videojobs.artifacts import JobArtifacts
from videojobs.contract import JobStatus, Phase, VideoJobSpec, storage_job_id
from videojobs.crd import GROUP, PLURAL, VERSION
from videojobs.errors import ConfigurationError
from videojobs.settings import Settings
from videojobs.storage import storage_from_settings
from videojobs_runner.jobs import create_job, resolve, run_job
from videojobs_runner.kube_reporter import KubernetesStatusReporter

EXIT_SUCCEEDED = 0
EXIT_RETRYABLE = 1
EXIT_PERMANENT = 2
"""Exit codes: the Job's podFailurePolicy fails the Job on EXIT_PERMANENT and retries EXIT_RETRYABLE."""


@dataclass(frozen=True)
class VideoJobRef:
    """Which VideoJob this runner works for."""

    namespace: str
    name: str

    @classmethod
    def from_environment(cls) -> VideoJobRef:
        """From VIDEOJOB_NAMESPACE and VIDEOJOB_NAME, as the operator's Job template sets them."""
        try:
            return cls(os.environ["VIDEOJOB_NAMESPACE"], os.environ["VIDEOJOB_NAME"])
        except KeyError as missing:
            raise ConfigurationError(f"{missing.args[0]} is not set; the operator's Job sets it") from None


def load_kube_config() -> None:
    """In-cluster credentials inside a pod, the kubeconfig elsewhere."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()


def exit_code(status: JobStatus) -> int:
    """How the pod should end for this final status."""
    if status.phase is Phase.SUCCEEDED:
        return EXIT_SUCCEEDED
    return EXIT_RETRYABLE if status.error is not None and status.error.recoverable else EXIT_PERMANENT


async def run_videojob(ref: VideoJobRef, settings: Settings) -> JobStatus:
    """Run (or resume, on a pod retry) the pipeline for one VideoJob."""
    api = client.CustomObjectsApi(deadlines.api_client(client.Configuration.get_default_copy()))
    obj = api.get_namespaced_custom_object(
        GROUP, VERSION, ref.namespace, PLURAL, ref.name, _request_timeout=deadlines.REQUEST_TIMEOUT
    )
    spec = VideoJobSpec.model_validate(obj["spec"])
    job_id = storage_job_id(ref.namespace, ref.name, obj["metadata"]["uid"])
    artifacts = JobArtifacts(storage_from_settings(settings), job_id)
    record = artifacts.load_job()
    if record is None:
        record = resolve(spec.request(), settings, job_id)
        artifacts = create_job(record, settings)
    async with KubernetesStatusReporter(api, ref.namespace, ref.name) as reporter:
        return await run_job(record, artifacts, settings, [reporter])
