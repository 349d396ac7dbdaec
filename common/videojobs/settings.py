"""Deployment configuration read from the environment (and an optional .env file)."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from videojobs.contract import Quality, TTSBackend

DEFAULT_MODEL = "gemini/gemini-2.5-pro"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str:
    """The pod's own namespace inside a cluster, `default` elsewhere."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class StorageBackend(StrEnum):
    """Where job artifacts are kept."""

    LOCAL = "local"
    S3 = "s3"


class RenderIsolation(StrEnum):
    """How a render is separated from the runner (README: "The render sandbox")."""

    BWRAP = "bwrap"
    """bubblewrap: new user, PID, network, IPC, UTS and mount namespaces, a read allow-list, own uid."""
    POD = "pod"
    """Kubernetes: a render pod of its own (own uid, no token, no secrets, egress only to S3) per render."""
    NONE = "none"
    """No OS boundary: the scene runs as the runner and sees what it sees. Unsafe; logged loudly."""


class Settings(BaseSettings):
    """Every knob, named as in the integration spec (PLANNER_MODEL, OUTPUT_DIR, ...)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Models (any litellm model string).
    planner_model: str = DEFAULT_MODEL
    scene_model: str = DEFAULT_MODEL
    helper_model: str = DEFAULT_MODEL
    llm_timeout_seconds: float = Field(default=180.0, gt=0)
    llm_retries: int = Field(default=2, ge=0, description="Transport-level retries per LLM call.")
    max_plan_attempts: int = Field(default=3, ge=1, description="Re-asks for malformed outline/plan JSON.")
    llm_max_output_tokens: int = Field(
        default=16384, ge=256, description="Output cap per chat call; the budget check assumes it is reached."
    )

    # Narration.
    tts_backend: str = Field(
        default=TTSBackend.ESPEAK.value,
        min_length=1,
        description="'espeak', 'none' or a litellm speech model.",
    )
    tts_voice: str | None = Field(default=None, description="Voice name for the TTS backend.")

    # Pipeline.
    default_quality: Quality = Quality.MEDIUM
    max_scene_concurrency: int = Field(default=3, ge=1)
    max_concurrent_renders: int = Field(default=2, ge=1)
    max_fix_attempts: int = Field(default=3, ge=0, description="Corrected code versions after a failure.")
    enable_caching: bool = Field(default=True, description="Reuse Manim's per-animation partial movies.")
    use_gpu_acceleration: bool = Field(default=False, description="Encode with NVENC when available.")
    shared_render_cache: bool = Field(
        default=True, description="Reuse the stored render of an identical scene from any job (same storage)."
    )
    cache_max_bytes: int | None = Field(
        default=20 * 1024**3,
        ge=0,
        description="Size the shared _cache/ (renders, speech) is kept under, oldest first; unset: no limit.",
    )
    cache_max_age_days: float | None = Field(
        default=30.0, gt=0, description="Cache entries older than this are evicted; unset: no age limit."
    )

    # Layout check (every render; objects must stay this many units inside the frame, text must not overlap).
    layout_margin: float = Field(default=0.3, ge=0, le=2)
    max_layout_fix_attempts: int = Field(
        default=2, ge=0, description="Layout-fix requests per scene, besides the error fixes."
    )

    # Render sandbox limits (per scene process).
    render_timeout_seconds: float = Field(default=300.0, gt=0)
    render_memory_mb: int = Field(default=4096, ge=256)
    render_cpu_seconds: int = Field(default=600, ge=1)
    render_max_processes: int = Field(
        default=256, ge=16, description="Processes and threads a render may have at once (RLIMIT_NPROC)."
    )
    render_isolation: RenderIsolation = Field(
        default=RenderIsolation.BWRAP,
        description=(
            "'bwrap' (the OS sandbox, required by default), 'pod' (a render pod per render, on Kubernetes) "
            "or 'none' (unsafe: no OS boundary)."
        ),
    )
    render_uid_base: int = Field(
        default=200_000,
        ge=1001,
        description="A root runner, or a render pod, gives each render a uid from here.",
    )
    render_uid_count: int = Field(default=100_000, ge=1)

    # Render pods (RENDER_ISOLATION=pod; the operator sets RENDER_IMAGE and the runner pod's identity).
    render_image: str | None = Field(default=None, description="Image of render pods: the runner's.")
    render_image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    render_service_account: str = Field(
        default="videojobs-render", min_length=1, description="ServiceAccount of render pods (no RBAC)."
    )
    render_pod_cpu: str = Field(default="1", min_length=1, description="CPU request = limit of a render pod.")
    render_pod_memory_mb: int | None = Field(
        default=None, ge=256, description="Memory limit of a render pod; default RENDER_MEMORY_MB + 512."
    )
    render_pod_work_dir_mb: int = Field(default=4096, ge=64, description="sizeLimit of its work dir.")
    render_pod_start_seconds: float = Field(
        default=300.0, gt=0, description="Time a render pod may take to be scheduled and start."
    )
    render_pod_user_namespace: bool = Field(
        default=False, description="hostUsers: false on render pods (needs node support: Kubernetes 1.33+)."
    )
    render_pod_node_selector: dict[str, str] = Field(default_factory=dict)
    render_pod_tolerations: list[dict[str, str]] = Field(default_factory=list)

    # Storage.
    output_dir: Path = Path("output")
    work_dir: Path | None = Field(default=None, description="Scratch space; OUTPUT_DIR/.work if unset.")
    storage_backend: StorageBackend = StorageBackend.LOCAL
    s3_bucket: str | None = None
    s3_prefix: str = "videojobs"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    presigned_url_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    @field_validator("render_pod_node_selector", "render_pod_tolerations", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        """JSON text (as a ConfigMap holds it) parsed, also where the environment source does not."""
        return json.loads(value) if isinstance(value, str) else value

    @property
    def scratch_dir(self) -> Path:
        """Where renders happen before their results are stored."""
        return self.work_dir if self.work_dir is not None else self.output_dir / ".work"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
