"""The faulty-network proxy itself (tests/support/faulty_network.py) against an echo server on 127.0.0.1."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from faulty_network import FaultyNetwork, faulty_network


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def network() -> Iterator[FaultyNetwork]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with faulty_network("127.0.0.1", server.server_address[1]) as proxy:
        yield proxy
    server.shutdown()
    server.server_close()


def _connect(network: FaultyNetwork) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", network.port), timeout=5)
    sock.settimeout(0.5)
    return sock


def _echoes(sock: socket.socket, data: bytes = b"ping") -> bool:
    sock.sendall(data)
    try:
        return sock.recv(4096) == data
    except TimeoutError:
        return False


def test_it_forwards_and_a_freeze_silences_old_and_new_connections_until_they_flow_again(
    network: FaultyNetwork,
) -> None:
    old, severed = _connect(network), _connect(network)
    assert _echoes(old) and _echoes(severed)
    network.freeze()
    assert not _echoes(old)  # no answer, and no close either
    during = _connect(network)  # accepted, then silent
    assert not _echoes(during)
    network.thaw()
    assert not _echoes(severed)  # a frozen connection stays silent for good (a dropped NAT entry)
    assert _echoes(_connect(network))  # a new one works
    network.freeze()
    network.thaw(resume=True)  # a partition that healed: what was held arrives
    assert old.recv(4096) == b"ping"
    for sock in (old, severed, during):
        sock.close()


def test_it_drops_connections_and_adds_latency(network: FaultyNetwork) -> None:
    sock = _connect(network)
    assert _echoes(sock)
    network.drop()
    sock.sendall(b"x")
    with pytest.raises((ConnectionError, TimeoutError)):
        if not sock.recv(4096):  # closed: an EOF, or a reset
            raise ConnectionResetError
    sock.close()
    network.latency = 0.3
    sock = _connect(network)
    sock.settimeout(5)
    started = time.monotonic()
    assert _echoes(sock)
    assert time.monotonic() - started >= 0.6  # 0.3 s each way
    sock.close()
