"""Creating, finding and running jobs: the runner's entry points used by the CLI and the backends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from videojobs.artifacts import JOB_FILE, JobArtifacts, JobRecord, ResolvedModels, new_job_id
from videojobs.contract import (
    GenerationRequest,
    JobStatus,
    TTSBackend,
    VoiceSpec,
    mutable_fields,
    unspeakable,
)
from videojobs.errors import ConfigurationError, StorageError
from videojobs.languages import language, primary_subtag
from videojobs.settings import Settings, StorageBackend
from videojobs.storage import LocalStorage, storage_from_settings
from videojobs_runner.pipeline import VideoPipeline
from videojobs_runner.progress import ProgressReporter, StatusFileReporter


def resolve(request: GenerationRequest, settings: Settings, job_id: str | None = None) -> JobRecord:
    """A job record for `request`, with every default taken from the settings now."""
    chosen = request.models
    models = ResolvedModels(
        planner=chosen.planner or chosen.default or settings.planner_model,
        scene=chosen.scene or chosen.default or settings.scene_model,
        helper=chosen.helper or chosen.default or settings.helper_model,
    )
    backend = request.voice.backend or settings.tts_backend
    voice = VoiceSpec(
        backend=backend, voice=request.voice.voice or _voice_name(request.language, backend, settings)
    )
    try:
        unspeakable(request.language, voice)
    except ValueError as error:
        raise ConfigurationError(
            str(error), suggestion="Pick a supported language, or another TTS backend (--voice-backend)."
        ) from error
    return JobRecord(
        id=job_id or new_job_id(request.topic),
        request=request,
        models=models,
        quality=request.quality or settings.default_quality,
        voice=voice,
    )


def _voice_name(tag: str, backend: str, settings: Settings) -> str | None:
    """The voice a request leaves unset: espeak-ng's for the language; in English, the deployment's."""
    spoken = language(tag)
    if backend == TTSBackend.ESPEAK and spoken is not None and primary_subtag(tag) != "en":
        return spoken.espeak_voice
    return settings.tts_voice


def with_changes(record: JobRecord, request: GenerationRequest) -> JobRecord:
    """`record` with the fields of `request` that may change after creation (budget, tags, webhook)."""
    changed = request.model_dump(include=mutable_fields(GenerationRequest))
    return record.model_copy(update={"request": record.request.model_copy(update=changed)})


def create_job(record: JobRecord, settings: Settings) -> JobArtifacts:
    """Store a new job's record; refuses to overwrite an existing job."""
    artifacts = JobArtifacts(storage_from_settings(settings), record.id)
    if artifacts.exists(JOB_FILE):
        raise StorageError(f"job {record.id} already exists at {artifacts.location(JOB_FILE)}")
    artifacts.save_model(JOB_FILE, record)
    return artifacts


def open_job(reference: str, settings: Settings) -> tuple[JobRecord, JobArtifacts, Settings]:
    """Find a job by its folder (local storage) or by its id in the configured storage."""
    folder = Path(reference)
    if (folder / JOB_FILE).is_file():
        settings = settings.model_copy(
            update={"storage_backend": StorageBackend.LOCAL, "output_dir": folder.resolve().parent}
        )
        artifacts = JobArtifacts(LocalStorage(settings.output_dir), folder.resolve().name)
    else:
        artifacts = JobArtifacts(storage_from_settings(settings), reference)
    record = artifacts.load_job()
    if record is None:
        raise ConfigurationError(
            f"no job {reference!r}: not a job folder and not found at {artifacts.location(JOB_FILE)}",
            suggestion="Pass the job's folder (it holds job.json) or its id with the same storage settings.",
        )
    return record, artifacts, settings


EXAMPLE_REQUEST_FILE = "request.json"


def copy_example(example: Path, artifacts: JobArtifacts) -> None:
    """Seed a job with an example's stored plans and code (used by `videojobs demo`)."""
    for path in sorted(p for p in example.rglob("*") if p.is_file()):
        relative = path.relative_to(example).as_posix()
        if relative != EXAMPLE_REQUEST_FILE:
            artifacts.save_file(relative, path)


async def run_job(
    record: JobRecord, artifacts: JobArtifacts, settings: Settings, reporters: Sequence[ProgressReporter] = ()
) -> JobStatus:
    """Run or resume a job to its end; the status file is always among the reporters."""
    pipeline = VideoPipeline(record, artifacts, settings, [StatusFileReporter(artifacts), *reporters])
    return await pipeline.run()
