"""``SmtpConnection``: the sans-IO SMTP client engine.

It turns commands into bytes and received bytes into replies, and keeps the
state that decides what may be sent next.  It does no I/O and knows no
clock; the caller moves the bytes (see :mod:`smtpcore.protocol.dialogue` for
the conversation built on it).

Errors are converted here and only here: a command the protocol does not
allow raises :class:`~smtpcore.errors.LocalProtocolError` before any byte
exists and leaves the state alone; anything the server does wrong raises
:class:`~smtpcore.errors.SmtpProtocolError` and breaks the connection for
good (state ``ERROR``).  A negative reply is not an error here: it is an
event like any other.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from typing import Final, NoReturn

from smtpcore.errors import LocalProtocolError, SmtpProtocolError
from smtpcore.protocol.commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Helo,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTls,
)
from smtpcore.protocol.data import DataEncoder, stuff_dots
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.replies import ReplyParser, SmtpReply
from smtpcore.protocol.state import (
    MUST_BE_LAST,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    Kind,
    Outcome,
    State,
)

__all__ = ["NEED_DATA", "ConnectionClosed", "NeedData", "SmtpConnection"]

transcript = logging.getLogger("smtpcore.transcript")

_KIND_OF: Final[dict[type[object], Kind]] = {
    Ehlo: Kind.EHLO,
    Helo: Kind.HELO,
    Lhlo: Kind.LHLO,
    StartTls: Kind.STARTTLS,
    Auth: Kind.AUTH,
    AuthResponse: Kind.AUTH,
    AuthCancel: Kind.AUTH,
    Mail: Kind.MAIL,
    Rcpt: Kind.RCPT,
    Data: Kind.DATA,
    Rset: Kind.RSET,
    Noop: Kind.NOOP,
    Quit: Kind.QUIT,
}


class NeedData:
    """Sentinel event: no complete reply yet; feed more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class ConnectionClosed:
    """Event: the server closed the connection (EOF) with no complete reply
    left to read.  ``partial`` is True if a reply was cut off midway."""

    __slots__ = ("partial",)

    def __init__(self, partial: bool) -> None:
        self.partial = partial

    def __repr__(self) -> str:
        return f"ConnectionClosed(partial={self.partial})"


Event = SmtpReply | NeedData | ConnectionClosed

# RFC 5321 4.3.2 and RFC 3207 4: the greeting and STARTTLS succeed with 220
# and nothing else; a 221 ("closing") or any other 2yz there is a refusal
# (a 3yz stays what it is: a reply these commands cannot have).
_ONLY_220 = frozenset({Kind.GREETING, Kind.STARTTLS})
# Replies whose success changes what the engine knows (see _learn).
_LEARNS = frozenset({Kind.EHLO, Kind.LHLO, Kind.HELO, Kind.STARTTLS})


def _outcome(kind: Kind, code: int) -> Outcome:
    if kind in _ONLY_220 and 200 <= code < 300 and code != 220:
        return Outcome.NEGATIVE
    if code < 300:
        return Outcome.POSITIVE
    if code < 400:
        return Outcome.INTERMEDIATE
    return Outcome.NEGATIVE


@functools.lru_cache(maxsize=1024)
def _transition(kind: Kind, code: int) -> tuple[bool, State | None]:
    """Whether a reply ``code`` may answer ``kind``, and the state it leads
    to (None: unchanged); looked up once per pair, as replies repeat."""
    key = (kind, _outcome(kind, code))
    return key in REPLY_TRANSITIONS, REPLY_TRANSITIONS.get(key)


def _log_line(command: Command) -> str:
    if isinstance(command, Auth):
        # Never log a SASL payload: PLAIN's initial response is the password.
        tail = "" if command.initial_response is None else " <redacted>"
        return "AUTH " + command.mechanism.decode("ascii") + tail
    if isinstance(command, AuthResponse):
        return "<redacted>"
    return command.to_bytes()[:-2].decode("utf-8", "replace")


class SmtpConnection:
    """The state of one SMTP client connection, without any I/O.

    Typical use: ``wire = conn.send(cmd)``; write ``wire``; feed whatever
    arrives to :meth:`receive_data` (``b""`` for EOF) and call
    :meth:`next_event` until it returns a reply instead of ``NEED_DATA``.
    """

    def __init__(self, *, tls: bool = False) -> None:
        """Args:
        tls: True when the transport already runs TLS (implicit TLS).
        """
        self._state = State.GREETING
        self._parser = ReplyParser()
        # The greeting is the first reply owed to us (RFC 5321 3.1).
        self._pending: deque[Kind] = deque([Kind.GREETING])
        self._extensions = Extensions.none()
        self._encoder: DataEncoder | None = None
        self._eof = False
        self.tls_active = tls

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def extensions(self) -> Extensions:
        """Capabilities from the last successful EHLO; empty after HELO and
        discarded on a TLS upgrade (RFC 3207 4.2)."""
        return self._extensions

    @property
    def pending(self) -> tuple[Kind, ...]:
        """What the outstanding replies will answer, oldest first."""
        return tuple(self._pending)

    @property
    def idle(self) -> bool:
        """True when ready for a new transaction with no reply outstanding."""
        return self._state is State.READY and not self._pending

    # ----------------------------------------------------------------- sending

    def send(self, command: Command) -> bytes:
        """Check ``command`` against the state and return its bytes.

        Args:
            command: the command to send.

        Returns:
            The bytes to write, CRLF included.

        Raises:
            LocalProtocolError: the command is not allowed now: wrong state,
                a reply outstanding that must be waited for, pipelining not
                offered, or an AUTH response without a 334 to answer.
        """
        kind = _KIND_OF.get(type(command))
        if kind is None:
            if isinstance(command, Bdat):
                raise LocalProtocolError("BDAT goes with its payload: use send_bdat()")
            raise LocalProtocolError(f"not an SMTP command: {command!r}")
        target = self._check_send(kind, command.verb)
        if kind is Kind.AUTH:
            if isinstance(command, Auth):
                if self._state is State.AUTH:
                    raise LocalProtocolError("AUTH is already in progress")
            elif self._state is not State.AUTH:
                raise LocalProtocolError("an AUTH response needs a 334 challenge first")
        elif kind is Kind.STARTTLS and self.tls_active:
            raise LocalProtocolError("TLS is already active")
        data = command.to_bytes()
        self._state = target
        self._pending.append(kind)
        if transcript.isEnabledFor(logging.DEBUG):
            transcript.debug("C: %s", _log_line(command))
        return data

    def send_bdat(self, payload: bytes, *, last: bool, replies: int = 1) -> bytes:
        """``BDAT <size> [LAST]`` followed by ``payload`` (RFC 3030 2).

        The payload goes out as given: BDAT needs no dot-stuffing, and line
        ends are the caller's business (see
        :func:`smtpcore.protocol.data.encode_bdat`).

        Args:
            payload: the next chunk of the message.
            last: True for the chunk that ends the message.
            replies: replies this chunk gets: one, or with LMTP one per
                accepted recipient for the last chunk (RFC 2033 4.2).

        Returns:
            The bytes to write: command line and payload.

        Raises:
            LocalProtocolError: BDAT is not allowed now.
        """
        command = Bdat(len(payload), last)
        kind = Kind.BDAT_LAST if last else Kind.BDAT
        self._state = self._check_send(kind, command.verb)
        self._pending.extend([kind] * (replies if last else 1))
        if transcript.isEnabledFor(logging.DEBUG):
            transcript.debug(
                "C: %s <%d octets>", command.to_bytes()[:-2].decode(), len(payload)
            )
        return command.to_bytes() + payload

    def send_content(
        self, data: bytes, *, end: bool = False, replies: int = 1, checked: bool = False
    ) -> bytes:
        """Encode message content for the wire (after ``354``).

        Line ends are normalised to CRLF and lines starting with "." are
        doubled (RFC 5321 4.5.2), also across calls.

        Args:
            data: the next piece of the raw message.
            end: True for the last piece: the end-of-data marker
                ``CRLF . CRLF`` is appended and the final reply becomes due.
            replies: how many final replies are due: one, or with LMTP one
                per accepted recipient (RFC 2033 4.2).
            checked: the caller guarantees ``data`` has CRLF line ends only,
                no NUL, no line over 998 octets, and ends with CRLF unless
                it is the last piece (a prepared message is checked when it
                is prepared): only the dots are stuffed then, which saves
                scanning a large message twice.

        Returns:
            The bytes to write.

        Raises:
            LocalProtocolError: not after a 354, or the content contains NUL
                or a line longer than 998 octets.  The caller must then drop
                the connection: closing without the marker is the only way
                to make the server discard a partial message.
        """
        if self._state is not State.CONTENT:
            raise LocalProtocolError(
                f"message content not allowed: {self._state.value}"
            )
        if checked and self._encoder is None:
            # RFC 5321 4.5.2: a line that starts with "." gets another one;
            # every piece starts at the start of a line.
            wire = stuff_dots(data)
            if end:
                ended = not data or data.endswith(b"\r\n")
                wire += b".\r\n" if ended else b"\r\n.\r\n"
        else:
            if self._encoder is None:
                self._encoder = DataEncoder()
            try:
                wire = self._encoder.feed(data)
                if end:
                    wire += self._encoder.finish()
            except ValueError as exc:
                self._state = State.ERROR
                raise LocalProtocolError(f"message content refused: {exc}") from exc
        if end:
            self._encoder = None
            self._check_send(Kind.CONTENT, "message content")
            self._state = State.CONTENT_DONE
            self._pending.extend([Kind.CONTENT] * replies)
            if transcript.isEnabledFor(logging.DEBUG):
                transcript.debug("C: <message content>")
        return wire

    def _check_send(self, kind: Kind, verb: str) -> State:
        target = SEND_TRANSITIONS[self._state].get(kind)
        if target is None:
            raise LocalProtocolError(f"{verb} not allowed: {self._state.value}")
        if self._pending:
            # RFC 2920 3.1: without PIPELINING the client waits for every
            # reply, and even with it some commands end a group.
            if not self._extensions.pipelining:
                raise LocalProtocolError(
                    f"{verb} not allowed before the reply to "
                    f"{self._pending[-1].value}: the server does not offer PIPELINING"
                )
            if self._pending[-1] in MUST_BE_LAST:
                raise LocalProtocolError(
                    f"{verb} must wait for the reply to {self._pending[-1].value}"
                )
        return target

    # --------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the server; ``b""`` means EOF.

        Raises:
            SmtpProtocolError: a reply line is longer than the parser's
                bound (checked as the bytes arrive).
        """
        if not data:
            self._eof = True
            return
        if self._state is State.TLS_UPGRADE:
            # RFC 3207 4.2: nothing may arrive between the 220 and the
            # handshake; plaintext here would be read as if it came over TLS.
            self._fail("data injected after the STARTTLS 220 reply")
        try:
            self._parser.feed(data)
        except SmtpProtocolError:
            self._state = State.ERROR
            raise

    def next_event(self) -> Event:
        """Return the next complete reply, ``NEED_DATA`` or ``ConnectionClosed``.

        Raises:
            SmtpProtocolError: the server broke the protocol: a malformed
                reply, a reply nobody asked for, a reply the command does
                not allow (e.g. 354 to MAIL), or bytes injected after the
                STARTTLS 220.
        """
        if self._state is State.ERROR:
            raise SmtpProtocolError(
                "the connection is broken by an earlier protocol error"
            )
        try:
            reply = self._parser.next_reply()
        except SmtpProtocolError:
            self._state = State.ERROR
            raise
        if reply is None:
            if self._eof:
                self._state = State.CLOSED
                return ConnectionClosed(partial=self._parser.buffered > 0)
            return NEED_DATA
        if transcript.isEnabledFor(logging.DEBUG):
            transcript.debug("S: %s", reply)
        self._on_reply(reply)
        return reply

    def _on_reply(self, reply: SmtpReply) -> None:
        pending = self._pending
        code = reply.code
        if not pending:
            if code == 421:
                # RFC 5321 3.8: a server may announce shutdown at any time.
                self._state = State.CLOSED
                return
            self._fail(f"unsolicited reply {reply}")
        kind = pending.popleft()
        valid, target = _transition(kind, code)
        if not valid:
            self._fail(f"reply {code} is not a valid answer to {kind.value}")
        if code == 421:
            # RFC 5321 3.8: 421 means the server is closing the channel.
            self._state = State.CLOSED
            pending.clear()
            return
        if target is not None and not pending:
            self._state = target
        if kind in _LEARNS and code < 300:
            self._learn(kind, reply)

    def _learn(self, kind: Kind, reply: SmtpReply) -> None:
        """What a positive reply to EHLO, LHLO, HELO or STARTTLS teaches."""
        if kind is Kind.EHLO or kind is Kind.LHLO:
            self._extensions = Extensions.from_ehlo(reply)
        elif kind is Kind.HELO:
            self._extensions = Extensions.none()
        elif self._parser.buffered:
            # STARTTLS.  RFC 3207 4.2 / CVE-2011-0411: bytes after the 220
            # were sent in clear and would be read as if they came over TLS.
            self._fail("data injected after the STARTTLS 220 reply")

    def _fail(self, message: str) -> NoReturn:
        self._state = State.ERROR
        raise SmtpProtocolError(message)

    # ---------------------------------------------------------------- TLS

    def tls_started(self) -> None:
        """Tell the engine the transport finished the TLS handshake.

        Everything learned before TLS is discarded and EHLO is due again
        (RFC 3207 4.2: "the client MUST discard any knowledge obtained from
        the server ... which was not obtained from the TLS negotiation").

        Raises:
            LocalProtocolError: no STARTTLS 220 was received.
        """
        if self._state is not State.TLS_UPGRADE:
            raise LocalProtocolError(f"no TLS upgrade is due: {self._state.value}")
        if self._parser.buffered:
            self._fail("data injected after the STARTTLS 220 reply")
        self._parser.clear()
        self._extensions = Extensions.none()
        self._state = State.HELLO
        self.tls_active = True
