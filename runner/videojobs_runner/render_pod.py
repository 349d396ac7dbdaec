"""Renders in pods of their own (RENDER_ISOLATION=pod): the runner's side, and the entry inside one.

The runner stores the scene file in S3, presigns a GET for it and a PUT for each output, and creates a
pod that holds nothing else: its own uid, no ServiceAccount token, no Secrets, no service links, a
read-only root file system and one size-limited emptyDir, and (chart NetworkPolicy) egress to S3 and
DNS only. Inside, `videojobs render-pod` fetches the code, runs the render worker under the render's
resource limits, and uploads the clip and a result (the worker's exit, stdout and stderr). The runner
waits for the pod to end, deletes it, fetches the outputs into the work dir and hands them to
sandbox.interpret() like any local render's: everything from the pod is untrusted and bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import secrets
import sys
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from videojobs import deadlines
from videojobs.errors import ConfigurationError, RenderingError, StorageError
from videojobs.keys import MANAGED_BY_LABEL, RENDER_ROLE, ROLE_LABEL, RUNNER_MANAGER
from videojobs.pod_security import restricted_container
from videojobs.settings import Settings
from videojobs.storage import S3Storage, storage_from_settings
from videojobs_runner.isolation import Launch, worker_env
from videojobs_runner.sandbox import (
    FILE_SIZE_LIMIT,
    LOG_LIMIT_BYTES,
    WORKER_COMMAND,
    RenderLimits,
    _Finished,
    _last_report,
    _media_file,
    _run,
    clean,
)

logger = logging.getLogger(__name__)

CONTAINER = "render"
WORK_DIR = PurePosixPath("/render")
"""The render pod's work dir (an emptyDir), its only writable place with /tmp (a folder of it)."""
CODE_FILE = "scene.py"
VIDEO_FILE = "video.mp4"
RESULT_FILE = "result.json"
KEY_ROOT = "_renders"
"""Storage prefix of render pods' inputs and outputs (`_` starts no job id), removed after each render."""
CODE_URL_ENV = "RENDER_CODE_URL"
VIDEO_URL_ENV = "RENDER_VIDEO_URL"
RESULT_URL_ENV = "RENDER_RESULT_URL"
POD_MEMORY_OVERHEAD_MB = 512
"""Above the worker's address-space limit: the entry process, Python and the page cache."""
TRANSFER_SECONDS = 120
"""Allowed for the pod's download and uploads, on top of the render's timeout."""
URL_SLACK_SECONDS = 300
POLL_SECONDS = 1.0
HTTP_TIMEOUT_SECONDS = 60.0
CODE_MAX_BYTES = 1024**2
RESULT_MAX_BYTES = 2 * LOG_LIMIT_BYTES + 64 * 1024
MAX_POD_NAME = 63
ENDED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class RunnerPod:
    """The runner's own pod: render pods live in its namespace and are owned by it (garbage collection)."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def from_environment(cls) -> RunnerPod:
        """From RUNNER_POD_NAMESPACE, RUNNER_POD_NAME and RUNNER_POD_UID (the operator's downward API env)."""
        names = ("RUNNER_POD_NAMESPACE", "RUNNER_POD_NAME", "RUNNER_POD_UID")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise ConfigurationError(
                f"RENDER_ISOLATION=pod needs {', '.join(missing)}; the operator's Job sets them",
                suggestion="Run it from the operator's Job; off Kubernetes use RENDER_ISOLATION=bwrap.",
            )
        return cls(*(os.environ[name] for name in names))


@dataclass(frozen=True)
class RenderPodConfig:
    """What every render pod gets: image, ServiceAccount (no RBAC), resources and placement."""

    image: str
    service_account: str = "videojobs-render"
    image_pull_policy: str = "IfNotPresent"
    cpu: str = "1"
    memory_mb: int | None = None
    """The pod's memory limit; default the render's memory limit + POD_MEMORY_OVERHEAD_MB."""
    work_dir_mb: int = 4096
    start_seconds: float = 300.0
    uids: range = field(default_factory=lambda: range(200_000, 300_000))
    """Each render pod runs as a uid (and gid) of its own from here: never the runner's 1000, never
    shared with another render pod on the node (RLIMIT_NPROC counts per uid across the node)."""
    user_namespace: bool = False
    """hostUsers: false: the pod's uids map to unprivileged ones on the node (defence against escapes)."""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderPodConfig:
        """The RENDER_* settings; RENDER_IMAGE is required."""
        if not settings.render_image:
            raise ConfigurationError(
                "RENDER_ISOLATION=pod needs RENDER_IMAGE (the operator sets it to the runner's image)"
            )
        return cls(
            image=settings.render_image,
            service_account=settings.render_service_account,
            image_pull_policy=settings.render_image_pull_policy,
            cpu=settings.render_pod_cpu,
            memory_mb=settings.render_pod_memory_mb,
            work_dir_mb=settings.render_pod_work_dir_mb,
            start_seconds=settings.render_pod_start_seconds,
            uids=range(settings.render_uid_base, settings.render_uid_base + settings.render_uid_count),
            user_namespace=settings.render_pod_user_namespace,
            node_selector=dict(settings.render_pod_node_selector),
            tolerations=list(settings.render_pod_tolerations),
        )


@dataclass(frozen=True)
class RenderUrls:
    """Presigned URLs: the only way in and out of a render pod (no credentials reach it)."""

    code: str
    """GET of the scene file."""
    video: str
    """PUT of the clip."""
    result: str
    """PUT of the result: the worker's exit, stdout and stderr."""


def pod_deadline_seconds(config: RenderPodConfig, limits: RenderLimits) -> int:
    """activeDeadlineSeconds of a render pod: start-up, the render's timeout and the transfers."""
    return math.ceil(config.start_seconds + limits.timeout_seconds + TRANSFER_SECONDS)


def render_pod_name(runner: str) -> str:
    """A fresh render pod name derived from the runner pod's."""
    suffix = f"-render-{secrets.token_hex(4)}"
    return runner[: MAX_POD_NAME - len(suffix)].rstrip("-.") + suffix


def render_pod_manifest(
    name: str,
    owner: RunnerPod,
    config: RenderPodConfig,
    limits: RenderLimits,
    worker_args: list[str],
    urls: RenderUrls,
) -> dict[str, Any]:
    """The render pod: restricted Pod Security, no token, no Secrets, presigned URLs its only way out."""
    uid = config.uids[secrets.randbelow(len(config.uids))]
    memory_mb = config.memory_mb or limits.memory_mb + POD_MEMORY_OVERHEAD_MB
    amounts = {"cpu": config.cpu, "memory": f"{memory_mb}Mi"}
    env = {"HOME": str(WORK_DIR), CODE_URL_ENV: urls.code, VIDEO_URL_ENV: urls.video}
    env[RESULT_URL_ENV] = urls.result
    args = [
        "render-pod",
        f"--timeout={limits.timeout_seconds:g}",
        f"--memory-mb={limits.memory_mb}",
        f"--cpu-seconds={limits.cpu_seconds}",
        f"--max-processes={limits.max_processes}",
        f"--worker-args={json.dumps(worker_args)}",
    ]
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {ROLE_LABEL: RENDER_ROLE, MANAGED_BY_LABEL: RUNNER_MANAGER},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": owner.name, "uid": owner.uid}],
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": config.service_account,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": pod_deadline_seconds(config, limits),
            "terminationGracePeriodSeconds": 5,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": uid,
                "fsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": dict(config.node_selector),
            "tolerations": list(config.tolerations),
            "containers": [
                {
                    "name": CONTAINER,
                    "image": config.image,
                    "imagePullPolicy": config.image_pull_policy,
                    "args": args,
                    "workingDir": str(WORK_DIR),
                    "env": [{"name": key, "value": value} for key, value in env.items()],
                    "resources": {"requests": dict(amounts), "limits": dict(amounts)},
                    "securityContext": restricted_container(uid),
                    "volumeMounts": [
                        {"name": "work", "mountPath": str(WORK_DIR)},
                        {"name": "work", "mountPath": "/tmp", "subPath": "tmp"},
                    ],
                }
            ],
            "volumes": [{"name": "work", "emptyDir": {"sizeLimit": f"{config.work_dir_mb}Mi"}}],
        },
    }
    if config.user_namespace:
        pod["spec"]["hostUsers"] = False
    return pod


class RenderPods:
    """The runner's side: one render pod per render, created with the runner's own identity."""

    def __init__(
        self, core: client.CoreV1Api, storage: S3Storage, owner: RunnerPod, config: RenderPodConfig
    ) -> None:
        self.core = core
        self.storage = storage
        self.owner = owner
        self.config = config

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderPods:
        """Render pods beside this runner pod, exchanging files through the job storage (S3)."""
        storage = storage_from_settings(settings)
        if not isinstance(storage, S3Storage):
            raise ConfigurationError("RENDER_ISOLATION=pod needs STORAGE_BACKEND=s3 (presigned URLs)")
        config = RenderPodConfig.from_settings(settings)
        return cls(client.CoreV1Api(), storage, RunnerPod.from_environment(), config)

    async def render(
        self, worker_args: list[str], code_path: Path, workdir: Path, limits: RenderLimits
    ) -> _Finished:
        """Render in a new pod; its outputs land in `workdir`/media. The pod and its objects go afterwards."""
        name = render_pod_name(self.owner.name)
        prefix = f"{KEY_ROOT}/{name}/"
        try:
            await asyncio.to_thread(self.storage.put_file, prefix + CODE_FILE, code_path)
            urls = self._urls(prefix, limits)
            manifest = render_pod_manifest(name, self.owner, self.config, limits, worker_args, urls)
            await asyncio.to_thread(self._create, manifest)
            try:
                pod = await self._wait(
                    name, pod_deadline_seconds(self.config, limits), self.config.start_seconds
                )
            finally:
                await asyncio.to_thread(self._delete, name)
            return await asyncio.to_thread(self._collect, prefix, pod, workdir)
        finally:
            try:
                await asyncio.to_thread(self.storage.delete_prefix, prefix)
            except StorageError as error:
                logger.warning("could not remove the render objects under %s: %s", prefix, error.message)

    def _create(self, manifest: dict[str, Any]) -> None:
        """Create the render pod; the API server's refusal is the deployment's fault, not the scene's."""
        try:
            self.core.create_namespaced_pod(
                self.owner.namespace, manifest, _request_timeout=deadlines.REQUEST_TIMEOUT
            )
        except ApiException as error:
            raise RenderingError(
                f"cannot create render pod {manifest['metadata']['name']}: {_api_message(error)}",
                recoverable=True,
                suggestion="Check that the render ServiceAccount (RENDER_SERVICE_ACCOUNT) exists in the "
                "namespace and that the runner may create pods (RENDER_ISOLATION=pod), then resume.",
            ) from error

    def _urls(self, prefix: str, limits: RenderLimits) -> RenderUrls:
        expiry = pod_deadline_seconds(self.config, limits) + URL_SLACK_SECONDS
        return RenderUrls(
            code=self.storage.presigned_url(prefix + CODE_FILE, expiry) or "",
            video=self.storage.presigned_put_url(prefix + VIDEO_FILE, expiry),
            result=self.storage.presigned_put_url(prefix + RESULT_FILE, expiry),
        )

    async def _wait(self, name: str, deadline_seconds: float, start_seconds: float) -> client.V1Pod | None:
        """The pod once it ended; None when it did not within `deadline_seconds`.

        A pod still Pending after `start_seconds` (unschedulable, image not pulled) is the cluster's
        fault, not the scene's: RenderingError (recoverable), never a message for the model.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() < started + deadline_seconds:
            pod = await asyncio.to_thread(self._read, name)
            if pod is None:
                await asyncio.sleep(POLL_SECONDS)
                continue
            phase = pod.status.phase if pod.status is not None else None
            if phase in ENDED_PHASES:
                return pod
            if phase in (None, "Pending") and loop.time() > started + start_seconds:
                raise RenderingError(
                    f"render pod {name} did not start within {start_seconds:g} s ({_pending_reason(pod)})",
                    recoverable=True,
                    suggestion="Check the render pods' image, resources and node selector "
                    "(chart values runner.render.*), then resume the job.",
                )
            await asyncio.sleep(POLL_SECONDS)
        return None

    def _read(self, name: str) -> client.V1Pod | None:
        """The pod; None after a failure worth another try. A pod gone is a RenderingError."""
        try:
            pod: client.V1Pod = self.core.read_namespaced_pod(
                name, self.owner.namespace, _request_timeout=deadlines.REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                raise RenderingError(f"render pod {name} disappeared", recoverable=True) from error
            logger.warning("reading render pod %s failed, trying again: %s", name, _api_message(error))
            return None
        except (HTTPError, OSError) as error:
            logger.warning("reading render pod %s failed, trying again: %s", name, error)
            return None
        return pod

    def _delete(self, name: str) -> None:
        """Delete the pod now; one that cannot be deleted ends at its deadline and goes with the runner's."""
        try:
            self.core.delete_namespaced_pod(
                name, self.owner.namespace, grace_period_seconds=0, _request_timeout=deadlines.REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 404:
                logger.warning("could not delete render pod %s: %s", name, _api_message(error))
        except (HTTPError, OSError) as error:
            logger.warning("could not delete render pod %s: %s", name, error)

    def _collect(self, prefix: str, pod: client.V1Pod | None, workdir: Path) -> _Finished:
        """How the render ended, from the pod's result (bounded, untrusted) or else from the pod's status."""
        if pod is None:
            return _Finished(-9, True, "", "")
        size = self.storage.size(prefix + RESULT_FILE)
        if size is None:
            return _from_pod_status(pod)
        if size > RESULT_MAX_BYTES:
            return _Finished(1, False, "", f"The render's result was too large ({size} bytes).")
        finished = _parse_result(self.storage.get_bytes(prefix + RESULT_FILE) or b"")
        video = _last_report(finished.stdout).get("video") if finished.returncode == 0 else None
        target = _media_target(workdir / "media", video)
        video_size = self.storage.size(prefix + VIDEO_FILE) if target is not None else None
        if target is not None and video_size is not None and 0 < video_size <= FILE_SIZE_LIMIT:
            self.storage.download(prefix + VIDEO_FILE, target)
        return finished


def _api_message(error: ApiException) -> str:
    """The API server's message for a failed call (its Status body), bounded."""
    try:
        message = json.loads(error.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return clean(f"{error.status} {error.reason}: {message or ''}".strip(": "))[:500]


def _media_target(media: Path, reported: object) -> Path | None:
    """Where the reported clip (a path relative to the media dir) goes locally; None for anything else."""
    if not isinstance(reported, str) or not reported:
        return None
    relative = PurePosixPath(reported)
    if relative.is_absolute() or ".." in relative.parts or "\\" in reported or "\x00" in reported:
        return None
    return media.joinpath(*relative.parts)


def _parse_result(data: bytes) -> _Finished:
    """The pod's result JSON as a _Finished, every field checked and bounded."""
    try:
        result = json.loads(data)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return _Finished(1, False, "", "The render pod's result was unreadable.")
    code, timed_out = result.get("returncode"), result.get("timed_out")

    def text(key: str) -> str:
        value = result.get(key)
        return clean(value[-LOG_LIMIT_BYTES:]) if isinstance(value, str) else ""

    return _Finished(
        code if isinstance(code, int) and not isinstance(code, bool) else 1,
        timed_out is True,
        text("stdout"),
        text("stderr"),
        out_of_memory=result.get("out_of_memory") is True,
    )


def _pending_reason(pod: client.V1Pod) -> str:
    """Why a pod has not started, from its container states and conditions."""
    status = pod.status
    for container in (status.container_statuses or []) if status is not None else []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason:
            return clean(f"{waiting.reason}: {waiting.message or ''}").strip(": ")
    for condition in (status.conditions or []) if status is not None else []:
        if condition.status != "True" and condition.reason:
            return clean(f"{condition.reason}: {condition.message or ''}").strip(": ")
    return "no reason given"


def _from_pod_status(pod: client.V1Pod) -> _Finished:
    """A render pod that uploaded no result: killed for memory, past its deadline, or never started."""
    reason = (pod.status.reason or "") if pod.status is not None else ""
    if reason == "DeadlineExceeded":
        return _Finished(-9, True, "", "")
    statuses = (pod.status.container_statuses or []) if pod.status is not None else []
    terminated = statuses[0].state.terminated if statuses and statuses[0].state else None
    if terminated is not None and terminated.reason == "OOMKilled":
        return _Finished(-9, False, "", "The render pod was OOMKilled.", out_of_memory=True)
    code = terminated.exit_code if terminated is not None else 1
    detail = clean(f"{reason} {terminated.reason or ''}" if terminated is not None else reason).strip()
    message = f"The render pod ended without a result ({detail or 'no reason'})."
    return _Finished(code or 1, False, "", message)


# --------------------------------------------------------------------------- inside the render pod


def main(argv: list[str]) -> int:
    """`videojobs render-pod --timeout=.. ... --worker-args=<JSON list>`: fetch the code, render, upload."""
    parser = argparse.ArgumentParser(prog="videojobs render-pod")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--max-processes", type=int, required=True)
    parser.add_argument("--worker-args", type=json.loads, required=True, help="JSON list of worker args")
    options = parser.parse_args(argv)
    worker = [str(arg) for arg in options.worker_args]
    limits = RenderLimits(options.timeout, options.memory_mb, options.cpu_seconds, options.max_processes)
    workdir = Path.cwd()
    (workdir / "tmp").mkdir(exist_ok=True)
    media = workdir / "media"
    code = workdir / CODE_FILE
    _fetch(os.environ[CODE_URL_ENV], code, CODE_MAX_BYTES)
    command = [*WORKER_COMMAND, *worker, f"--code={code}", f"--media-dir={media}"]
    finished = asyncio.run(_run(Launch(argv=command, env=worker_env(workdir)), workdir, limits))
    if finished.returncode == 0:
        video = _media_file(media, _last_report(finished.stdout).get("video"))
        if video is not None:
            with video.open("rb") as body:
                _put(os.environ[VIDEO_URL_ENV], body, video.stat().st_size)
    result = json.dumps(asdict(finished)).encode()
    _put(os.environ[RESULT_URL_ENV], result, len(result))
    return 0


def _fetch(url: str, dest: Path, limit: int) -> None:
    """GET `url` into `dest`, refusing more than `limit` bytes."""
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response, dest.open("wb") as out:
        data = response.read(limit + 1)
        if len(data) > limit:
            raise SystemExit(f"the scene file is larger than {limit} bytes")
        out.write(data)


def _put(url: str, body: Any, size: int) -> None:
    """PUT `body` (bytes or a binary file) to a presigned URL."""
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
        response.read()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
