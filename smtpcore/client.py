"""``SmtpClient``: an SMTP session over a blocking socket.

The conversation lives in :mod:`smtpcore.protocol.dialogue` and the I/O in
:mod:`smtpcore.transport`; this module adds the session around them: opening
and reusing it, reconnecting when an idle session was dropped, diagnosing
certificate failures and the opt-in revocation check.
"""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

from smtpcore.envelope import check_envelope, check_raw_content, prepare
from smtpcore.errors import EmailSessionError, EmailSessionReason, SmtpCoreError
from smtpcore.mime import BuiltMessage
from smtpcore.models import BasicEmailSessionDetails, EmailMessage
from smtpcore.protocol.dialogue import Conversation, Dialogue, SendResult, SessionPolicy
from smtpcore.protocol.replies import SmtpReply
from smtpcore.tls import (
    CrlUnavailable,
    antivirus_product,
    fetch_crl,
    revocation_context,
    shared_default_context,
    unverified_context,
)
from smtpcore.transport import Endpoint, Transport, address_literal, peer_leaf
from smtpcore.validation import validate_session_details

__all__ = ["RawItem", "SendItem", "SmtpClient", "StartTlsPolicy"]

T = TypeVar("T")
StartTlsPolicy = Literal["auto", "required", "never"]
RawItem = tuple[str, str | Sequence[str], bytes]
SendItem = EmailMessage | email.message.Message | RawItem

# OpenSSL's verify codes for a chain that does not lead to a trusted root:
# what a certificate re-signed by an intercepting product looks like.
_UNTRUSTED_CODES = frozenset({18, 19, 20, 21})


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
        self._transport: Transport | None = None
        self._dialogue: Dialogue | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def _endpoint(self) -> Endpoint:
        server = self._details.server_details
        assert server is not None and server.host is not None
        return Endpoint(server.host, server.port, server.use_ssl, self._timeout)

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
        endpoint = self._endpoint
        context = self._context or shared_default_context()
        try:
            if self._check_revocation:
                context = self._revocation_checking(endpoint, context)
            transport = Transport.connect(endpoint, context)
        except EmailSessionError as exc:
            raise self._diagnosed(exc, endpoint) from exc.__cause__
        credentials = self._details.credentials
        self._transport = transport
        self._dialogue = Dialogue(
            SessionPolicy(
                host=endpoint.host,
                port=endpoint.port,
                local_hostname=self._local_hostname
                or address_literal(transport.sock.getsockname()),
                implicit_tls=endpoint.use_ssl,
                starttls=self._starttls,
                username=credentials.username if credentials else None,
                password=credentials.password if credentials else None,
                allow_insecure_auth=self._allow_insecure_auth,
                timeout=self._timeout,
                data_timeout=self._data_timeout,
            )
        )
        try:
            self._run(self._dialogue.open())
        except EmailSessionError as exc:
            self.close()
            raise self._diagnosed(exc, endpoint) from exc.__cause__
        except BaseException:
            self.close()
            raise

    def _diagnosed(
        self, exc: EmailSessionError, endpoint: Endpoint
    ) -> EmailSessionError:
        """Tell a certificate replaced by an anti-virus product from one that
        is merely untrusted, by a second, unverified look at the server's
        certificate.  That look is for the diagnosis only: no credentials
        or mail go over it."""
        cause = exc.__cause__
        if not (
            isinstance(cause, ssl.SSLCertVerificationError)
            and cause.verify_code in _UNTRUSTED_CODES
        ):
            return exc
        from smtpcore.x509 import CertificateParseError, parse_certificate

        try:
            der = peer_leaf(endpoint, unverified_context(), self._local_hostname)
            issuer = parse_certificate(der).issuer if der else None
        except (SmtpCoreError, CertificateParseError):
            return exc
        if issuer is None:
            return exc
        fields = [value for name in ("CN", "O", "OU") for value in issuer.get(name)]
        product = antivirus_product(fields)
        if product is None:
            return exc
        return EmailSessionError(
            EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS,
            f"the server's certificate was issued by '{issuer}', a root of "
            f"{product}, which intercepts TLS on this machine",
            host=endpoint.host,
            port=endpoint.port,
        )

    def _revocation_checking(
        self, endpoint: Endpoint, context: ssl.SSLContext
    ) -> ssl.SSLContext:
        """A context that also refuses the server's certificate if its CRL
        lists it (RFC 5280 4.2.1.13, 5.3)."""
        from smtpcore.x509 import CertificateParseError, parse_certificate

        der = peer_leaf(endpoint, context, self._local_hostname)
        if der is None:
            return context  # no TLS on this session: nothing to check
        try:
            points = parse_certificate(der).crl_distribution_points
        except CertificateParseError as exc:
            raise EmailSessionError(
                EmailSessionReason.CRL_SERVER_DOWN,
                f"the certificate's CRL distribution point could not be read ({exc})",
                host=endpoint.host,
                port=endpoint.port,
            ) from exc
        urls = [url for url in points if url.lower().startswith("http://")]
        if not urls:
            return context  # the certificate names no CRL to check against
        failures: list[CrlUnavailable] = []
        for url in urls:
            try:
                return revocation_context(context, fetch_crl(url, self._timeout))
            except CrlUnavailable as exc:
                failures.append(exc)
        raise EmailSessionError(
            EmailSessionReason.CRL_SERVER_DOWN,
            "; ".join(str(failure) for failure in failures),
            host=endpoint.host,
            port=endpoint.port,
        ) from failures[-1]

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
        reused = self._transport is not None
        if reused and self._transport is not None and self._transport.hung_up():
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
