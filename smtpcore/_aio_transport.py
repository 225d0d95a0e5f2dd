"""The asyncio transport of :mod:`smtpcore.aio`: one connection executing a
dialogue's requests, as :mod:`smtpcore.transport` does with a socket.

It is an :class:`asyncio.Protocol` of its own rather than a pair of
streams: a session sending a pipelined batch makes one round trip per
message, and the stream machinery around each (a timeout context and a
timer per ``read()`` and ``drain()``, a future per read, a loop pass per
write) cost more CPU than the SMTP work.  Here:

* A ``Read`` whose bytes are already buffered is answered at once, with no
  future and no timer.
* A ``Read`` that must wait parks the conversation, and the protocol's
  callbacks drive it on: the reply arriving answers it and the next
  ``Write`` goes out in the same loop pass, without waking the task in
  :meth:`AsyncTransport.run`.  The task wakes when the conversation ends or
  needs a coroutine (a paused write buffer to drain, a TLS handshake, a
  probe in a thread).  The conversation (and an OAuth token callable it
  calls) thus runs in the context the connection was opened in, not the
  task's: context variables set before ``connect()`` are seen, changes the
  conversation makes are not seen by the task.
* Every wait shares one lazily re-armed timer per connection, instead of a
  timer handle created and cancelled per wait.
* A plain write waits only when the transport asked us to pause or kept
  bytes back; the loop pass that detects a reset over TLS is only spent on
  TLS connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import Awaitable
from typing import Any, Final, TypeAlias, TypeVar, cast

from smtpcore.errors import EmailSessionError, SmtpProtocolError
from smtpcore.protocol.requests import Conversation, Read, Request, Write
from smtpcore.tls import Phase, classify, speaks_tls
from smtpcore.transport import Endpoint, implicit_tls_required, request_failure

__all__ = ["AsyncTransport", "within"]

T = TypeVar("T")

# One Read hands the parser at most this much, as one recv() does in
# smtpcore.transport (the parser bounds lines itself).
_READ_SIZE = 65536
# Reading pauses while more than this is buffered and unread, so a server
# that floods us is held back by TCP instead of filling memory; two reads'
# worth, as asyncio.StreamReader does with its limit.
_READ_LIMIT = 2 * _READ_SIZE
# Writes go to the transport in pieces of this size, each bounded by the
# timeout, as in smtpcore.transport: an upload that keeps moving is never
# cut off, and the transport's buffer (flow control pauses us above its
# high-water mark) never holds more than one piece beyond that mark.
_WRITE_SIZE = 65536
# Loop passes given to a TLS write before looking for a reset: its TLS
# transport learns that the TCP one failed a pass later since Python 3.11's
# rewrite of asyncio.sslproto, two before (under STARTTLS _check_sent also
# asks the TCP transport, which knows at once).
_SETTLE_PASSES = 1 if sys.version_info >= (3, 11) else 2

if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable``, cancelled with ``TimeoutError`` after
        ``seconds`` (``asyncio.TimeoutError`` on Python 3.10)."""
        # asyncio.timeout() needs no extra task per wait, unlike wait_for.
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - exercised on Python 3.10 only

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable``, cancelled after ``seconds``."""
        return await asyncio.wait_for(awaitable, seconds)


def _as_os_error(exc: BaseException) -> OSError:
    """``exc``, or a ``TimeoutError`` for :func:`smtpcore.tls.classify` (on
    Python 3.10 ``asyncio.TimeoutError`` is not the builtin one)."""
    if isinstance(exc, OSError):
        return exc
    return TimeoutError(str(exc) or "timed out")


class _Park:
    """The conversation waits for bytes that are not there yet."""


_PARK: Final = _Park()


class _Drain:
    """A ``Write`` the transport paused us on, or kept bytes of: the task
    lets it drain and looks for a reset before the conversation goes on."""

    __slots__ = ("write",)

    def __init__(self, write: Write) -> None:
        self.write = write


# What _advance() hands back: work for the task, _PARK, or None (returned).
_Next: TypeAlias = "Request | _Drain | _Park | None"


class AsyncTransport(asyncio.Protocol):
    """One asyncio connection executing a dialogue's requests; closes itself
    on any socket, TLS or protocol failure.

    Args:
        endpoint: the server and the timeout of every wait.
        context: for implicit TLS and STARTTLS.
        loop: the running event loop.
    """

    # Set by connection_made(), which asyncio calls before connect() returns
    # the protocol; the TLS transport after STARTTLS.
    _transport: asyncio.Transport

    def __init__(
        self,
        endpoint: Endpoint,
        context: ssl.SSLContext,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.endpoint = endpoint
        self.context = context
        self.closed = False
        self._loop = loop
        # After STARTTLS: the TCP transport under the TLS one.
        self._raw: asyncio.Transport | None = None
        self._tls = endpoint.use_ssl
        # Received and not yet read: bytes for the usual single chunk (handed
        # on without a copy), a bytearray once chunks pile up.
        self._held: bytes | bytearray = b""
        self._reading_paused = False
        self._writing_paused = False
        self._eof = False
        self._lost = False
        self._error: Exception | None = None
        self._deadline = 0.0  # when the reply being read is overdue
        # The one future the task awaits, if any.
        self._waiter: asyncio.Future[_Next] | None = None
        self._wait_until = 0.0
        # One timer per connection, armed at or before the current wait's
        # deadline and re-armed when it fires early (see _arm).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._conversation: Conversation[Any] | None = None
        self._parked: Read | None = None  # the Read the callbacks answer
        self._result: object = None

    @classmethod
    async def connect(
        cls, endpoint: Endpoint, context: ssl.SSLContext
    ) -> AsyncTransport:
        """Open the connection (and TLS for implicit TLS).

        Args:
            endpoint: the server and timeout.
            context: for implicit TLS (and STARTTLS later).

        Returns:
            The connected transport.

        Raises:
            EmailSessionError: classified by :func:`smtpcore.tls.classify`.
        """
        loop = asyncio.get_running_loop()
        use_ssl = endpoint.use_ssl
        try:
            # TCP_NODELAY is set by asyncio's socket transport: a pipelined
            # group goes out in one write and must not wait for an ACK.
            _, protocol = await within(
                loop.create_connection(
                    lambda: cls(endpoint, context, loop),
                    endpoint.host,
                    endpoint.port,
                    ssl=context if use_ssl else None,
                    server_hostname=endpoint.host if use_ssl else None,
                    ssl_handshake_timeout=endpoint.timeout if use_ssl else None,
                ),
                endpoint.timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            phase: Phase = "handshake" if isinstance(exc, ssl.SSLError) else "connect"
            raise classify(
                _as_os_error(exc),
                host=endpoint.host,
                port=endpoint.port,
                phase=phase,
                use_ssl=use_ssl,
                timeout=endpoint.timeout,
            ) from exc
        return protocol

    # ------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: the connection is up."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """asyncio callback: hold the bytes, and answer a parked Read."""
        held = self._held
        if not held:
            self._held = held = data
        else:
            if isinstance(held, bytes):
                self._held = held = bytearray(held)
            held += data
        if len(held) > _READ_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """asyncio callback: the server closed its side.

        Returns:
            Keep our side open on a plain connection, as
            ``asyncio.StreamReaderProtocol`` does (over TLS asyncio ignores
            the answer and warns about True).
        """
        self._eof = True
        self._wake()
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio callback: the connection is gone."""
        self._lost = True
        self._error = exc
        self._wake()
        self._cancel_timer()

    def pause_writing(self) -> None:
        """asyncio callback: the transport's buffer is above its mark."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """asyncio callback: the transport's buffer drained."""
        self._writing_paused = False
        self._wake()

    # --------------------------------------------------------- running

    async def run(self, conversation: Conversation[T]) -> T:
        """Execute the conversation's I/O requests until it returns (see
        :meth:`smtpcore.transport.Transport.run`).

        Args:
            conversation: a generator of :mod:`smtpcore.protocol.dialogue`.

        Returns:
            What the conversation returns.

        Raises:
            EmailSessionError: an I/O failure (the transport closes), or what
                the conversation raises.
            SmtpProtocolError: the server broke the protocol (closes).
            SmtpCommandError: a refusal the conversation reports.
            RuntimeError: another conversation is running on this
                connection (its replies would be read by the wrong one).
        """
        if self._conversation is not None:
            raise RuntimeError("another conversation is running on this connection")
        self._conversation = conversation
        try:
            step = self._advance(None)
            while step is not None:
                if step is _PARK:
                    step = await self._park()
                else:
                    step = await self._slow(cast("Request | _Drain", step))
            result, self._result = self._result, None
            return cast(T, result)
        finally:
            self._conversation = None
            self._parked = None

    def _advance(self, value: bytes | None) -> _Next:
        """Drive the conversation while its requests need no waiting, in the
        task or in the protocol callbacks alike; return what must wait."""
        conversation = self._conversation
        assert conversation is not None
        while True:
            try:
                request = conversation.send(value)
            except StopIteration as stop:
                self._result = stop.value
                return None
            except SmtpProtocolError:
                self.close()
                raise
            # type() is, not isinstance(): the cheapest test on this path.
            if type(request) is Read:
                # As in Transport._read: the timeout bounds the whole reply.
                now = self._loop.time()
                if not request.continues:
                    self._deadline = now + request.timeout
                try:
                    if now >= self._deadline:
                        raise TimeoutError
                    value = self._received()
                except OSError as exc:
                    raise self._failure(exc, request) from exc
                if value is None:
                    if request.tls_probe_after is not None and not self._tls:
                        return request  # the task runs the probe
                    self._parked = request
                    return _PARK
            elif (
                type(request) is Write
                and not self._tls
                and len(request.data) <= _WRITE_SIZE
            ):
                try:
                    self._write_now(request.data)
                except OSError as exc:
                    raise self._failure(exc, request) from exc
                if self._writing_paused or self._transport.get_write_buffer_size():
                    return _Drain(request)
                value = None
            else:
                return request

    def _received(self) -> bytes | None:
        """Up to _READ_SIZE held bytes, ``b""`` at EOF, None if nothing yet.

        Bytes that came before a reset are read first, as from a blocking
        socket (a ``421`` sent just before closing is then reported).
        """
        held = self._held
        if held:
            if len(held) <= _READ_SIZE:
                self._held = b""
                data = held if isinstance(held, bytes) else bytes(held)
            else:
                data = bytes(held[:_READ_SIZE])
                self._held = held[_READ_SIZE:]
            if self._reading_paused and len(self._held) <= _READ_SIZE:
                self._reading_paused = False
                self._transport.resume_reading()
            return data
        if self._lost or self._eof:
            if self._error is not None:
                raise self._error
            return b""
        return None

    def _write_now(self, data: bytes | memoryview) -> None:
        self._transport.write(data)
        self._check_sent()

    def _check_sent(self) -> None:
        # asyncio's write() never raises: a failed send closes the transport
        # (is_closing() at once) and a closed one drops what it is given.
        # Look before claiming the bytes went out, or a lost upload would
        # read as sent (and its final reply as merely missing).  Under
        # STARTTLS the TCP transport tells at once what the TLS one learns
        # a loop pass or two later.
        raw = self._raw
        if (
            self._lost
            or self._transport.is_closing()
            or (raw is not None and raw.is_closing())
            or (self._eof and not self._held)
        ):
            raise ConnectionResetError("the server closed the connection")

    def _failure(self, exc: OSError, request: Request) -> EmailSessionError:
        self.close()
        return request_failure(exc, request, self.endpoint)

    # -------------------------------------------- waiting in the callbacks

    async def _park(self) -> _Next:
        """Wait while the protocol callbacks drive the conversation."""
        try:
            return await self._wait(self._deadline)
        except TimeoutError as exc:
            read = self._parked
            if read is None:  # not our timer: the conversation's own error
                raise
            raise self._failure(exc, read) from exc

    async def _wait(self, until: float) -> _Next:
        """Wait for an event of the connection (or, parked, for the
        conversation to need the task), until ``until``.

        Raises:
            TimeoutError: nothing happened in time.
        """
        waiter: asyncio.Future[_Next] = self._loop.create_future()
        self._waiter = waiter
        self._arm(until)
        try:
            return await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        read = self._parked
        if read is None:
            waiter.set_result(None)  # the task looks again
            return
        try:
            try:
                value = self._received()
            except OSError as exc:
                raise self._failure(exc, read) from exc
            if value is None:
                return  # e.g. resume_writing: still nothing to read
            self._parked = None
            step = self._advance(value)
        except Exception as exc:  # the read's failure or the conversation's
            self._parked = None
            waiter.set_exception(exc)
            return
        if step is _PARK:
            self._arm(self._deadline)  # a new reply: a new deadline
        else:
            waiter.set_result(step)

    def _arm(self, until: float) -> None:
        self._wait_until = until
        timer = self._timer
        if timer is None or self._timer_at > until:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(until, self._on_timer)
            self._timer_at = until

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # no wait in progress: the next one arms it again
        if self._wait_until > self._timer_at:
            self._arm(self._wait_until)  # armed for an earlier wait
        else:
            waiter.set_exception(TimeoutError())

    # ------------------------------------------------ requests that wait

    async def _slow(self, step: Request | _Drain) -> _Next:
        request = step.write if isinstance(step, _Drain) else step
        try:
            value = await self._execute(step)
        except (OSError, asyncio.TimeoutError) as exc:
            raise self._failure(_as_os_error(exc), request) from exc
        except (EmailSessionError, SmtpProtocolError):
            self.close()
            raise
        return self._advance(value)

    async def _execute(self, step: Request | _Drain) -> bytes | None:
        if isinstance(step, Read):
            return await self._probing_read(step)
        if isinstance(step, _Drain):
            await self._drain()
            await self._settle()
        elif isinstance(step, Write):
            data = step.data
            view = memoryview(data)
            for start in range(0, len(data), _WRITE_SIZE):
                self._write_now(view[start : start + _WRITE_SIZE])
                if self._writing_paused:
                    await self._drain()
                await self._settle()
        else:
            await self._start_tls()
        return None

    async def _settle(self) -> None:
        """Give asyncio the loop passes it needs to notice a reset, when the
        bytes are not all in the kernel yet; then look.

        Over TLS, asyncio learns of a reset a loop pass or two after the
        write that met it and silently drops what it is given meanwhile
        (tests/hostile/test_faults.py, the server hanging up in the middle
        of the content), so every piece gets its pass.  A plain connection
        fails its write() at once when the kernel refuses the bytes; only
        bytes still in asyncio's buffer (a partial send) need the pass.
        """
        if not self._tls and not self._transport.get_write_buffer_size():
            return
        for _ in range(_SETTLE_PASSES):
            await asyncio.sleep(0)
        self._check_sent()

    async def _drain(self) -> None:
        # Bounded per piece: an upload that keeps moving is never cut off.
        until = self._loop.time() + self.endpoint.timeout
        while self._writing_paused:
            if self._lost:
                raise self._error or ConnectionResetError("Connection lost")
            await self._wait(until)
        self._check_sent()

    async def _readable(self, until: float) -> bytes:
        while (value := self._received()) is None:
            await self._wait(until)
        return value

    async def _probing_read(self, request: Read) -> bytes:
        # A plain connection waiting for its greeting: if nothing comes
        # within the window, find out whether the port expects implicit TLS.
        loop = self._loop
        assert request.tls_probe_after is not None
        now = loop.time()
        timeout = self._deadline - now
        # Leave the probe at least half the timeout, however short it is.
        window = min(request.tls_probe_after, timeout / 2)
        with contextlib.suppress(TimeoutError):
            return await self._readable(now + window)
        started = loop.time()
        remaining = timeout - window
        endpoint = self.endpoint
        if await asyncio.to_thread(speaks_tls, endpoint.host, endpoint.port, remaining):
            raise implicit_tls_required(endpoint, window)
        remaining -= loop.time() - started
        if remaining <= 0:
            raise TimeoutError
        return await self._readable(loop.time() + remaining)

    async def _start_tls(self) -> None:
        if self._held:
            # Plaintext that came after the 220 the conversation read (in a
            # later segment): it must never be read as if it came over TLS
            # (RFC 3207 4.2, CVE-2011-0411).
            raise SmtpProtocolError("data injected after the STARTTLS 220 reply")
        if self._writing_paused:
            await self._drain()
        transport = self._transport
        endpoint = self.endpoint
        # Our own deadline, so that a silent handshake is a timeout (the
        # loop's ssl_handshake_timeout would abort the connection, which
        # reads as a lost connection); the loop's is only a backstop.
        upgraded = await within(
            self._loop.start_tls(
                transport,
                self,
                self.context,
                server_hostname=endpoint.host,
                ssl_handshake_timeout=endpoint.timeout * 2,
            ),
            endpoint.timeout,
        )
        if upgraded is None:  # pragma: no cover - only for a closed transport
            raise ConnectionResetError("the connection closed during the handshake")
        self._raw = transport
        self._transport = upgraded
        self._tls = True

    # ------------------------------------------------------------ state

    def close(self) -> None:
        """Close the connection at once.  Never raises."""
        self.closed = True
        self._cancel_timer()
        with contextlib.suppress(Exception):
            self._transport.abort()

    def hung_up(self) -> bool:
        """Zero-round-trip liveness check of an idle session.

        Returns:
            True if the session is gone: anything the idle server sent (EOF,
            or a 421 before closing) means it is.
        """
        return (
            self.closed
            or self._transport.is_closing()
            or self._eof
            or self._lost
            or bool(self._held)
        )

    def sockname(self) -> tuple[object, ...]:
        """Our end of the connection.

        Returns:
            The socket name, as for ``socket.getsockname()``.
        """
        name = self._transport.get_extra_info("sockname")
        return tuple(name) if name else ("127.0.0.1", 0)
