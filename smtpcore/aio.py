"""``AsyncSmtpClient`` and ``send_email_async``: the same conversation over
asyncio.

Nothing about SMTP is decided here: the generators of
:mod:`smtpcore.protocol.dialogue` are driven by
:class:`smtpcore._aio_transport.AsyncTransport` as :mod:`smtpcore.transport`
drives them, only with the event loop where the blocking transport waits.
The two rare checks that need a connection of their own (the anti-virus
diagnosis after a certificate failure, and the opt-in CRL check) run the
blocking code of :mod:`smtpcore.opening` in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from smtpcore._aio_transport import AsyncTransport, within
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
    session_send_options,
    settle_batch_failure,
)
from smtpcore.protocol.dialogue import Conversation, Dialogue
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.saslbase import TokenSource
from smtpcore.protocol.transaction import Dsn, SendOptions, SendResult
from smtpcore.transport import Endpoint
from smtpcore.validation import validate_session_details

__all__ = ["AsyncSmtpClient", "send_email_async"]

T = TypeVar("T")


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
                await within(transport.run(dialogue.quit()), self._options.timeout)
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
    send_options = session_send_options(session_details, options)
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
