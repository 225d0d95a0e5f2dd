"""``SmtpClient``: an SMTP session over a blocking socket.

The conversation lives in :mod:`smtpcore.protocol.dialogue`, the I/O in
:mod:`smtpcore.transport`, and what both clients share about opening and
keeping a session in :mod:`smtpcore.opening`; this module is the blocking
session around them.
"""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import Iterable, Sequence
from typing import TypeVar

from smtpcore.envelope import prepare, prepare_batch, prepare_raw
from smtpcore.errors import EmailSessionError, SmtpCoreError, SmtpProtocolError
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
from smtpcore.protocol.dialogue import Conversation, Dialogue
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.saslbase import TokenSource
from smtpcore.protocol.transaction import Dsn, SendOptions, SendResult
from smtpcore.transport import Transport
from smtpcore.validation import validate_session_details

__all__ = ["RawItem", "SendItem", "SmtpClient", "StartTlsPolicy"]

T = TypeVar("T")
RawItem = tuple[str, str | Sequence[str], bytes]
SendItem = EmailMessage | email.message.Message | RawItem


class SmtpClient:
    """A blocking SMTP client session.

    Args:
        session_details: server details and credentials (None for no AUTH).
        timeout: seconds for connecting, the TLS handshake, the greeting,
            every reply, and each 64 KiB written (an upload that keeps
            moving is never cut off, however long it takes in total).
        data_timeout: seconds for the reply after the message content.
        tls_context: the ``ssl.SSLContext`` for implicit TLS and STARTTLS;
            default: verifying, system CAs, TLS 1.2+.
        starttls: ``"auto"`` upgrades when offered (the seed's
            ``use_ssl=False``), ``"required"`` never sends AUTH or MAIL in
            clear, ``"never"`` does not upgrade.
        local_hostname: the EHLO argument; default: our address literal.
        allow_insecure_auth: allow credentials over an unencrypted connection.
        check_revocation: before each connection, fetch the CRL named in the
            server certificate's CRL distribution point (http) and refuse a
            revoked certificate; an unreachable CRL is ``CRL_SERVER_DOWN``.
            The CRL-checking context takes the CA certificates loaded into
            ``tls_context`` (or the system store by default).
        lmtp: speak LMTP (RFC 2033) instead of SMTP: LHLO, and one reply
            per recipient after the content.
        auth_mechanism: the SASL mechanism to use (e.g. ``"SCRAM-SHA-256"``)
            instead of the strongest both sides support (SCRAM-SHA-512 >
            SCRAM-SHA-256 > SCRAM-SHA-1 > NTLM > CRAM-MD5 > PLAIN > LOGIN).
        oauth_token: an OAuth 2.0 access token, or a callable returning a
            fresh one (asked again once if the server refuses the token):
            AUTH then uses OAUTHBEARER or XOAUTH2 only, and
            ``credentials.password`` may be None.

    Raises:
        PropertyNullError, PropertyEmptyError, PropertyValueOutOfRangeError,
        ArgumentError: the session details are invalid.

    Use as a context manager, or call :meth:`connect` and :meth:`close`; a
    send on a closed client connects first.
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
    ) -> None:
        validate_session_details(session_details, password_required=oauth_token is None)
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
        self._transport: Transport | None = None
        self._dialogue: Dialogue | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def is_connected(self) -> bool:
        """True while a session is open (it may still have been dropped by
        the server; sends check that and reconnect)."""
        return self._transport is not None

    def connect(self) -> None:
        """Open the session: connect, TLS, EHLO, STARTTLS, AUTH.

        Does nothing if a session is already open.

        Raises:
            EmailSessionError: the session could not be opened.
            SmtpCommandError: the server refused the greeting or HELO.
            SmtpProtocolError: the server broke the protocol.
        """
        if self._transport is not None:
            return
        options = self._options
        endpoint = endpoint_of(self._details, options.timeout)
        context = options.context
        try:
            if options.check_revocation:
                context = revocation_checking(endpoint, context, options.local_hostname)
            transport = Transport.connect(endpoint, context)
        except EmailSessionError as exc:
            raise diagnosed(exc, endpoint, options.local_hostname) from exc.__cause__
        self._transport = transport
        self._dialogue = Dialogue(
            options.policy(self._details, endpoint, transport.sock.getsockname())
        )
        try:
            self._run(self._dialogue.open())
        except EmailSessionError as exc:
            self.close()
            raise diagnosed(exc, endpoint, options.local_hostname) from exc.__cause__
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Send QUIT if the session is idle, then close the socket.

        Never raises; safe to call more than once.
        """
        transport, dialogue = self._transport, self._dialogue
        if transport is not None and dialogue is not None and not dialogue.conn.pending:
            # We are leaving anyway: a failed QUIT (or a state that allows
            # none, LocalProtocolError) changes nothing.
            with contextlib.suppress(SmtpCoreError):
                transport.run(dialogue.quit())
        self._drop()

    def _drop(self) -> None:
        transport, self._transport, self._dialogue = self._transport, None, None
        if transport is not None:
            transport.close()

    def __enter__(self) -> SmtpClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, conversation: Conversation[T]) -> T:
        transport = self._transport
        assert transport is not None
        try:
            return transport.run(conversation)
        except BaseException:
            # A failure that left a reply outstanding or a transaction open
            # cannot be recovered from: start the next send afresh.
            dialogue = self._dialogue
            if transport.closed or dialogue is None or not dialogue.conn.idle:
                self._drop()
            raise

    # --------------------------------------------------------------- sends

    def send(
        self,
        message: EmailMessage | email.message.Message,
        *,
        allow_partial: bool = False,
        dsn: Dsn | None = None,
        require_tls: bool = False,
    ) -> SendResult:
        """Send a message of ours or a stdlib ``email.message.Message``.

        A stdlib message goes out as given, except that its ``Bcc`` header
        is removed on the wire (its addresses stay in the envelope).

        Args:
            message: the message.
            allow_partial: deliver to the accepted recipients when some are
                refused, and report the refused ones in ``rejected``.
            dsn: a delivery status notification request (RFC 3461), used
                when the server offers DSN.
            require_tls: RFC 8689 REQUIRETLS; refused before sending when
                the session is not on TLS or the server does not offer it.

        Returns:
            The :class:`SendResult`.

        Raises:
            PropertyNullError, PropertyEmptyError, ArgumentError,
            FileNotFoundError, PermissionError, IsADirectoryError: invalid
                input, raised before connecting.
            SmtpCommandError: the server refused the sender, a recipient or
                the message; or an address broke RFC 5321 (before connecting).
            EmailSessionError: the session failed.
            SmtpProtocolError: the server broke the protocol.
        """
        options = SendOptions(allow_partial, dsn, require_tls)
        return self._deliver(prepare(message), options)

    def send_raw(
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
        """Send a prebuilt RFC 5322 message, like ``smtplib.sendmail``.

        The data goes out as given except for CRLF normalisation and
        dot-stuffing.

        Args:
            from_addr: the envelope sender ("" for the null reverse-path).
            to_addrs: one recipient or a sequence of them.
            data: the message bytes.
            allow_partial, dsn, require_tls: as for :meth:`send`.
            binary: deliver ``data`` octet for octet (NUL, bare CR or LF and
                long lines allowed) with BODY=BINARYMIME over BDAT; refused
                before MAIL (554 5.6.3) when the server does not offer
                CHUNKING and BINARYMIME.

        Returns:
            The :class:`SendResult` (``message_id`` is None).

        Raises:
            ArgumentError: ``data`` contains NUL or a line over 998 octets,
                or the arguments have the wrong types.
            SmtpCommandError, EmailSessionError, SmtpProtocolError: as for
                :meth:`send`.
        """
        options = SendOptions(allow_partial, dsn, require_tls)
        return self._deliver(
            prepare_raw(from_addr, to_addrs, data, binary=binary), options
        )

    def send_many(
        self,
        items: Iterable[SendItem],
        *,
        allow_partial: bool = False,
        dsn: Dsn | None = None,
        require_tls: bool = False,
    ) -> list[SendResult | Exception]:
        """Send several messages over this session, in order, pipelined.

        With PIPELINING each message's content travels with the next
        message's MAIL and RCPT, so a batch costs about one round trip per
        message.  If the connection breaks, the message in flight is retried
        once on a new connection when it cannot have been delivered, and the
        rest go on over the new connection.

        Args:
            items: messages of ours, stdlib messages, or
                ``(from_addr, to_addrs, data)`` tuples for raw ones.
            allow_partial, dsn, require_tls: as for :meth:`send`.

        Returns:
            One :class:`SendResult` or exception per item, in order: a
            failure of one item does not stop the others.
        """
        messages, results = prepare_batch(items)
        options = SendOptions(allow_partial, dsn, require_tls)
        retried: set[int] = set()
        while None in results:
            try:
                self._open_or_reuse()
                assert self._dialogue is not None
                self._run(self._dialogue.send_batch(messages, options, results))
            except (EmailSessionError, SmtpProtocolError) as exc:
                settle_batch_failure(results, exc, retried)
            except SmtpCoreError as exc:  # the session could not be opened
                results = [exc if result is None else result for result in results]
        return [result for result in results if result is not None]

    def noop(self) -> SmtpReply:
        """Send NOOP (connecting first if needed) and return the reply."""
        self.connect()
        assert self._dialogue is not None
        return self._run(self._dialogue.noop())

    def _open_or_reuse(self) -> bool:
        """Connect unless an idle session is open and alive; True if the
        session was reused."""
        if self._transport is not None and self._transport.hung_up():
            self._drop()
        reused = self._transport is not None
        self.connect()
        return reused

    def _deliver(self, built: Prepared, options: SendOptions) -> SendResult:
        reused = self._open_or_reuse()
        assert self._dialogue is not None
        try:
            return self._run(self._dialogue.send(built, options))
        except EmailSessionError as exc:
            if not may_retry(exc, reused):
                raise
        self.connect()
        assert self._dialogue is not None
        return self._run(self._dialogue.send(built, options))
