"""API configuration from VIDEOJOBS_API_* variables; the runner's own settings ride along unchanged."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from videojobs.contract import Priority
from videojobs.settings import Settings, pod_namespace
from videojobs_api.auth import ApiKey, parse_api_keys

API_ENV_PREFIX = "VIDEOJOBS_API_"
WEBHOOK_SECRET_PREFIX = "whsec_"
"""Standard Webhooks secrets are `whsec_` + base64 of the key bytes."""
DATABASE_FILE = ".videojobs-api.sqlite3"


class BackendKind(StrEnum):
    """Where jobs live and run."""

    LOCAL = "local"
    KUBERNETES = "kubernetes"


def _default_backend() -> BackendKind:
    """Kubernetes inside a cluster, the embedded local backend everywhere else."""
    return BackendKind.KUBERNETES if os.environ.get("KUBERNETES_SERVICE_HOST") else BackendKind.LOCAL


def dns_label(name: str) -> str:
    """`name` as a DNS-1123 label part: itself when it is one, else a lowercase slug and a hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if slug == name and len(slug) <= 40:
        return slug
    return f"{slug[:30].strip('-') or 'p'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _default_worker_command() -> list[str]:
    """The runner's local worker, started by the API's interpreter (job id appended)."""
    return [sys.executable, "-m", "videojobs_runner.local_worker"]


class ApiSettings(BaseSettings):
    """Every API knob; VIDEOJOBS_API_KEYS holds `name:role:key` entries (role user or admin).

    With no keys only a server bound to loopback starts, with a key of its own (`local_key.py`).
    """

    model_config = SettingsConfigDict(
        env_prefix=API_ENV_PREFIX, env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    backend: BackendKind = Field(default_factory=_default_backend)
    keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field(
        default=(), description="API keys; a key written sha256:<hex> is stored hashed already."
    )
    keys_file: Path | None = Field(default=None, description="More keys, one entry per line (a Secret).")
    local_key_file: Path | None = Field(
        default=None,
        description="Where `videojobs serve` on loopback with no keys keeps the key it makes (mode 0600); "
        "$XDG_STATE_HOME/videojobs/api-key, else ~/.local/state/videojobs/api-key.",
    )
    max_active_jobs: int = Field(default=5, ge=1, description="Queued plus running jobs per principal.")
    retry_after_seconds: int = Field(default=30, ge=1, description="Retry-After of a 429.")
    job_ttl_seconds: int | None = Field(
        default=None,
        ge=0,
        description="Delete a finished job and its artifacts this long after it ended (the job's "
        "expires_at; on Kubernetes its spec.ttlSecondsAfterFinished); unset: kept until deleted.",
    )
    local_workers: int = Field(
        default=2, ge=0, description="Jobs run at once by the local backend; 0 queues."
    )
    worker_command: list[str] = Field(
        default_factory=_default_worker_command, min_length=1, description="Runs one job; its id is appended."
    )
    worker_stop_seconds: float = Field(default=10.0, gt=0, description="Grace before a worker is killed.")
    database: Path | None = Field(
        default=None, description=f"Local backend's SQLite; OUTPUT_DIR/{DATABASE_FILE}."
    )
    webhook_secret: SecretStr | None = Field(default=None, description="whsec_<base64>, or any string.")
    allow_insecure_webhooks: bool = Field(
        default=False, description="Allow http:// and private, loopback or link-local targets (tests only)."
    )
    webhook_attempts: int = Field(default=5, ge=1)
    webhook_backoff_seconds: float = Field(default=1.0, gt=0, description="First retry delay; doubles.")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    url_signing_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs video URLs; random per process unless set (set it when running replicas).",
    )
    namespace: str = Field(
        default_factory=pod_namespace,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Kubernetes backend: the namespace of the VideoJobs (the pod's own in a cluster).",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubernetes backend: a kubeconfig file; unset, the pod's ServiceAccount in a cluster, "
        "else $KUBECONFIG or ~/.kube/config.",
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        description="Kubernetes backend: the Kueue LocalQueue (spec.queueName) of principals that "
        "tenant_queues does not name; `{principal}` in it stands for the principal's name as a DNS label "
        "(e.g. `videojobs-{principal}`: a LocalQueue per tenant).",
    )
    tenant_queues: dict[str, Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default_factory=dict,
        description="Kubernetes backend: the LocalQueue of each named principal, as JSON, e.g. "
        '{"alice": "team-a"}, so that Kueue applies quotas and fair sharing per tenant.',
    )
    daily_budget_usd: float | None = Field(
        default=None,
        gt=0,
        description="What each principal's jobs may spend per UTC day (USD); unset: no budget. A create, "
        "retry or revise is refused (429) once it is spent, and each job's max_cost_usd is capped to "
        "what is left.",
    )
    daily_budgets_usd: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description='Per-principal daily budgets (USD) overriding daily_budget_usd, as JSON: {"alice": 50}.',
    )
    priority_classes: dict[Priority, str] = Field(
        default_factory=dict,
        description="Kubernetes backend: the PriorityClass (spec.priorityClassName) of each request "
        'priority, as JSON, e.g. {"urgent": "videojobs-urgent"}; the operator queues by its value.',
    )
    cancel_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Kubernetes backend: how long a cancel waits for the operator to mark the job Cancelled.",
    )
    delete_wait_seconds: float = Field(
        default=45.0,
        ge=0,
        description="Kubernetes backend: how long a delete waits for the job's pod to stop (its grace "
        "period, 30 s by default) before it deletes the artifacts; a pod still stopping may write more.",
    )
    webhook_lease: str = Field(
        default="videojobs-api-webhooks",
        min_length=1,
        max_length=253,
        description="Kubernetes backend: the Lease by which the replicas elect the one that sends webhooks.",
    )
    sse_ping_seconds: float = Field(default=15.0, gt=0, description="Keep-alive comment interval.")
    runner: Settings = Field(default_factory=Settings, description="The runner's settings (OUTPUT_DIR, ...).")

    @field_validator("keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        """Entries as text (the environment) or as a list of entries and ApiKeys (code)."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        return [key for item in items for key in (parse_api_keys(item) if isinstance(item, str) else [item])]

    @model_validator(mode="after")
    def _load_keys_file(self) -> ApiSettings:
        if self.keys_file is not None:
            try:
                text = self.keys_file.read_text()
            except OSError as error:
                raise ValueError(f"cannot read the keys file {self.keys_file}: {error.strerror}") from None
            self.keys = (*self.keys, *parse_api_keys(text))
        digests = [key.sha256 for key in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("the same API key is configured twice")
        return self

    def queue_for(self, principal: str) -> str | None:
        """The LocalQueue of the principal's VideoJobs: its own, else queue_name with `{principal}` filled."""
        if principal in self.tenant_queues:
            return self.tenant_queues[principal]
        if self.queue_name is None:
            return None
        return self.queue_name.replace("{principal}", dns_label(principal))[:63].rstrip("-")

    def daily_budget(self, principal: str) -> float | None:
        """The principal's daily budget in USD (None: none)."""
        return self.daily_budgets_usd.get(principal, self.daily_budget_usd)

    @property
    def database_path(self) -> Path:
        """Where the local backend keeps its jobs."""
        return self.database if self.database is not None else self.runner.output_dir / DATABASE_FILE

    def webhook_key(self) -> bytes | None:
        """The webhook signing key bytes (a `whsec_` secret is base64-decoded), or None when unset."""
        if self.webhook_secret is None:
            return None
        secret = self.webhook_secret.get_secret_value()
        if secret.startswith(WEBHOOK_SECRET_PREFIX):
            return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
        return secret.encode()
