"""A TCP proxy on 127.0.0.1 whose network can fail silently: stop forwarding without closing, drop every
connection, or add latency. Tests and benchmarks put it between a client and the test API server.

`freeze()` holds back every byte, in both directions, of the connections open now and of those opened
meanwhile (they are accepted, then stay silent). `thaw()` is the network's return: new connections work;
the frozen ones either stay silent for good, as after a dropped NAT entry (the default: only the clients'
own deadlines get them out), or deliver what they held (`resume=True`, a partition that healed).
A client that closes a silent connection closes it here too. It runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

CHUNK = 65536


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    handler: asyncio.Task[Any] | None = None

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultyNetwork:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`, with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.latency = 0.0
        """Seconds each chunk waits before it is forwarded (both directions)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-network", daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._frozen = False

    # --- control, from any thread -------------------------------------------------------------------

    def start(self) -> FaultyNetwork:
        self._thread.start()
        self._run(self._listen)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        self._run(self._close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def freeze(self) -> None:
        """Stop forwarding, closing nothing: every connection, old or new, goes silent."""
        self._run(self._freeze)

    def thaw(self, *, resume: bool = False) -> None:
        """The network returns: new connections flow; the frozen ones only with `resume`."""
        self._run(self._thaw, resume)

    def drop(self) -> None:
        """Reset every open connection (the clients see the close at once)."""
        self._run(self._drop)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        async def call() -> Any:
            result = function(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    # --- on the proxy's loop ------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        handlers = [c.handler for c in self._connections if c.handler is not None]
        self._drop()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def _freeze(self) -> None:
        self._frozen = True
        for connection in self._connections:
            connection.flowing.clear()

    def _thaw(self, resume: bool) -> None:
        self._frozen = False
        if resume:
            for connection in self._connections:
                connection.flowing.set()

    def _drop(self) -> None:
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        connection = _Connection(client_writer, handler=asyncio.current_task())
        self._connections.add(connection)
        if not self._frozen:
            connection.flowing.set()
        try:
            await connection.flowing.wait()  # a connection made while frozen is not even passed on
            upstream_reader, connection.upstream = await asyncio.open_connection(*self.target)
            connection.tasks = [
                asyncio.create_task(self._pipe(connection, client_reader, connection.upstream, True)),
                asyncio.create_task(self._pipe(connection, upstream_reader, client_writer, False)),
            ]
            await asyncio.gather(*connection.tasks, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            connection.close()
            self._connections.discard(connection)

    async def _pipe(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        outbound: bool,
    ) -> None:
        """Copy one direction. A client's close ends the connection at once, the server's only once it
        flows (its close, too, is held back)."""
        while data := await reader.read(CHUNK):
            await connection.flowing.wait()
            if self.latency:
                await asyncio.sleep(self.latency)
            writer.write(data)
            await writer.drain()
        if not outbound:
            await connection.flowing.wait()
        connection.close()


@contextlib.contextmanager
def faulty_network(target_host: str, target_port: int) -> Iterator[FaultyNetwork]:
    """A started proxy, stopped afterwards."""
    network = FaultyNetwork(target_host, target_port).start()
    try:
        yield network
    finally:
        network.stop()
