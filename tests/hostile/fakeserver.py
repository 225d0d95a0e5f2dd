"""A scriptable hostile SMTP server for the tests in this package.

Its conversation follows the fake-mail-server of the Email Analysis Toolkit
(EAST: https://github.com/Email-Analysis-Toolkit/fake-mail-server,
``src/smtp/mod.rs`` and ``src/smtp/config.rs`` at commit cbd323cf, MIT OR
Apache-2.0), so that the EAST test cases replay as written: a configurable
greeting, capabilities before and after TLS, the STARTTLS response and
whether TLS really starts after it, commands ignored once TLS is up,
commands "hidden" (answered ``502``) and raw per-command response overrides
(which, as in EAST, replace the whole handling of the command: an
overridden STARTTLS never starts TLS).

On top of that it misbehaves at a chosen :data:`Point` of a transaction
(:class:`Fault`: close, ``421`` and close, go silent, or answer one byte at a
time), for the fault and timeout tests.

It records every line it read, whether the line came over TLS and whether
more bytes were already waiting behind it (the client pipelined), and every
message content byte for byte, so tests judge the client by what reached the
server.  Records are written before the reply goes out: once a client has a
reply, the line it answered is on record.

It runs on :class:`tests.rawserver.RawServer` (one thread per connection,
loopback only).  Every wait is bounded; leaving the ``with`` block waits for
the connection scripts to end (clients must have hung up by then).
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, get_args

from tests.hostile.peer import Peer
from tests.rawserver import RawConnection, RawServer

__all__ = [
    "POINTS",
    "SHUTDOWN",
    "Behaviour",
    "FakeServer",
    "Fault",
    "FaultAction",
    "Point",
    "Seen",
    "Session",
    "verb_of",
]

# Where a fault can strike: right after the greeting went out, or on reading
# the named command (EHLO_TLS is the EHLO after STARTTLS, RCPT1 and RCPT2 the
# first and second RCPT), after BODY_READ octets of message content (BODY),
# or after the whole content (FINAL, where the final reply is due).
Point = Literal[
    "GREETING",
    "EHLO",
    "STARTTLS",
    "EHLO_TLS",
    "AUTH",
    "MAIL",
    "RCPT1",
    "RCPT2",
    "DATA",
    "BODY",
    "FINAL",
]
POINTS: tuple[Point, ...] = get_args(Point)

# "dribble" answers normally, one octet every ``Fault.interval`` seconds.
FaultAction = Literal["close", "421", "silence", "dribble"]

SHUTDOWN = b"421 4.3.2 Service shutting down\r\n"

# EAST's own texts (src/smtp/config.rs defaults, src/smtp/mod.rs replies).
EAST_GREETING = b"220 smtp.example.com ESMTP fake\r\n"
EAST_STLS_RESPONSE = b"220 Ready to start TLS\r\n"

# The points named after the command that reaches them.
_COMMAND_POINTS: dict[str, Point] = {
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH",
    "MAIL": "MAIL",
    "DATA": "DATA",
}

# How much message content BODY reads before it misbehaves.
BODY_READ = 65536

# Same bounds as tests.rawserver: a broken test fails instead of hanging.
_FINISH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Fault:
    """Misbehave at ``at`` on the first ``connections`` connections.

    Attributes:
        at: the point of the transaction.
        action: what to do there.
        connections: how many connections, counted from the first, misbehave;
            later ones are served normally (to test reconnecting).
        interval: for ``"dribble"``, the seconds between two octets.
    """

    at: Point
    action: FaultAction
    connections: int = 1
    interval: float = 1.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the server does; the field names are EAST's configuration keys.

    Attributes:
        greeting: sent on connecting.
        capabilities: EHLO keywords before TLS, one line each.
        capabilities_tls: EHLO keywords after STARTTLS.
        stls_response: the whole answer to STARTTLS, sent in one write
            (EAST's B_1 case appends forged lines to it).
        stls_make_transition: start TLS after answering STARTTLS.
        ignore_commands_tls: verbs never answered once TLS is up.
        hide_commands: verbs answered ``502 command not recognized``.
        override_response: verb -> raw answer replacing its handling.
        after_stls: plaintext sent ``after_stls_delay`` seconds after the
            STARTTLS answer, before TLS starts (injection racing the
            handshake).
        after_stls_delay: see ``after_stls``.
        stls_failure: instead of the TLS handshake after the STARTTLS
            answer: ``"close"`` the connection, send ``"garbage"`` (plain
            text where the ServerHello belongs) or stay in ``"silence"``.
        fault: misbehaviour at one point, or None.
    """

    greeting: bytes = EAST_GREETING
    capabilities: tuple[str, ...] = ("STARTTLS",)
    capabilities_tls: tuple[str, ...] = ("AUTH PLAIN",)
    stls_response: bytes = EAST_STLS_RESPONSE
    stls_make_transition: bool = True
    ignore_commands_tls: tuple[str, ...] = ()
    hide_commands: tuple[str, ...] = ()
    override_response: tuple[tuple[str, bytes], ...] = ()
    after_stls: bytes = b""
    after_stls_delay: float = 0.0
    stls_failure: Literal["close", "garbage", "silence"] | None = None
    fault: Fault | None = None

    def override(self, verb: str) -> bytes | None:
        """The raw answer that replaces a command's handling.

        Args:
            verb: the command verb, upper-case.

        Returns:
            The answer, or None when the command is handled normally.
        """
        for key, value in self.override_response:
            if key.upper() == verb:
                return value
        return None


def verb_of(line: bytes) -> str:
    """The verb of a command line: ``b"MAIL FROM:<a@b>"`` -> ``"MAIL"``.

    Args:
        line: the line, without CRLF.

    Returns:
        The verb, upper-case (undecodable octets replaced).
    """
    head = line.split(b" ", 1)[0].split(b":", 1)[0]
    return head.decode("ascii", "replace").upper()


@dataclass(frozen=True, slots=True)
class Seen:
    """One line the server read.

    Attributes:
        line: the line without its CRLF (AUTH payload lines included).
        tls: it came over TLS.
        pipelined: more bytes had already arrived behind it, i.e. the
            client sent the next command before this one was answered.
    """

    line: bytes
    tls: bool
    pipelined: bool

    @property
    def verb(self) -> str:
        """The command verb, upper-cased."""
        return verb_of(self.line)


@dataclass(slots=True)
class Session:
    """What one client connection did (written by its server thread only).

    Attributes:
        seen: every line read, in order.
        contents: each message content as received, terminator included
            (for BODY, the part read before misbehaving).
        tls: TLS was started on the connection.
        plaintext_at_upgrade: bytes the client had sent after STARTTLS
            before the handshake (a client must send none).
        handshake_failed: the server side of the TLS handshake failed.
        unread: what the client sent that was not a whole line when it hung
            up (e.g. a ClientHello the server never answered).
    """

    seen: list[Seen] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)
    tls: bool = False
    plaintext_at_upgrade: bytes = b""
    handshake_failed: bool = False
    unread: bytes = b""

    def verbs(self) -> list[str]:
        """The verbs of every line read, in order."""
        return [seen.verb for seen in self.seen]

    def in_clear(self) -> list[str]:
        """The verbs of the lines read before TLS."""
        return [seen.verb for seen in self.seen if not seen.tls]

    @property
    def tls_probe(self) -> bool:
        """The connection only sent a TLS ClientHello (a record of type 22,
        RFC 8446 5.1): a client that got no greeting within its window
        checking for implicit TLS, not a session."""
        return not self.seen and self.unread.startswith(b"\x16\x03")


class _Conversation:
    """The server's side of one connection."""

    def __init__(
        self,
        peer: Peer,
        behaviour: Behaviour,
        context: ssl.SSLContext | None,
        session: Session,
        faulty: bool,
    ) -> None:
        self.peer = peer
        self.behaviour = behaviour
        self.context = context
        self.session = session
        self.fault = behaviour.fault if faulty else None
        self.rcpts = 0

    # ----------------------------------------------------------- primitives

    def _misbehave(self, point: Point) -> bool:
        """Act out the fault if it is at ``point``; True if the connection
        must end now."""
        fault = self.fault
        if fault is None or fault.at != point or fault.action == "dribble":
            return False
        if fault.action == "421":
            self.peer.send(SHUTDOWN)
        elif fault.action == "silence":
            self.peer.hold()
        return True

    def _reply(self, data: bytes, point: Point | None = None) -> None:
        fault = self.fault
        interval = None
        if fault is not None and fault.action == "dribble" and fault.at == point:
            interval = fault.interval
        self.peer.send(data, interval)

    def _read_line(self) -> bytes | None:
        line = self.peer.read_line()
        if line is None:
            self.session.unread = self.peer.take_buffered()
        else:
            self.session.seen.append(
                Seen(line, self.session.tls, pipelined=self.peer.buffered > 0)
            )
        return line

    # ----------------------------------------------------------- the script

    def run(self) -> None:
        behaviour = self.behaviour
        self._reply(behaviour.greeting, "GREETING")
        if self._misbehave("GREETING"):
            return
        while (line := self._read_line()) is not None:
            verb = verb_of(line)
            if self.session.tls and verb in _upper(behaviour.ignore_commands_tls):
                continue
            point = self._point_of(verb)
            if point is not None and self._misbehave(point):
                return
            if verb in _upper(behaviour.hide_commands):
                self._reply(b"502 command not recognized\r\n", point)
                continue
            override = behaviour.override(verb)
            if override is not None:
                self._reply(override, point)
                continue
            if not self._answer(verb, line, point):
                return

    def _point_of(self, verb: str) -> Point | None:
        if verb == "EHLO":
            return "EHLO_TLS" if self.session.tls else "EHLO"
        if verb == "RCPT":
            self.rcpts += 1
            return "RCPT1" if self.rcpts == 1 else "RCPT2" if self.rcpts == 2 else None
        return _COMMAND_POINTS.get(verb)

    def _answer(self, verb: str, line: bytes, point: Point | None) -> bool:
        """EAST's default handling of one command; False ends the session."""
        if verb == "EHLO":
            caps = (
                self.behaviour.capabilities_tls
                if self.session.tls
                else self.behaviour.capabilities
            )
            self._reply(_ehlo_reply(caps), point)
        elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
            self._reply(b"250 ...\r\n", point)
        elif verb == "DATA":
            return self._data(point)
        elif verb == "QUIT":
            self._reply(b"221 ...\r\n", point)
            return False
        elif verb == "STARTTLS":
            return self._starttls(point)
        elif verb == "AUTH":
            return self._auth(line, point)
        else:
            self._reply(b"500 5.5.2 command not recognized\r\n", point)
        return True

    def _data(self, point: Point | None) -> bool:
        self._reply(b"354 ...\r\n", point)
        fault = self.fault
        if fault is not None and fault.at == "BODY" and fault.action != "dribble":
            content = self.peer.read_content(limit=BODY_READ)
            if content is not None:
                self.session.contents.append(content)
            self._misbehave("BODY")
            return False
        content = self.peer.read_content()
        if content is None:
            return False
        self.session.contents.append(content)
        if self._misbehave("FINAL"):
            return False
        self._reply(b"250 ...\r\n", "FINAL")
        return True

    def _starttls(self, point: Point | None) -> bool:
        behaviour = self.behaviour
        self._reply(behaviour.stls_response, point)
        if behaviour.after_stls:
            time.sleep(behaviour.after_stls_delay)
            self.peer.send(behaviour.after_stls)
        if not behaviour.stls_make_transition:
            return True
        if behaviour.stls_failure is not None:
            # Garbage answers the ClientHello: sent with the 220 it would
            # be an injection, a different failure.
            if behaviour.stls_failure == "garbage" and self.peer.wait_for_data():
                self.peer.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            if behaviour.stls_failure != "close":
                self.peer.hold()
            return False
        if self.context is None:
            raise RuntimeError("STARTTLS needs a server context")
        self.session.plaintext_at_upgrade = self.peer.take_buffered()
        try:
            self.peer.start_tls(self.context)
        except OSError:
            self.session.handshake_failed = True
            return False
        self.session.tls = True
        return True

    def _auth(self, line: bytes, point: Point | None) -> bool:
        words = line.split()
        mechanism = words[1].upper() if len(words) > 1 else b""
        initial = words[2] if len(words) > 2 else None
        if mechanism == b"PLAIN":
            if initial is None:
                self._reply(b"334 \r\n", point)
                if self._read_line() is None:
                    return False
        elif mechanism == b"LOGIN":
            if initial is None:
                self._reply(b"334 VXNlcm5hbWU6\r\n", point)
                if self._read_line() is None:
                    return False
            self._reply(b"334 UGFzc3dvcmQ6\r\n", point)
            if self._read_line() is None:
                return False
        elif initial is None:
            # Beyond EAST: any other mechanism that sends everything in its
            # initial response (XOAUTH2, OAUTHBEARER) is accepted as well.
            self._reply(b"504 5.5.4 mechanism not supported\r\n", point)
            return True
        self._reply(b"235 ...\r\n", point)
        return True


def _upper(verbs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(verb.upper() for verb in verbs)


def _ehlo_reply(capabilities: tuple[str, ...]) -> bytes:
    """EAST's EHLO reply: ``250-example.org ...`` then one line per keyword."""
    lines = [b"example.org ...", *(cap.encode("ascii") for cap in capabilities)]
    *head, last = lines
    out = [b"250-" + item + b"\r\n" for item in head]
    return b"".join([*out, b"250 " + last + b"\r\n"])


class FakeServer:
    """The hostile server on 127.0.0.1.

    One server can serve many tests in turn: :meth:`reset` gives it a new
    behaviour and forgets the records, which is much cheaper than a new
    listener per test.

    Args:
        behaviour: what it does.
        context: the server-side TLS context for STARTTLS.
        receive_buffer: SO_RCVBUF of accepted connections (a small one makes
            a server that stops reading push back on the client soon).

    Attributes:
        port: where it listens (after ``__enter__``).
        behaviour: what it does with the next connection.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        context: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self._context = context
        self._lock = threading.Condition()
        self._sessions: list[Session] = []
        self._active = 0
        self._raw = RawServer(self._script, receive_buffer=receive_buffer)

    @property
    def port(self) -> int:
        """The listening port."""
        return self._raw.port

    @property
    def sessions(self) -> list[Session]:
        """One record per connection since the last reset, in the order they
        were accepted, leaving out implicit-TLS probes (which a client only
        makes when a loaded machine delays the greeting past its window).

        Waits (5 s at most) until every connection has ended: clients must
        have hung up, and then everything they sent is on record.
        """
        with self._lock:
            self._lock.wait_for(lambda: self._active == 0, _FINISH_TIMEOUT)
            return [session for session in self._sessions if not session.tls_probe]

    @property
    def sessions_now(self) -> list[Session]:
        """The records so far, without waiting (for a client still
        connected; what it sent before its last reply is on record)."""
        with self._lock:
            return list(self._sessions)

    def reset(
        self, behaviour: Behaviour | None = None, context: ssl.SSLContext | None = None
    ) -> None:
        """Serve the next connections differently and forget every record.

        Args:
            behaviour: what to do (default: EAST's setup case).
            context: the server-side TLS context for STARTTLS.
        """
        with self._lock:
            self.behaviour = behaviour if behaviour is not None else Behaviour()
            self._context = context
            self._sessions = []

    def __enter__(self) -> FakeServer:
        self._raw.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Scripts end when their client hangs up; wait for that so that every
        # line a client sent is on record before the test looks.
        with self._lock:
            self._lock.wait_for(lambda: self._active == 0, _FINISH_TIMEOUT)
        self._raw.__exit__(exc_type, exc, tb)

    def _script(self, conn: RawConnection) -> None:
        with self._lock:
            behaviour, context = self.behaviour, self._context
            index = len(self._sessions)
            session = Session()
            self._sessions.append(session)
            self._active += 1
        peer = Peer(conn)
        fault = behaviour.fault
        faulty = fault is not None and index < fault.connections
        try:
            _Conversation(peer, behaviour, context, session, faulty).run()
        finally:
            peer.close()
            with self._lock:
                self._active -= 1
                self._lock.notify_all()
