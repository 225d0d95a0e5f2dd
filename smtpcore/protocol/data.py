"""DATA content encoding: line ends, dot-stuffing, line limits, the terminator.

The message content of ``DATA`` ends at the first ``CRLF "." CRLF`` the server
sees (RFC 5321 4.1.1.4), and servers disagree on what a bare CR or bare LF
means (RFC 5321 2.3.8 forbids them on the wire).  Sending either, or a line
that starts with an unstuffed ".", lets the content end early on some servers
and the rest be read as new commands: SMTP smuggling.  This module makes the
wire form unambiguous:

* every CRLF, bare CR and bare LF becomes exactly one CRLF (RFC 5321 2.3.8);
* a "." at the start of a line, the first line included, is doubled
  (RFC 5321 4.5.2), so the only ``CRLF "." CRLF`` is the terminator;
* NUL and lines over 998 octets (RFC 5321 4.5.3.1.6) are refused.

All of it runs on whole chunks with ``bytes.replace``, ``bytes.count`` and
``bytes.find`` (C speed); no Python loop visits lines or bytes (the line
length check steps once per 999 octets, see :func:`_long_line_start`).
"""

from __future__ import annotations

from smtpcore.errors import LocalProtocolError

__all__ = [
    "MAX_LINE_OCTETS",
    "DataEncoder",
    "check_raw_message",
    "encode_bdat",
    "encode_data",
    "long_line_start",
    "normalise_line_ends",
]

MAX_LINE_OCTETS = 998
"""RFC 5321 4.5.3.1.6: a text line is at most 1000 octets including CRLF.

The limit does not count the "." doubled for transparency (the same section),
so it applies to the content before dot-stuffing.
"""

_TERMINATOR = b".\r\n"
_EOL_BYTES = (0x0D, 0x0A)

_NUL_REASON = "contains a NUL byte"
_LONG_REASON = (
    f"has a line longer than {MAX_LINE_OCTETS} octets "
    "(RFC 5321 4.5.3.1.6 allows 1000 including CRLF)"
)


def check_raw_message(data: bytes) -> str | None:
    """Tell whether ``data`` can be sent as DATA content.

    Line ends are counted as :class:`DataEncoder` will send them: CRLF, bare
    CR and bare LF each end a line.  The dot doubled by dot-stuffing does
    not count towards the length (RFC 5321 4.5.3.1.6).

    Args:
        data: the raw message (headers, blank line, body), any line ends.

    Returns:
        None if :func:`encode_data` will accept ``data``, else the reason,
        e.g. ``"contains a NUL byte"`` or ``"line 3 is 1200 octets long; ..."``.

    Raises:
        Nothing.
    """
    if b"\0" in data:
        return _NUL_REASON
    start = long_line_start(data)
    if start is None:
        return None
    ends = [i for i in (data.find(b"\r", start), data.find(b"\n", start)) if i >= 0]
    length = min(ends, default=len(data)) - start
    head = data[:start]
    # Every line end before the long line, normalised as the encoder will:
    # CRLF counts once, bare CR and bare LF once each.
    line = head.count(b"\r") + head.count(b"\n") - head.count(b"\r\n") + 1
    return (
        f"line {line} is {length} octets long; RFC 5321 4.5.3.1.6 allows "
        f"{MAX_LINE_OCTETS} plus CRLF"
    )


def encode_bdat(data: bytes) -> bytes:
    """Message content for BDAT (RFC 3030 2): the size says where it ends,
    so nothing is dot-stuffed, but line ends are still normalised to CRLF
    (RFC 5321 2.3.8) and the same NUL and line-length rules hold.

    Raises:
        ValueError: NUL or a line over 998 octets.
    """
    problem = check_raw_message(data)
    if problem is not None:
        raise ValueError(f"message content {problem}")
    return normalise_line_ends(data)


def encode_data(data: bytes) -> bytes:
    """Encode a whole message for DATA in one call.

    Args:
        data: the raw message, any line ends.

    Returns:
        The wire bytes, ending with the ``CRLF "." CRLF`` terminator (just
        ``b".\\r\\n"`` for empty content).

    Raises:
        ValueError: ``data`` contains NUL or a line over 998 octets.
    """
    encoder = DataEncoder()
    return encoder.feed(data) + encoder.finish()


class DataEncoder:
    """Streaming DATA encoder: raw message chunks in, wire bytes out.

    The output of any split of the content into chunks is byte-for-byte the
    output of :func:`encode_data` on the whole: a CR at the end of a chunk is
    held back until the next byte shows whether it starts a CRLF, and the
    start-of-line state and the length of the unfinished line carry over.

    If :meth:`feed` raises, part of the message may already be on the wire:
    the caller must drop the connection *without* sending the terminator,
    so that the server discards the partial message (RFC 5321 4.1.1.4 gives
    no other way to abort after 354).  The encoder refuses further use.
    """

    __slots__ = ("_at_line_start", "_broken", "_done", "_held_cr", "_line_length")

    def __init__(self) -> None:
        """Start a message: the first byte fed begins its first line."""
        self._held_cr = False
        self._at_line_start = True
        self._line_length = 0
        self._broken = False
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        """Encode the next chunk of the raw message.

        Args:
            chunk: the next raw bytes; any size, may be empty, may split a
                CRLF or a line anywhere.

        Returns:
            The wire bytes ready to send (possibly empty: a final CR is held
            until the next call).

        Raises:
            ValueError: the chunk contains NUL, or completes a line of more
                than 998 octets.  The message cannot be sent.
            LocalProtocolError: the encoder was finished or has failed.
        """
        self._check_usable()
        if not chunk:
            return b""
        if b"\0" in chunk:
            self._broken = True
            raise ValueError(f"message content {_NUL_REASON}")
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            # Whether this CR is bare or the first half of a CRLF is only
            # known with the next byte; deciding now would turn a CRLF split
            # across chunks into two line ends.
            chunk = chunk[:-1]
            self._held_cr = True
            if not chunk:
                return b""
        out = normalise_line_ends(chunk)
        self._check_line_lengths(out)
        # RFC 5321 4.5.2: a line that starts with "." gets one more.  The
        # first line has no CRLF before it, so it is handled apart.
        out = out.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and out.startswith(b"."):
            out = b"." + out
        self._at_line_start = out.endswith(b"\r\n")
        return out

    def finish(self) -> bytes:
        """End the message content.

        Args:
            None.

        Returns:
            The held CR (as CRLF), a CRLF if the last line was unterminated,
            and ``"." CRLF``: the output then ends with ``CRLF "." CRLF``
            (RFC 5321 4.1.1.4), or is just ``"." CRLF`` for empty content,
            where the CRLF of the DATA command's 354 exchange precedes it.

        Raises:
            LocalProtocolError: the encoder was finished or has failed.
        """
        self._check_usable()
        self._done = True
        if self._held_cr:
            return b"\r\n" + _TERMINATOR
        if self._at_line_start:
            return _TERMINATOR
        return b"\r\n" + _TERMINATOR

    def _check_usable(self) -> None:
        if self._done:
            raise LocalProtocolError("the DATA encoder has already finished")
        if self._broken:
            raise LocalProtocolError(
                "the DATA encoder refused earlier content; drop the connection"
            )

    def _check_line_lengths(self, out: bytes) -> None:
        """Refuse a line over the limit, counting what earlier chunks held.

        ``out`` is already normalised: every line end in it is a CRLF.
        """
        first_eol = out.find(b"\r\n")
        if first_eol < 0:
            self._line_length += len(out)
            if self._line_length > MAX_LINE_OCTETS:
                self._fail_long_line()
            return
        if self._line_length + first_eol > MAX_LINE_OCTETS:
            self._fail_long_line()
        if long_line_start(out, crlf_only=True) is not None:
            self._fail_long_line()
        self._line_length = len(out) - out.rfind(b"\r\n") - 2

    def _fail_long_line(self) -> None:
        self._broken = True
        raise ValueError(f"message content {_LONG_REASON}")


def normalise_line_ends(chunk: bytes) -> bytes:
    """Turn every CRLF, bare CR and bare LF into one CRLF (RFC 5321 2.3.8)."""
    if b"\r" not in chunk:
        return chunk.replace(b"\n", b"\r\n")
    lf_count = chunk.count(b"\n")
    if not lf_count:
        return chunk.replace(b"\r", b"\r\n")
    if lf_count == chunk.count(b"\r") == chunk.count(b"\r\n"):
        # Already clean, the usual case for MIME output: no copy.
        return chunk
    # After CRLF -> LF, any CR left was bare; then every line end is one LF.
    lf_only = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return lf_only.replace(b"\n", b"\r\n")


def long_line_start(data: bytes, *, crlf_only: bool = False) -> int | None:
    """Where the first line of more than MAX_LINE_OCTETS octets starts, or None.

    Any run of 999 octets without a line end contains exactly one index that
    is a multiple of 999, so it is enough to measure the line around every
    999th index, each time with ``find``/``rfind`` bounded to 999 octets on
    either side.  That is ``len(data) / 999`` steps of C-speed searching,
    whatever the number of lines: a regex over every line runs at a few
    nanoseconds per byte in the engine's inner loop, four times slower on a
    10 MiB body.

    Args:
        data: the bytes to scan; line ends are CRLF, bare CR or bare LF.
        crlf_only: ``data`` is already normalised, so a line starts after an
            LF and ends at a CR, which halves the searching.
    """
    size = len(data)
    limit = MAX_LINE_OCTETS
    for probe in range(0, size, limit + 1):
        if data[probe] in _EOL_BYTES:
            continue
        low = max(probe - limit, 0)
        before = data.rfind(b"\n", low, probe)
        if not crlf_only:
            before = max(before, data.rfind(b"\r", low, probe))
        start = before + 1 if before >= 0 else low
        high = min(probe + limit + 1, size)
        after = data.find(b"\r", probe, high)
        if not crlf_only:
            lf = data.find(b"\n", probe, high)
            if lf >= 0 and (after < 0 or lf < after):
                after = lf
        end = after if after >= 0 else high
        if end - start > limit:
            if before < 0 and low > 0:
                # The window did not reach back to the line's real start.
                start = max(data.rfind(b"\r", 0, low), data.rfind(b"\n", 0, low))
                start += 1
            return start
    return None
