"""A worker process of the API's local backend: run or resume one job, reporting status lines.

Started as `python -m videojobs_runner.local_worker <job-id>` (the protocol: videojobs.work_order).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import TextIO

from videojobs.artifacts import JOB_FILE, JobArtifacts
from videojobs.contract import JobStatus, Phase
from videojobs.errors import VideoGenerationError
from videojobs.storage import storage_from_settings
from videojobs.work_order import STATUS_LINE_LIMIT, WorkOrder
from videojobs_runner.jobs import create_job, resolve, run_job, with_changes
from videojobs_runner.llm import require_credentials


class StatusLineReporter:
    """A ProgressReporter that writes each status as one JSON line to the backend."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def publish(self, status: JobStatus) -> None:
        """Send the status; a closed pipe is ignored (stdin's end stops the job anyway)."""
        with contextlib.suppress(BrokenPipeError):
            self.stream.write(status.model_dump_json() + "\n")
            self.stream.flush()


def run_worker(job_id: str) -> int:
    """Run or resume job `job_id` for the local backend; 0 when it succeeded."""
    status_lines = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything else printed goes to the worker log
    return asyncio.run(_work(job_id, StatusLineReporter(status_lines)))


async def _work(job_id: str, reporter: StatusLineReporter) -> int:
    """Read the order, run it, and cancel it when stdin ends (the backend's stop) or on SIGTERM."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=STATUS_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    order = WorkOrder.model_validate_json(await stdin.readline())
    job = asyncio.create_task(_run_order(job_id, order, reporter))
    loop.add_signal_handler(signal.SIGTERM, job.cancel)
    stop = asyncio.create_task(_cancel_at_end_of_input(stdin, job))
    try:
        return await job
    except asyncio.CancelledError:  # stopped; the pipeline recorded where it was
        return 1
    finally:
        stop.cancel()


async def _cancel_at_end_of_input(stdin: asyncio.StreamReader, job: asyncio.Task[int]) -> None:
    await stdin.read()
    job.cancel()


async def _run_order(job_id: str, order: WorkOrder, reporter: StatusLineReporter) -> int:
    settings = order.settings
    try:
        artifacts = JobArtifacts(storage_from_settings(settings), job_id)
        record = artifacts.load_job()
        if record is None:
            record = resolve(order.request, settings, job_id)
            artifacts = create_job(record, settings)
        elif record.request != (changed := with_changes(record, order.request)).request:
            record = changed  # a retry with a raised budget, say
            artifacts.save_model(JOB_FILE, record)
        for model in {record.models.planner, record.models.scene, record.models.helper}:
            require_credentials(model)
        status = await run_job(record, artifacts, settings, [reporter])
    except VideoGenerationError as error:  # before the pipeline could record it
        await reporter.publish(JobStatus(stage=error.stage, message=error.message, error=error.to_contract()))
        return 1
    return 0 if status.phase is Phase.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1]))
