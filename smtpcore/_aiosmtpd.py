"""The aiosmtpd side of :mod:`smtpcore.testserver`: a recording SMTP (or
LMTP) protocol with BDAT and RFC 2034 statuses, and its handler (AUTH,
refused recipients, the EHLO keywords and parameters of
:class:`ServerFeatures`).

Private to the test server; needs the ``test`` extra.  The SASL mechanisms
live in :mod:`smtpcore._aiosmtpd_ext`, the checks of the extensions in
:class:`smtpcore.testserver.ServerFeatures`.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import hmac
import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AnyStr, Literal

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from smtpcore._aiosmtpd_ext import SaslMechanisms
from smtpcore._aiosmtpd_replies import options_as_sent, with_enhanced_status

if TYPE_CHECKING:  # testserver imports this module; at run time no cycle
    from smtpcore.testserver import ServerFeatures

TlsMode = Literal["starttls", "implicit", "none"]

# RFC 3030 2: "BDAT" SP chunk-size [ SP end-marker ]; 20 digits exceed any
# size a test sends, and keep int() away from hostile lengths.
_BDAT_ARGUMENT = re.compile(r"([0-9]{1,20})(?:\s+(LAST))?", re.IGNORECASE)
# A BDAT chunk is read in pieces of this size, so that an oversized one is
# discarded as it arrives instead of being buffered whole.
_CHUNK_PIECE = 65536
# aiosmtpd logs this WARNING on every successful AUTH (its own AUTH code sets
# the deprecated attribute); unfiltered, it litters the ``demo`` output.
logging.getLogger("mail.log").addFilter(
    lambda record: not record.getMessage().startswith("Session.login_data")
)


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message the server accepted (250 after the final dot).

    Attributes:
        mail_from: the reverse path from MAIL FROM, without angle brackets.
        rcpt_tos: the accepted forward paths, in RCPT order.
        data: the message content exactly as sent between DATA and the final
            dot, after aiosmtpd removed the dot-stuffing (RFC 5321 4.5.2);
            or the BDAT chunks joined (RFC 3030: no dot-stuffing there).
        mail_options: the MAIL FROM parameters (aiosmtpd upper-cases them;
            with ``dsn`` only the keywords, as RFC 3461 xtext values are
            case-sensitive).
        rcpt_options: the parameters of each accepted RCPT TO, in RCPT order.
            With LMTP, ``rcpt_tos`` and ``rcpt_options`` list only the
            recipients whose final reply was positive.
        tls: the transaction ran over TLS.
        auth_user: the authenticated login, or None.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    rcpt_options: tuple[tuple[str, ...], ...]
    tls: bool
    auth_user: str | None

    def parsed(self) -> email.message.EmailMessage:
        """Parse ``data`` with the stdlib email package.

        Returns:
            The message, parsed with ``email.policy.default``.
        """
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        # policy.default makes the parser build EmailMessage, not Message.
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """One command line the server read.

    Attributes:
        line: the line as received, without its CRLF (undecodable bytes are
            kept as surrogate escapes).  AUTH lines are kept: they carry the
            test's own throw-away password.
        tls: the line arrived over TLS.
    """

    line: str
    tls: bool


@dataclass(slots=True)
class ConnectionRecord:
    """What one client connection did; mutated in the server thread only."""

    is_probe: bool
    commands: list[ReceivedCommand] = field(default_factory=list)


class Recorder:
    """Shared state between the server thread and the test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: list[ConnectionRecord] = []
        self._messages: list[ReceivedMessage] = []
        # Local address of aiosmtpd's start() probe, known before it connects.
        self.probe_address: tuple[str, int] | None = None

    def open(self) -> ConnectionRecord:
        with self._lock:
            record = ConnectionRecord(is_probe=False)
            self._records.append(record)
            return record

    def identify(self, record: ConnectionRecord, peer: tuple[str, int]) -> None:
        with self._lock:
            if peer == self.probe_address:
                record.is_probe = True
                # The probe connects once; a later client on the same port
                # (after TIME_WAIT) is a real client.
                self.probe_address = None

    def add_command(self, record: ConnectionRecord, command: ReceivedCommand) -> None:
        with self._lock:
            record.commands.append(command)

    def add_message(self, message: ReceivedMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def sessions(self) -> list[list[ReceivedCommand]]:
        with self._lock:
            return [list(r.commands) for r in self._records if not r.is_probe]

    def wait_for_messages(self, count: int, timeout: float) -> list[ReceivedMessage]:
        with self._changed:
            self._changed.wait_for(lambda: len(self._messages) >= count, timeout)
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._messages.clear()


class RecordingEnvelope(Envelope):
    """aiosmtpd's envelope plus the parameters of each RCPT separately.

    aiosmtpd concatenates all RCPT parameters into one flat list, which loses
    which recipient carried which NOTIFY or ORCPT.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rcpt_option_groups: list[tuple[str, ...]] = []
        # RFC 3030: the BDAT chunks so far; a refused chunk refuses the rest
        # of the transaction; BODY=BINARYMIME forbids DATA.
        self.chunks: list[bytes] = []
        self.chunk_failed = False
        self.binarymime = False


class CommandReader(asyncio.StreamReader):
    """A StreamReader that reports each line read while a command is awaited."""

    on_line: Callable[[bytes], None] | None = None
    _skip_tail = False

    # Any: the separator is passed through unchanged, and its accepted types
    # differ between Python versions (3.13 takes a tuple of separators).
    async def readuntil(self, separator: Any = b"\n") -> bytes:
        try:
            line = await super().readuntil(separator)
        except asyncio.LimitOverrunError:
            # aiosmtpd answers 500 to an over-long line and reads its rest
            # with readuntil() again: that rest is not a command of its own.
            self._skip_tail = True
            raise
        if self._skip_tail:
            self._skip_tail = False
        elif self.on_line is not None:
            self.on_line(line)
        return line


class CommandReaderProtocol(asyncio.StreamReaderProtocol):
    """Puts a CommandReader under aiosmtpd's SMTP, which builds its own reader.

    It sits between SMTP and StreamReaderProtocol in the MRO, so SMTP's
    ``super().__init__(StreamReader(...))`` lands here.  Recording at the
    reader sees every command line, including those aiosmtpd refuses before
    dispatching them (530 before STARTTLS, 500 unknown command): exactly the
    lines a test needs to prove a client never sent.
    """

    line_length_limit: int  # provided by aiosmtpd.smtp.SMTP

    def __init__(
        self,
        stream_reader: asyncio.StreamReader,
        client_connected_cb: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.command_reader = CommandReader(limit=self.line_length_limit, loop=loop)
        super().__init__(self.command_reader, client_connected_cb, loop)


class RecordingSMTP(SMTP, CommandReaderProtocol):
    """aiosmtpd's SMTP protocol that records its connection and commands."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._handler = handler
        # aiosmtpd builds one protocol per accepted TCP connection, before any
        # TLS handshake: a client that rejects the certificate still counts.
        self._record = handler.recorder.open()
        self._connected = False
        # Lines read inside DATA or AUTH are message content or SASL
        # responses, not commands.
        self._in_payload = False
        # The verb being answered (RFC 2034 decoration), and the verb and
        # raw argument of the MAIL or RCPT being parsed.
        self._verb = ""
        self._params_of = ("", "")
        self.connection_closed: asyncio.Future[None] = self.loop.create_future()
        self.command_reader.on_line = self._on_line

    @property
    def tls_active(self) -> bool:
        """The transport is TLS (implicit, or after a STARTTLS handshake)."""
        transport = self.transport
        return (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )

    def _on_line(self, line: bytes) -> None:
        if self._in_payload:
            return
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith(b"\n"):
            line = line[:-1]
        text = line.decode("utf-8", "surrogateescape")
        self._verb = text.split(" ", 1)[0].upper()
        command = ReceivedCommand(text, self.tls_active)
        self._handler.recorder.add_command(self._record, command)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiosmtpd calls this again after the STARTTLS handshake: same client.
        if not self._connected:
            self._connected = True
            peer = transport.get_extra_info("peername")
            self._handler.recorder.identify(self._record, (peer[0], peer[1]))
            self._handler.live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._handler.live.discard(self)
            if not self.connection_closed.done():
                self.connection_closed.set_result(None)

    def _create_envelope(self) -> Envelope:
        return RecordingEnvelope()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and self._handler.features.enhancedstatuscodes:
            await super().push(with_enhanced_status(status, self._verb))
        else:
            await super().push(status)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._params_of = ("MAIL", arg or "")
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self._params_of = ("RCPT", arg or "")
        await super().smtp_RCPT(arg)

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        # aiosmtpd refuses every parameter it does not know with 555 before
        # any handler hook runs; let through those of our extensions.
        result = super()._getparams(params)
        if result is not None:
            verb, features = self._params_of[0], self._handler.features
            for name in features.extension_params(verb):
                result.pop(name, None)
            binary = result.get("BODY") == "BINARYMIME"
            if verb == "MAIL" and features.chunking and binary:
                result.pop("BODY")
        return result

    def options_as_sent(self, options: list[str]) -> list[str]:
        """The MAIL or RCPT parameters being handled, values as sent with DSN."""
        if not self._handler.features.dsn:
            return options
        return options_as_sent(options, self._params_of[1])

    async def smtp_BDAT(self, arg: str | None) -> None:
        """RFC 3030 2: ``BDAT size [LAST]``, then exactly ``size`` octets."""
        if not self._handler.features.chunking:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        match = _BDAT_ARGUMENT.fullmatch(arg or "")
        if match is None:
            # Without a size nobody knows where the chunk ends.
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        envelope = self.envelope
        assert isinstance(envelope, RecordingEnvelope)
        limit = self.data_size_limit
        room = limit - sum(map(len, envelope.chunks)) if limit else None
        # The chunk is read before any refusal: its octets are not commands.
        chunk = await self._read_chunk(int(match[1]), room)
        if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
            return
        if not envelope.rcpt_tos or envelope.chunk_failed:
            await self.push("503 5.5.1 Error: no valid recipients, or BDAT failed")
            return
        if chunk is None:
            envelope.chunk_failed = True
            await self.push("552 5.3.4 Error: message size exceeds fixed maximum")
            return
        envelope.chunks.append(chunk)
        if match[2] is None:
            await self.push(f"250 2.0.0 {len(chunk)} octets received")
            return
        envelope.content = envelope.original_content = b"".join(envelope.chunks)
        # The same handling as after DATA's final dot.
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
        await self.push(status)

    async def _read_chunk(self, size: int, room: int | None) -> bytes | None:
        """Read exactly ``size`` octets; None (after reading them all) when
        they do not fit in ``room``."""
        fits = room is None or size <= room
        kept = bytearray()
        remaining = size
        while remaining:
            piece = await self._reader.readexactly(min(remaining, _CHUNK_PIECE))
            remaining -= len(piece)
            if fits:
                kept += piece
        return bytes(kept) if fits else None

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if isinstance(envelope, RecordingEnvelope) and (
            envelope.chunks or envelope.binarymime
        ):
            # RFC 3030 2 and 3: no DATA in a BDAT transaction, nor for a
            # BINARYMIME body.
            await self.push("503 5.5.1 Error: this transaction must use BDAT")
            return
        self._in_payload = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_payload = False

    async def smtp_AUTH(self, arg: str) -> None:
        self._in_payload = True
        try:
            await super().smtp_AUTH(arg)
        finally:
            self._in_payload = False

    def abort(self) -> None:
        """Close the connection at once, TLS or not, without a goodbye."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport):
            # abort(), not close(): close() on a TLS transport waits for the
            # client's close_notify, which an idle client never sends.
            transport.abort()
        elif transport is not None:
            transport.close()


class RecordingLMTP(LMTP, RecordingSMTP):
    """The recording protocol speaking LMTP (RFC 2033 4.1): aiosmtpd's LHLO,
    and HELO and EHLO refused with 500."""


class Handler(SaslMechanisms):
    """aiosmtpd handler hooks: EHLO keywords, AUTH, parameters, refusals,
    message capture."""

    def __init__(
        self,
        recorder: Recorder,
        users: Mapping[str, str] | None,
        pipelining: bool,
        refuse_recipients: Collection[str],
        *,
        features: ServerFeatures,
        tokens: Mapping[str, str] | None = None,
        scram_bad_signature: bool = False,
    ) -> None:
        super().__init__(users, tokens, scram_bad_signature=scram_bad_signature)
        self.recorder = recorder
        self.pipelining = pipelining
        self.refuse_recipients = frozenset(refuse_recipients)
        self.features = features
        # Open connections; touched in the server thread only.
        self.live: set[RecordingSMTP] = set()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # The five-argument hook replaces aiosmtpd's own bookkeeping.
        session.host_name = hostname
        *head, last = responses
        if self.users is None and self.tokens is None:
            head = [r for r in head if not r[4:].upper().startswith("AUTH")]
        if not self.features.eightbitmime:
            head = [r for r in head if r[4:].upper() != "8BITMIME"]
        if self.pipelining:
            # RFC 2920: aiosmtpd handles pipelined input but never says so.
            head.append("250-PIPELINING")
        tls = isinstance(server, RecordingSMTP) and server.tls_active
        head += [f"250-{name}" for name in self.features.ehlo_keywords(tls=tls)]
        return [*head, last]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        tls = False
        if isinstance(server, RecordingSMTP):
            mail_options, tls = server.options_as_sent(mail_options), server.tls_active
        problem = self.features.mail_problem(mail_options, tls=tls)
        if problem is not None:
            return problem
        # What aiosmtpd does without this hook.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        if isinstance(envelope, RecordingEnvelope):
            envelope.binarymime = "BODY=BINARYMIME" in map(str.upper, mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        if isinstance(server, RecordingSMTP):
            rcpt_options = server.options_as_sent(rcpt_options)
        problem = self.features.rcpt_problem(rcpt_options)
        if problem is not None:
            return problem
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        if isinstance(envelope, RecordingEnvelope):
            envelope.rcpt_option_groups.append(tuple(rcpt_options))
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(server, RecordingSMTP)
        assert envelope.mail_from is not None
        assert envelope.original_content is not None
        groups = (
            envelope.rcpt_option_groups
            if isinstance(envelope, RecordingEnvelope)
            else []
        )
        recipients = list(zip(envelope.rcpt_tos, groups, strict=True))
        replies = ["250 OK"]
        if self.features.lmtp:
            # RFC 2033 4.2: one reply per accepted recipient; the message is
            # delivered to those with a positive one.
            replies = self.features.lmtp_replies(envelope.rcpt_tos)
            recipients = [
                r for r, s in zip(recipients, replies, strict=True) if s[0] == "2"
            ]
        auth_data: object = session.auth_data
        if recipients:
            self.recorder.add_message(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(rcpt for rcpt, _ in recipients),
                    data=envelope.original_content,
                    mail_options=tuple(envelope.mail_options),
                    rcpt_options=tuple(options for _, options in recipients),
                    tls=server.tls_active,
                    auth_user=auth_data if isinstance(auth_data, str) else None,
                )
            )
        return "\r\n".join(replies)

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd authenticator: check a LoginPassword against ``users``."""
        if self.users is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            login = auth_data.login.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        expected = self.users.get(login)
        if expected is None or not hmac.compare_digest(
            expected.encode("utf-8"), auth_data.password
        ):
            # handled=False makes aiosmtpd answer 535 5.7.8 (RFC 4954 6).
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login)
