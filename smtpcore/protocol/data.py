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

All of it runs on whole chunks with C-speed ``bytes`` methods; no Python loop
visits lines or bytes.  The methods are not equally fast (per MiB, measured
on CPython 3.11): ``in``, ``find`` and ``rfind`` of one byte run at memchr
speed (about 15 us), ``replace`` of one byte is driven by memchr (about
0.2 ms), while ``count`` goes byte by byte (0.4 ms) and a search for two or
more bytes such as ``b"\\r\\n"`` is slower still (about 1 ms).  So the usual
case, content that already has CRLF line ends (MIME output, most prebuilt
messages), is handled with the fast ones only and without a copy:

* :func:`normalise_line_ends` recognises clean CRLF by deleting the CRs and
  expanding the LFs back, which gives the input again exactly when it was
  clean;
* :func:`long_line_start` walks the content with ``rfind`` bounded to 999
  octets (1000 with CRLF), one step per window;
* :func:`stuff_dots` finds the dots with ``find`` and copies only when a
  line starts with one (base64 has no "." at all);
* :func:`check_and_normalise` measures the lines after normalising, where
  only an LF can end a line.
"""

from __future__ import annotations

from itertools import pairwise

from smtpcore.errors import LocalProtocolError

__all__ = [
    "MAX_LINE_OCTETS",
    "DataEncoder",
    "check_and_normalise",
    "check_raw_message",
    "encode_bdat",
    "encode_data",
    "long_line_start",
    "normalise_line_ends",
    "stuff_dots",
]

MAX_LINE_OCTETS = 998
"""RFC 5321 4.5.3.1.6: a text line is at most 1000 octets including CRLF.

The limit does not count the "." doubled for transparency (the same section),
so it applies to the content before dot-stuffing.
"""

_TERMINATOR = b".\r\n"
_LF = 0x0A

# stuff_dots looks at dots one by one, a Python step each (measured: about
# as costly as ``replace`` over 200 octets), and gives up and lets one
# ``replace`` stuff the whole text after at most one step per 200 octets and
# 32 in all: prose and URLs have a dot every few dozen octets, and small
# messages must not cost more than ``replace`` would.
_DOT_STEPS = 32
_OCTETS_PER_DOT_STEP = 200

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
    return check_and_normalise(data)[1]


def check_and_normalise(data: bytes) -> tuple[bytes, str | None]:
    """Check raw message content and turn its line ends into CRLF, in one go.

    The decision and the reason are those of :func:`check_raw_message`, the
    content that of :func:`normalise_line_ends`; but the lines are measured
    after normalising, where only CRLF ends a line, which is about half the
    work of measuring them in the raw data.

    Args:
        data: the raw message (headers, blank line, body), any line ends.

    Returns:
        ``(content, None)`` when ``data`` can be sent: ``content`` has CRLF
        line ends only (it is ``data`` itself, not a copy, when ``data``
        already had), is ready for BDAT as it is and for DATA once
        :func:`stuff_dots` has run.  Otherwise ``(data, reason)`` with the
        reason :func:`check_raw_message` gives.

    Raises:
        Nothing.
    """
    if b"\0" in data:
        return data, _NUL_REASON
    content = normalise_line_ends(data)
    start = long_line_start(content, crlf_only=True)
    if start is None:
        return content, None
    # Normalising turns each line end into one CRLF and leaves the text of
    # the lines alone: the line number and length are those of ``data``.
    end = content.find(b"\r", start)
    length = (end if end >= 0 else len(content)) - start
    return data, _long_line_reason(content.count(b"\n", 0, start) + 1, length)


def _long_line_reason(line: int, length: int) -> str:
    return (
        f"line {line} is {length} octets long; RFC 5321 4.5.3.1.6 allows "
        f"{MAX_LINE_OCTETS} plus CRLF"
    )


def encode_bdat(data: bytes) -> bytes:
    """Message content for BDAT (RFC 3030 2): the size says where it ends,
    so nothing is dot-stuffed, but line ends are still normalised to CRLF
    (RFC 5321 2.3.8) and the same NUL and line-length rules hold.

    Args:
        data: the raw message, any line ends.

    Returns:
        The content with CRLF line ends (``data`` itself if it had them).

    Raises:
        ValueError: NUL or a line over 998 octets.
    """
    content, problem = check_and_normalise(data)
    if problem is not None:
        raise ValueError(f"message content {problem}")
    return content


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


def stuff_dots(data: bytes) -> bytes:
    """Double the "." that starts a line (RFC 5321 4.5.2), the first too.

    "Before sending a line of mail text, the SMTP client checks the first
    character of the line.  If it is a period, one additional period is
    inserted at the beginning of the line."  The first line has no CRLF
    before it, so it counts as starting a line: ``data`` must begin at the
    start of a line.

    Args:
        data: content with CRLF line ends only (as :func:`check_and_normalise`
            and :func:`normalise_line_ends` give); a bare LF before a "."
            would be taken as a line end.

    Returns:
        ``data`` itself (no copy) when no line starts with "."; otherwise
        ``b"." + data`` if it starts with "." and, in either case, every
        ``CRLF "."`` turned into ``CRLF ".."``.

    Raises:
        Nothing.
    """
    return _stuff_dots(data, at_line_start=True)


def _stuff_dots(data: bytes, *, at_line_start: bool) -> bytes:
    dot = data.find(b".")
    if dot < 0:
        # Base64 has no "." at all: one memchr pass and no copy.
        return data
    starts: list[int] = []
    if dot == 0:
        if at_line_start:
            starts.append(0)
        dot = data.find(b".", 1)
    steps = min(_DOT_STEPS, len(data) // _OCTETS_PER_DOT_STEP)
    while dot > 0:
        if not steps:
            # Many dots: one C-speed pass over everything costs less than
            # visiting the rest of them here.
            stuffed = data.replace(b"\r\n.", b"\r\n..")
            if at_line_start and data.startswith(b"."):
                return b"." + stuffed
            return stuffed
        steps -= 1
        # CRLF-only content: a line starts right after an LF.
        if data[dot - 1] == _LF:
            starts.append(dot)
        dot = data.find(b".", dot + 1)
    if not starts:
        return data
    # Cut before each line-starting dot and join with one more dot.
    starts.append(len(data))
    pieces = [data[: starts[0]]]
    pieces.extend(data[a:b] for a, b in pairwise(starts))
    return b".".join(pieces)


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
        # RFC 5321 4.5.2: a line that starts with "." gets one more; the
        # chunk's first byte starts a line only if the last chunk ended one.
        out = _stuff_dots(out, at_line_start=self._at_line_start)
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
        first_lf = out.find(b"\n")
        if first_lf < 0:
            self._line_length += len(out)
            if self._line_length > MAX_LINE_OCTETS:
                self._fail_long_line()
            return
        # The line carried over ends at the CR before this LF.
        if self._line_length + first_lf - 1 > MAX_LINE_OCTETS:
            self._fail_long_line()
        if long_line_start(out, crlf_only=True) is not None:
            self._fail_long_line()
        self._line_length = len(out) - out.rfind(b"\n") - 1

    def _fail_long_line(self) -> None:
        self._broken = True
        raise ValueError(f"message content {_LONG_REASON}")


def normalise_line_ends(chunk: bytes) -> bytes:
    """Turn every CRLF, bare CR and bare LF into one CRLF (RFC 5321 2.3.8).

    Args:
        chunk: bytes with any line ends.

    Returns:
        The bytes with CRLF line ends only: ``chunk`` itself (no copy) when
        it had them already.

    Raises:
        Nothing.
    """
    if b"\r" not in chunk:
        return chunk.replace(b"\n", b"\r\n")
    if b"\n" not in chunk:
        return chunk.replace(b"\r", b"\r\n")
    # Already clean, the usual case for MIME output?  Deleting every CR and
    # turning every LF into CRLF gives ``chunk`` back exactly then: in the
    # result every CR is directly followed by an LF and every LF directly
    # preceded by a CR, and when ``chunk`` is like that, deleting its CRs
    # leaves one LF per CRLF, which the expansion restores.  Both steps
    # replace one byte (memchr speed), unlike ``count(b"\r\n")``.
    if chunk.replace(b"\r", b"").replace(b"\n", b"\r\n") == chunk:
        return chunk
    # After CRLF -> LF, any CR left was bare; then every line end is one LF.
    lf_only = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return lf_only.replace(b"\n", b"\r\n")


def long_line_start(data: bytes, *, crlf_only: bool = False) -> int | None:
    """Where the first line of more than MAX_LINE_OCTETS octets starts, or None.

    From the start of a line, a line of at most 998 octets ends within the
    next 999 octets, its CRLF's LF within the next 1000: so the last line
    end in that window (``rfind``, memrchr speed) is where the next unchecked
    line starts, and a window without one starts a long line (or the data
    ends inside it).  That is one step per window, about
    ``len(data) / 999`` steps whatever the number of lines.

    Args:
        data: the bytes to scan; line ends are CRLF, bare CR or bare LF (a
            CRLF is one line end; the line after it starts after the LF).
        crlf_only: ``data`` is already normalised (every line end is CRLF,
            as :func:`normalise_line_ends` gives), so only LFs need
            searching; on other data the answer is undefined.

    Returns:
        The index of the first octet of the first line longer than
        ``MAX_LINE_OCTETS`` (not counting its line end), or None.

    Raises:
        Nothing.
    """
    size = len(data)
    limit = MAX_LINE_OCTETS
    start = 0
    if crlf_only:
        window = limit + 2
        while size - start > limit:
            lf = data.rfind(b"\n", start, start + window)
            if lf < 0:
                # No LF in the 1000 octets from ``start``, so no CR before
                # octet 999 either (CRs only come before LFs): the line has
                # 999 octets or more, or ends the data with 999 octets.
                return start
            start = lf + 1
        return None
    window = limit + 1
    while size - start > limit:
        high = start + window
        end = data.rfind(b"\n", start, high)
        if end < high - 1:
            # A CR after the last LF (or without any) ends a line later.
            cr = data.rfind(b"\r", end + 1 if end >= 0 else start, high)
            if cr > end:
                end = cr
        if end < 0:
            return start
        start = end + 1
    return None
