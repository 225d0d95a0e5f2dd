"""The SMTP conversation, written once.

Every SMTP decision lives here: greeting, EHLO with HELO fallback, the
STARTTLS policy, AUTH, the mail transaction with its recipient policy and
pipelining, RSET, NOOP and QUIT.  Each step is a generator that *yields* I/O
requests (:class:`Write`, :class:`Read`, :class:`UpgradeTls`) and *returns*
its result; the blocking client (:mod:`smtpcore.client`) and the asyncio
client run the same generators and only execute the requests.

A transport answers a ``Read`` by sending the received bytes back into the
generator (``b""`` at EOF) and every other request with ``None``.  It maps
its own failures (timeouts, resets, TLS errors) into
:class:`~smtpcore.errors.EmailSessionError`, using the request's
``waiting_for`` and ``in_doubt`` to say what was interrupted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from smtpcore.errors import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.protocol.address import encode_mailbox, needs_smtputf8
from smtpcore.protocol.commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Command,
    Data,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTls,
)
from smtpcore.protocol.connection import ConnectionClosed, NeedData, SmtpConnection
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.sasl import MAX_ROUNDS, choose_mechanism
from smtpcore.protocol.state import State

__all__ = [
    "Conversation",
    "Dialogue",
    "Read",
    "Request",
    "SendResult",
    "SessionPolicy",
    "UpgradeTls",
    "Write",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Write:
    """Write all of ``data`` to the connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Read:
    """Read what is available (at least one byte, or ``b""`` at EOF).

    Attributes:
        timeout: seconds to wait before giving up.
        waiting_for: what the reply is for, for error messages.
        in_doubt: the whole message was sent and this is its final reply:
            losing the connection now leaves delivery unknown.
        tls_probe_after: if nothing at all arrives within this many seconds,
            the transport should find out whether the port expects TLS from
            the first byte (a plain client there waits for a greeting that
            never comes) instead of waiting out the whole timeout.
    """

    timeout: float
    waiting_for: str
    in_doubt: bool = False
    tls_probe_after: float | None = None


@dataclass(frozen=True, slots=True)
class UpgradeTls:
    """Run the TLS handshake on the connection now (after STARTTLS 220)."""


UPGRADE_TLS = UpgradeTls()

# Seconds of silence after connecting before a plain client checks whether
# the port expects implicit TLS.  Servers that delay their greeting on
# purpose (anti-spam "greet pause") lose nothing: the check runs on a second
# connection and the wait for the greeting goes on if the port is not TLS.
GREETING_WINDOW = 1.0

Request = Write | Read | UpgradeTls
Conversation = Generator[Request, bytes | None, T]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Everything the conversation needs to know about the session.

    Attributes:
        host, port: the server, for error messages.
        local_hostname: the EHLO argument (a domain or address literal).
        implicit_tls: the transport runs TLS from the first byte.
        starttls: ``"auto"`` upgrades when offered, ``"required"`` never
            sends AUTH or MAIL in clear, ``"never"`` does not upgrade.
        username, password: credentials, or None for no AUTH.
        allow_insecure_auth: allow credentials over a plain connection.
        timeout: seconds for the greeting and every reply.
        data_timeout: seconds for the reply after the message content
            (RFC 5321 4.5.3.2.6 suggests 10 minutes).
    """

    host: str
    port: int
    local_hostname: str
    implicit_tls: bool = False
    starttls: Literal["auto", "required", "never"] = "auto"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_insecure_auth: bool = False
    timeout: float = 30.0
    data_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one delivered message.

    Attributes:
        message_id: the Message-ID header value with angle brackets, or None.
        accepted: recipient addresses the server accepted.
        rejected: recipient address -> the server's refusal (only with
            ``allow_partial=True``; otherwise a refusal raises).
        reply: the server's final reply to the message content.
    """

    message_id: str | None
    accepted: list[str]
    rejected: dict[str, SmtpReply]
    reply: SmtpReply


def _ascii_domain(name: str) -> bytes:
    try:
        return name.encode("ascii")
    except UnicodeEncodeError:
        return name.encode("idna")


class Dialogue:
    """One SMTP session's conversation over a :class:`SmtpConnection`."""

    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy
        self.conn = SmtpConnection(tls=policy.implicit_tls)
        self._hello_domain = _ascii_domain(policy.local_hostname)
        # What open() saw, for diagnosis tools (``smtpcore probe``): the
        # greeting, and the capabilities offered before a STARTTLS upgrade
        # (RFC 3207 4.2: they are discarded for everything else).
        self.greeting: SmtpReply | None = None
        self.extensions_before_tls: Extensions | None = None

    # ----------------------------------------------------------- primitives

    def _session_error(
        self,
        reason: EmailSessionReason,
        detail: str,
        *,
        reply: SmtpReply | None = None,
        in_doubt: bool = False,
    ) -> EmailSessionError:
        return EmailSessionError(
            reason,
            detail,
            host=self.policy.host,
            port=self.policy.port,
            reply=reply,
            delivery_unknown=in_doubt,
        )

    def _reply(
        self,
        waiting_for: str,
        *,
        timeout: float | None = None,
        in_doubt: bool = False,
        tls_probe_after: float | None = None,
    ) -> Conversation[SmtpReply]:
        """Read until one complete reply is parsed."""
        while True:
            event = self.conn.next_event()
            if isinstance(event, NeedData):
                data = yield Read(
                    timeout or self.policy.timeout,
                    waiting_for,
                    in_doubt,
                    tls_probe_after,
                )
                tls_probe_after = None  # something arrived: the port is not TLS
                self.conn.receive_data(data or b"")
            elif isinstance(event, ConnectionClosed):
                raise self._session_error(
                    EmailSessionReason.CONNECTION_LOST,
                    "the server closed the connection while we waited for "
                    + waiting_for,
                    in_doubt=in_doubt,
                )
            else:
                if event.code == 421 and self.conn.state is State.CLOSED:
                    # RFC 5321 3.8: the server is shutting the channel.
                    raise self._session_error(
                        EmailSessionReason.CONNECTION_LOST,
                        f"the server is closing the connection ({event}) while we "
                        f"waited for {waiting_for}",
                        reply=event,
                        in_doubt=in_doubt,
                    )
                return event

    def _command(self, command: Command) -> Conversation[SmtpReply]:
        yield Write(self.conn.send(command))
        return (yield from self._reply(f"the reply to {command.verb}"))

    # ------------------------------------------------------------- opening

    def open(self) -> Conversation[None]:
        """Greeting, EHLO, STARTTLS per policy, EHLO again, AUTH.

        Raises:
            EmailSessionError: not an SMTP server, TLS required but not
                available, authentication failed.
            SmtpCommandError: the greeting or HELO was refused.
        """
        # RFC 5321 3.1: a plain SMTP server speaks first.  Silence on a plain
        # connection is what an implicit-TLS port looks like (it waits for
        # our ClientHello), so after a short window the transport checks.
        probe = None if self.policy.implicit_tls else GREETING_WINDOW
        try:
            greeting = yield from self._reply("the greeting", tls_probe_after=probe)
        except SmtpProtocolError as exc:
            raise self._session_error(
                EmailSessionReason.INVALID_PORT,
                f"what answers on this port is not an SMTP server ({exc})",
            ) from exc
        self.greeting = greeting
        if not greeting.is_positive:
            # RFC 5321 3.1: after a 554 greeting the client sends QUIT.
            yield from self.quit()
            raise SmtpCommandError(
                SmtpErrorKind.UNEXPECTED_STATUS_CODE, greeting, "greeting"
            )
        yield from self._hello()
        if not self.policy.implicit_tls:
            yield from self._starttls()
        if self.policy.username is not None:
            yield from self._authenticate()

    def _hello(self) -> Conversation[None]:
        reply = yield from self._command(Ehlo(self._hello_domain))
        if reply.is_positive:
            return
        if not reply.is_permanent:
            raise SmtpCommandError(SmtpErrorKind.UNEXPECTED_STATUS_CODE, reply, "EHLO")
        # RFC 5321 3.2: a server without ESMTP refuses EHLO with 5yz and the
        # client falls back to HELO.
        reply = yield from self._command(Helo(self._hello_domain))
        if not reply.is_positive:
            raise SmtpCommandError(SmtpErrorKind.UNEXPECTED_STATUS_CODE, reply, "HELO")

    def _tls_required(self) -> bool:
        policy = self.policy
        return policy.starttls == "required" or (
            policy.username is not None and not policy.allow_insecure_auth
        )

    def _starttls(self) -> Conversation[None]:
        offered = self.conn.extensions.starttls
        if self.policy.starttls == "never" or not offered:
            if self._tls_required():
                why = (
                    "starttls='never'"
                    if offered
                    else "the server does not offer STARTTLS"
                )
                raise self._session_error(
                    EmailSessionReason.STARTTLS_NOT_AVAILABLE,
                    f"{why}, and credentials or policy require TLS; nothing was "
                    "sent in clear",
                )
            return
        reply = yield from self._command(StartTls())
        if not reply.is_positive:
            if self._tls_required():
                raise self._session_error(
                    EmailSessionReason.STARTTLS_NOT_AVAILABLE,
                    f"the server refused STARTTLS ({reply})",
                    reply=reply,
                )
            return
        self.extensions_before_tls = self.conn.extensions
        yield UPGRADE_TLS
        self.conn.tls_started()
        yield from self._hello()

    def _authenticate(self) -> Conversation[None]:
        policy = self.policy
        assert policy.username is not None
        offered = self.conn.extensions.auth_mechanisms
        mechanism = choose_mechanism(offered, policy.username, policy.password or "")
        if mechanism is None:
            shown = ", ".join(sorted(offered)) or "no AUTH at all"
            raise self._session_error(
                EmailSessionReason.NO_COMMON_AUTH_MECHANISM,
                f"the server offers {shown}; smtpcore can use PLAIN and LOGIN",
            )
        reply = yield from self._command(
            Auth(mechanism.name, mechanism.initial_response())
        )
        rounds = 0
        while reply.code == 334:
            rounds += 1
            try:
                if rounds > MAX_ROUNDS:
                    raise ValueError(f"more than {MAX_ROUNDS} challenges")
                text = reply.lines[0] if reply.lines else b""
                challenge = base64.b64decode(text, validate=True)
                response = mechanism.respond(challenge)
            except (ValueError, binascii.Error) as exc:
                # RFC 4954 4: "*" cancels; the server answers 501.
                yield from self._command(AuthCancel())
                raise SmtpProtocolError(f"bad AUTH challenge: {exc}") from exc
            reply = yield from self._command(AuthResponse(response))
        if reply.is_positive:
            return
        raise self._auth_error(reply)

    def _auth_error(self, reply: SmtpReply) -> EmailSessionError:
        # RFC 4954 6: 535 5.7.8 bad credentials, 454 4.7.0 temporary failure,
        # 534 5.7.9 mechanism too weak, 538 5.7.11 encryption required.
        reason = EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
        if reply.is_transient:
            reason = EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE
        elif reply.code in (504, 534):
            reason = EmailSessionReason.NO_COMMON_AUTH_MECHANISM
        elif reply.code == 538:
            reason = EmailSessionReason.STARTTLS_NOT_AVAILABLE
        return self._session_error(reason, f"AUTH refused: {reply}", reply=reply)

    # --------------------------------------------------------- transaction

    def transaction(
        self,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
        *,
        message_id: str | None = None,
        allow_partial: bool = False,
    ) -> Conversation[SendResult]:
        """MAIL, RCPT..., DATA, content; pipelined when the server allows.

        Args:
            sender: the envelope sender ("" for the null reverse-path).
            recipients: envelope recipients, at least one.
            content: the raw RFC 5322 message (line ends are normalised and
                dots stuffed on the way out).
            message_id: reported back in the result.
            allow_partial: deliver to the accepted recipients even if some
                are refused.

        Returns:
            The :class:`SendResult`.

        Raises:
            SmtpCommandError: sender, a recipient (by default any), or the
                message refused; the session stays usable.
            EmailSessionError: the connection was lost or timed out.
        """
        conn = self.conn
        mail, rcpts = self._envelope_commands(sender, recipients, len(content))
        # Once DATA has been answered with 354 the only way to abort is to
        # drop the connection, so DATA joins the group only when a refused
        # recipient cannot make us want to abort (see DESIGN.md).
        pipelined = conn.extensions.pipelining
        data_in_group = pipelined and (allow_partial or len(rcpts) == 1)
        group: list[Command] = [mail, *rcpts]
        if data_in_group:
            group.append(Data())
        replies: list[SmtpReply] = []
        if pipelined:
            yield Write(b"".join([conn.send(command) for command in group]))
            for command in group:
                replies.append((yield from self._reply(f"the reply to {command.verb}")))
        else:
            for command in group:
                replies.append((yield from self._command(command)))
                if command is mail and not replies[0].is_positive:
                    break
        if not replies[0].is_positive:
            yield from self._abort()
            raise SmtpCommandError(
                SmtpErrorKind.SENDER_NOT_ACCEPTED, replies[0], "MAIL FROM", sender
            )
        accepted: list[str] = []
        rejected: dict[str, SmtpReply] = {}
        for address, reply in zip(recipients, replies[1 : 1 + len(rcpts)], strict=True):
            if reply.is_positive:
                accepted.append(address)
            else:
                rejected.setdefault(address, reply)
        if rejected and not (allow_partial and accepted):
            yield from self._abort()
            first = next(iter(rejected))
            raise SmtpCommandError(
                SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
                rejected[first],
                "RCPT TO",
                first,
                rejected=rejected,
            )
        data_reply = (
            replies[-1] if data_in_group else (yield from self._command(Data()))
        )
        if data_reply.code != 354:
            yield from self._abort()
            raise SmtpCommandError(
                SmtpErrorKind.MESSAGE_NOT_ACCEPTED, data_reply, "DATA"
            )
        yield Write(conn.send_content(content, end=True))
        final = yield from self._reply(
            "the final reply after the message content",
            timeout=self.policy.data_timeout,
            in_doubt=True,
        )
        if not final.is_positive:
            raise SmtpCommandError(SmtpErrorKind.MESSAGE_NOT_ACCEPTED, final, "DATA")
        return SendResult(message_id, accepted, rejected, final)

    def _envelope_commands(
        self, sender: str, recipients: Sequence[str], size: int
    ) -> tuple[Mail, list[Rcpt]]:
        """Build MAIL and RCPT commands, refusing before any byte is sent
        what the server would refuse anyway."""
        ext = self.conn.extensions
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        # RFC 1870 6.1: a client should not send a message larger than the
        # server's declared maximum; refusing here saves the upload.
        if ext.size is not None and size > ext.size:
            text = f"5.3.4 Message size {size} exceeds the limit {ext.size}"
            raise SmtpCommandError(
                SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
                SmtpReply(552, (text.encode(),), "5.3.4"),
                "MAIL FROM",
                sender,
            )
        utf8 = ext.smtputf8 and any(map(needs_smtputf8, [sender, *recipients]))
        params: list[bytes] = []
        if ext.has("SIZE"):
            params.append(b"SIZE=%d" % size)
        if utf8:
            params.append(b"SMTPUTF8")
        mail = Mail(
            self._encode(sender, utf8, SmtpErrorKind.SENDER_NOT_ACCEPTED), tuple(params)
        )
        rcpts = [
            Rcpt(self._encode(address, utf8, SmtpErrorKind.RECIPIENT_NOT_ACCEPTED))
            for address in recipients
        ]
        return mail, rcpts

    @staticmethod
    def _encode(address: str, utf8: bool, kind: SmtpErrorKind) -> bytes:
        if not address and kind is SmtpErrorKind.SENDER_NOT_ACCEPTED:
            return b""
        try:
            return encode_mailbox(address, smtputf8=utf8)
        except ValueError as exc:
            sender = kind is SmtpErrorKind.SENDER_NOT_ACCEPTED
            # RFC 6531 3.7.4.1 / RFC 3463: 553 5.6.7 for an address the
            # session cannot carry, 5.1.7 / 5.1.3 for bad syntax.
            unsupported = needs_smtputf8(address) and not utf8
            status = "5.6.7" if unsupported else ("5.1.7" if sender else "5.1.3")
            reply = SmtpReply(
                553 if status == "5.6.7" else 501, (f"{status} {exc}".encode(),), status
            )
            raise SmtpCommandError(
                kind, reply, "MAIL FROM" if sender else "RCPT TO", address
            ) from exc

    def _abort(self) -> Conversation[None]:
        """End a failed transaction so the session can carry the next one."""
        if self.conn.state is State.CONTENT:
            # The server answered 354 although we must abort: only dropping
            # the connection stops it from taking the message.  The client
            # sees a non-idle connection and closes it.
            return
        reply = yield from self._command(Rset())
        if not reply.is_positive:
            raise SmtpProtocolError(f"RSET refused: {reply}")

    # ---------------------------------------------------------- the rest

    def reset(self) -> Conversation[SmtpReply]:
        """``RSET``; returns the reply."""
        return (yield from self._command(Rset()))

    def noop(self) -> Conversation[SmtpReply]:
        """``NOOP``; returns the reply."""
        return (yield from self._command(Noop()))

    def quit(self) -> Conversation[None]:
        """``QUIT`` and its reply (RFC 5321 4.1.1.10)."""
        yield Write(self.conn.send(Quit()))
        # A server that hangs up right after QUIT did what we asked.
        with contextlib.suppress(EmailSessionError):
            yield from self._reply("the reply to QUIT")
