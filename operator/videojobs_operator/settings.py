"""Operator configuration read from the environment (prefix-free names, e.g. RUNNER_IMAGE, MAX_RUNNING)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from videojobs import leader
from videojobs.contract import Quantity, TaintEffect, Toleration, TolerationOperator
from videojobs.settings import RenderIsolation

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = "nvidia.com/gpu.present"


def _gpu_tolerations() -> list[Toleration]:
    return [Toleration(key=GPU_RESOURCE, operator=TolerationOperator.EXISTS, effect=TaintEffect.NO_SCHEDULE)]


class OperatorSettings(BaseSettings):
    """Every operator knob; a VideoJob's spec overrides the per-job defaults (DEFAULT_*).

    RUNNER_IMAGE                 image of the runner container (entrypoint `videojobs`)
    RUNNER_IMAGE_PULL_POLICY     its imagePullPolicy
    RUNNER_IMAGE_PULL_SECRETS    JSON list of Secret names with registry credentials for the runner pods
    RUNNER_SERVICE_ACCOUNT       unset (default): each VideoJob's runner gets a ServiceAccount of its own
                                 that may get that VideoJob and patch its status, nothing else (identity.py);
                                 set: all runner pods use this existing one (operator/rbac/runner.yaml)
    RUNNER_SERVICE_ACCOUNT_ANNOTATIONS
                                 JSON object put on the per-VideoJob ServiceAccounts (e.g. an IRSA role)
    LLM_SECRET_NAME              Secret whose keys become the runner's env (LLM API keys); unset: none
    S3_SECRET_NAME               Secret with the S3 credentials, as env; unset: none
    RUNNER_CONFIGMAP_NAME        ConfigMap with pipeline settings (PLANNER_MODEL, STORAGE_BACKEND, ...)
    RENDER_ISOLATION             the runners' RENDER_ISOLATION: pod (default: each render in a pod of its
                                 own; the runner's identity may then create, get and delete pods), or none
    DEFAULT_GPU_COUNT            nvidia.com/gpu per job unless spec.resources.gpu says otherwise
    DEFAULT_CPU, DEFAULT_MEMORY  requests = limits (Guaranteed QoS) unless spec.resources says otherwise
    DEFAULT_NODE_SELECTOR        JSON object; spec.nodeSelector replaces it
    DEFAULT_TOLERATIONS          JSON list of tolerations; spec.tolerations replaces it
    MAX_RUNNING                  jobs running at once; the rest wait suspended (Queued); 0 = no limit
    ARTIFACT_DELETION_TIMEOUT_SECONDS
                                 how long a deleted VideoJob waits for storage to delete its artifacts
                                 (retried with backoff) before its finalizer goes and they are left;
                                 storage itself is the runner's: STORAGE_BACKEND, OUTPUT_DIR, S3_* (the
                                 chart gives the operator the runners' ConfigMap and S3 Secret)
    API_QPS, API_BURST           client-side rate limit (token bucket) of the operator's own API calls
    API_CONCURRENCY              API calls in flight at once (client threads); VideoJobs reconciled at once
    METRICS_PORT                 Prometheus /metrics, /livez and /readyz port; 0 turns the endpoint off
    METRICS_ADDRESS              the address it listens on (default all)
    LEADER_ELECTION              true (default): replicas elect one leader by a Lease (videojobs/leader.py);
                                 the others stand by. false: this one reconciles at once (run only one)
    LEADER_ELECTION_NAMESPACE    where the Lease is: default the (first) watched namespace, else the pod's own
    LEADER_ELECTION_ID           the Lease's name
    LEADER_ELECTION_IDENTITY     this replica's name as the Lease's holder (the chart: the pod's name, so a
                                 restarted container takes its own Lease back at once); default the
                                 hostname and a random suffix
    LEASE_DURATION_SECONDS, LEASE_RENEW_DEADLINE_SECONDS, LEASE_RETRY_SECONDS
                                 how long a standby waits for an unrenewed Lease, how long the leader
                                 tries to renew before it stops, how often both try (client-go's defaults)
    """

    model_config = SettingsConfigDict(extra="ignore")

    runner_image: str = "ghcr.io/videojobs/runner:latest"
    runner_image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    runner_image_pull_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    runner_service_account: str | None = None
    runner_service_account_annotations: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    llm_secret_name: str | None = None
    s3_secret_name: str | None = None
    runner_configmap_name: str | None = None
    render_isolation: RenderIsolation = RenderIsolation.POD
    default_gpu_count: int = Field(default=1, ge=0, le=16)
    default_cpu: Quantity = "4"
    default_memory: Quantity = "16Gi"
    default_node_selector: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {GPU_NODE_LABEL: "true"}
    )
    default_tolerations: Annotated[list[Toleration], NoDecode] = Field(default_factory=_gpu_tolerations)
    max_running: int = Field(default=0, ge=0)
    artifact_deletion_timeout_seconds: float = Field(default=3600.0, gt=0)
    api_qps: float = Field(default=200.0, gt=0)  # ~8 calls per VideoJob: 1,000 of them in under a minute
    api_burst: int = Field(default=400, ge=1)
    api_concurrency: int = Field(default=48, ge=1, le=64)  # each worker waits on its calls: keep many
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    metrics_address: str = "0.0.0.0"
    leader_election: bool = True
    leader_election_namespace: str | None = None
    leader_election_id: str = Field(default="videojobs-operator", min_length=1, max_length=253)
    leader_election_identity: str | None = None
    lease_duration_seconds: float = Field(default=leader.DURATION_SECONDS, gt=0)
    lease_renew_deadline_seconds: float = Field(default=leader.RENEW_DEADLINE_SECONDS, gt=0)
    lease_retry_seconds: float = Field(default=leader.RETRY_SECONDS, gt=0)

    @field_validator(
        "default_node_selector",
        "default_tolerations",
        "runner_service_account_annotations",
        "runner_image_pull_secrets",
        mode="before",
    )
    @classmethod
    def _json(cls, value: Any) -> Any:
        """JSON from the environment, parsed here so that a mistake is reported against the field."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg})") from None

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorSettings:
        """A leader must give up before a standby may take over, and try more than once before that."""
        if not self.lease_duration_seconds > self.lease_renew_deadline_seconds > self.lease_retry_seconds:
            raise ValueError(
                "LEASE_DURATION_SECONDS must exceed LEASE_RENEW_DEADLINE_SECONDS, "
                "which must exceed LEASE_RETRY_SECONDS"
            )
        return self
