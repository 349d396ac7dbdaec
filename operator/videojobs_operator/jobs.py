"""The batch/v1 Job that runs a VideoJob's runner: a pure function of the VideoJob and the settings."""

from __future__ import annotations

import hashlib
from typing import Any

from videojobs.contract import VideoJobSpec
from videojobs.keys import (
    JOB_CREATED_ANNOTATION,
    KUEUE_QUEUE_LABEL,
    MANAGED_BY_LABEL,
    NAME_ANNOTATION,
    NAME_LABEL,
    OPERATOR_MANAGER,
    PRIORITY_ANNOTATION,
)
from videojobs.pod_security import restricted_container
from videojobs.settings import RenderIsolation
from videojobs_operator.settings import GPU_RESOURCE, OperatorSettings

CONTAINER = "runner"
RUNNER_UID = 1000
WORK_DIR = "/work"
HOME_DIR = "/home/runner"
EXIT_PERMANENT = 2
"""The runner's exit code for failures a retry cannot fix (videojobs_runner.kube_entry.EXIT_PERMANENT)."""

_MAX_NAME = 63  # a Job's name is also its pods' job-name label value


def job_name(videojob: str, attempt: int = 0) -> str:
    """The name of a VideoJob's Job for `attempt` (spec.attempt): the VideoJob's, with `-a<attempt>` after
    the first, when it fits 63 characters, else a truncation with a hash before that suffix.

    Deterministic, so an operator restarted at any point finds the Job instead of creating another. The
    runner's own ServiceAccount, Role and RoleBinding keep the first attempt's name.
    """
    suffix = f"-a{attempt}" if attempt else ""
    if len(videojob) + len(suffix) <= _MAX_NAME:
        return videojob + suffix
    digest = hashlib.sha256(videojob.encode()).hexdigest()[:10]
    return f"{videojob[: _MAX_NAME - 11 - len(suffix)].rstrip('-.')}-{digest}{suffix}"


def runner_service_account(name: str, settings: OperatorSettings) -> str:
    """The ServiceAccount of VideoJob `name`'s runner: the shared one if configured, else its own."""
    return settings.runner_service_account or job_name(name)


def build_job(
    name: str,
    spec: VideoJobSpec,
    settings: OperatorSettings,
    *,
    created: str,
    priority: int = 0,
    suspend: bool = False,
    attempt: int = 0,
) -> dict[str, Any]:
    """The Job manifest for VideoJob `name` (created at `created`) and `attempt`, without its owner reference.

    `priority` (the value of spec.priorityClassName) and `created` order the operator's queue;
    `suspend` holds the Job in it. With spec.queueName the Job is left to Kueue, suspended.
    """
    labels = {MANAGED_BY_LABEL: OPERATOR_MANAGER}
    if len(name) <= _MAX_NAME:
        labels[NAME_LABEL] = name
    job_labels = dict(labels)
    if spec.queue_name:
        job_labels[KUEUE_QUEUE_LABEL] = spec.queue_name
    job_spec: dict[str, Any] = {
        "suspend": suspend or spec.queue_name is not None,
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": spec.backoff_limit,
        "podFailurePolicy": {
            "rules": [
                {  # the runner says a retry cannot help: fail the Job now
                    "action": "FailJob",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_PERMANENT]},
                },
                {  # preemption, eviction, node drain: retry without counting against backoffLimit
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": {
            "metadata": {"labels": labels, "annotations": {NAME_ANNOTATION: name}},
            "spec": _pod_spec(name, spec, settings),
        },
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, attempt),
            "labels": job_labels,
            "annotations": {
                NAME_ANNOTATION: name,
                PRIORITY_ANNOTATION: str(priority),
                JOB_CREATED_ANNOTATION: created,
            },
        },
        "spec": job_spec,
    }


def _pod_spec(name: str, spec: VideoJobSpec, settings: OperatorSettings) -> dict[str, Any]:
    node_selector = spec.node_selector if spec.node_selector is not None else settings.default_node_selector
    tolerations = spec.tolerations if spec.tolerations is not None else settings.default_tolerations
    pod: dict[str, Any] = {
        "restartPolicy": "Never",  # podFailurePolicy requires it; retries are new pods
        "serviceAccountName": runner_service_account(name, settings),
        "automountServiceAccountToken": True,  # the runner patches its VideoJob's status
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(node_selector),
        "tolerations": [toleration.to_wire() for toleration in tolerations],
        "containers": [_container(name, spec, settings)],
        "volumes": [{"name": volume, "emptyDir": {}} for volume in ("tmp", "work", "home")],
    }
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    if settings.runner_image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in settings.runner_image_pull_secrets]
    return pod


def _container(name: str, spec: VideoJobSpec, settings: OperatorSettings) -> dict[str, Any]:
    gpu = spec.resources.gpu if spec.resources.gpu is not None else settings.default_gpu_count
    amounts = {
        "cpu": spec.resources.cpu or settings.default_cpu,
        "memory": spec.resources.memory or settings.default_memory,
    }
    if gpu > 0:
        amounts[GPU_RESOURCE] = str(gpu)
    env_from: list[dict[str, Any]] = []
    if settings.runner_configmap_name:
        env_from.append({"configMapRef": {"name": settings.runner_configmap_name}})
    for secret in (settings.llm_secret_name, settings.s3_secret_name):
        if secret:
            env_from.append({"secretRef": {"name": secret}})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.runner_image,
        "imagePullPolicy": settings.runner_image_pull_policy,
        "args": ["run-videojob"],
        "workingDir": WORK_DIR,
        "env": [
            {"name": "VIDEOJOB_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "VIDEOJOB_NAME", "value": name},
            {"name": "HOME", "value": HOME_DIR},
            {"name": "RENDER_ISOLATION", "value": settings.render_isolation.value},
            *(_render_pod_env(settings) if settings.render_isolation is RenderIsolation.POD else []),
        ],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},  # Guaranteed QoS
        "securityContext": restricted_container(RUNNER_UID),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "work", "mountPath": WORK_DIR},
            {"name": "home", "mountPath": HOME_DIR},
        ],
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def _render_pod_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    """What a runner needs to start render pods: their image (its own) and its pod's identity (owner)."""
    fields = {"RUNNER_POD_NAMESPACE": "metadata.namespace", "RUNNER_POD_NAME": "metadata.name"}
    fields["RUNNER_POD_UID"] = "metadata.uid"
    return [
        {"name": "RENDER_IMAGE", "value": settings.runner_image},
        {"name": "RENDER_IMAGE_PULL_POLICY", "value": settings.runner_image_pull_policy},
        *({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}} for name, path in fields.items()),
    ]
