"""The render pod (RENDER_ISOLATION=pod): its manifest's security settings and how its outputs are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from videojobs.errors import ConfigurationError
from videojobs.keys import RENDER_ROLE, ROLE_LABEL
from videojobs.settings import RenderIsolation, Settings
from videojobs_runner.render_pod import (
    CODE_URL_ENV,
    RESULT_URL_ENV,
    VIDEO_URL_ENV,
    RenderPodConfig,
    RenderUrls,
    RunnerPod,
    _from_pod_status,
    _media_target,
    _parse_result,
    render_pod_manifest,
    render_pod_name,
)
from videojobs_runner.sandbox import LOG_LIMIT_BYTES, FailureKind, RenderLimits, SandboxConfig, interpret

LIMITS = RenderLimits(timeout_seconds=120, memory_mb=2048, cpu_seconds=100, max_processes=64)
OWNER = RunnerPod("videojobs", "fourier-abcde", "0b7c6e2a-1111-2222-3333-444455556666")
URLS = RenderUrls(
    code="https://s3.example.com/b/_renders/p/scene.py?X-Amz-Signature=a",
    video="https://s3.example.com/b/_renders/p/video.mp4?X-Amz-Signature=b",
    result="https://s3.example.com/b/_renders/p/result.json?X-Amz-Signature=c",
)


def manifest(config: RenderPodConfig | None = None) -> dict[str, object]:
    return render_pod_manifest(
        "fourier-abcde-render-0001",
        OWNER,
        config or RenderPodConfig(image="registry.example.com/runner:1"),
        LIMITS,
        ["Demo", "low", "--layout-margin=0.3"],
        URLS,
    )


def test_render_pod_has_no_token_no_secrets_and_its_own_uid() -> None:
    pod = manifest()
    spec = pod["spec"]
    assert isinstance(spec, dict)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == "videojobs-render"
    assert spec["restartPolicy"] == "Never"
    uid = spec["securityContext"]["runAsUser"]
    assert (
        200_000 <= uid < 300_000
        and spec["securityContext"]["runAsGroup"] == spec["securityContext"]["fsGroup"] == uid
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "imagePullSecrets" not in spec and "hostNetwork" not in spec
    (volume,) = spec["volumes"]
    assert volume == {"name": "work", "emptyDir": {"sizeLimit": "4096Mi"}}
    (container,) = spec["containers"]
    assert "envFrom" not in container
    assert all(set(item) == {"name", "value"} for item in container["env"])  # no secretKeyRef
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        "HOME": "/render",
        CODE_URL_ENV: URLS.code,
        VIDEO_URL_ENV: URLS.video,
        RESULT_URL_ENV: URLS.result,
    }
    assert not any("AWS" in name or "KEY" in name for name in env)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == uid  # a uid of its own: not the runner's 1000, not another render's
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/render", "/tmp"}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": f"{2048 + 512}Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert spec["activeDeadlineSeconds"] >= LIMITS.timeout_seconds


def test_render_pod_is_labelled_and_owned_by_the_runner_pod() -> None:
    metadata = manifest()["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["labels"][ROLE_LABEL] == RENDER_ROLE
    # The runners' NetworkPolicy selects the operator's managed-by label: render pods must not carry it.
    assert metadata["labels"]["app.kubernetes.io/managed-by"] != "videojobs-operator"
    assert metadata["namespace"] == OWNER.namespace
    assert metadata["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": OWNER.name, "uid": OWNER.uid}
    ]


def test_render_pod_args_carry_the_limits_and_worker_args() -> None:
    spec = manifest()["spec"]
    assert isinstance(spec, dict)
    (container,) = spec["containers"]
    args = container["args"]
    assert args[0] == "render-pod" and "command" not in container  # the image's entrypoint
    assert "--timeout=120" in args and "--memory-mb=2048" in args and "--max-processes=64" in args
    worker = [a.removeprefix("--worker-args=") for a in args if a.startswith("--worker-args=")]
    assert json.loads(worker[0]) == ["Demo", "low", "--layout-margin=0.3"]


def test_render_pod_settings_and_names() -> None:
    config = RenderPodConfig(
        image="i",
        cpu="2",
        memory_mb=3000,
        work_dir_mb=100,
        node_selector={"a": "b"},
        tolerations=[{"key": "k", "operator": "Exists"}],
    )
    spec = manifest(config)["spec"]
    assert isinstance(spec, dict)
    assert spec["nodeSelector"] == {"a": "b"} and spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert "hostUsers" not in spec
    assert manifest(RenderPodConfig(image="i", user_namespace=True))["spec"]["hostUsers"] is False
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "3000Mi"}
    assert spec["volumes"][0]["emptyDir"]["sizeLimit"] == "100Mi"
    name = render_pod_name("x" * 80)
    assert len(name) <= 63 and name != render_pod_name("x" * 80)
    with pytest.raises(ConfigurationError, match="RENDER_IMAGE"):
        RenderPodConfig.from_settings(Settings(render_isolation=RenderIsolation.POD))


def test_pod_isolation_needs_s3_and_the_runner_pods_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNER_POD_NAME", raising=False)
    settings = Settings(render_isolation=RenderIsolation.POD, render_image="i")
    with pytest.raises(ConfigurationError, match="STORAGE_BACKEND=s3"):
        SandboxConfig.from_settings(settings)
    with pytest.raises(ConfigurationError, match="RUNNER_POD_NAME"):
        RunnerPod.from_environment()
    assert SandboxConfig.from_settings(Settings()).pods is None


def test_results_from_the_pod_are_checked_and_bounded() -> None:
    big = "x" * (LOG_LIMIT_BYTES + 10)
    finished = _parse_result(
        json.dumps({"returncode": 0, "timed_out": False, "stdout": big, "stderr": "\x1b[31me"}).encode()
    )
    assert (finished.returncode, finished.timed_out) == (0, False)
    assert len(finished.stdout) == LOG_LIMIT_BYTES and finished.stderr == "e"
    assert _parse_result(b'{"returncode": -9, "out_of_memory": true}').out_of_memory
    assert _parse_result(b"not json").returncode == 1
    assert _parse_result(b'{"returncode": true, "timed_out": "yes"}').returncode == 1
    media = Path("/w/media")
    assert _media_target(media, "videos/scene/480p15/Demo.mp4") == media / "videos/scene/480p15/Demo.mp4"
    for bad in ("/etc/passwd", "../x.mp4", "a/../../x", "", 3, None, "a\\..\\b"):
        assert _media_target(media, bad) is None


def test_render_manifests_for_installs_without_the_chart() -> None:
    path = Path(__file__).resolve().parents[1] / "operator" / "rbac" / "render.yaml"
    account, policy = yaml.safe_load_all(path.read_text())
    assert account["metadata"]["name"] == Settings().render_service_account  # the runner's default
    assert account["automountServiceAccountToken"] is False
    assert policy["spec"]["podSelector"] == {"matchLabels": {ROLE_LABEL: RENDER_ROLE}}
    assert policy["spec"]["ingress"] == [] and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, s3 = policy["spec"]["egress"]
    assert {port["port"] for port in dns["ports"]} == {53} and s3["ports"] == [
        {"port": 443, "protocol": "TCP"}
    ]


def test_a_pod_that_left_no_result_is_read_from_its_status() -> None:
    def pod(reason: str | None = None, terminated: str | None = None, code: int = 137) -> client.V1Pod:
        state = client.V1ContainerState(
            terminated=client.V1ContainerStateTerminated(exit_code=code, reason=terminated)
        )
        status = client.V1ContainerStatus(
            name="render", image="i", image_id="", ready=False, restart_count=0, state=state
        )
        return client.V1Pod(
            status=client.V1PodStatus(phase="Failed", reason=reason, container_statuses=[status])
        )

    outcome = interpret(_from_pod_status(pod(terminated="OOMKilled")), Path("/nowhere"), LIMITS)
    assert outcome.failure is FailureKind.MEMORY
    assert interpret(_from_pod_status(pod("DeadlineExceeded")), Path("/nowhere"), LIMITS).failure is (
        FailureKind.TIMEOUT
    )
    crashed = interpret(_from_pod_status(pod(terminated="Error", code=3)), Path("/nowhere"), LIMITS)
    assert crashed.failure is FailureKind.ERROR and "without a result" in crashed.error
