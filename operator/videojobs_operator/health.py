"""The operator's /livez and /readyz beside /metrics: alive while its work gets done, ready while it leads
with working watches (or stands by and can read the Lease).

- /livez fails when work is pending and no reconcile has got its answers for STALL_SECONDS (its calls
  hang or time out): the kubelet restarts the pod. A leader in that state also gives up its Lease
  (main.py), so that a standby takes over before the probe fires.
- /readyz fails while a leader's watches have not listed yet or have not been answered lately (every
  watch is reopened each WATCH_SECONDS, so a fresh answer is due that often), while its queue stalls,
  and while a standby cannot read the Lease. Its body says which replica leads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import aiohttp
from prometheus_client import make_wsgi_app

from videojobs import deadlines
from videojobs.leader import LeaderElector

WATCH_STALE_SECONDS = deadlines.WATCH_SECONDS + deadlines.WATCH_SILENCE_SECONDS
"""A watched resource whose watch has not been answered for this long is not being watched: the
server ends each watch after WATCH_SECONDS, and a silent one is reopened after WATCH_SILENCE_SECONDS."""

Check = Callable[[], str | None]
"""A health check: None when healthy, else the problem in a few words."""


class WatchTracker:
    """Records when each watch request of Kopf's session was last answered (an aiohttp trace)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._answered: dict[str, float] = {}

    def trace(self) -> aiohttp.TraceConfig:
        """The trace config to give Kopf's aiohttp session."""
        config = aiohttp.TraceConfig()
        config.on_request_end.append(self._on_request_end)
        return config

    async def _on_request_end(
        self, _session: Any, _context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.query.get("watch") == "true" and params.response.status < 300:
            self.answered(params.url.path)

    def answered(self, path: str) -> None:
        """A watch of the resource at `path` was answered now."""
        self._answered[path] = self._clock()

    def problem(self, expected: int) -> str | None:
        """Why the watches do not work: fewer than `expected` resources watched, or one stale."""
        now = self._clock()
        stale = sorted(path for path, when in self._answered.items() if now - when > WATCH_STALE_SECONDS)
        if stale:
            return f"no watch answered for {WATCH_STALE_SECONDS:.0f} s: {', '.join(stale)}"
        if len(self._answered) < expected:
            return f"{len(self._answered)} of {expected} watches opened"
        return None


def first_problem(checks: Iterable[Check]) -> str | None:
    """The first check's problem, None when all are healthy."""
    return next((problem for problem in (check() for check in checks) if problem is not None), None)


def standby_problem(elector: LeaderElector) -> str | None:
    """Why a standby is unready: it has not had an answer about the Lease within the renew deadline."""
    silent = elector.silent_for()
    if silent is not None and silent > elector.renew_deadline:
        return f"standing by, but the Lease {elector.lease} has not been read for {silent:.0f} s"
    return None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes are not logged."""


def serve(port: int, address: str, alive: Check, ready: Check, role: Callable[[], str]) -> None:
    """Serve /metrics, /livez and /readyz on `address`:`port` in a background thread (port 0: not at all)."""
    if not port:
        return
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/livez", "/readyz"):
            answer: Iterable[bytes] = metrics(environ, start_response)
            return answer
        problem = alive() if path == "/livez" else ready()
        body = f"{role()}: {problem or 'ok'}\n".encode()
        status = "503 Service Unavailable" if problem else "200 OK"
        start_response(
            status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        )
        return [body]

    server = make_server(address, port, app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()


class OperatorHealth:
    """The checks behind /livez and /readyz, and the `healthy` check of the leader's Lease."""

    def __init__(self, memo: Any, watches: WatchTracker, watched: int, elector: LeaderElector | None) -> None:
        self._memo = memo
        self._watches = watches
        self._watched = watched
        self._elector = elector
        self.leading = elector is None
        """Set by the elector's on_change: whether this replica reconciles."""

    def role(self) -> str:
        if self._elector is None:
            return "running (no leader election)"
        return "leading" if self.leading else "standing by"

    def work(self) -> str | None:
        """Why the work is stuck: pending for STALL_SECONDS and no reconcile answered."""
        controller = self._memo.get("controller")
        stalled = controller.stalled() if controller is not None else None
        return None if stalled is None else f"work pending and no reconcile done for {stalled:.0f} s"

    def alive(self) -> str | None:
        return self.work() if self.leading else None

    def ready(self) -> str | None:
        if not self.leading:
            return standby_problem(self._elector) if self._elector is not None else None
        return first_problem((lambda: self._watches.problem(self._watched), self.work))
