"""What the local backend and its worker processes say to each other: a WorkOrder in, status lines out.

The backend writes one WorkOrder JSON line on the worker's stdin and reads one JobStatus JSON line per
progress report from its stdout; closing stdin stops the job.
"""

from __future__ import annotations

from pydantic import BaseModel

from videojobs.contract import GenerationRequest
from videojobs.settings import Settings

STATUS_LINE_LIMIT = 1024 * 1024
"""The longest line either side reads."""


class WorkOrder(BaseModel):
    """What the backend hands a worker on stdin: the runner's settings and the job's request."""

    settings: Settings
    request: GenerationRequest
