"""The asyncio transport (smtpcore._aio_transport) against real loopback
servers: reads served from its buffer, the timer shared by every wait,
write flow control, EOF and resets, STARTTLS, cancellation.

Conversations here are small generators yielding the same requests as the
dialogue does, so that each case shows what the transport does with them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import pytest

from conftest import Endpoint as Fixture
from smtpcore import EmailSessionError, EmailSessionReason, SmtpProtocolError
from smtpcore._aio_transport import AsyncTransport
from smtpcore.aio import AsyncSmtpClient
from smtpcore.protocol.requests import UPGRADE_TLS, Conversation, Read, Write
from smtpcore.transport import Endpoint
from tests.rawserver import RawConnection, RawServer

T = TypeVar("T")

# Every reply on loopback is instant; this only bounds the broken cases.
TIMEOUT = 2.0
# The transport's read size and its pause threshold (smtpcore._aio_transport).
READ_SIZE = 65536
READ_LIMIT = 2 * READ_SIZE
# The most one recv() of asyncio's socket transport hands over.
RECV_SIZE = 256 * 1024


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def connect(server: RawServer, timeout: float = TIMEOUT) -> AsyncTransport:
    return await AsyncTransport.connect(
        Endpoint(server.host, server.port, False, timeout),
        ssl.create_default_context(),
    )


def read(timeout: float = TIMEOUT, *, continues: bool = False) -> Read:
    return Read(timeout, "the reply", continues=continues)


def reads(count: int, timeout: float = TIMEOUT) -> Conversation[list[bytes]]:
    """Read ``count`` times; return what each read returned."""
    got: list[bytes] = []
    for _ in range(count):
        data = yield read(timeout)
        assert data is not None
        got.append(data)
    return got


def read_all(size: int) -> Conversation[list[bytes]]:
    """Read until ``size`` octets arrived; return each read's bytes."""
    got: list[bytes] = []
    while sum(map(len, got)) < size:
        data = yield read()
        assert data
        got.append(data)
    return got


def write(data: bytes) -> Conversation[None]:
    yield Write(data)


def send_and_read(data: bytes) -> Conversation[bytes]:
    yield Write(data)
    reply = yield read()
    assert reply is not None
    return reply


def finished_at_once(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result if it returns without awaiting anything (no
    future, no timer, no event loop pass); fails otherwise."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the coroutine waited")


# ------------------------------------------------------------------ reads


def test_a_read_of_buffered_bytes_neither_waits_nor_exceeds_the_read_size() -> None:
    size = 300_000

    def flood(conn: RawConnection) -> None:
        conn.send(b"x" * size)
        conn.hold()

    async def scenario() -> list[bytes]:
        transport = await connect(server)
        try:
            # Nothing reads for a while: the transport holds what came, up
            # to its limit (then TCP holds the rest back).
            await asyncio.sleep(0.3)
            assert transport._reading_paused
            assert READ_LIMIT < len(transport._held) <= READ_LIMIT + RECV_SIZE
            buffered = len(transport._held)
            chunks = finished_at_once(transport.run(read_all(buffered)))
            # Reading resumed once the buffer went below its mark.
            rest = await transport.run(read_all(size - buffered))
            assert not transport._reading_paused
            return chunks + rest
        finally:
            transport.close()

    with RawServer(flood) as server:
        chunks = run(scenario())
    assert all(len(chunk) <= READ_SIZE for chunk in chunks)
    assert b"".join(chunks) == b"x" * size


def test_a_read_waits_for_bytes_then_times_out_with_the_reply_named() -> None:
    with RawServer(lambda conn: conn.hold()) as server:

        async def scenario() -> tuple[EmailSessionError, float, AsyncTransport]:
            transport = await connect(server)
            started = time.monotonic()
            with pytest.raises(EmailSessionError) as info:
                await transport.run(reads(1, timeout=0.3))
            return info.value, time.monotonic() - started, transport

        error, elapsed, transport = run(scenario())
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "waiting for the reply" in str(error) and "0.3s" in str(error)
    assert 0.25 <= elapsed < 1.5
    assert transport.closed


def late_second_reply(conn: RawConnection) -> None:
    conn.send(b"first\r\n")
    time.sleep(0.6)
    conn.send(b"second\r\n")
    conn.hold()


def test_a_timer_armed_for_a_short_wait_does_not_cut_a_longer_one_short() -> None:
    # The first wait arms the connection's timer at +0.2 s; the second
    # reply comes at +0.6 s, within its own timeout: the timer firing at
    # +0.2 s must move on to the new deadline, not fail the wait.
    with RawServer(late_second_reply) as server:

        async def scenario() -> list[bytes]:
            transport = await connect(server)
            try:
                first = await transport.run(reads(1, timeout=0.2))
                return first + await transport.run(reads(1, timeout=TIMEOUT))
            finally:
                transport.close()

        assert run(scenario()) == [b"first\r\n", b"second\r\n"]


def test_a_short_wait_after_a_long_one_times_out_on_its_own_deadline() -> None:
    with RawServer(late_second_reply) as server:

        async def scenario() -> float:
            transport = await connect(server)
            await transport.run(reads(1, timeout=30.0))
            started = time.monotonic()
            with pytest.raises(EmailSessionError) as info:
                await transport.run(reads(1, timeout=0.2))
            assert info.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
            return time.monotonic() - started

        assert run(scenario()) < 1.0


def test_the_timeout_bounds_the_whole_reply() -> None:
    # One octet every 0.15 s: each read is quick, the reply is not.
    def dribble(conn: RawConnection) -> None:
        for octet in b"220 slow\r\n":
            conn.send(bytes([octet]))
            time.sleep(0.15)
        conn.hold()

    def reply() -> Conversation[bytes]:
        got = yield read(0.5)
        while got is not None and not got.endswith(b"\r\n"):
            got += (yield read(0.5, continues=True)) or b""
        return got or b""

    with RawServer(dribble) as server:

        async def scenario() -> float:
            transport = await connect(server)
            started = time.monotonic()
            with pytest.raises(EmailSessionError) as info:
                await transport.run(reply())
            assert info.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
            return time.monotonic() - started

        assert 0.45 <= run(scenario()) < 1.0


def test_eof_while_waiting_reads_as_empty() -> None:
    def greet_and_close(conn: RawConnection) -> None:
        conn.send(b"220 hi\r\n")
        time.sleep(0.2)

    with RawServer(greet_and_close) as server:

        async def scenario() -> tuple[list[bytes], bool]:
            transport = await connect(server)
            try:
                got = await transport.run(reads(3))
                return got, transport.hung_up()
            finally:
                transport.close()

        got, hung_up = run(scenario())
    # As from a blocking socket: b"" at EOF, and again after it.
    assert got == [b"220 hi\r\n", b"", b""]
    assert hung_up


def test_bytes_before_a_reset_are_read_before_the_reset() -> None:
    # The server answers 421 and closes with our bytes unread, which resets
    # the connection: the 421 is read first, as from a blocking socket.
    def refuse(conn: RawConnection) -> None:
        time.sleep(0.1)
        conn.send(b"421 bye\r\n")

    with RawServer(refuse) as server:

        async def scenario() -> tuple[bytes, EmailSessionError, bool]:
            transport = await connect(server)
            await transport.run(write(b"x" * 1000))
            await asyncio.sleep(0.4)  # both the 421 and the reset arrive
            assert transport._lost and transport._error is not None
            assert transport.hung_up()
            [reply] = finished_at_once(transport.run(reads(1)))
            with pytest.raises(EmailSessionError) as info:
                await transport.run(reads(1))
            return reply, info.value, transport.closed

        reply, error, closed = run(scenario())
    assert reply == b"421 bye\r\n"
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    assert "reset" in str(error) and closed


def test_a_reset_while_waiting_for_the_final_reply_leaves_delivery_unknown() -> None:
    def reset(conn: RawConnection) -> None:
        time.sleep(0.3)  # then close with the client's bytes unread

    def final_reply() -> Conversation[None]:
        yield Write(b"x" * 1000)
        yield Read(TIMEOUT, "the final reply", in_doubt=True)

    with RawServer(reset) as server:

        async def scenario() -> EmailSessionError:
            transport = await connect(server)
            with pytest.raises(EmailSessionError) as info:
                await transport.run(final_reply())
            assert transport.closed
            return info.value

        error = run(scenario())
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    assert "reset while waiting for the final reply" in str(error)
    assert error.delivery_unknown
    assert isinstance(error.__cause__, ConnectionResetError)


def test_an_idle_connection_is_alive_until_the_server_speaks() -> None:
    def greet_then_421(conn: RawConnection) -> None:
        conn.send(b"220 hi\r\n")
        time.sleep(0.3)
        conn.send(b"421 shutting down\r\n")
        conn.hold()

    with RawServer(greet_then_421) as server:

        async def scenario() -> list[bool]:
            transport = await connect(server)
            try:
                await transport.run(reads(1))
                alive = transport.hung_up()
                await asyncio.sleep(0.5)
                return [alive, transport.hung_up()]
            finally:
                transport.close()

        assert run(scenario()) == [False, True]


def test_cancelling_a_waiting_read_leaves_the_connection_usable() -> None:
    def late(conn: RawConnection) -> None:
        time.sleep(0.4)
        conn.send(b"220 late\r\n")
        conn.hold()

    with RawServer(late) as server:

        async def scenario() -> list[bytes]:
            transport = await connect(server)
            try:
                waiting = asyncio.ensure_future(transport.run(reads(1)))
                await asyncio.sleep(0.1)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                assert transport._waiter is None and transport._parked is None
                assert not transport.closed
                return await transport.run(reads(1))
            finally:
                transport.close()

        assert run(scenario()) == [b"220 late\r\n"]


def test_an_error_raised_by_the_conversation_in_a_callback_reaches_run() -> None:
    # The reply arrives while the read waits, so the conversation goes on in
    # the protocol's callback: its exception still comes out of run().
    def late(conn: RawConnection) -> None:
        time.sleep(0.1)
        conn.send(b"500 no\r\n")
        conn.hold()

    def refuse() -> Conversation[None]:
        yield read()
        raise ValueError("refused")

    with RawServer(late) as server:

        async def scenario() -> None:
            transport = await connect(server)
            try:
                with pytest.raises(ValueError, match="refused"):
                    await transport.run(refuse())
            finally:
                transport.close()

        run(scenario())


# ----------------------------------------------------------------- writes


def writes(*pieces: bytes) -> Conversation[None]:
    for piece in pieces:
        yield Write(piece)


@pytest.mark.parametrize(
    "conversation",
    [
        lambda: write(b"x" * (8 << 20)),  # in pieces, in the task
        lambda: writes(*[b"x" * 60_000] * 140),  # each in one go
    ],
    ids=["one-large-write", "many-small-writes"],
)
def test_a_write_to_a_server_that_does_not_read_waits_bounded(
    conversation: Callable[[], Conversation[None]],
) -> None:
    # The server stops reading: the transport pauses us, the write waits
    # for it to drain (holding at most a piece above asyncio's high-water
    # mark), and times out.
    with RawServer(lambda conn: conn.stall(), receive_buffer=65536) as server:

        async def scenario() -> tuple[EmailSessionError, float, int]:
            transport = await connect(server, timeout=0.5)
            largest = 0

            async def watch() -> None:
                # Samples while the write waits (the loop runs then).
                nonlocal largest
                while True:
                    inner = transport._transport
                    if not inner.is_closing():
                        largest = max(largest, inner.get_write_buffer_size())
                    await asyncio.sleep(0.01)

            watcher = asyncio.ensure_future(watch())
            started = time.monotonic()
            try:
                with pytest.raises(EmailSessionError) as info:
                    await transport.run(conversation())
            finally:
                watcher.cancel()
            return info.value, time.monotonic() - started, largest

        error, elapsed, largest = run(scenario())
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "sending" in str(error) and not error.delivery_unknown
    assert 0.45 <= elapsed < 2.0
    assert 0 < largest <= 64 * 1024 + 65536


def test_an_upload_that_keeps_moving_is_not_cut_off() -> None:
    # 2 MiB read in small pieces with pauses takes several times the 0.3 s
    # timeout; every piece moves within it.
    body = b"y" * (2 << 20) + b"\r\n.\r\n"

    def slow_reader(conn: RawConnection) -> None:
        received = conn.read_slowly(b"\r\n.\r\n", seconds=10, pause=0.03)
        conn.send(b"250 %d\r\n" % len(received))
        conn.hold()

    with RawServer(slow_reader, receive_buffer=65536) as server:

        async def scenario() -> tuple[bytes, float]:
            transport = await connect(server, timeout=0.3)
            started = time.monotonic()
            try:
                reply = await transport.run(send_and_read(body))
            finally:
                transport.close()
            return reply, time.monotonic() - started

        reply, elapsed = run(scenario())
    assert reply == b"250 %d\r\n" % len(body)
    assert elapsed > 0.3


def test_a_reset_in_the_middle_of_a_write_is_a_lost_connection() -> None:
    def hang_up(conn: RawConnection) -> None:
        conn.read_until(b"x" * 100_000)  # then close with the rest unread

    with RawServer(hang_up, receive_buffer=65536) as server:

        async def scenario() -> EmailSessionError:
            transport = await connect(server)
            with pytest.raises(EmailSessionError) as info:
                await transport.run(send_and_read(b"x" * (8 << 20)))
            assert transport.closed
            return info.value

        error = run(scenario())
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    assert not error.delivery_unknown


# -------------------------------------------------------------- STARTTLS


def test_plaintext_arriving_before_the_handshake_is_refused() -> None:
    # The 220 is read alone; forged lines follow in a segment of their own
    # before the handshake starts: they must never be read as TLS data.
    def inject(conn: RawConnection) -> None:
        conn.send(b"220 go ahead\r\n")
        time.sleep(0.05)
        conn.send(b"250 AUTH PLAIN\r\n")
        conn.hold()

    def upgrade() -> Generator[Any, bytes | None, None]:
        yield UPGRADE_TLS

    with RawServer(inject) as server:

        async def scenario() -> bool:
            transport = await connect(server)
            await transport.run(reads(1))
            await asyncio.sleep(0.3)
            with pytest.raises(SmtpProtocolError, match="injected"):
                await transport.run(upgrade())
            return transport.closed

        assert run(scenario())


@pytest.mark.parametrize("size", [1000, 3 << 20])
def test_messages_over_starttls_and_implicit_tls(endpoint: Fixture, size: int) -> None:
    # TLS writes go through the task (a loop pass per piece to notice a
    # reset); large ones in many pieces.
    body = (b"z" * 998 + b"\r\n") * (size // 1000)

    async def scenario() -> tuple[bool, bool]:
        async with AsyncSmtpClient(endpoint.details, **endpoint.options) as client:
            await client.send_raw("a@example.com", ["b@example.com"], body)
            transport = client._transport
            assert transport is not None
            return transport._tls, transport._raw is not None

    tls, upgraded = run(scenario())
    server = endpoint.details.server_details
    assert server is not None
    assert tls and upgraded is (not server.use_ssl)
    [received] = endpoint.server.messages
    assert received.tls and received.data == body


def test_a_pipelined_batch_is_driven_by_the_protocol_callbacks(
    endpoint: Fixture,
) -> None:
    # Many messages over few sessions: replies answer parked reads in the
    # callbacks, which write the next group; the order and content hold.
    items = [
        ("a@example.com", ["b@example.com"], b"Subject: %d\r\n\r\n%d\r\n" % (n, n))
        for n in range(60)
    ]

    async def scenario() -> list[Any]:
        async with AsyncSmtpClient(
            endpoint.details, max_connections=3, **endpoint.options
        ) as client:
            return await client.send_many(items)

    results = run(scenario())
    assert all(not isinstance(result, Exception) for result in results)
    subjects = sorted(int(m.parsed()["Subject"]) for m in endpoint.server.messages)
    assert subjects == list(range(60))
