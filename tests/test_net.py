"""connect_tcp: the name lookup and the connect attempts bounded together.

Real loopback listeners throughout; only the slow resolver is a stand-in
(there is no DNS server to make slow here), patched in for names alone.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smtpcore import (
    BasicEmailSessionDetails,
    EmailSessionError,
    EmailSessionReason,
    ServerDetails,
    SmtpClient,
)
from smtpcore._net import connect_tcp, resolve
from tests.rawserver import RawConnection, RawServer

SLOW_LOOKUP = 3.0  # seconds the stand-in resolver takes for a name


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Names take SLOW_LOOKUP seconds to resolve (until the event is set);
    address literals resolve at once, as ever."""
    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            release.wait(SLOW_LOOKUP)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield release
    release.set()  # let the lookup threads finish


def test_connects_to_a_literal_and_keeps_the_timeout(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with connect_tcp("127.0.0.1", port, 2.5) as sock:
        peer, _ = listener.accept()
        with peer:
            assert sock.getpeername() == peer.getsockname()
            assert sock.gettimeout() == 2.5


def test_connects_to_a_name(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    # "localhost" may resolve to ::1 first, where nothing listens: the next
    # address is tried, as socket.create_connection does.
    with connect_tcp("localhost", port, 5.0) as sock:
        assert sock.getpeername()[:2] == ("127.0.0.1", port)
        listener.accept()[0].close()


def test_refused_is_the_last_attempts_error(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        connect_tcp("127.0.0.1", port, 5.0)


def test_a_name_that_does_not_resolve() -> None:
    with pytest.raises(socket.gaierror):
        connect_tcp("no-such-host.invalid", 25, 5.0)


def test_literals_need_no_lookup(slow_resolver: threading.Event) -> None:
    started = time.monotonic()
    [(family, _, _, _, address)] = resolve("127.0.0.1", 25, 0.5)
    assert family == socket.AF_INET and address == ("127.0.0.1", 25)
    assert time.monotonic() - started < 0.5


def test_a_slow_lookup_times_out(slow_resolver: threading.Event) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="looking up 'localhost'"):
        connect_tcp("localhost", 25, 0.3)
    assert time.monotonic() - started < SLOW_LOOKUP / 2


def test_a_slow_lookup_is_a_session_timeout(slow_resolver: threading.Event) -> None:
    # Nothing listens behind the name: only the lookup could hold us.
    def greet(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")

    with RawServer(greet) as server:
        details = BasicEmailSessionDetails(
            ServerDetails("localhost", server.port, use_ssl=False)
        )
        client = SmtpClient(details, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as caught:
            client.connect()
        assert time.monotonic() - started < SLOW_LOOKUP / 2
        assert server.accepted == 0
    assert caught.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "connecting" in str(caught.value)
