"""The `videojobs` command line: generate, resume and demo on the embedded (local) defaults."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import re
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer 0.29 vendors click

from videojobs.contract import GenerationRequest, JobStatus, ModelChoice, Phase, Quality, Revision, Usage
from videojobs.settings import Settings, StorageBackend
from videojobs_cli.request_options import option_named, request_from_options, request_options

if TYPE_CHECKING:
    from videojobs.artifacts import JobArtifacts, JobRecord
    from videojobs_runner.evaluate import TopicResult

app = typer.Typer(
    name="videojobs",
    help="Turn a topic into a narrated, animated Manim explainer video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)

DEMO_EXAMPLE = "pythagorean-theorem"
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def examples_dir() -> Path:
    """Bundled examples: inside the installed package, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "examples"


def main() -> None:
    """Console entry point: usage errors become one line on stderr with exit code 2."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as error:
        console.print(error.ctx.get_help() if error.ctx else str(error), highlight=False)
        code = 2
    except ClickException as error:
        console.print(f"[bold red]error:[/] {error.format_message()}", soft_wrap=True, highlight=False)
        code = error.exit_code
    except typer.Abort:
        console.print("[bold red]error:[/] aborted", highlight=False)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=1)


def load_settings(out: Path | None) -> Settings:
    """Settings from the environment, with --out selecting local storage in that folder."""
    try:
        settings = Settings()
    except ValidationError as error:  # name the environment variable, as the user wrote it
        fail(_validation_message(error, environment=True))
    if out is not None:
        settings = settings.model_copy(update={"output_dir": out, "storage_backend": StorageBackend.LOCAL})
    return settings


def _validation_message(error: ValidationError, *, environment: bool = False) -> str:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    field = ".".join(str(part) for part in first["loc"])
    if not field:  # a check of several fields: its message names them
        return message
    return f"{field.upper() if environment else field}: {message}"


def run_with_progress(record: JobRecord, artifacts: JobArtifacts, settings: Settings) -> JobStatus:
    """Run a job with a progress bar; Ctrl-C or SIGTERM stops it cleanly (resume continues it)."""
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.jobs import run_job
    from videojobs_runner.progress import ConsoleReporter

    with ConsoleReporter(console) as bar:
        try:
            status = _run_cancellable(run_job(record, artifacts, settings, [bar]))
        except VideoGenerationError as error:  # raised before the pipeline could record it
            fail(f"{error} — {error.suggestion}")
    _print_outcome(status, artifacts)
    return status


def _run_cancellable(job: Coroutine[Any, Any, JobStatus]) -> JobStatus:
    async def main() -> JobStatus:
        task = asyncio.ensure_future(job)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await task

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        fail("interrupted; finished work is stored — continue with `videojobs resume`")


def _print_usage(status: JobStatus, artifacts: JobArtifacts) -> None:
    """The job's LLM and speech usage per stage and in total (over all its runs)."""
    from videojobs.artifacts import USAGE_FILE

    by_stage = json.loads(artifacts.load_text(USAGE_FILE) or "{}")
    table = Table(title="Usage (LLM and TTS calls, tokens, characters spoken, cost)", title_justify="left")
    table.add_column("stage", no_wrap=True)
    for column in ("LLM", "tok in", "tok out", "TTS", "chars", "USD"):
        table.add_column(column, justify="right", no_wrap=True)
    for stage, usage in by_stage.items():
        table.add_row(stage, *_usage_cells(Usage.model_validate(usage)))
    table.add_section()
    table.add_row("[bold]total[/]", *_usage_cells(status.usage))
    console.print(table)


def _usage_cells(usage: Usage) -> list[str]:
    counts = (
        usage.llm_calls,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.tts_calls,
        usage.tts_characters,
    )
    return [*map(str, counts), f"{usage.cost_usd:.4f}"]


def _print_outcome(status: JobStatus, artifacts: JobArtifacts) -> None:
    _print_usage(status, artifacts)
    folder = artifacts.folder_location()
    if status.phase is not Phase.SUCCEEDED or status.result is None:
        error = status.error
        detail = f"{error.stage.value}: {error.message} — {error.suggestion}" if error else status.message
        console.print(f"artifacts: {folder}", highlight=False)
        fail(f"{detail} (resume: videojobs resume {artifacts.job_id})")
    table = Table(show_header=False, box=None)
    result = status.result
    for label, value in (
        ("job", artifacts.job_id),
        ("video", result.video),
        ("thumbnail", result.thumbnail),
        ("subtitles", result.subtitles),
        ("metadata", result.metadata),
        ("artifacts", folder),
        ("duration", f"{result.duration_seconds or 0:.1f} s"),
    ):
        table.add_row(f"[bold]{label}[/]", str(value))
    console.print(table)


REQUEST_OPTIONS = request_options()
"""The job options of `generate`: one per field of the request contract."""


def generate(**values: Any) -> None:
    """Run the whole pipeline for TOPIC and print where the video and its artifacts are."""
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.jobs import create_job, resolve
    from videojobs_runner.llm import require_credentials

    settings = load_settings(values.pop("out"))
    job_id = values.pop("job_id")
    try:
        request = request_from_options(REQUEST_OPTIONS, values)
    except ValidationError as error:
        fail(option_named(REQUEST_OPTIONS, error))
    if request.webhook is not None:
        fail("--webhook-url: webhooks are sent by the API server (videojobs serve), not by a foreground run")
    try:
        record = resolve(request, settings, job_id)
        for name in {record.models.planner, record.models.scene, record.models.helper}:
            require_credentials(name)
        artifacts = create_job(record, settings)
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    run_with_progress(record, artifacts, settings)


generate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        *(option.parameter for option in REQUEST_OPTIONS),
        inspect.Parameter(
            "job_id",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str | None, typer.Option(help="Job id (default: from the topic).")],
            default=None,
        ),
        inspect.Parameter(
            "out",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                Path | None, typer.Option(help="Store the job in this folder (default: OUTPUT_DIR).")
            ],
            default=None,
        ),
    ]
)
app.command()(generate)


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="The job's folder, or its id in the configured storage.")],
    max_cost: Annotated[float | None, typer.Option(help="Raise the job's budget (USD).")] = None,
) -> None:
    """Continue a stopped or failed job: stored stages and scenes are kept, the rest is redone."""
    from videojobs.artifacts import JOB_FILE
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.jobs import open_job

    try:
        record, artifacts, settings = open_job(job, load_settings(None))
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    if max_cost is not None:
        record = record.model_copy(
            update={"request": record.request.model_copy(update={"max_cost_usd": max_cost})}
        )
        artifacts.save_model(JOB_FILE, record)
    run_with_progress(record, artifacts, settings)


@app.command()
def revise(
    job: Annotated[str, typer.Argument(help="The finished job's folder, or its id in the storage.")],
    instructions: Annotated[str, typer.Option(help=Revision.model_fields["instructions"].description)],
    scene: Annotated[
        list[int] | None, typer.Option(help="A scene to make again (repeatable); none: every scene.")
    ] = None,
    job_id: Annotated[str | None, typer.Option(help="The new job's id (default: from the topic).")] = None,
) -> None:
    """Make a new job from a finished one: its outline and unnamed scenes kept, the named scenes redone."""
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.jobs import create_job, open_job, resolve

    try:
        parent, parent_artifacts, settings = open_job(job, load_settings(None))
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    try:
        revision = Revision(parent=parent_artifacts.job_id, instructions=instructions, scenes=scene or [])
    except ValidationError as error:
        first = error.errors()[0]
        flag = "--scene" if first["loc"][0] == "scenes" else "--instructions"
        fail(f"{flag}: {first['msg']}")
    try:
        record = resolve(parent.revision_request(revision), settings, job_id)
        artifacts = create_job(record, settings)
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    run_with_progress(record, artifacts, settings)


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="Store the job in this folder (default: OUTPUT_DIR).")
    ] = None,
    quality: Annotated[Quality, typer.Option(help="Render preset.")] = Quality.MEDIUM,
) -> None:
    """Render the bundled example (plans and code committed) to a stored video; needs no LLM key."""
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.jobs import EXAMPLE_REQUEST_FILE, copy_example, create_job, resolve

    example = examples_dir() / DEMO_EXAMPLE
    if not example.is_dir():
        fail(f"the bundled example is missing: {example}")
    settings = load_settings(out)
    request = GenerationRequest.model_validate_json((example / EXAMPLE_REQUEST_FILE).read_text())
    try:
        record = resolve(request.model_copy(update={"quality": quality}), settings)
        artifacts = create_job(record, settings)
        copy_example(example, artifacts)
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    run_with_progress(record, artifacts, settings)


@app.command("eval")
def eval_command(
    topics_file: Annotated[Path, typer.Argument(help="YAML topic set, e.g. examples/eval-topics.yaml.")],
    model: Annotated[str | None, typer.Option(help="litellm model string for every role.")] = None,
    planner_model: Annotated[str | None, typer.Option(help="Model for outlines (overrides --model).")] = None,
    scene_model: Annotated[
        str | None, typer.Option(help="Model for plans and code (overrides --model).")
    ] = None,
    helper_model: Annotated[str | None, typer.Option(help="Model for fixes (overrides --model).")] = None,
    quality: Annotated[Quality, typer.Option(help="Render preset for every topic.")] = Quality.LOW,
    max_scenes: Annotated[int, typer.Option(min=1, max=12, help="Upper bound on scenes per video.")] = 5,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Store the jobs in this folder (default: OUTPUT_DIR).")
    ] = None,
) -> None:
    """Run each topic of TOPICS_FILE as a job; report produced, fixes, layout, drift, tokens, cost, time."""
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.evaluate import evaluate, load_topics, report_table
    from videojobs_runner.llm import require_credentials

    settings = load_settings(out)
    models = ModelChoice(
        planner=planner_model or model, scene=scene_model or model, helper=helper_model or model
    )
    try:
        topics = load_topics(topics_file)
        for name in {
            models.planner or settings.planner_model,
            models.scene or settings.scene_model,
            models.helper or settings.helper_model,
        }:
            require_credentials(name)
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")

    def progress(index: int, result: TopicResult) -> None:
        outcome = "produced" if result.produced else f"not produced ({result.error})"
        console.print(
            f"[{index}/{len(topics)}] {result.topic}: {outcome} in {result.wall_seconds:.1f} s",
            highlight=False,
        )

    try:
        report = asyncio.run(
            evaluate(
                topics,
                models,
                quality,
                settings,
                topics_file=str(topics_file),
                max_scenes=max_scenes,
                on_result=progress,
            )
        )
    except VideoGenerationError as error:  # a job could not even be created (storage, settings)
        fail(f"{error.message} — {error.suggestion}")
    Console(width=max(Console().width, 120)).print(report_table(report))
    if json_path is not None:
        json_path.write_text(report.model_dump_json(indent=2) + "\n")
        console.print(f"report: {json_path}", highlight=False)


@app.command()
def crd() -> None:
    """Print the VideoJob CustomResourceDefinition (generated from the contract) as YAML."""
    from videojobs.crd import render_yaml

    sys.stdout.write(render_yaml())


@app.command("run-videojob")
def run_videojob_command() -> None:
    """Run the pipeline for the VideoJob in VIDEOJOB_NAMESPACE/VIDEOJOB_NAME (what the operator's Jobs run).

    Exit code 0: succeeded; 1: failed but a retry may succeed; 2: failed for good.
    """
    from videojobs.errors import VideoGenerationError
    from videojobs_runner.kube_entry import VideoJobRef, exit_code, load_kube_config, run_videojob

    settings = load_settings(None)
    try:
        ref = VideoJobRef.from_environment()
        load_kube_config()
        status = _run_cancellable(run_videojob(ref, settings))
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    console.print(f"{ref.namespace}/{ref.name}: {status.phase.value} — {status.message}", highlight=False)
    raise typer.Exit(code=exit_code(status))


@app.command(
    "render-pod",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
    hidden=True,  # the render pods' entry, not a command for people
)
def render_pod_command(ctx: typer.Context) -> None:
    """Inside a render pod (RENDER_ISOLATION=pod): fetch the scene, render it, upload the clip and result."""
    from videojobs_runner.render_pod import main as render_pod

    raise typer.Exit(code=render_pod(list(ctx.args)))


@app.command()
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            help="Watch only this namespace; repeat it to watch several (default: all namespaces). "
            "The leader's Lease is in the first one unless LEADER_ELECTION_NAMESPACE says otherwise."
        ),
    ] = None,
) -> None:
    """Run the Kubernetes operator: each VideoJob becomes a Job; phase and conditions follow it."""
    from videojobs_operator import run
    from videojobs_operator.settings import OperatorSettings

    for name in namespace or ():
        if not NAMESPACE_NAME.fullmatch(name):
            fail(f"--namespace {name!r} is not a namespace name (a DNS label; patterns are not supported)")
    try:
        settings = OperatorSettings()
    except ValidationError as error:
        fail(_validation_message(error, environment=True))
    raise typer.Exit(code=run(namespace, settings))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start the REST API (uvicorn) with the backend from the settings (VIDEOJOBS_API_*).

    With no keys configured and a loopback address it makes a key of its own, stored for the next start.
    """
    import uvicorn

    from videojobs.errors import VideoGenerationError
    from videojobs_api.app import create_app
    from videojobs_api.backends.kubernetes import probe
    from videojobs_api.local_key import curl_example, server_url, serving_keys
    from videojobs_api.settings import ApiSettings, BackendKind

    runner_settings = load_settings(None)
    try:
        settings = ApiSettings(runner=runner_settings)
    except ValidationError as error:
        first = error.errors()[0]
        where = "_".join(str(part) for part in first["loc"]).upper()
        message = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        fail(f"VIDEOJOBS_API_{where}: {message}" if where else message)
    try:
        settings, local_key = serving_keys(settings, host)
        if settings.backend is BackendKind.KUBERNETES:
            probe(settings)
        api = create_app(settings)
    except VideoGenerationError as error:
        fail(f"{error.message} — {error.suggestion}")
    if local_key is not None:
        origin = "made its own, stored owner-only in" if local_key.created else "uses its own, from"
        console.print(
            f"No API keys are configured, so this loopback server {origin} {local_key.path} (the next "
            f"start reuses it; delete the file for a new one):\n    {local_key.secret}\n"
            f"Create a video:\n    {curl_example(host, port, local_key.secret)}\n"
            f"Or open the web app and sign in with the key:\n    {server_url(host, port)}/",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    # What is loaded by now lives as long as the server: keep it out of the collector's full passes, which
    # over it alone stopped every request in flight for 110 ms (docs/benchmarks.md).
    gc.freeze()
    if local_key is None:
        console.print(f"Web app: {server_url(host, port)}/ (sign in with an API key)", highlight=False)
    uvicorn.run(api, host=host, port=port)


if __name__ == "__main__":
    main()
