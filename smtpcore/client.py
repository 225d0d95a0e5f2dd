"""``SmtpClient``: runs the conversation of :mod:`smtpcore.protocol.dialogue`
over a blocking socket, with TLS from :mod:`ssl`.

The transport loop (:meth:`SmtpClient._run`) only executes the I/O the
conversation asks for; every SMTP decision is made in the dialogue.
"""

from __future__ import annotations

import contextlib
import email.message
import select
import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

from smtpcore.envelope import check_envelope, check_raw_content, prepare
from smtpcore.errors import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.mime import BuiltMessage
from smtpcore.models import BasicEmailSessionDetails, EmailMessage
from smtpcore.protocol.dialogue import (
    Conversation,
    Dialogue,
    Read,
    SendResult,
    SessionPolicy,
    Write,
)
from smtpcore.protocol.replies import SmtpReply
from smtpcore.tls import Phase, classify, shared_default_context
from smtpcore.validation import validate_session_details

__all__ = ["RawItem", "SendItem", "SmtpClient", "StartTlsPolicy"]

T = TypeVar("T")
StartTlsPolicy = Literal["auto", "required", "never"]
RawItem = tuple[str, str | Sequence[str], bytes]
SendItem = EmailMessage | email.message.Message | RawItem

# One recv() per Read request: 64 KiB holds any normal reply group whole and
# bounds what a single call can hand the parser (which bounds lines itself).
_READ_SIZE = 65536
# Writes go out in pieces of this size, each bounded by the timeout: since
# Python 3.5 sendall()'s timeout bounds the whole transfer, and ssl bounds a
# whole write() the same way, so one call for a large message would time out
# on a slow link while the upload was still progressing.  RFC 5321
# 4.5.3.2.5 times each data block ("3 minutes"), not the message.
_WRITE_SIZE = 65536


def address_literal(sockname: tuple[object, ...]) -> str:
    """The EHLO argument for our end of the socket, as an address literal.

    RFC 5321 4.1.4 allows an address literal when the client has no
    meaningful name; using it avoids ``getfqdn()``, a DNS lookup that smtplib
    makes on every connection.
    """
    host = str(sockname[0])
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


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
        check_revocation: reserved for CRL checking (see docs/errors.md).

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
    ) -> None:
        validate_session_details(session_details)
        if starttls not in ("auto", "required", "never"):
            raise ValueError(
                f"starttls must be 'auto', 'required' or 'never', not {starttls!r}"
            )
        self._details = session_details
        self._timeout = timeout
        self._data_timeout = data_timeout
        self._context = tls_context
        self._starttls: StartTlsPolicy = starttls
        self._local_hostname = local_hostname
        self._allow_insecure_auth = allow_insecure_auth
        self._check_revocation = check_revocation
        self._sock: socket.socket | None = None
        self._dialogue: Dialogue | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def _tls_context(self) -> ssl.SSLContext:
        return self._context or shared_default_context()

    @property
    def _server(self) -> tuple[str, int, bool]:
        server = self._details.server_details
        assert server is not None and server.host is not None
        return server.host, server.port, server.use_ssl

    @property
    def is_connected(self) -> bool:
        """True while a session is open (it may still have been dropped by
        the server; sends check that and reconnect)."""
        return self._sock is not None

    def connect(self) -> None:
        """Open the session: connect, TLS, EHLO, STARTTLS, AUTH.

        Does nothing if a session is already open.

        Raises:
            EmailSessionError: the session could not be opened.
            SmtpCommandError: the server refused the greeting or HELO.
            SmtpProtocolError: the server broke the protocol.
        """
        if self._sock is not None:
            return
        host, port, use_ssl = self._server
        sock = self._open_socket(host, port, use_ssl)
        credentials = self._details.credentials
        policy = SessionPolicy(
            host=host,
            port=port,
            local_hostname=self._local_hostname or address_literal(sock.getsockname()),
            implicit_tls=use_ssl,
            starttls=self._starttls,
            username=credentials.username if credentials else None,
            password=credentials.password if credentials else None,
            allow_insecure_auth=self._allow_insecure_auth,
            timeout=self._timeout,
            data_timeout=self._data_timeout,
        )
        self._sock = sock
        self._dialogue = Dialogue(policy)
        try:
            self._run(self._dialogue.open())
        except BaseException:
            self.close()
            raise

    def _open_socket(self, host: str, port: int, use_ssl: bool) -> socket.socket:
        phase: Phase = "connect"
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=self._timeout)
            # A pipelined group goes out in one write; Nagle's algorithm
            # would hold the next small write back for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if use_ssl:
                phase = "handshake"
                sock = self._tls_context.wrap_socket(sock, server_hostname=host)
            return sock
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise classify(
                exc,
                host=host,
                port=port,
                phase=phase,
                use_ssl=use_ssl,
                timeout=self._timeout,
            ) from exc

    def close(self) -> None:
        """Send QUIT if the session is idle, then close the socket.

        Never raises; safe to call more than once.
        """
        dialogue = self._dialogue
        if (
            self._sock is not None
            and dialogue is not None
            and not dialogue.conn.pending
        ):
            try:
                self._run(dialogue.quit())
            except SmtpCoreError:
                pass  # we are leaving anyway; the socket is closed below
            except Exception:
                pass  # a LocalProtocolError: the state allows no QUIT
        self._drop()

    def _drop(self) -> None:
        sock, self._sock, self._dialogue = self._sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> SmtpClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _server_hung_up(self) -> bool:
        """Zero-round-trip liveness check of an idle session.

        An idle server has nothing to say; if the socket is readable it has
        closed the connection or sent a 421 before closing (RFC 5321 3.8),
        and either way the session is gone.
        """
        sock = self._sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True

    # ----------------------------------------------------------- transport

    def _run(self, conversation: Conversation[T]) -> T:
        """Execute the conversation's I/O requests until it returns."""
        sock = self._sock
        assert sock is not None
        host, port, use_ssl = self._server
        value: bytes | None = None
        request: object = None
        try:
            while True:
                request = conversation.send(value)
                value = None
                if isinstance(request, Read):
                    sock.settimeout(request.timeout)
                    value = sock.recv(_READ_SIZE)
                elif isinstance(request, Write):
                    sock.settimeout(self._timeout)
                    data = memoryview(request.data)
                    for start in range(0, len(data), _WRITE_SIZE):
                        sock.sendall(data[start : start + _WRITE_SIZE])
                else:
                    sock.settimeout(self._timeout)
                    sock = self._tls_context.wrap_socket(sock, server_hostname=host)
                    self._sock = sock
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except OSError as exc:
            self._drop()
            if isinstance(request, Read):
                phase: Phase = "io"
                waiting_for, timeout, in_doubt = (
                    request.waiting_for,
                    request.timeout,
                    request.in_doubt,
                )
            else:
                phase = "io" if isinstance(request, Write) else "handshake"
                waiting_for, timeout, in_doubt = "", self._timeout, False
            raise classify(
                exc,
                host=host,
                port=port,
                phase=phase,
                use_ssl=use_ssl,
                waiting_for=waiting_for,
                timeout=timeout,
                in_doubt=in_doubt,
            ) from exc
        except SmtpProtocolError:
            self._drop()
            raise
        except BaseException:
            # A failure that left a reply outstanding or a transaction open
            # cannot be recovered from: start the next send afresh.
            dialogue = self._dialogue
            if dialogue is None or not dialogue.conn.idle:
                self._drop()
            raise

    # --------------------------------------------------------------- sends

    def send(
        self,
        message: EmailMessage | email.message.Message,
        *,
        allow_partial: bool = False,
    ) -> SendResult:
        """Send a message of ours or a stdlib ``email.message.Message``.

        A stdlib message goes out as given, except that its ``Bcc`` header
        is removed on the wire (its addresses stay in the envelope).

        Args:
            message: the message.
            allow_partial: deliver to the accepted recipients when some are
                refused, and report the refused ones in ``rejected``.

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
        return self._deliver(prepare(message), allow_partial)

    def send_raw(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        data: bytes,
        *,
        allow_partial: bool = False,
    ) -> SendResult:
        """Send a prebuilt RFC 5322 message, like ``smtplib.sendmail``.

        The data goes out as given except for CRLF normalisation and
        dot-stuffing.

        Args:
            from_addr: the envelope sender ("" for the null reverse-path).
            to_addrs: one recipient or a sequence of them.
            data: the message bytes.
            allow_partial: as for :meth:`send`.

        Returns:
            The :class:`SendResult` (``message_id`` is None).

        Raises:
            ArgumentError: ``data`` contains NUL or a line over 998 octets,
                or the arguments have the wrong types.
            SmtpCommandError, EmailSessionError, SmtpProtocolError: as for
                :meth:`send`.
        """
        recipients = (to_addrs,) if isinstance(to_addrs, str) else tuple(to_addrs)
        check_envelope(from_addr, recipients)
        check_raw_content(data)
        return self._deliver(
            BuiltMessage(data, from_addr, recipients, None), allow_partial
        )

    def send_many(
        self, items: Iterable[SendItem], *, allow_partial: bool = False
    ) -> list[SendResult | Exception]:
        """Send several messages over this session, in order.

        Args:
            items: messages of ours, stdlib messages, or
                ``(from_addr, to_addrs, data)`` tuples for raw ones.
            allow_partial: as for :meth:`send`.

        Returns:
            One :class:`SendResult` or exception per item, in order: a
            failure of one item does not stop the others.
        """
        results: list[SendResult | Exception] = []
        for item in items:
            try:
                if isinstance(item, tuple):
                    results.append(self.send_raw(*item, allow_partial=allow_partial))
                else:
                    results.append(self.send(item, allow_partial=allow_partial))
            except (SmtpCoreError, OSError) as exc:
                results.append(exc)
        return results

    def noop(self) -> SmtpReply:
        """Send NOOP (connecting first if needed) and return the reply."""
        self.connect()
        assert self._dialogue is not None
        return self._run(self._dialogue.noop())

    def _deliver(self, built: BuiltMessage, allow_partial: bool) -> SendResult:
        reused = self._sock is not None
        if reused and self._server_hung_up():
            self._drop()
            reused = False
        self.connect()
        try:
            return self._transaction(built, allow_partial)
        except EmailSessionError as exc:
            # A reused session the server dropped between our check and the
            # send: nothing was delivered (no final reply was outstanding),
            # so one retry on a fresh connection cannot duplicate it.
            if not (
                reused
                and exc.reason is EmailSessionReason.CONNECTION_LOST
                and not exc.delivery_unknown
            ):
                raise
        self.connect()
        return self._transaction(built, allow_partial)

    def _transaction(self, built: BuiltMessage, allow_partial: bool) -> SendResult:
        assert self._dialogue is not None
        return self._run(
            self._dialogue.transaction(
                built.sender,
                built.recipients,
                built.data,
                message_id=built.message_id,
                allow_partial=allow_partial,
            )
        )
