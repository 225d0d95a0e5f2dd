"""Messages whose large attachments are read and base64-encoded while they
are sent, never held in memory whole.

:func:`smtpcore.mime.build_message` builds the MIME structure with the
stdlib ``email`` package as usual, but gives each large attachment part a
unique placeholder line instead of its body.  The serialised skeleton is cut
at the placeholders: the message is then the skeleton's pieces with each
file's base64 lines streamed in between.  Peak memory is one read block,
whatever the file size (the stdlib alone holds several copies of it).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["BLOCK", "StreamedMessage", "base64_size", "stream_base64"]

# Read size: a multiple of 57 octets, the input of one 76-character base64
# line (RFC 2045 6.8), so every block ends on a line boundary; about 1 MiB
# keeps the number of system calls and Python-level steps small.
BLOCK = 57 * 18396


def base64_size(size: int) -> int:
    """Octets of base64 with CRLF after every 76 characters for ``size``
    octets of input."""
    lines = -(-size // 57)
    return -(-size // 3) * 4 + 2 * lines


def stream_base64(path: str) -> Iterator[bytes]:
    """The file's content as base64 lines of 76 characters, each ending with
    CRLF, one block at a time.

    Raises:
        OSError: the file cannot be read (it was checked before sending; if
            it vanished since, the send is abandoned without the end-of-data
            marker, so the server discards the partial message).
    """
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            # encodebytes() writes 76-character lines ending in LF.
            yield base64.encodebytes(block).replace(b"\n", b"\r\n")


@dataclass(frozen=True, slots=True)
class StreamedMessage:
    """A built message whose attachment bodies are streamed from files.

    Attributes:
        sender, recipients, message_id: as for ``BuiltMessage``.
        segments: the skeleton's pieces (bytes) and, between them, the paths
            of the files to stream as base64.
        size: the exact size of the content on the wire before dot-stuffing
            (files are measured when the message is built).
    """

    sender: str
    recipients: tuple[str, ...]
    message_id: str | None
    segments: tuple[bytes | str, ...]
    size: int

    data = None  # not in memory: see chunks()
    eight_bit = False  # the skeleton is 7-bit and base64 is ASCII
    checked = True  # the skeleton was checked; base64 lines are 76 octets
    binary = False

    def chunks(self) -> Iterator[bytes]:
        """The content, piece by piece, every piece ending with CRLF."""
        for segment in self.segments:
            if isinstance(segment, str):
                yield from stream_base64(segment)
            elif segment:
                yield segment


def split_skeleton(
    skeleton: bytes, placeholders: dict[bytes, str]
) -> tuple[bytes | str, ...]:
    """Cut a serialised skeleton at its placeholder lines.

    Args:
        skeleton: the message with one ``<placeholder>CRLF`` line per
            streamed attachment.
        placeholders: placeholder -> the file path to stream there.

    Returns:
        The segments for :class:`StreamedMessage`.

    Raises:
        ValueError: a placeholder is missing (the skeleton was not built
            from these placeholders).
    """
    segments: list[bytes | str] = []
    rest = skeleton
    for token, path in placeholders.items():
        before, found, rest = rest.partition(token + b"\r\n")
        if not found:
            raise ValueError("a streamed attachment's placeholder is missing")
        segments += [before, path]
    segments.append(rest)
    return tuple(segments)


def streamed_size(segments: tuple[bytes | str, ...]) -> int:
    """The wire size of the segments, files measured now."""
    return sum(
        base64_size(os.stat(segment).st_size)
        if isinstance(segment, str)
        else len(segment)
        for segment in segments
    )
