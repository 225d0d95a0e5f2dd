"""A stdlib ``email.message.Message`` sent as given, the way
``smtplib.SMTP.send_message`` does: envelope from the headers, Bcc removed
from the wire copy, the caller's object untouched."""

from __future__ import annotations

import copy
import email.errors
import email.policy
import email.utils
import re
from collections.abc import Sequence
from email.message import Message
from email.policy import EmailPolicy

from smtpcore.errors import ArgumentError
from smtpcore.mime import BuiltMessage, check_line_lengths, dedupe_addresses

__all__ = ["prepare_stdlib_message"]


def prepare_stdlib_message(
    msg: Message,
    *,
    from_addr: str | None = None,
    to_addrs: Sequence[str] | None = None,
) -> BuiltMessage:
    """Prepare a stdlib message for sending, like ``smtplib.send_message``.

    The envelope sender is ``from_addr`` or else the first address of the
    Sender header or else of From; the recipients are ``to_addrs`` or else
    every address in To, Cc and Bcc.  When the message has a Resent-Date
    header these are Resent-Sender, Resent-From, Resent-To, Resent-Cc and
    Resent-Bcc instead (RFC 5322 3.6.6).  Bcc and Resent-Bcc are left out of
    the bytes; ``msg`` itself is not changed.  No Message-ID is added.

    An ``EmailPolicy`` message is written with ``email.policy.SMTP``; a
    ``compat32`` one (``email.mime``, maybe holding ``email.header.Header``
    objects, which ``EmailPolicy`` cannot fold) with its own policy and CRLF,
    as smtplib does.

    Args:
        msg: the message.
        from_addr: the envelope sender; None to take it from the headers.
        to_addrs: the envelope recipients; None to take them from the
            headers.  A single string is one recipient.

    Returns:
        The bytes, the envelope (recipients de-duplicated as in
        :func:`build_message`) and the Message-ID header's value or None.

    Raises:
        ArgumentError: (a ``ValueError``) the message has more than one
            Resent- block, no sender can be found, or a line of the result
            is longer than 998 octets (e.g. a part set with ``cte="8bit"``
            or ``"7bit"`` and a long line).
    """
    _check_headers(msg)
    resent = msg.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        # smtplib refuses this too: with several blocks the fields of the
        # most recent one cannot be told apart reliably.
        raise ArgumentError(
            "message", "The message has more than one Resent- header block."
        )

    if from_addr is None:
        field = prefix + ("Sender" if prefix + "Sender" in msg else "From")
        sender = _first_address(msg, field)
    else:
        sender = from_addr

    if to_addrs is None:
        values = [
            str(value)
            for name in ("To", "Cc", "Bcc")
            for value in msg.get_all(prefix + name) or ()
        ]
        # getaddresses() yields ("", "") for a group such as
        # "undisclosed-recipients:;" and for what it cannot parse.
        candidates = [addr for _, addr in email.utils.getaddresses(values) if addr]
    elif isinstance(to_addrs, str):
        candidates = [to_addrs]
    else:
        candidates = list(to_addrs)
    # An empty result is returned as is: whether a message without
    # recipients is an error is the envelope check's decision.
    recipients = dedupe_addresses(candidates)

    # A shallow copy is enough: deleting a header replaces the copy's header
    # list instead of editing the list it shares with ``msg``.
    wire = copy.copy(msg)
    del wire["Bcc"]
    del wire["Resent-Bcc"]
    policy = (
        email.policy.SMTP
        if isinstance(msg.policy, EmailPolicy)
        else msg.policy.clone(linesep="\r\n")
    )
    try:
        data = wire.as_bytes(policy=policy)
    except email.errors.MessageError as exc:
        # compat32 refuses some values itself (HeaderParseError).
        raise ArgumentError("message", f"the message cannot be written: {exc}") from exc
    check_line_lengths(data, "message")

    raw_id = msg.get("Message-ID")
    message_id = None if raw_id is None else str(raw_id).strip() or None
    return BuiltMessage(data, sender, recipients, message_id)


# RFC 5322 3.6.8: field-name = 1*ftext, printable ASCII except ":".
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# A CR or LF in a value is only a fold: a line end followed by white space
# (RFC 5322 2.2.3; a message parsed from a file may fold with a bare LF).
# Anything else would end the header early (injection, CVE-2024-6923), and
# NUL is never allowed.
_BAD_IN_VALUE = re.compile(r"\r(?!\n)|\n(?![ \t])|\x00")


def _check_headers(msg: Message) -> None:
    """Refuse header names and values that would inject lines, in every
    part, before anything is generated."""
    for part in msg.walk():
        for name, value in part.raw_items():
            if not _FIELD_NAME.fullmatch(name):
                raise ArgumentError("message", f"invalid header field name {name!r}")
            if _BAD_IN_VALUE.search(str(value)):
                raise ArgumentError(
                    "message",
                    f"the {name} header contains CR, LF or NUL outside a fold",
                )


def _first_address(msg: Message, field: str) -> str:
    value = msg.get(field)
    if value is None:
        raise ArgumentError(
            "from_addr", f"No from_addr was given and the message has no {field}."
        )
    pairs = email.utils.getaddresses([str(value)])
    if not pairs or not pairs[0][1]:
        raise ArgumentError(
            "from_addr", f"No address could be read from the {field} header."
        )
    return pairs[0][1]
