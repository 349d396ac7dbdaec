"""Job status events: the in-process bus backends publish to, and the Server-Sent Events stream of one job."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator

from fastapi.responses import StreamingResponse

from videojobs_api.models import JobStatusResponse, StoredJob

EVENT_STREAM_MEDIA_TYPE = "text/event-stream"
STATUS_EVENT = "status"
PING = b": ping\n\n"

Listener = Callable[[StoredJob], None]


class EventBus:
    """Fans each job change out to that job's subscribers and to every listener (e.g. webhooks).

    Lives on the event loop: publish from the loop's thread (or through `call_soon_threadsafe`).
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[StoredJob | None]]] = defaultdict(set)
        self._every_job: set[asyncio.Queue[StoredJob | None]] = set()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with every change of every job."""
        self._listeners.append(listener)

    def publish(self, job: StoredJob) -> None:
        """A job changed: `job` is its new snapshot, `job.event_id` its event id."""
        for queue in (*self._subscribers.get(job.id, ()), *self._every_job):
            queue.put_nowait(job)
        for listener in self._listeners:
            listener(job)

    def close(self, job_id: str) -> None:
        """The job is gone: end its subscriptions."""
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(None)

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[StoredJob | None]]:
        """A queue of the job's snapshots from now on (None once it is deleted)."""
        queue: asyncio.Queue[StoredJob | None] = asyncio.Queue()
        self._subscribers[job_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[job_id].discard(queue)
            if not self._subscribers[job_id]:
                del self._subscribers[job_id]

    @contextlib.contextmanager
    def subscribe_all(self) -> Iterator[asyncio.Queue[StoredJob | None]]:
        """A queue of every job's snapshots from now on."""
        queue: asyncio.Queue[StoredJob | None] = asyncio.Queue()
        self._every_job.add(queue)
        try:
            yield queue
        finally:
            self._every_job.discard(queue)


def encode_event(job: StoredJob) -> bytes:
    """One SSE `status` event: the id lets a client resume with Last-Event-ID."""
    data = JobStatusResponse.of(job).model_dump_json()
    return f"id: {job.event_id}\nevent: {STATUS_EVENT}\ndata: {data}\n\n".encode()


async def _event_stream(
    events: AsyncIterator[StoredJob], ping_seconds: float, end_when_terminal: bool
) -> AsyncIterator[bytes]:
    """Encode events, with a ping comment whenever none came for `ping_seconds`.

    One job's stream ends after its terminal event (`end_when_terminal`); every stream ends with `events`.

    A producer task reads the events, so a ping timeout never cancels the backend's iterator midway.
    """
    queue: asyncio.Queue[StoredJob | Exception | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for job in events:
                queue.put_nowait(job)
        except Exception as error:
            queue.put_nowait(error)
        else:
            queue.put_nowait(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ping_seconds)
            except TimeoutError:
                yield PING
                continue
            if isinstance(item, Exception):
                raise item
            if item is None:
                break
            yield encode_event(item)
            if end_when_terminal and item.status.phase.is_terminal:
                break
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


async def visible_changes(bus: EventBus, may_see: Callable[[StoredJob], bool]) -> AsyncIterator[StoredJob]:
    """Every job change from now on that `may_see` lets through (a deleted job's end is not one)."""
    with bus.subscribe_all() as changes:
        while True:
            job = await changes.get()
            if job is not None and may_see(job):
                yield job


def event_stream_response(
    events: AsyncIterator[StoredJob], ping_seconds: float, *, end_when_terminal: bool = True
) -> StreamingResponse:
    """The text/event-stream response for one job's events, or (`end_when_terminal` false) many jobs'."""
    return StreamingResponse(
        _event_stream(events, ping_seconds, end_when_terminal),
        media_type=EVENT_STREAM_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
