"""Input checks and message preparation shared by every way of sending.

Everything here runs before a connection is opened, so bad input never
costs a connection and never leaves a half-sent message behind.
"""

from __future__ import annotations

import email.message
from collections.abc import Iterable, Sequence

from smtpcore.errors import (
    ArgumentError,
    PropertyEmptyError,
    PropertyNullError,
    SmtpCoreError,
)
from smtpcore.mime import BuiltMessage, Prepared, build_message
from smtpcore.models import EmailMessage
from smtpcore.protocol.address import mailbox_problem
from smtpcore.protocol.data import check_and_normalise, check_raw_message
from smtpcore.protocol.transaction import SendResult
from smtpcore.stdlibmsg import prepare_stdlib_message
from smtpcore.validation import address_refusal, validate_message

__all__ = [
    "check_envelope",
    "check_raw_content",
    "prepare",
    "prepare_batch",
    "prepare_item",
    "prepare_raw",
]


def check_envelope(sender: object, recipients: Sequence[object]) -> None:
    """Check an envelope given directly (``send_raw``) or taken from a
    stdlib message's headers.

    Args:
        sender: the envelope sender; ``""`` is the null reverse-path.
        recipients: the envelope recipients.

    Raises:
        ArgumentError: a value is not a str.
        PropertyEmptyError: there is no recipient.
        SmtpCommandError: an address breaks RFC 5321 (501, 5.1.7 / 5.1.3).
    """
    if not isinstance(sender, str):
        raise ArgumentError("from_addr", "the envelope sender must be a str")
    # RFC 5321 4.5.5: an empty reverse-path is how bounces are sent.
    if sender:
        problem = mailbox_problem(sender)
        if problem is not None:
            raise address_refusal(sender, problem, sender=True)
    if not recipients:
        raise PropertyEmptyError("to_addrs", "a message needs at least one recipient")
    for index, recipient in enumerate(recipients):
        if not isinstance(recipient, str):
            raise ArgumentError(f"to_addrs[{index}]", "recipients must be str")
        problem = mailbox_problem(recipient)
        if problem is not None:
            raise address_refusal(recipient, problem, sender=False)


def check_raw_content(data: object) -> None:
    """Refuse message bytes that cannot go on the wire unchanged.

    Args:
        data: the message bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Raises:
        ArgumentError: not bytes, or NUL / a line over 998 octets
            (RFC 5321 4.5.3.1.6).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentError("data", "the message must be bytes")
    problem = check_raw_message(data if type(data) is bytes else bytes(data))
    if problem is not None:
        raise _content_refusal(problem)


def _content_refusal(problem: str) -> ArgumentError:
    return ArgumentError("data", f"the message cannot be sent: {problem}")


def prepare(message: object) -> Prepared:
    """Validate a message and build its wire form.

    Args:
        message: an :class:`~smtpcore.models.EmailMessage` or a stdlib
            ``email.message.Message``.

    Returns:
        The :class:`~smtpcore.mime.BuiltMessage`.

    Raises:
        PropertyNullError, PropertyEmptyError, PropertyValueOutOfRangeError,
        ArgumentError, FileNotFoundError, PermissionError, IsADirectoryError,
        SmtpCommandError: see :func:`smtpcore.validation.validate_message`.
    """
    if message is None:
        raise PropertyNullError("message")
    if isinstance(message, EmailMessage):
        validate_message(message)
        try:
            return build_message(message)
        except ArgumentError:
            raise  # already names the offending value
        except ValueError as exc:
            raise ArgumentError("message", str(exc)) from exc
    if isinstance(message, email.message.Message):
        try:
            built = prepare_stdlib_message(message)
        except ArgumentError:
            raise
        except ValueError as exc:
            raise ArgumentError("message", str(exc)) from exc
        check_envelope(built.sender, built.recipients)
        # Someone else built it: check it before connecting rather than have
        # the DATA encoder refuse it halfway through the upload.
        check_raw_content(built.data)
        return built
    raise ArgumentError(
        "message",
        "expected a smtpcore EmailMessage or an email.message.Message, "
        f"not {type(message).__name__}",
    )


def prepare_raw(
    from_addr: object, to_addrs: object, data: object, *, binary: bool = False
) -> BuiltMessage:
    """Check a prebuilt message and its envelope (``send_raw``).

    Args:
        from_addr: the envelope sender ("" for the null reverse-path).
        to_addrs: one recipient (str) or a sequence of them.
        data: the RFC 5322 message bytes.
        binary: deliver ``data`` octet for octet (BODY=BINARYMIME over
            BDAT, RFC 3030): no line-end normalisation and no NUL or line
            length check; the server must offer CHUNKING and BINARYMIME.

    Returns:
        The :class:`~smtpcore.mime.BuiltMessage` (no Message-ID known).

    Raises:
        ArgumentError, PropertyEmptyError, SmtpCommandError: see
            :func:`check_envelope` and :func:`check_raw_content`.
    """
    if isinstance(to_addrs, str):
        recipients: tuple[object, ...] = (to_addrs,)
    elif isinstance(to_addrs, (list, tuple)):
        recipients = tuple(to_addrs)
    else:
        raise ArgumentError("to_addrs", "recipients must be a str or a list of str")
    check_envelope(from_addr, recipients)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentError("data", "the message must be bytes")
    assert isinstance(from_addr, str)
    envelope = tuple(map(str, recipients))
    # bytes(data) would return exact bytes unchanged anyway; the test skips
    # a call.  A bytearray or memoryview is copied, so that later changes by
    # the caller cannot alter what was checked.
    raw = data if type(data) is bytes else bytes(data)
    if binary:
        return BuiltMessage(raw, from_addr, envelope, None, binary=True)
    # Normalised now rather than on the wire, so that SIZE (RFC 1870 4:
    # octets with CR-LF pairs) counts what is sent; no copy when the data
    # already uses CRLF.  The line lengths are measured on the normalised
    # form, where only CRLF ends a line: cheaper than on the raw data, with
    # the same decision and the same reason (see check_and_normalise).
    content, problem = check_and_normalise(raw)
    if problem is not None:
        raise _content_refusal(problem)
    return BuiltMessage(content, from_addr, envelope, None, checked=True)


def prepare_item(item: object) -> Prepared:
    """One item of ``send_many``: a message, or a ``(from, to, data)`` tuple.

    Raises:
        As :func:`prepare` or :func:`prepare_raw`.
    """
    if isinstance(item, tuple):
        if len(item) != 3:
            raise ArgumentError("items", "a raw item is (from_addr, to_addrs, data)")
        return prepare_raw(*item)
    return prepare(item)


def prepare_batch(
    items: Iterable[object],
) -> tuple[list[Prepared | None], list[SendResult | Exception | None]]:
    """Prepare every item of ``send_many``; an item that fails gets its
    error as its result (and None as its message), the others None.

    Returns:
        The messages and the results, index for index.
    """
    messages: list[Prepared | None] = []
    results: list[SendResult | Exception | None] = []
    for item in items:
        try:
            messages.append(prepare_item(item))
            results.append(None)
        except (SmtpCoreError, OSError) as exc:
            messages.append(None)
            results.append(exc)
    return messages, results
