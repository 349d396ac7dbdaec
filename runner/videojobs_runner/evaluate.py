"""`videojobs eval`: run a set of topics as jobs and report, per topic and in total, how each went."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from videojobs.artifacts import METADATA_FILE, JobArtifacts
from videojobs.contract import GenerationRequest, JobStatus, ModelChoice, Phase, Quality
from videojobs.errors import ConfigurationError
from videojobs.settings import Settings
from videojobs_runner.jobs import create_job, resolve, run_job

_CODE_FILE = re.compile(r"/scenes/(\d+)/code_v\d+\.py$")


class Level(StrEnum):
    """How hard a topic is."""

    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


class EvalTopic(BaseModel):
    """One topic of a topic set."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1, max_length=500)
    subject: str = Field(default="", max_length=60)
    level: Level = Level.MEDIUM
    description: str = Field(default="", max_length=2000)


class TopicSet(BaseModel):
    """A topics file: `topics:` followed by a list of topics."""

    model_config = ConfigDict(extra="forbid")

    topics: list[EvalTopic] = Field(min_length=1)


class TopicResult(BaseModel):
    """How one topic's job went."""

    topic: str
    subject: str
    level: Level
    job_id: str
    produced: bool
    error: str | None = None
    fix_attempts: int
    layout_violations_left: int | None
    narration_drift_seconds: float | None
    tokens: int
    cost_usd: float
    wall_seconds: float


class Totals(BaseModel):
    """The sums over every topic."""

    topics: int
    produced: int
    success_rate: float
    fix_attempts: int
    layout_violations_left: int
    max_narration_drift_seconds: float | None
    tokens: int
    cost_usd: float
    wall_seconds: float


class EvalReport(BaseModel):
    """The evaluation of one model choice over a topic set."""

    models: ModelChoice
    quality: Quality
    topics_file: str
    results: list[TopicResult]
    totals: Totals


def load_topics(path: Path) -> list[EvalTopic]:
    """The topics of a YAML topics file; a ConfigurationError says what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigurationError(f"cannot read the topics file {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigurationError(f"the topics file {path} is not valid YAML: {detail}") from error
    try:
        return TopicSet.model_validate(data).topics
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise ConfigurationError(
            f"the topics file {path} is not a topic set: {where}: {first['msg']}",
            suggestion="List entries under `topics:`, each with topic, subject, level (easy/medium/hard).",
        ) from error


def fix_attempts(artifacts: JobArtifacts) -> int:
    """Code versions written beyond each scene's first: error fixes and layout fixes together."""
    scenes = [
        m.group(1)
        for key in artifacts.storage.list_keys(artifacts.key("scenes/"))
        if (m := _CODE_FILE.search(key))
    ]
    return len(scenes) - len(set(scenes))


def topic_result(topic: EvalTopic, artifacts: JobArtifacts, status: JobStatus, wall: float) -> TopicResult:
    """The report line of a finished job, read from its status and stored metadata."""
    produced = status.phase is Phase.SUCCEEDED
    metadata = json.loads(artifacts.load_text(METADATA_FILE) or "{}") if produced else {}
    narration = metadata.get("narration") or {}
    drift = narration.get("max_drift_seconds") if narration.get("scenes") else None  # None: no voice
    left = metadata.get("layout_violations_left")
    return TopicResult(
        topic=topic.topic,
        subject=topic.subject,
        level=topic.level,
        job_id=artifacts.job_id,
        produced=produced,
        error=None
        if produced or status.error is None
        else f"{status.error.stage.value}: {status.error.message}",
        fix_attempts=fix_attempts(artifacts),
        layout_violations_left=left if isinstance(left, int) else None,
        narration_drift_seconds=float(drift) if isinstance(drift, int | float) else None,
        tokens=status.usage.total_tokens,
        cost_usd=status.usage.cost_usd,
        wall_seconds=round(wall, 2),
    )


def totals(results: list[TopicResult]) -> Totals:
    """Sums over the results (the drift is the largest one measured)."""
    drifts = [r.narration_drift_seconds for r in results if r.narration_drift_seconds is not None]
    produced = sum(r.produced for r in results)
    return Totals(
        topics=len(results),
        produced=produced,
        success_rate=round(produced / len(results), 4) if results else 0.0,
        fix_attempts=sum(r.fix_attempts for r in results),
        layout_violations_left=sum(r.layout_violations_left or 0 for r in results),
        max_narration_drift_seconds=max(drifts) if drifts else None,
        tokens=sum(r.tokens for r in results),
        cost_usd=sum(r.cost_usd for r in results),
        wall_seconds=round(sum(r.wall_seconds for r in results), 2),
    )


async def evaluate(
    topics: list[EvalTopic],
    models: ModelChoice,
    quality: Quality,
    settings: Settings,
    *,
    topics_file: str,
    max_scenes: int,
    on_result: Callable[[int, TopicResult], None] = lambda index, result: None,
) -> EvalReport:
    """Run each topic as a new job, one after another, and report how each went."""
    results: list[TopicResult] = []
    for index, topic in enumerate(topics, 1):
        request = GenerationRequest(
            topic=topic.topic,
            description=topic.description,
            models=models,
            quality=quality,
            max_scenes=max_scenes,
        )
        record = resolve(request, settings)
        started = time.monotonic()
        artifacts = create_job(record, settings)
        status = await run_job(record, artifacts, settings)
        results.append(topic_result(topic, artifacts, status, time.monotonic() - started))
        on_result(index, results[-1])
    return EvalReport(
        models=models, quality=quality, topics_file=topics_file, results=results, totals=totals(results)
    )


def _or_dash(value: float | int | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def report_table(report: EvalReport) -> Table:
    """The report as a rich table: a row per topic and a total row."""
    table = Table(title=f"videojobs eval — {report.topics_file} ({report.quality.value} quality)")
    for column, justify in (
        ("topic", "left"),
        ("subject", "left"),
        ("level", "left"),
        ("produced", "center"),
        ("fixes", "right"),
        ("layout left", "right"),
        ("drift s", "right"),
        ("tokens", "right"),
        ("cost $", "right"),
        ("wall s", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in report.results:
        table.add_row(
            r.topic,
            r.subject,
            r.level.value,
            "yes" if r.produced else "[red]no[/]",
            str(r.fix_attempts),
            _or_dash(r.layout_violations_left),
            _or_dash(r.narration_drift_seconds, ".2f"),
            str(r.tokens),
            f"{r.cost_usd:.4f}",
            f"{r.wall_seconds:.1f}",
        )
    t = report.totals
    table.add_section()
    table.add_row(
        f"total ({t.topics} topics)",
        "",
        "",
        f"{t.produced}/{t.topics} ({t.success_rate:.0%})",
        str(t.fix_attempts),
        str(t.layout_violations_left),
        _or_dash(t.max_narration_drift_seconds, ".2f"),
        str(t.tokens),
        f"{t.cost_usd:.4f}",
        f"{t.wall_seconds:.1f}",
        style="bold",
    )
    return table
