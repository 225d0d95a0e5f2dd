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
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpCoreError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.protocol.commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Command,
    Ehlo,
    Helo,
    Lhlo,
    Noop,
    Quit,
    Rset,
    StartTls,
)
from smtpcore.protocol.connection import ConnectionClosed, SmtpConnection
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.requests import (
    UPGRADE_TLS,
    Conversation,
    Read,
    Request,
    UpgradeTls,
    Write,
)
from smtpcore.protocol.sasl import (
    MAX_ROUNDS,
    OAUTH_PREFERENCE,
    PREFERENCE,
    SaslMechanism,
    TokenSource,
    choose_mechanism,
)
from smtpcore.protocol.saslbase import SaslServerFailure
from smtpcore.protocol.state import State
from smtpcore.protocol.transaction import (
    InMemoryMessage,
    Outgoing,
    SendOptions,
    SendResult,
    run_batch,
)

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


# Seconds of silence after connecting before a plain client checks whether
# the port expects implicit TLS.  Servers that delay their greeting on
# purpose (anti-spam "greet pause") lose nothing: the check runs on a second
# connection and the wait for the greeting goes on if the port is not TLS.
GREETING_WINDOW = 1.0


# A session asks for the same few reads over and over; the requests are
# immutable, so each is built once.
_read = functools.lru_cache(maxsize=256)(Read)


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
        lmtp: speak LMTP (RFC 2033): LHLO, and one reply per recipient
            after the content.
        domain: the credentials' domain (NTLM).
        auth_mechanism: a SASL mechanism to use instead of the automatic
            choice (the strongest both sides support).
        oauth_token: an OAuth 2.0 bearer token, or a callable returning a
            fresh one: then only OAUTHBEARER / XOAUTH2 are used.
        ntlm_timestamp: now, in Windows FILETIME units, for NTLMv2 with a
            server that sends no timestamp (the core has no clock).
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
    lmtp: bool = False
    domain: str | None = None
    auth_mechanism: str | None = None
    oauth_token: TokenSource | None = field(default=None, repr=False)
    ntlm_timestamp: int | None = None


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

    def reply(
        self,
        waiting_for: str,
        *,
        timeout: float | None = None,
        in_doubt: bool = False,
        tls_probe_after: float | None = None,
    ) -> Conversation[SmtpReply]:
        """Read until one complete reply is parsed (a building block of the
        conversation; :mod:`smtpcore.protocol.transaction` uses it too)."""
        continues = False
        conn = self.conn
        while True:
            event = conn.next_event()
            if type(event) is SmtpReply:
                return self._answer(event, waiting_for)
            if isinstance(event, ConnectionClosed):
                raise self._session_error(
                    EmailSessionReason.CONNECTION_LOST,
                    "the server closed the connection while we waited for "
                    + waiting_for,
                    in_doubt=in_doubt,
                )
            data = yield _read(
                timeout or self.policy.timeout,
                waiting_for,
                in_doubt,
                tls_probe_after,
                continues,
            )
            tls_probe_after = None  # something arrived: the port is not TLS
            continues = True
            conn.receive_data(data or b"")

    def replies(self, count: int, waiting_for: str) -> Conversation[list[SmtpReply]]:
        """:meth:`reply` ``count`` times, for the answers to a pipelined
        group: those already received are taken without a generator each."""
        replies: list[SmtpReply] = []
        conn = self.conn
        while len(replies) < count:
            # Only a reply is consumed here; NEED_DATA and ConnectionClosed
            # come back the same from reply()'s own next_event().
            event = conn.next_event()
            if type(event) is SmtpReply:
                replies.append(self._answer(event, waiting_for))
            else:
                replies.append((yield from self.reply(waiting_for)))
        return replies

    def _answer(self, reply: SmtpReply, waiting_for: str) -> SmtpReply:
        if reply.code == 421 and self.conn.state is State.CLOSED:
            # RFC 5321 3.8: the server is shutting the channel.
            raise self._session_error(
                EmailSessionReason.CONNECTION_LOST,
                f"the server is closing the connection ({reply}) while we "
                f"waited for {waiting_for}",
                reply=reply,
                # A 421 is an answer: whatever it answered was refused.
            )
        return reply

    def command(self, command: Command) -> Conversation[SmtpReply]:
        """Send one command and read its reply."""
        yield Write(self.conn.send(command))
        return (yield from self.reply(f"the reply to {command.verb}"))

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
            greeting = yield from self.reply("the greeting", tls_probe_after=probe)
        except SmtpProtocolError as exc:
            raise self._session_error(
                EmailSessionReason.INVALID_PORT,
                f"what answers on this port is not an SMTP server ({exc})",
            ) from exc
        self.greeting = greeting
        if greeting.code != 220:
            # RFC 5321 4.3.2: 220 is the greeting; after a 554 (or a 221,
            # "closing") the client sends QUIT, which may well fail too.
            with contextlib.suppress(SmtpCoreError):
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
        if self.policy.lmtp:
            # RFC 2033 4.1: LHLO, with no HELO-style fallback.
            reply = yield from self.command(Lhlo(self._hello_domain))
            if not reply.is_positive:
                raise SmtpCommandError(
                    SmtpErrorKind.UNEXPECTED_STATUS_CODE, reply, "LHLO"
                )
            return
        reply = yield from self.command(Ehlo(self._hello_domain))
        if reply.is_positive:
            return
        if not reply.is_permanent:
            raise SmtpCommandError(SmtpErrorKind.UNEXPECTED_STATUS_CODE, reply, "EHLO")
        # RFC 5321 3.2: a server without ESMTP refuses EHLO with 5yz and the
        # client falls back to HELO.
        reply = yield from self.command(Helo(self._hello_domain))
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
        reply = yield from self.command(StartTls())
        if reply.code == 221:
            # A server that answers "closing" ends the session.
            raise self._session_error(
                EmailSessionReason.CONNECTION_LOST,
                f"the server is closing the connection ({reply}) in answer to STARTTLS",
                reply=reply,
            )
        if reply.code != 220:  # RFC 3207 4: "220 Ready to start TLS" only
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
        mechanism = self._mechanism()
        reply = yield from self._sasl_exchange(mechanism)
        if not reply.is_positive and self._fresh_token_may_help(mechanism):
            # RFC 7628 3.2.3: an expired token fails; a callable is asked
            # again, once.
            mechanism = self._mechanism()
            reply = yield from self._sasl_exchange(mechanism)
        if not reply.is_positive:
            raise self._auth_error(reply)
        try:
            mechanism.complete()
        except ValueError as exc:
            # SCRAM: the server accepted us without proving it knows the
            # password (RFC 5802 9): it may not be the server we think.
            raise SmtpProtocolError(f"AUTH {mechanism.name.decode()}: {exc}") from exc

    def _mechanism(self) -> SaslMechanism:
        policy = self.policy
        assert policy.username is not None
        offered = self.conn.extensions.auth_mechanisms
        try:
            mechanism = choose_mechanism(
                offered,
                policy.username,
                policy.password,
                domain=policy.domain,
                oauth_token=policy.oauth_token,
                mechanism=policy.auth_mechanism,
                host=policy.host,
                port=policy.port,
                ntlm_timestamp=policy.ntlm_timestamp,
            )
        except ValueError as exc:
            # The credentials cannot be put into any usable mechanism (e.g.
            # SASLprep refuses them): nothing secret has been sent.
            raise ArgumentError("credentials", str(exc)) from exc
        if mechanism is None:
            shown = ", ".join(sorted(offered)) or "no AUTH at all"
            wanted = policy.auth_mechanism or ", ".join(
                OAUTH_PREFERENCE if policy.oauth_token is not None else PREFERENCE
            )
            raise self._session_error(
                EmailSessionReason.NO_COMMON_AUTH_MECHANISM,
                f"the server offers {shown}; smtpcore would use {wanted}",
            )
        return mechanism

    def _fresh_token_may_help(self, mechanism: SaslMechanism) -> bool:
        return callable(self.policy.oauth_token) and mechanism.name in (
            b"OAUTHBEARER",
            b"XOAUTH2",
        )

    def _sasl_exchange(self, mechanism: SaslMechanism) -> Conversation[SmtpReply]:
        """AUTH and its challenges (RFC 4954 4); returns the final reply."""
        reply = yield from self.command(
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
                yield from self.command(AuthCancel())
                if isinstance(exc, SaslServerFailure):
                    reason = (
                        EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE
                        if exc.temporary
                        else EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
                    )
                    name = mechanism.name.decode("ascii")
                    raise self._session_error(reason, f"AUTH {name}: {exc}") from exc
                raise SmtpProtocolError(f"bad AUTH challenge: {exc}") from exc
            reply = yield from self.command(AuthResponse(response))
        return reply

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

    def send(
        self, message: Outgoing, options: SendOptions | None = None
    ) -> Conversation[SendResult]:
        """One mail transaction (see :mod:`smtpcore.protocol.transaction`).

        Returns:
            The :class:`SendResult`.

        Raises:
            SmtpCommandError: sender, a recipient (by default any), or the
                message refused; the session stays usable.
            EmailSessionError: the connection was lost or timed out.
        """
        results: list[SendResult | Exception | None] = [None]
        yield from run_batch(self, [message], options or SendOptions(), results)
        result = results[0]
        if isinstance(result, Exception):
            raise result
        assert result is not None
        return result

    def send_batch(
        self,
        messages: Sequence[Outgoing | None],
        options: SendOptions,
        results: list[SendResult | Exception | None],
    ) -> Conversation[None]:
        """Several transactions, pipelined back to back where the server
        allows (see :func:`smtpcore.protocol.transaction.run_batch`)."""
        # The batch's own generator, not one wrapped around it: every reply
        # of the batch would pass through the wrapper too.
        return run_batch(self, messages, options, results)

    def transaction(
        self,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
        *,
        message_id: str | None = None,
        allow_partial: bool = False,
    ) -> Conversation[SendResult]:
        """:meth:`send` for a message given as its parts."""
        message = InMemoryMessage(content, sender, tuple(recipients), message_id)
        return (yield from self.send(message, SendOptions(allow_partial=allow_partial)))

    # ---------------------------------------------------------- the rest

    def reset(self) -> Conversation[SmtpReply]:
        """``RSET``; returns the reply."""
        return (yield from self.command(Rset()))

    def noop(self) -> Conversation[SmtpReply]:
        """``NOOP``; returns the reply."""
        return (yield from self.command(Noop()))

    def quit(self) -> Conversation[None]:
        """``QUIT`` and its reply (RFC 5321 4.1.1.10)."""
        yield Write(self.conn.send(Quit()))
        # A server that hangs up right after QUIT did what we asked.
        with contextlib.suppress(EmailSessionError):
            yield from self.reply("the reply to QUIT")
