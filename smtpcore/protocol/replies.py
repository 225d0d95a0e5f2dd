"""SMTP replies: the reply value object and the bounded, incremental parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpcore.errors import (
    LocalProtocolError,
    PropertyValueOutOfRangeError,
    SmtpProtocolError,
)

__all__ = ["MAX_LINE_LENGTH", "MAX_REPLY_LINES", "ReplyParser", "SmtpReply"]

# RFC 5321 4.5.3.1.5 limits a reply line to 512 octets including CRLF, but
# real servers exceed it (long EHLO AUTH lines, verbose 5xx texts); accept up
# to 8192 octets of text like smtplib's _MAXLINE, and no more, so that a server
# streaming one endless line cannot make us buffer without limit.
MAX_LINE_LENGTH: int = 8192

# An EHLO reply, the longest reply in practice, has about 20 lines.  512 leaves
# room for any sane server while bounding one reply at 512 * 8194 bytes
# (4 MiB), so a server sending "250-" lines forever is cut off.
MAX_REPLY_LINES: int = 512


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One complete server reply.

    Attributes:
        code: the three-digit reply code.
        lines: the text of each reply line, without code, separator or CRLF.
        enhanced_status: the RFC 3463 status (``"5.1.1"``) if the first line
            starts with one whose class matches the code, else None.  The
            status is kept in ``lines`` as well, exactly as the server sent it.
    """

    code: int
    lines: tuple[bytes, ...] = ()
    enhanced_status: str | None = None

    @property
    def text(self) -> str:
        """The reply text, lines joined with ``\\n``, decoded leniently."""
        return "\n".join(line.decode("utf-8", "replace") for line in self.lines)

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server waits for more (DATA's 354, AUTH's 334)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a temporary failure; the same command may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


# --------------------------------------------------------------------------
# The parser.
# --------------------------------------------------------------------------

_CR = 0x0D
_SP = 0x20
_DASH = 0x2D
_DIGIT_0 = 0x30
_DIGIT_9 = 0x39
_DIGIT_2 = 0x32
_DIGIT_5 = 0x35

# RFC 3463 2: status-code = class "." subject "." detail, class 2/4/5, subject
# and detail 1-3 digits.  The class is matched against the reply code by the
# caller; "(?: |\Z)" refuses "5.1.1x" and "5.1.1234".
_ENHANCED_STATUS = re.compile(rb"[245]\.[0-9]{1,3}\.[0-9]{1,3}(?= |\Z)")

# Distinct single-line replies remembered per parser (see ReplyParser._known).
_KNOWN_MAX = 64

# How much of an offending line an error message shows.
_SHOW = 80


def _show(line: bytes | bytearray) -> str:
    """Return ``line`` repr-escaped and cut to ~80 bytes for an error message."""
    shown = repr(bytes(line[:_SHOW]))
    return shown + "..." if len(line) > _SHOW else shown


def _enhanced_status(code_digit: int, text: bytes) -> str | None:
    """Return the RFC 3463 status at the start of ``text``, or None.

    RFC 2034 3 makes the reply code authoritative: a status whose class
    differs from the code's first digit is ignored rather than trusted.
    """
    # Cheap pre-check so the usual reply without a status never runs the regex.
    if len(text) < 5 or text[0] != code_digit or text[1] != 0x2E:
        return None
    match = _ENHANCED_STATUS.match(text)
    return None if match is None else match.group().decode("ascii")


class ReplyParser:
    """Incremental, bounded parser of SMTP replies (RFC 5321 4.2).

    Bytes go in with :meth:`feed` in whatever pieces the transport delivers;
    complete replies come out of :meth:`next_reply`, one per call.  The parser
    never decodes text and performs no I/O.

    After a :class:`~smtpcore.errors.SmtpProtocolError` the parser stays
    failed: every further :meth:`feed` or :meth:`next_reply` raises again,
    because the byte stream cannot be resynchronised (:meth:`clear` resets it).

    Args:
        max_line_length: the longest reply line accepted, in bytes without the
            line end.
        max_lines: the most lines accepted in one reply.

    Raises:
        PropertyValueOutOfRangeError: ``max_line_length`` is below 3 (a bare
            reply code) or ``max_lines`` below 1.
    """

    __slots__ = (
        "_buf",
        "_code",
        "_eof",
        "_error",
        "_known",
        "_lines",
        "_max_line_length",
        "_max_lines",
        "_pos",
        "_scan",
        "_tail",
    )

    def __init__(
        self,
        *,
        max_line_length: int = MAX_LINE_LENGTH,
        max_lines: int = MAX_REPLY_LINES,
    ) -> None:
        if max_line_length < 3:
            raise PropertyValueOutOfRangeError(
                "max_line_length",
                f"'max_line_length' must be at least 3, not {max_line_length}.",
            )
        if max_lines < 1:
            raise PropertyValueOutOfRangeError(
                "max_lines", f"'max_lines' must be at least 1, not {max_lines}."
            )
        self._max_line_length = max_line_length
        self._max_lines = max_lines
        self._reset()

    def _reset(self) -> None:
        # Bytes stay in _buf until the reply they belong to is returned, so
        # that ``buffered`` counts every byte not yet handed out.
        self._buf = bytearray()
        # Start of the next line not yet parsed.
        self._pos = 0
        # The search for LF resumes here: [_pos, _scan) is known to hold none,
        # which keeps byte-by-byte feeding linear instead of quadratic.
        self._scan = 0
        # Start of the trailing segment with no LF yet (the line in progress).
        self._tail = 0
        # Code and texts of the multi-line reply being assembled.
        self._code: int | None = None
        self._lines: list[bytes] = []
        self._eof = False
        self._error: str | None = None
        # Single-line replies already parsed, by their exact bytes (line end
        # included).  A server repeats a handful of lines ("250 2.1.0 Ok",
        # "354 ...") for every message, so a session mostly looks them up
        # instead of validating them again.  Replies are immutable; the dict
        # is emptied when it reaches _KNOWN_MAX, bounding it however varied
        # the server's texts are.
        self._known: dict[bytes, SmtpReply] = {}

    def _fail(self, message: str) -> SmtpProtocolError:
        """Record ``message`` as the parser's permanent failure and return it."""
        self._error = message
        return SmtpProtocolError(message)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a reply returned by next_reply.

        Returns:
            The count; after the STARTTLS ``220`` anything above 0 is
            injected plaintext (RFC 3207 4.2).
        """
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server.

        Args:
            data: the bytes, in any split; may be empty.

        Raises:
            SmtpProtocolError: the line in progress is already longer than
                ``max_line_length``; raised before ``data`` is stored, so
                memory stays bounded however long the line grows.  Also raised
                again if the parser has already failed.
            LocalProtocolError: called after :meth:`feed_eof`.
        """
        if self._error is not None:
            raise SmtpProtocolError(self._error)
        if self._eof:
            raise LocalProtocolError("feed() called after feed_eof().")
        if not data:
            return
        buf = self._buf
        last_lf = data.rfind(b"\n")
        if last_lf < 0:
            pending = len(buf) - self._tail + len(data)
        else:
            pending = len(data) - last_lf - 1
        # The line in progress may hold max_line_length bytes of text plus the
        # CR of a CRLF whose LF has not arrived yet; one byte more cannot
        # become a valid line.  Lines that end inside ``data`` are checked by
        # next_reply(); each is bounded by len(data) already.
        limit = self._max_line_length
        if pending > limit + 1 or (pending == limit + 1 and data[-1] != _CR):
            start = (
                (bytes(buf[self._tail : self._tail + _SHOW]) + data[:_SHOW])
                if last_lf < 0
                else data[last_lf + 1 : last_lf + 1 + _SHOW]
            )
            raise self._fail(
                f"reply line longer than {limit} bytes "
                f"(at least {pending} without a line end): {_show(start)}"
            )
        if last_lf >= 0:
            self._tail = len(buf) + last_lf + 1
        buf += data

    def feed_eof(self) -> None:
        """Record that the server closed the connection.

        Replies already complete are still returned by :meth:`next_reply`;
        after them it returns None if nothing else was buffered and raises if
        a partial reply was.
        """
        self._eof = True

    def clear(self) -> None:
        """Drop every buffered byte and all state, as after a TLS upgrade.

        RFC 3207 4.2: nothing received before the handshake may be used after
        it.  The parser is afterwards as good as new (EOF and failure reset).
        """
        self._reset()

    def next_reply(self) -> SmtpReply | None:
        """Return the next complete reply, or None if more bytes are needed.

        Returns:
            The reply, or None when the buffer holds no complete reply (after
            :meth:`feed_eof`, only when the buffer is empty).

        Raises:
            SmtpProtocolError: a malformed line (bad code or separator), a
                multi-line reply whose lines carry different codes, a line
                longer than ``max_line_length``, more than ``max_lines``
                lines, or end of input in the middle of a reply.
        """
        if self._error is not None:
            raise SmtpProtocolError(self._error)
        buf = self._buf
        if not buf:
            return None  # the usual wait for the next reply: nothing to scan
        if not self._lines:
            # At the start of a reply (so at the start of the buffer): a line
            # seen before needs no parsing.
            lf = buf.find(b"\n", self._scan)
            if lf >= 0:
                known = self._known.get(bytes(buf[: lf + 1]))
                if known is not None:
                    del buf[: lf + 1]
                    self._tail -= lf + 1
                    self._pos = self._scan = 0
                    return known
        while True:
            lf = buf.find(b"\n", self._scan)
            if lf < 0:
                self._scan = len(buf)
                if self._eof and buf:
                    raise self._fail(
                        "connection closed in the middle of a reply "
                        f"({len(buf)} bytes buffered): "
                        f"{_show(buf[self._pos :] or buf)}"
                    )
                return None
            start = self._pos
            # A bare LF ends a line too, as in smtplib; a CR just before it
            # belongs to the line end, any other CR is text.
            end = lf - 1 if lf > start and buf[lf - 1] == _CR else lf
            self._pos = self._scan = lf + 1
            if end - start > self._max_line_length:
                raise self._fail(
                    f"reply line longer than {self._max_line_length} bytes "
                    f"({end - start}): {_show(buf[start:end])}"
                )
            line = bytes(buf[start:end])
            # RFC 5321 4.2: Reply-code is exactly three digits, the first 2-5
            # (4.2.1; 1yz is unused in SMTP), then "-" for a continuation
            # line, or SP and text, or the line end for the last line.
            if (
                len(line) < 3
                or not _DIGIT_2 <= line[0] <= _DIGIT_5
                or not _DIGIT_0 <= line[1] <= _DIGIT_9
                or not _DIGIT_0 <= line[2] <= _DIGIT_9
            ):
                raise self._fail(f"malformed reply line: {_show(line)}")
            if len(line) == 3:
                final = True
                text = b""
            elif line[3] == _SP:
                final = True
                text = line[4:]
            elif line[3] == _DASH:
                final = False
                text = line[4:]
            else:
                raise self._fail(
                    f"malformed reply line (no space or '-' after the code): "
                    f"{_show(line)}"
                )
            code = (line[0] - _DIGIT_0) * 100 + (line[1] - _DIGIT_0) * 10
            code += line[2] - _DIGIT_0
            lines = self._lines
            if not lines:
                self._code = code
            elif code != self._code:
                raise self._fail(
                    f"reply line with code {code} inside a {self._code} "
                    f"multi-line reply: {_show(line)}"
                )
            lines.append(text)
            if len(lines) > self._max_lines:
                raise self._fail(
                    f"reply has more than {self._max_lines} lines: {_show(line)}"
                )
            if final:
                reply = SmtpReply(
                    code, tuple(lines), _enhanced_status(line[0], lines[0])
                )
                consumed = self._pos
                if len(lines) == 1:
                    if len(self._known) >= _KNOWN_MAX:
                        self._known.clear()
                    self._known[bytes(buf[:consumed])] = reply
                del buf[:consumed]
                self._tail -= consumed
                self._pos = self._scan = 0
                self._code = None
                self._lines = []
                return reply
