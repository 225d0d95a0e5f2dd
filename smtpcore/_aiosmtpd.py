"""The aiosmtpd side of :mod:`smtpcore.testserver`: a recording SMTP
protocol, its handler (AUTH, refused recipients, PIPELINING) and controller.

Private to the test server; needs the ``test`` extra.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TlsMode = Literal["starttls", "implicit", "none"]

# Bounds on every wait, so a broken test fails instead of hanging the suite.
START_TIMEOUT = 5.0  # server thread up and its start() probe answered
STOP_TIMEOUT = 5.0  # connections dropped and the server thread joined
PROBE_TIMEOUT = 1.0  # aiosmtpd's own value for its start() probe
# Picking a free port, closing it and binding it again races with other
# processes; a handful of fresh picks makes a collision practically impossible.
PORT_ATTEMPTS = 3

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
            dot, after aiosmtpd removed the dot-stuffing (RFC 5321 4.5.2).
        mail_options: the MAIL FROM parameters (aiosmtpd upper-cases them).
        rcpt_options: the parameters of each accepted RCPT TO, in RCPT order.
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

    async def smtp_DATA(self, arg: str) -> None:
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


class Handler:
    """aiosmtpd handler hooks: EHLO keywords, AUTH, refusals, message capture."""

    def __init__(
        self,
        recorder: Recorder,
        users: Mapping[str, str] | None,
        pipelining: bool,
        refuse_recipients: Collection[str],
    ) -> None:
        self.recorder = recorder
        self.users = dict(users) if users is not None else None
        self.pipelining = pipelining
        self.refuse_recipients = frozenset(refuse_recipients)
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
        if self.users is None:
            head = [r for r in head if not r[4:].upper().startswith("AUTH")]
        if self.pipelining:
            # RFC 2920: aiosmtpd handles pipelined input but never says so.
            head.append("250-PIPELINING")
        return [*head, last]

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
        auth_data: object = session.auth_data
        self.recorder.add_message(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content,
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(groups),
                tls=server.tls_active,
                auth_user=auth_data if isinstance(auth_data, str) else None,
            )
        )
        return "250 OK"

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


class RecordingController(Controller):
    """aiosmtpd's threaded controller with our protocol and a known probe."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recording_handler = handler
        self.loop.set_exception_handler(quiet_client_failures)

    def factory(self) -> RecordingSMTP:
        return RecordingSMTP(self._recording_handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd's start() connects once to make sure factory() works.  Bind
        # first so the probe's address is known before the server can accept
        # it: that makes excluding it from the counts exact, not timing-based.
        host = self.hostname
        with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.bind((host, 0))
            address = sock.getsockname()
            self._recording_handler.recorder.probe_address = (address[0], address[1])
            sock.connect((host, self.port))
            if self.ssl_context is None:
                sock.recv(1024)
                return
            # The probe only checks that the server answers; verifying the
            # certificate is what the tests themselves do.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with context.wrap_socket(sock) as tls_sock:
                tls_sock.recv(1024)

    def stop(self, no_assert: bool = False) -> None:
        # aiosmtpd joins its thread without a timeout.
        self.loop.call_soon_threadsafe(self.cancel_tasks)
        thread = self._thread
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError("the SMTP server thread did not stop")


def quiet_client_failures(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    # Clients under test are meant to refuse bad certificates and to hang up
    # abruptly; asyncio would log each such handshake failure as an error.
    if isinstance(context.get("exception"), OSError):
        return
    loop.default_exception_handler(context)


def address_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str) -> int:
    with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
