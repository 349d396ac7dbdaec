"""What every stage of a job works with: its record, artifacts, settings, progress, LLM and scratch."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from videojobs.artifacts import JobArtifacts, JobRecord
from videojobs.settings import Settings
from videojobs_runner.llm import LLMClient, UsageLedger
from videojobs_runner.progress import ProgressTracker
from videojobs_runner.render_cache import CombinedCache, RenderCache
from videojobs_runner.sandbox import SandboxConfig
from videojobs_runner.tts import Narrator


@dataclass
class JobContext:
    """One job's shared state, handed to each stage module by the pipeline."""

    job: JobRecord
    artifacts: JobArtifacts
    settings: Settings
    tracker: ProgressTracker
    ledger: UsageLedger
    llm: LLMClient
    scratch: Path
    """Where renders happen before their results are stored."""
    narrator: Narrator
    render_cache: RenderCache | None
    combined_cache: CombinedCache | None

    @functools.cached_property
    def sandbox(self) -> SandboxConfig:
        """The render sandbox, built once per job (RENDER_ISOLATION=pod: one Kubernetes and S3 client)."""
        return SandboxConfig.from_settings(self.settings)
