"""What one send is made of: the message as the transaction sees it, the
per-send options and the result (value objects of
:mod:`smtpcore.protocol.transaction`, which re-exports them)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from smtpcore.errors import ArgumentError
from smtpcore.protocol.replies import SmtpReply

__all__ = [
    "Dsn",
    "InMemoryMessage",
    "Outgoing",
    "SendOptions",
    "SendResult",
    "xtext",
]


class Outgoing(Protocol):
    """What the transaction needs of a message: :class:`InMemoryMessage`
    (``mime.BuiltMessage``) or ``mimestream.StreamedMessage``."""

    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def size(self) -> int: ...
    @property
    def eight_bit(self) -> bool: ...
    @property
    def binary(self) -> bool:
        """Content to deliver octet for octet (BODY=BINARYMIME, RFC 3030)."""

    @property
    def checked(self) -> bool:
        """Content known to be CRLF, NUL-free, short-lined, each chunk
        ending with CRLF (see ``SmtpConnection.send_content``)."""

    @property
    def data(self) -> bytes | None:
        """The whole content, or None when it is only available as chunks."""

    def chunks(self) -> Iterator[bytes]:
        """The content piece by piece; with more than one piece, each ends
        with CRLF (BDAT normalises line ends piece by piece)."""


@dataclass(frozen=True, slots=True)
class InMemoryMessage:
    """A message whose content is in memory.

    Attributes:
        data: the RFC 5322 message (line ends are normalised and dots
            stuffed on the way out).
        sender: the envelope sender ("" for the null reverse-path).
        recipients: the envelope recipients.
        message_id: reported back in the result, or None.
    """

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    message_id: str | None
    # Set only by code that normalised and validated ``data`` (CRLF line
    # ends, no NUL, lines of at most 998 octets): then only the dots are
    # stuffed on the way out.
    checked: bool = False
    # RFC 3030 3: content to deliver octet for octet (NUL, bare CR or LF,
    # long lines): only BDAT with BODY=BINARYMIME can carry it.
    binary: bool = False

    @property
    def size(self) -> int:
        """Octets of content (before dot-stuffing)."""
        return len(self.data)

    @property
    def eight_bit(self) -> bool:
        """True if any octet is above 127 (RFC 6152 8BITMIME territory)."""
        return not self.data.isascii()

    def chunks(self) -> Iterator[bytes]:
        """The content in one piece."""
        yield self.data


_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


@dataclass(frozen=True, slots=True)
class Dsn:
    """A delivery status notification request (RFC 3461), sent only to
    servers that offer DSN.

    Args:
        notify: ``("NEVER",)`` or any of ``"SUCCESS"``, ``"FAILURE"``,
            ``"DELAY"``; empty leaves it to the server.
        ret: ``"FULL"`` or ``"HDRS"``: what a bounce returns.
        envid: an envelope identifier echoed in the notifications.
        orcpt: send each recipient as ``ORCPT=rfc822;<address>``.

    Raises:
        ArgumentError: a value RFC 3461 does not allow.
    """

    notify: tuple[str, ...] = ()
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    orcpt: bool = False

    def __post_init__(self) -> None:
        notify = {value.upper() for value in self.notify}
        if notify and notify != {"NEVER"} and not notify <= _NOTIFY:
            raise ArgumentError(
                "dsn.notify", "NEVER, or any of SUCCESS, FAILURE, DELAY"
            )
        if self.ret not in (None, "FULL", "HDRS"):
            raise ArgumentError("dsn.ret", "FULL or HDRS")
        # RFC 3461 4.4: ENVID is at most 100 characters of xtext-able text.
        if self.envid is not None and not re.fullmatch(
            r"[\x20-\x7e]{1,100}", self.envid
        ):
            raise ArgumentError("dsn.envid", "1 to 100 printable ASCII characters")


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Per-send choices.

    Args:
        allow_partial: deliver to the accepted recipients even if some are
            refused (otherwise one refusal aborts the whole message).
        dsn: a delivery status notification request, or None.
        require_tls: RFC 8689 REQUIRETLS: the message must only travel over
            TLS all the way; refused before sending when this session is not
            on TLS or the server does not offer it.
    """

    allow_partial: bool = False
    dsn: Dsn | None = None
    require_tls: bool = False


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


def xtext(value: str) -> bytes:
    """RFC 3461 4: "+" and "=" and anything outside ``!``..``~`` as ``+HH``."""
    out = bytearray()
    for octet in value.encode("utf-8"):
        if 33 <= octet <= 126 and octet not in (0x2B, 0x3D):
            out.append(octet)
        else:
            out += b"+%02X" % octet
    return bytes(out)
