"""``AsyncSmtpClient`` and ``send_email_async``: the same conversation over
asyncio streams.

Nothing about SMTP is decided here: the generators of
:mod:`smtpcore.protocol.dialogue` are driven exactly as
:mod:`smtpcore.transport` drives them, only with ``await`` where the
blocking transport waits.  The two rare checks that need a connection of
their own (the anti-virus diagnosis after a certificate failure, and the
opt-in CRL check) run the blocking code of :mod:`smtpcore.opening` in a
worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from smtpcore.client import SendItem
from smtpcore.envelope import prepare, prepare_batch, prepare_raw
from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.mime import Prepared
from smtpcore.models import BasicEmailSessionDetails, EmailMessage
from smtpcore.opening import (
    ClientOptions,
    StartTlsPolicy,
    diagnosed,
    endpoint_of,
    may_retry,
    revocation_checking,
    settle_batch_failure,
)
from smtpcore.protocol.dialogue import Conversation, Dialogue, Read, Write
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.saslbase import TokenSource
from smtpcore.protocol.transaction import Dsn, SendOptions, SendResult
from smtpcore.tls import Phase, classify, speaks_tls
from smtpcore.transport import Endpoint, implicit_tls_required, request_failure
from smtpcore.validation import validate_session_details

__all__ = ["AsyncSmtpClient", "send_email_async"]

T = TypeVar("T")

_READ_SIZE = 65536  # as in smtpcore.transport, for the same reasons
_WRITE_SIZE = 65536

if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        # asyncio.timeout() needs no extra task per wait, unlike wait_for.
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - exercised on Python 3.10 only

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)


class AsyncTransport:
    """One asyncio connection executing a dialogue's requests; closes itself
    on any socket, TLS or protocol failure."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        endpoint: Endpoint,
        context: ssl.SSLContext,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.endpoint = endpoint
        self.context = context
        self.closed = False
        self._deadline = 0.0  # when the reply being read is overdue

    @classmethod
    async def connect(
        cls, endpoint: Endpoint, context: ssl.SSLContext
    ) -> AsyncTransport:
        """Open the connection (and TLS for implicit TLS).

        Raises:
            EmailSessionError: classified by :func:`smtpcore.tls.classify`.
        """
        use_ssl = endpoint.use_ssl
        try:
            reader, writer = await _within(
                asyncio.open_connection(
                    endpoint.host,
                    endpoint.port,
                    ssl=context if use_ssl else None,
                    server_hostname=endpoint.host if use_ssl else None,
                    ssl_handshake_timeout=endpoint.timeout if use_ssl else None,
                    limit=_READ_SIZE,
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
        return cls(reader, writer, endpoint, context)

    async def run(self, conversation: Conversation[T]) -> T:
        """Execute the conversation's I/O requests until it returns (see
        :meth:`smtpcore.transport.Transport.run`)."""
        value: bytes | None = None
        while True:
            try:
                request = conversation.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except SmtpProtocolError:
                self.close()
                raise
            try:
                value = await self._execute(request)
            except (OSError, asyncio.TimeoutError) as exc:
                self.close()
                raise request_failure(
                    _as_os_error(exc), request, self.endpoint
                ) from exc
            except EmailSessionError:
                self.close()
                raise

    async def _execute(self, request: object) -> bytes | None:
        timeout = self.endpoint.timeout
        if isinstance(request, Read):
            return await self._read(request)
        if isinstance(request, Write):
            data = memoryview(request.data)
            for start in range(0, len(data), _WRITE_SIZE):
                self.writer.write(data[start : start + _WRITE_SIZE])
                # Bounded per piece, as in the blocking transport: an upload
                # that keeps moving is never cut off.
                await _within(self.writer.drain(), timeout)
            # Over TLS asyncio drops writes after the peer reset the
            # connection without drain() raising: look before claiming the
            # bytes went out (else a lost upload would read as "sent").
            await asyncio.sleep(0)
            if self.writer.transport.is_closing() or self.reader.at_eof():
                raise ConnectionResetError("the server closed the connection")
            return None
        await self._start_tls()
        return None

    async def _read(self, request: Read) -> bytes:
        # As in Transport._read: the timeout bounds the whole reply.
        now = time.monotonic()
        if not request.continues:
            self._deadline = now + request.timeout
        if now >= self._deadline:
            raise TimeoutError
        timeout = self._deadline - now
        if request.tls_probe_after is None or self.endpoint.use_ssl:
            return await _within(self.reader.read(_READ_SIZE), timeout)
        window = min(request.tls_probe_after, timeout / 2)
        with contextlib.suppress(asyncio.TimeoutError):
            return await _within(self.reader.read(_READ_SIZE), window)
        started = time.monotonic()
        remaining = timeout - window
        endpoint = self.endpoint
        if await asyncio.to_thread(speaks_tls, endpoint.host, endpoint.port, remaining):
            raise implicit_tls_required(endpoint, window)
        remaining -= time.monotonic() - started
        if remaining <= 0:
            raise TimeoutError
        return await _within(self.reader.read(_READ_SIZE), remaining)

    async def _start_tls(self) -> None:
        endpoint = self.endpoint
        if sys.version_info >= (3, 11):
            # Our own deadline, so that a silent handshake is a timeout (the
            # loop's ssl_handshake_timeout would abort the connection, which
            # reads as a lost connection); the loop's is only a backstop.
            await _within(
                self.writer.start_tls(
                    self.context,
                    server_hostname=endpoint.host,
                    ssl_handshake_timeout=endpoint.timeout * 2,
                ),
                endpoint.timeout,
            )
            return
        # Python 3.10 has no StreamWriter.start_tls: do what 3.11's does.
        loop = asyncio.get_running_loop()  # pragma: no cover
        protocol: Any = self.writer.transport.get_protocol()  # pragma: no cover
        await self.writer.drain()  # pragma: no cover
        transport = await _within(  # pragma: no cover
            loop.start_tls(
                self.writer.transport,
                protocol,
                self.context,
                server_hostname=endpoint.host,
                ssl_handshake_timeout=endpoint.timeout * 2,
            ),
            endpoint.timeout,
        )
        self.writer._transport = transport  # type: ignore[attr-defined]  # pragma: no cover
        protocol._transport = transport  # pragma: no cover
        protocol._over_ssl = True  # pragma: no cover

    def close(self) -> None:
        """Close the connection at once.  Never raises."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    def hung_up(self) -> bool:
        """Zero-round-trip liveness check of an idle session: anything the
        idle server sent (EOF, or a 421 before closing) means it is gone."""
        reader = self.reader
        # StreamReader has no public "bytes buffered" query; _buffer has
        # been there since asyncio's first release.
        return (
            self.closed
            or self.writer.is_closing()
            or reader.at_eof()
            or bool(getattr(reader, "_buffer", b""))
        )

    def sockname(self) -> tuple[object, ...]:
        """Our end of the connection."""
        name = self.writer.get_extra_info("sockname")
        return tuple(name) if name else ("127.0.0.1", 0)


def _as_os_error(exc: BaseException) -> OSError:
    # On Python 3.10 asyncio.TimeoutError is not the builtin TimeoutError.
    if isinstance(exc, OSError):
        return exc
    return TimeoutError(str(exc) or "timed out")


class AsyncSmtpClient:
    """An asyncio SMTP client session; the same API as
    :class:`~smtpcore.client.SmtpClient`, with coroutines.

    Args:
        session_details: server details and credentials (None for no AUTH).
        timeout, data_timeout, tls_context, starttls, local_hostname,
        allow_insecure_auth, check_revocation, lmtp, auth_mechanism,
        oauth_token: as for ``SmtpClient``.
        max_connections: how many sessions :meth:`send_many` may use at
            once (this one and up to ``max_connections - 1`` more, opened on
            demand and kept until :meth:`close`).

    Raises:
        PropertyNullError, PropertyEmptyError, PropertyValueOutOfRangeError,
        ArgumentError: invalid session details or options.
    """

    def __init__(
        self,
        session_details: BasicEmailSessionDetails,
        *,
        timeout: float = 30.0,
        data_timeout: float = 600.0,
        tls_context: ssl.SSLContext | None = None,
        starttls: StartTlsPolicy = "auto",
        local_hostname: str | None = None,
        allow_insecure_auth: bool = False,
        check_revocation: bool = False,
        lmtp: bool = False,
        auth_mechanism: str | None = None,
        oauth_token: TokenSource | None = None,
        max_connections: int = 1,
    ) -> None:
        validate_session_details(session_details, password_required=oauth_token is None)
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or (max_connections < 1)
        ):
            raise ArgumentError(
                "max_connections", "must be a whole number of at least 1"
            )
        self._details = session_details
        self._options = ClientOptions(
            timeout,
            data_timeout,
            tls_context,
            starttls,
            local_hostname,
            allow_insecure_auth,
            check_revocation,
            lmtp,
            auth_mechanism,
            oauth_token,
        )
        self._max_connections = max_connections
        self._transport: AsyncTransport | None = None
        self._dialogue: Dialogue | None = None
        # One conversation at a time per session: callers may share a client.
        self._lock = asyncio.Lock()
        self._pool: list[AsyncSmtpClient] = []

    @property
    def is_connected(self) -> bool:
        """True while a session is open."""
        return self._transport is not None

    async def connect(self) -> None:
        """Open the session (see :meth:`SmtpClient.connect`)."""
        if self._transport is not None:
            return
        options = self._options
        endpoint = endpoint_of(self._details, options.timeout)
        context = options.context
        local = options.local_hostname
        try:
            if options.check_revocation:
                context = await asyncio.to_thread(
                    revocation_checking, endpoint, context, local
                )
            transport = await AsyncTransport.connect(endpoint, context)
        except EmailSessionError as exc:
            raise (await self._diagnosed(exc, endpoint)) from exc.__cause__
        self._transport = transport
        self._dialogue = Dialogue(
            options.policy(self._details, endpoint, transport.sockname())
        )
        try:
            await self._run(self._dialogue.open())
        except EmailSessionError as exc:
            await self._close_session()
            raise (await self._diagnosed(exc, endpoint)) from exc.__cause__
        except BaseException:
            await self._close_session()
            raise

    async def _diagnosed(
        self, exc: EmailSessionError, endpoint: Endpoint
    ) -> EmailSessionError:
        if not isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            return exc
        return await asyncio.to_thread(
            diagnosed, exc, endpoint, self._options.local_hostname
        )

    async def close(self) -> None:
        """QUIT every idle session of this client and close them.  Never
        raises; safe to call more than once."""
        pool, self._pool = self._pool, []
        for client in pool:
            await client.close()
        await self._close_session()

    async def _close_session(self) -> None:
        transport, dialogue = self._transport, self._dialogue
        if transport is not None and dialogue is not None and not dialogue.conn.pending:
            with contextlib.suppress(SmtpCoreError):
                await _within(transport.run(dialogue.quit()), self._options.timeout)
        self.abort()

    def abort(self) -> None:
        """Close every connection at once, without QUIT (for synchronous
        callers such as :meth:`BasicEmailSessionDetails.close`)."""
        for client in self._pool:
            client.abort()
        transport, self._transport, self._dialogue = self._transport, None, None
        if transport is not None:
            transport.close()

    async def __aenter__(self) -> AsyncSmtpClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, conversation: Conversation[T]) -> T:
        transport = self._transport
        assert transport is not None
        try:
            return await transport.run(conversation)
        except BaseException:
            dialogue = self._dialogue
            if transport.closed or dialogue is None or not dialogue.conn.idle:
                self.abort_session()
            raise

    def abort_session(self) -> None:
        """Close this session's connection at once (not the pool's)."""
        transport, self._transport, self._dialogue = self._transport, None, None
        if transport is not None:
            transport.close()

    # --------------------------------------------------------------- sends

    async def send(
        self,
        message: EmailMessage | Any,
        *,
        allow_partial: bool = False,
        dsn: Dsn | None = None,
        require_tls: bool = False,
    ) -> SendResult:
        """Send a message of ours or a stdlib ``email.message.Message``
        (see :meth:`SmtpClient.send`; attachments are read in a worker
        thread so that the event loop never waits on the disk)."""
        built = await _prepared(message)
        return await self._deliver(built, SendOptions(allow_partial, dsn, require_tls))

    async def send_raw(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        data: bytes,
        *,
        allow_partial: bool = False,
        dsn: Dsn | None = None,
        require_tls: bool = False,
        binary: bool = False,
    ) -> SendResult:
        """Send a prebuilt RFC 5322 message (see :meth:`SmtpClient.send_raw`)."""
        return await self._deliver(
            prepare_raw(from_addr, to_addrs, data, binary=binary),
            SendOptions(allow_partial, dsn, require_tls),
        )

    async def send_many(
        self,
        items: Iterable[SendItem],
        *,
        allow_partial: bool = False,
        dsn: Dsn | None = None,
        require_tls: bool = False,
    ) -> list[SendResult | Exception]:
        """Send several messages over up to ``max_connections`` sessions,
        each taking its share as one pipelined batch (see
        :meth:`SmtpClient.send_many`).

        Returns:
            One :class:`SendResult` or exception per item, in item order.
        """
        items = list(items)
        if any(isinstance(i, EmailMessage) and i.attachments for i in items):
            messages, results = await asyncio.to_thread(prepare_batch, items)
        else:
            messages, results = prepare_batch(items)
        options = SendOptions(allow_partial, dsn, require_tls)
        pending = [index for index, result in enumerate(results) if result is None]
        sessions = min(self._max_connections, len(pending))
        while len(self._pool) < sessions - 1:
            self._pool.append(self._sibling())

        async def work(session: AsyncSmtpClient, share: list[int]) -> None:
            mine = [messages[index] for index in share]
            done: list[SendResult | Exception | None] = [None] * len(share)
            await session._batch(mine, options, done)
            for index, result in zip(share, done, strict=True):
                results[index] = result

        pool = [self, *self._pool][:sessions]
        await asyncio.gather(
            *(work(session, pending[k::sessions]) for k, session in enumerate(pool))
        )
        return [result for result in results if result is not None]

    async def _batch(
        self,
        messages: list[Prepared | None],
        options: SendOptions,
        results: list[SendResult | Exception | None],
    ) -> None:
        async with self._lock:
            retried: set[int] = set()
            while None in results:
                try:
                    await self._open_or_reuse()
                    assert self._dialogue is not None
                    await self._run(
                        self._dialogue.send_batch(messages, options, results)
                    )
                except (EmailSessionError, SmtpProtocolError) as exc:
                    settle_batch_failure(results, exc, retried)
                except SmtpCoreError as exc:  # the session could not be opened
                    results[:] = [exc if r is None else r for r in results]

    def _sibling(self) -> AsyncSmtpClient:
        sibling = object.__new__(AsyncSmtpClient)
        sibling._details = self._details
        sibling._options = self._options
        sibling._max_connections = 1
        sibling._transport = None
        sibling._dialogue = None
        sibling._lock = asyncio.Lock()
        sibling._pool = []
        return sibling

    async def noop(self) -> SmtpReply:
        """Send NOOP (connecting first if needed) and return the reply."""
        async with self._lock:
            await self.connect()
            assert self._dialogue is not None
            return await self._run(self._dialogue.noop())

    async def _open_or_reuse(self) -> bool:
        if self._transport is not None and self._transport.hung_up():
            self.abort_session()
        reused = self._transport is not None
        await self.connect()
        return reused

    async def _deliver(self, built: Prepared, options: SendOptions) -> SendResult:
        async with self._lock:
            reused = await self._open_or_reuse()
            assert self._dialogue is not None
            try:
                return await self._run(self._dialogue.send(built, options))
            except EmailSessionError as exc:
                if not may_retry(exc, reused):
                    raise
            await self.connect()
            assert self._dialogue is not None
            return await self._run(self._dialogue.send(built, options))


async def _prepared(item: object) -> Prepared:
    """Validate and build off the event loop when files must be read."""
    if isinstance(item, EmailMessage) and item.attachments:
        return await asyncio.to_thread(prepare, item)
    return prepare(item)


async def send_email_async(
    message: EmailMessage,
    session_details: BasicEmailSessionDetails,
    close_session: bool = True,
    **options: Any,
) -> SendResult:
    """The asyncio twin of :func:`smtpcore.send_email`: same arguments,
    same session kept on ``session_details``, same errors.

    A session opened by the blocking ``send_email`` on the same details is
    closed and replaced by an asyncio one (and the other way round).
    """
    send_options = SendOptions(
        bool(options.pop("allow_partial", False)),
        options.pop("dsn", None),
        bool(options.pop("require_tls", False)),
    )
    validate_session_details(
        session_details, password_required=options.get("oauth_token") is None
    )
    built = await _prepared(message)
    client = session_details._session
    if not isinstance(client, AsyncSmtpClient):
        session_details.close()
        client = AsyncSmtpClient(session_details, **options)
        session_details._session = client
    try:
        return await client._deliver(built, send_options)
    finally:
        if close_session:
            session_details._session = None
            await client.close()
