"""The VideoJob contract: spec, status and stage names shared by runner, operator and API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    computed_field,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from videojobs.languages import LANGUAGE_PATTERN, language, supported_tags


class ContractModel(BaseModel):
    """Base for contract models: camelCase on the wire (Kubernetes style), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, object]:
        """The JSON-ready dict with camelCase keys, leaving out unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Quality(StrEnum):
    """Render quality presets, each mapped to one of Manim's."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    PRODUCTION = "production"


class Resolution(NamedTuple):
    """Pixel size and frame rate of a quality preset."""

    width: int
    height: int
    fps: int


QUALITY_PRESETS: dict[Quality, Resolution] = {
    Quality.LOW: Resolution(854, 480, 15),
    Quality.MEDIUM: Resolution(1280, 720, 30),
    Quality.HIGH: Resolution(1920, 1080, 60),
    Quality.PRODUCTION: Resolution(2560, 1440, 60),
}


class Stage(StrEnum):
    """Pipeline stages, in the order they run."""

    INITIALIZING = "initializing"
    PLANNING = "planning"
    SCENARIO_CREATION = "scenario_creation"
    CODE_GENERATION = "code_generation"
    RENDERING = "rendering"
    COMBINING = "combining"
    STORAGE = "storage"
    COMPLETED = "completed"


class StageInfo(NamedTuple):
    """What the status says of a stage."""

    progress: int
    """Overall progress (percent) reached when the stage finishes."""
    description: str
    """The status message while the stage runs, unless the pipeline says more."""


STAGES: dict[Stage, StageInfo] = {
    Stage.INITIALIZING: StageInfo(5, "Initializing video generation"),
    Stage.PLANNING: StageInfo(15, "Creating scene outline"),
    Stage.SCENARIO_CREATION: StageInfo(30, "Generating scene implementations"),
    Stage.CODE_GENERATION: StageInfo(50, "Creating Manim code"),
    Stage.RENDERING: StageInfo(80, "Rendering video scenes"),
    Stage.COMBINING: StageInfo(90, "Combining scenes"),
    Stage.STORAGE: StageInfo(95, "Uploading to storage"),
    Stage.COMPLETED: StageInfo(100, "Video generation completed"),
}
"""Every stage's progress mark and description, in one table."""


def stage_progress(stage: Stage, fraction: float = 0.0) -> int:
    """Overall progress with `stage` `fraction` (0..1) done: from the previous stage's mark to its own."""
    stages = list(Stage)
    index = stages.index(stage)
    start = STAGES[stages[index - 1]].progress if index > 0 else 0
    end = STAGES[stage].progress
    bounded = min(max(fraction, 0.0), 1.0)
    return int(start + (end - start) * bounded)


CONTROLLER_NAME = "videojobs.io/operator"
"""The operator's name in spec.managedBy (and as the reporting controller of its Events)."""


class Phase(StrEnum):
    """Lifecycle phase of a job, as shown in `kubectl get videojobs`."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change."""
        return self in {Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED}


class TTSBackend(StrEnum):
    """Built-in speech backends; any other value is taken as a litellm speech model string."""

    ESPEAK = "espeak"
    NONE = "none"


class Mutable:
    """Field marker: the field may change after the VideoJob exists (every other request field is fixed)."""


MUTABLE = Mutable()


def mutable_fields(model: type[BaseModel]) -> set[str]:
    """The names of `model`'s fields marked MUTABLE."""
    return {name for name, info in model.model_fields.items() if any(m is MUTABLE for m in info.metadata)}


def _json_number(value: object) -> object:
    if isinstance(value, str | bytes | bool):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    return value


Count = Annotated[int, BeforeValidator(_json_number)]
"""An integer as JSON has it: 8 and 8.0, never "8" (booleans are refused too)."""

Topic = Annotated[str, Field(min_length=1, max_length=500, description="What the video explains.")]
JOB_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""Job ids and VideoJob names: DNS-1123 labels, safe as storage prefixes and Kubernetes names."""


class Priority(StrEnum):
    """Queue order among a deployment's waiting jobs."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Higher runs first."""
        return list(Priority).index(self)


class OutputFormat(StrEnum):
    """Container of the finished video."""

    MP4 = "mp4"


class WebhookEvent(StrEnum):
    """What a job's webhook is called for: its end (always useful) and, optionally, each stage."""

    COMPLETED = "completed"
    STAGE = "stage"


Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
WebhookUrl = Annotated[
    str,
    StringConstraints(
        max_length=2000, pattern=r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[\x21-\x7e]*)?$"
    ),
]
"""An http(s) URL with an ASCII host name or address, kept exactly as given."""


class ModelChoice(ContractModel):
    """litellm model strings per role; unset roles take `default`, then the deployment's settings."""

    default: str | None = Field(
        default=None, min_length=1, max_length=200, description="Model for every role not set below."
    )
    planner: str | None = Field(
        default=None, min_length=1, max_length=200, description="Model for the scene outline."
    )
    scene: str | None = Field(
        default=None, min_length=1, max_length=200, description="Model for scene plans and code."
    )
    helper: str | None = Field(
        default=None, min_length=1, max_length=200, description="Model for fixes of failed code."
    )


class VoiceSpec(ContractModel):
    """How narration is spoken."""

    backend: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="'espeak', 'none' or a litellm speech model; the deployment's TTS_BACKEND if unset.",
    )
    voice: str | None = Field(
        default=None, min_length=1, max_length=100, description="Voice name for the backend."
    )


class Delivery(ContractModel):
    """What is delivered beside the video."""

    subtitles: bool = Field(default=True, strict=True, description="Store WebVTT and SRT subtitles.")
    thumbnail: bool = Field(default=True, strict=True, description="Store a JPEG poster frame.")
    chapters: bool = Field(default=True, strict=True, description="Mark each scene as a chapter in the MP4.")
    format: OutputFormat = Field(default=OutputFormat.MP4, description="Container of the video.")


class Webhook(ContractModel):
    """Where the job's end (and, if asked, each stage) is announced: a signed Standard Webhooks call."""

    url: WebhookUrl = Field(description="The http(s) URL called.")
    events: list[WebhookEvent] = Field(
        default_factory=lambda: [WebhookEvent.COMPLETED],
        min_length=1,
        max_length=len(WebhookEvent),
        description="What the URL is called for.",
    )


class Revision(ContractModel):
    """A revise of an earlier job: its outline and every scene not named are kept, the named ones remade."""

    parent: str = Field(
        pattern=JOB_NAME_PATTERN,
        max_length=63,
        description="The revised job's id in storage.",
    )
    instructions: str = Field(
        min_length=1, max_length=2000, description="What to change, for the named scenes or the whole video."
    )
    scenes: list[Annotated[int, Field(ge=1, le=12)]] = Field(
        default_factory=list, max_length=12, description="1-based scenes to make again; empty: every scene."
    )


class GenerationRequest(ContractModel):
    """A job request: what to make and deliver. The REST body, the CLI options and the VideoJob spec.

    Numbers and booleans are strict: their JSON type must match (no 0 for false, no "5" for 5).
    """

    topic: Topic
    description: str = Field(default="", max_length=5000, description="Extra context for the planner.")
    language: str = Field(
        default="en",
        max_length=35,
        pattern=LANGUAGE_PATTERN,
        description="BCP 47 tag of the narration, on-screen text and subtitles (e.g. 'de', 'zh-Hans').",
    )
    models: ModelChoice = Field(default_factory=ModelChoice, description="litellm models per role.")
    quality: Quality | None = Field(default=None, description="Render preset; the deployment's if unset.")
    max_scenes: Count = Field(default=7, ge=1, le=12, description="Most scenes in the video.")
    voice: VoiceSpec = Field(default_factory=VoiceSpec, description="How the narration is spoken.")
    delivery: Delivery = Field(default_factory=Delivery, description="What is delivered beside the video.")
    max_cost_usd: Annotated[float | None, MUTABLE] = Field(
        default=None,
        gt=0,
        le=10_000,
        strict=True,
        description="Stop before spending more on LLM calls (USD); may be raised later.",
    )
    priority: Priority = Field(default=Priority.NORMAL, description="Queue order among waiting jobs.")
    tags: Annotated[list[Tag], MUTABLE] = Field(
        default_factory=list, max_length=20, description="Free labels for finding the job again."
    )
    webhook: Annotated[Webhook | None, MUTABLE] = Field(
        default=None, description="Called, signed, when the job ends."
    )
    revision: Revision | None = Field(default=None, description="Make this job a revise of an earlier one.")

    @model_validator(mode="after")
    def _speakable(self) -> GenerationRequest:
        """Refuse, as an error located at `language`, a language the chosen espeak-ng backend cannot speak."""
        try:
            unspeakable(self.language, self.voice)
        except ValueError as error:
            issue = PydanticCustomError("value_error", "{reason}", {"reason": str(error)})
            detail = InitErrorDetails(type=issue, loc=("language",), input=self.language)
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from error
        return self

    def immutable_fields(self) -> dict[str, object]:
        """The request's fixed fields (for comparing a changed spec with its original)."""
        return self.model_dump(include=immutable_request_fields())

    def file_stem(self) -> str:
        """A download file name stem from the topic, e.g. `the-pythagorean-theorem`."""
        return re.sub(r"[^a-z0-9]+", "-", self.topic.lower()).strip("-")[:60].strip("-") or "video"


def unspeakable(tag: str, voice: VoiceSpec) -> None:
    """Raise ValueError when `voice`'s backend is espeak-ng and `tag` is not one of its languages."""
    if voice.backend == TTSBackend.ESPEAK and language(tag) is None:
        raise ValueError(
            f"language {tag!r} cannot be spoken by espeak: the supported languages are {supported_tags()}"
        )


def immutable_request_fields() -> set[str]:
    """Request fields fixed once a VideoJob exists: all but those marked MUTABLE."""
    return set(GenerationRequest.model_fields) - mutable_fields(GenerationRequest)


Quantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$", description="A Kubernetes quantity.")
]
LabelValue = Annotated[str, Field(max_length=253)]


class TolerationOperator(StrEnum):
    """corev1.Toleration operators."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    """corev1 taint effects."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ContractModel):
    """A corev1.Toleration for the runner pod."""

    key: str | None = Field(default=None, max_length=253)
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str | None = Field(default=None, max_length=63)
    effect: TaintEffect | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class Resources(ContractModel):
    """Compute for the runner pod; unset values come from the operator's settings."""

    gpu: int | None = Field(default=None, ge=0, le=16, description="nvidia.com/gpu count.")
    cpu: Quantity | None = None
    memory: Quantity | None = None


class VideoJobSpec(GenerationRequest):
    """The VideoJob spec: the generation request plus how its Kubernetes Job runs."""

    resources: Resources = Field(default_factory=Resources, description="Compute of the runner pod.")
    node_selector: dict[str, LabelValue] | None = Field(
        default=None, description="Where the runner pod may run; overrides the operator's default."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints the runner pod tolerates; overrides the default."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the runner pod."
    )
    queue_name: str | None = Field(
        default=None, max_length=63, description="Kueue LocalQueue; admission is then left to Kueue."
    )
    suspend: bool = Field(
        default=False,
        strict=True,
        description="true pauses the job (its Job is suspended, its pod stops; phase Suspended); "
        "false resumes it from its checkpoint.",
    )
    cancel: bool = Field(
        default=False,
        strict=True,
        description="true cancels the job for good (its Job is deleted; phase Cancelled). Final: only "
        "a retry (spec.attempt raised in the same change) may set it back to false.",
    )
    managed_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description=f"The controller that runs this VideoJob; unset or {CONTROLLER_NAME!r}: the videojobs "
        "operator, any other (e.g. kueue.x-k8s.io/multikueue): the operator leaves it alone. Immutable.",
    )
    attempt: Annotated[Count, MUTABLE] = Field(
        default=0,
        ge=0,
        le=1000,
        description="Raise by one to run a Failed or Cancelled job again from its checkpoint.",
    )
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Pod retries of the Job.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=60, description="Wall-clock limit of the Job."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the VideoJob this long after it finished."
    )

    def request(self) -> GenerationRequest:
        """The generation request alone."""
        return GenerationRequest.model_validate(self.model_dump(include=set(GenerationRequest.model_fields)))


class SceneCounts(ContractModel):
    """How many scenes the outline has and how many rendered or failed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    total: int = Field(default=0, ge=0)
    rendered: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ready(self) -> str:
        """`rendered/total`, as `kubectl get videojobs` shows it."""
        return f"{self.rendered}/{self.total}"


class Usage(ContractModel):
    """LLM and speech usage summed over a job (or a stage)."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tts_calls: int = 0
    tts_characters: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        """Accumulate another usage record into this one."""
        self.llm_calls += other.llm_calls
        self.tts_calls += other.tts_calls
        self.tts_characters += other.tts_characters
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.cost_usd = round(self.cost_usd + other.cost_usd, 6)


class JobResult(ContractModel):
    """Where the finished job's artifacts are, and what the video is like."""

    video: str | None = None
    thumbnail: str | None = None
    subtitles: str | None = None
    metadata: str | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None


class JobError(ContractModel):
    """Why a job failed, and what the user can do about it."""

    stage: Stage
    message: str
    recoverable: bool = False
    suggestion: str = ""


class ConditionStatus(StrEnum):
    """metav1.Condition status values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ContractModel):
    """A metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class QueueStatus(ContractModel):
    """Where Kueue holds a VideoJob with spec.queueName while it waits to be admitted (phase Queued)."""

    name: str = Field(description="The Kueue LocalQueue it waits in (spec.queueName).")
    position: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Its place among the LocalQueue's pending Workloads, 1 = admitted next, as Kueue's visibility "
            "API (visibility.kueue.x-k8s.io, VisibilityOnDemand) reports it, refreshed every few seconds; "
            "absent where that API is not served or has not placed it yet."
        ),
    )
    position_in_cluster_queue: int | None = Field(
        default=None,
        ge=1,
        description="Its place among the pending Workloads of the LocalQueue's ClusterQueue.",
    )


RUNNER_STATUS_FIELDS = (
    "stage",
    "progress",
    "message",
    "scenes",
    "usage",
    "usage_by_model",
    "result",
    "error",
    "heartbeat_time",
    "estimated_completion_time",
)
"""Status fields only the runner writes (through the status subresource)."""

OPERATOR_STATUS_FIELDS = (
    "phase",
    "conditions",
    "observed_generation",
    "start_time",
    "completion_time",
    "job_name",
    "attempt",
    "queue",
)
"""Status fields only the operator (or the local backend in its place) writes."""


class JobStatus(ContractModel):
    """Observed state of a VideoJob; the runner owns the pipeline fields, the operator the lifecycle ones."""

    # Owned by the runner.
    stage: Stage = Stage.INITIALIZING
    progress: int = Field(default=0, ge=0, le=100)
    message: str = ""
    scenes: SceneCounts = Field(default_factory=SceneCounts)
    usage: Usage = Field(default_factory=Usage)
    usage_by_model: dict[str, Usage] = Field(
        default_factory=dict,
        description="The usage part that a model's calls made, by litellm model string (espeak: none).",
    )
    result: JobResult | None = None
    error: JobError | None = None
    heartbeat_time: datetime | None = None
    estimated_completion_time: datetime | None = Field(
        default=None,
        description=(
            "When the job is expected to complete, from the stage durations measured so far and recent "
            "jobs of the same quality; absent before the runner starts and once the job has ended."
        ),
    )
    # Owned by the operator (or the local backend in its place).
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    job_name: str | None = None
    attempt: int = Field(
        default=0, ge=0, description="The spec.attempt that the phase and the Job belong to."
    )
    queue: QueueStatus | None = Field(
        default=None,
        description="Kueue's LocalQueue and its place in it, while Queued by Kueue (spec.queueName).",
    )

    def owned_by_runner(self) -> dict[str, object]:
        """The runner's part of the status on the wire; unset fields go as null so a patch clears them."""
        wire = self.model_dump(mode="json", by_alias=True, include=set(RUNNER_STATUS_FIELDS))
        return dict(wire)

    def enter(self, stage: Stage, fraction: float = 0.0, message: str | None = None) -> None:
        """Move to `stage` at `fraction` of its work, with the stage's description unless told otherwise."""
        self.stage = stage
        self.progress = stage_progress(stage, fraction)
        self.message = message if message is not None else STAGES[stage].description
        self.heartbeat_time = utcnow()


def storage_job_id(namespace: str, name: str, uid: str) -> str:
    """The job id (storage prefix) of a VideoJob: readable, unique per object, a DNS-1123 label."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{namespace}-{name}".lower()).strip("-")[:54].strip("-")
    return f"{slug}-{uid.replace('-', '')[:8]}"


def utcnow() -> datetime:
    """The current time, timezone-aware, truncated to whole seconds as Kubernetes stores it."""
    return datetime.now(UTC).replace(microsecond=0)
