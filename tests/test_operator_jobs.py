"""The Job manifest the operator builds for a VideoJob: GPU, security, overrides, failure policy, queueing."""

from __future__ import annotations

import pytest
from cli_runs import cli_env, run_cli

from videojobs.contract import VideoJobSpec
from videojobs_operator.identity import runner_identity
from videojobs_operator.jobs import build_job, job_name
from videojobs_operator.settings import OperatorSettings

CREATED = "2026-01-01T00:00:00Z"


def _job(spec: dict[str, object] | None = None, settings: OperatorSettings | None = None, **kwargs):
    parsed = VideoJobSpec.model_validate({"topic": "Fourier series", **(spec or {})})
    return build_job("fourier", parsed, settings or OperatorSettings(), created=CREATED, **kwargs)


def _pod(job):
    return job["spec"]["template"]["spec"]


def _container(job):
    (container,) = _pod(job)["containers"]
    return container


def test_defaults_request_one_gpu_on_a_gpu_node_with_guaranteed_qos() -> None:
    job = _job()
    resources = _container(job)["resources"]
    assert resources["requests"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert resources["limits"] == resources["requests"]
    pod = _pod(job)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "priorityClassName" not in pod


def test_runner_identity_entrypoint_and_service_account() -> None:
    job = _job()
    container = _container(job)
    assert container["args"] == ["run-videojob"] and "command" not in container
    assert container["image"] == "ghcr.io/videojobs/runner:latest"
    env = {item["name"]: item for item in container["env"]}
    assert env["VIDEOJOB_NAME"]["value"] == "fourier"
    assert env["VIDEOJOB_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "envFrom" not in container
    pod = _pod(job)
    assert pod["serviceAccountName"] == "fourier"  # its own identity (identity.py), named like the Job
    assert pod["automountServiceAccountToken"] is True
    shared = _job(settings=OperatorSettings(runner_service_account="videojobs-runner"))
    assert _pod(shared)["serviceAccountName"] == "videojobs-runner"


def test_runner_identity_may_only_read_its_videojob_and_patch_its_status() -> None:
    account, role, binding = runner_identity("ns", "fourier", "fourier", {"eks.amazonaws.com/role-arn": "r"})
    assert (account["kind"], account["metadata"]["name"], account["metadata"]["namespace"]) == (
        "ServiceAccount",
        "fourier",
        "ns",
    )
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "r"
    assert account["automountServiceAccountToken"] is False
    assert role["rules"] == [
        {
            "apiGroups": ["videojobs.io"],
            "resources": ["videojobs"],
            "resourceNames": ["fourier"],
            "verbs": ["get"],
        },
        {
            "apiGroups": ["videojobs.io"],
            "resources": ["videojobs/status"],
            "resourceNames": ["fourier"],
            "verbs": ["patch"],
        },
    ]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fourier"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fourier", "namespace": "ns"}]


def test_runners_render_in_pods_of_their_own_by_default() -> None:
    settings = OperatorSettings(runner_image="registry.example/runner:1.2")
    env = {item["name"]: item for item in _container(_job(settings=settings))["env"]}
    assert env["RENDER_ISOLATION"]["value"] == "pod"
    assert env["RENDER_IMAGE"]["value"] == "registry.example/runner:1.2"  # the runner's own image
    downward = {
        name: env[name]["valueFrom"]["fieldRef"]["fieldPath"]
        for name in env
        if name.startswith("RUNNER_POD_")
    }
    assert downward == {
        "RUNNER_POD_NAMESPACE": "metadata.namespace",
        "RUNNER_POD_NAME": "metadata.name",
        "RUNNER_POD_UID": "metadata.uid",
    }
    *_, role, _ = runner_identity("ns", "fourier", "fourier", {}, render_pods=True)
    assert role["rules"][-1] == {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "delete"],
    }
    unconfined = {
        item["name"]: item
        for item in _container(_job(settings=OperatorSettings(render_isolation="none")))["env"]
    }
    assert unconfined["RENDER_ISOLATION"]["value"] == "none"
    assert not any(name.startswith(("RUNNER_POD_", "RENDER_IMAGE")) for name in unconfined)


def test_restricted_security_context_with_writable_scratch_only() -> None:
    job = _job()
    pod, container = _pod(job), _container(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/work": "work", "/home/runner": "home"}
    assert {volume["name"]: volume for volume in pod["volumes"]} == {
        name: {"name": name, "emptyDir": {}} for name in ("tmp", "work", "home")
    }
    assert container["workingDir"] == "/work"
    assert {"name": "HOME", "value": "/home/runner"} in container["env"]


def test_failure_policy_fails_on_exit_2_and_ignores_disruptions() -> None:
    spec = _job({"backoffLimit": 3, "activeDeadlineSeconds": 3600})["spec"]
    assert spec["backoffLimit"] == 3 and spec["activeDeadlineSeconds"] == 3600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    fail_job, ignore = spec["podFailurePolicy"]["rules"]
    assert fail_job["action"] == "FailJob"
    assert fail_job["onExitCodes"] == {"containerName": "runner", "operator": "In", "values": [2]}
    assert ignore == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert "activeDeadlineSeconds" not in _job()["spec"]


def test_spec_overrides_the_defaults() -> None:
    job = _job(
        {
            "resources": {"gpu": 2, "cpu": "8", "memory": "32Gi"},
            "nodeSelector": {"pool": "a100"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "video", "effect": "NoSchedule"}
            ],
            "priorityClassName": "batch-high",
        }
    )
    pod = _pod(job)
    assert _container(job)["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "video", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "batch-high"


def test_zero_gpus_and_empty_overrides_mean_none() -> None:
    job = _job({"resources": {"gpu": 0}, "nodeSelector": {}, "tolerations": []})
    assert "nvidia.com/gpu" not in _container(job)["resources"]["requests"]
    assert _pod(job)["nodeSelector"] == {} and _pod(job)["tolerations"] == []


def test_settings_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_GPU_COUNT", "4")
    monkeypatch.setenv("DEFAULT_NODE_SELECTOR", '{"cloud.google.com/gke-accelerator": "nvidia-l4"}')
    monkeypatch.setenv("DEFAULT_TOLERATIONS", '[{"operator": "Exists"}]')
    monkeypatch.setenv("RUNNER_IMAGE", "registry.example/runner:1.2")
    monkeypatch.setenv("LLM_SECRET_NAME", "llm-keys")
    monkeypatch.setenv("S3_SECRET_NAME", "s3-creds")
    monkeypatch.setenv("RUNNER_CONFIGMAP_NAME", "pipeline")
    job = _job(settings=OperatorSettings())
    container, pod = _container(job), _pod(job)
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert container["image"] == "registry.example/runner:1.2"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "pipeline"}},
        {"secretRef": {"name": "llm-keys"}},
        {"secretRef": {"name": "s3-creds"}},
    ]


def test_labels_and_queue_annotations() -> None:
    job = _job(priority=1000)
    meta = job["metadata"]
    assert meta["name"] == "fourier"
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "videojobs-operator",
        "videojobs.io/name": "fourier",
    }
    assert meta["annotations"] == {
        "videojobs.io/name": "fourier",
        "videojobs.io/priority": "1000",
        "videojobs.io/created": CREATED,
    }
    template = job["spec"]["template"]["metadata"]
    assert template["labels"] == meta["labels"]
    assert template["annotations"] == {"videojobs.io/name": "fourier"}
    assert job["spec"]["suspend"] is False


def test_queueing_suspends_and_kueue_gets_its_label() -> None:
    assert _job(suspend=True)["spec"]["suspend"] is True
    kueue = _job({"queueName": "gpu-queue"})
    assert kueue["spec"]["suspend"] is True  # Kueue admits it by unsuspending
    assert kueue["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "kueue.x-k8s.io/queue-name" not in kueue["spec"]["template"]["metadata"]["labels"]
    assert "kueue.x-k8s.io/queue-name" not in _job()["metadata"]["labels"]


def test_job_name_is_deterministic_and_fits_a_label() -> None:
    assert job_name("fourier") == "fourier"
    long = "a-very-long-video-job-name-" * 5
    assert job_name(long) == job_name(long)
    assert len(job_name(long)) <= 63
    assert job_name(long) != job_name(long + "x")
    assert job_name("x" * 63) == "x" * 63
    job = build_job(long, VideoJobSpec(topic="t"), OperatorSettings(), created=CREATED)
    assert job["metadata"]["name"] == job_name(long)
    assert "videojobs.io/name" not in job["metadata"]["labels"]  # too long for a label value
    assert job["metadata"]["annotations"]["videojobs.io/name"] == long


def test_each_attempt_has_a_job_name_of_its_own() -> None:
    assert [job_name("fourier", attempt) for attempt in (0, 1, 12)] == [
        "fourier",
        "fourier-a1",
        "fourier-a12",
    ]
    long = "a-very-long-video-job-name-" * 5
    retried = job_name(long, 7)
    assert (
        len(retried) <= 63
        and retried.endswith("-a7")
        and retried.removesuffix("-a7").endswith(job_name(long)[-10:])
    )
    assert len(job_name("x" * 62, 1000)) <= 63  # fitting by itself, not with the suffix
    job = build_job("fourier", VideoJobSpec(topic="t"), OperatorSettings(), created=CREATED, attempt=2)
    assert job["metadata"]["name"] == "fourier-a2"
    assert job["metadata"]["annotations"]["videojobs.io/name"] == "fourier"  # indexed under its VideoJob
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "fourier"  # the first attempt's identity


def test_operator_command_names_a_bad_setting_in_one_line() -> None:
    done = run_cli("operator", env=cli_env(DEFAULT_NODE_SELECTOR="not json"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: DEFAULT_NODE_SELECTOR") and done.stderr.count("\n") == 1


def test_runner_pods_get_the_registry_pull_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "imagePullSecrets" not in _pod(_job())
    monkeypatch.setenv("RUNNER_IMAGE_PULL_SECRETS", '["registry-a", "registry-b"]')
    pod = _pod(_job(settings=OperatorSettings()))
    assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
