"""Validation of the data model, before any connection is opened.

The first problem raises, in a fixed order (the session details, then the
message in field order), so the same input always reports the same error.
Each error names the offending value by its snake_case path, e.g.
``"server_details.host"`` or ``"to[0].address"``.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from smtpcore.errors import (
    ArgumentError,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpErrorKind,
)
from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)

__all__ = ["address_refusal", "validate_message", "validate_session_details"]

# CR and LF would end a header or command line early (header/command
# injection, RFC 5321 2.3.8); NUL is refused by most servers and by us on the
# wire.
_LINE_BREAKS_AND_NUL = ("\r", "\n", "\0")
_CHAR_NAMES = {"\r": "CR", "\n": "LF", "\0": "NUL"}

_PORT_MIN = 1
_PORT_MAX = 65535

# Errors that mean "nothing readable at that path" even though the errno is
# not ENOENT (a path component that is a file, a symlink loop, a name too
# long): the documented contract is FileNotFoundError for a bad path.
_NOT_FOUND_ERRNOS = frozenset({errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG})

# O_NONBLOCK so that probing a FIFO does not wait for a writer; O_BINARY only
# exists (and matters) on Windows.
_PROBE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _wrong_type(path: str, value: object, expected: str) -> ArgumentError:
    return ArgumentError(
        path, f"'{path}' must be {expected}, got {type(value).__name__}."
    )


def _require_str(value: object, path: str) -> str:
    """Return ``value`` if it is a str; None and other types raise."""
    if value is None:
        raise PropertyNullError(path)
    if not isinstance(value, str):
        raise _wrong_type(path, value, "a str")
    return value


def _check_optional_text(
    value: object, path: str, forbidden: tuple[str, ...] = _LINE_BREAKS_AND_NUL
) -> None:
    """None passes; anything else must be a str free of ``forbidden``.

    The message never quotes the value: this also checks passwords.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise _wrong_type(path, value, "a str or None")
    if any(ch in value for ch in forbidden):
        names = ", ".join(_CHAR_NAMES[ch] for ch in forbidden)
        raise ArgumentError(path, f"'{path}' must not contain {names}.")


def _member_name(member: enum.IntEnum) -> str:
    """``NON_URGENT`` -> ``NonUrgent``: the seed platform's spelling."""
    return "".join(part.capitalize() for part in member.name.split("_"))


def _check_enum(value: object, path: str, enum_type: type[enum.IntEnum]) -> None:
    # The constructor turns None into the default, so None here was assigned
    # later and is refused; a plain int of a defined member is still fine
    # (an IntEnum member compares and hashes equal to it).
    if isinstance(value, enum_type):
        return
    if (
        isinstance(value, int)
        and not isinstance(value, (bool, enum.Enum))
        and value in {member.value for member in enum_type}
    ):
        return
    allowed = ", ".join(f"{_member_name(m)} ({m.value})" for m in enum_type)
    raise ArgumentError(
        path,
        f"'{path}' must be one of {allowed} (an {enum_type.__name__} "
        f"member), got {value!r}.",
    )


# ---- server details and credentials ---------------------------------------


def _check_host(host: object) -> None:
    path = "server_details.host"
    text = _require_str(host, path)
    if not text.strip():
        raise PropertyEmptyError(path)
    bad = next(
        (ch for ch in text if ch.isspace() or unicodedata.category(ch) == "Cc"),
        None,
    )
    if bad is not None:
        raise ArgumentError(
            path,
            f"'{path}' must be a host name or IP address without whitespace "
            f"or control characters; {text!r} contains {bad!r}.",
        )


def _check_server_details(server: object) -> None:
    if server is None:
        raise PropertyNullError("server_details")
    if not isinstance(server, ServerDetails):
        raise _wrong_type("server_details", server, "a ServerDetails")
    _check_host(server.host)
    port: object = server.port
    # bool is an int subclass, but True as a port number is always a mistake.
    if isinstance(port, bool) or not isinstance(port, int):
        raise _wrong_type(
            "server_details.port", port, f"an int from {_PORT_MIN} to {_PORT_MAX}"
        )
    if not _PORT_MIN <= port <= _PORT_MAX:
        raise PropertyValueOutOfRangeError(
            "server_details.port",
            f"'server_details.port' must be in the range {_PORT_MIN}-"
            f"{_PORT_MAX}, got {port}.",
        )
    use_ssl: object = server.use_ssl
    if not isinstance(use_ssl, bool):
        raise _wrong_type("server_details.use_ssl", use_ssl, "a bool")


def _check_credentials(credentials: object, *, password_required: bool) -> None:
    # None means "send without AUTH": the seed's known limitation, lifted.
    if credentials is None:
        return
    if not isinstance(credentials, UserCredentials):
        raise _wrong_type("credentials", credentials, "a UserCredentials or None")
    username = _require_str(credentials.username, "credentials.username")
    if not username.strip():
        raise PropertyEmptyError("credentials.username")
    _check_optional_text(username, "credentials.username")
    # An empty password is allowed: some servers take tokens or accept any
    # password for a known user.  Its value never goes into a message.
    if password_required or credentials.password is not None:
        _require_str(credentials.password, "credentials.password")
        _check_optional_text(credentials.password, "credentials.password")
    _check_optional_text(credentials.domain, "credentials.domain")


def validate_session_details(
    details: BasicEmailSessionDetails | None, *, password_required: bool = True
) -> None:
    """Check session details before any connection is opened.

    Args:
        details: the details to check.  ``credentials`` may be None.
        password_required: False when an OAuth token stands in for the
            password (then ``credentials.password`` may be None).

    Raises:
        PropertyNullError: ``details``, ``server_details``, its ``host``, or
            a given credential's ``username``/``password`` is None.
        PropertyEmptyError: the host or username is empty or whitespace.
        PropertyValueOutOfRangeError: the port is outside 1-65535.
        ArgumentError: a value has the wrong type, the host contains
            whitespace or control characters, or a credential contains CR,
            LF or NUL.  The password is never quoted.
    """
    if details is None:
        raise PropertyNullError("session_details")
    if not isinstance(details, BasicEmailSessionDetails):
        raise _wrong_type("session_details", details, "a BasicEmailSessionDetails")
    _check_server_details(details.server_details)
    _check_credentials(details.credentials, password_required=password_required)


# ---- the message ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MailboxRole:
    """How an address that fails RFC 5321 syntax is reported for one role:
    as the refusal a server would send, with RFC 3463's X.1.7 (bad sender's
    mailbox address syntax) or X.1.3 (bad destination mailbox address syntax).
    """

    kind: SmtpErrorKind
    command: str
    status: str
    noun: str

    def refusal(self, address: str, reason: str) -> SmtpCommandError:
        # Imported here, not at module level: the protocol package may grow
        # imports of its own and must never be able to form a cycle with the
        # data model.
        from smtpcore.protocol.replies import SmtpReply

        text = f"{self.status} Bad {self.noun} address syntax: {reason}"
        reply = SmtpReply(501, (text.encode("utf-8"),), self.status)
        return SmtpCommandError(
            kind=self.kind, reply=reply, command=self.command, mailbox=address
        )


_SENDER = _MailboxRole(
    SmtpErrorKind.SENDER_NOT_ACCEPTED, "MAIL FROM", "5.1.7", "sender"
)
_RECIPIENT = _MailboxRole(
    SmtpErrorKind.RECIPIENT_NOT_ACCEPTED, "RCPT TO", "5.1.3", "recipient"
)


def address_refusal(address: str, reason: str, *, sender: bool) -> SmtpCommandError:
    """The error for an address that breaks RFC 5321/6531 mailbox syntax
    (shared with the ``send_raw`` envelope checks, so both report alike).

    Args:
        address: the address as given.
        reason: what is wrong with it (from ``mailbox_problem``).
        sender: True for the envelope sender, False for a recipient.

    Returns:
        ``SmtpCommandError`` with a synthetic 501 reply: 5.1.7 and
        ``MAIL FROM`` for the sender, 5.1.3 and ``RCPT TO`` for a recipient.
    """
    return (_SENDER if sender else _RECIPIENT).refusal(address, reason)


def _check_address(value: object, path: str, role: _MailboxRole) -> None:
    from smtpcore.protocol.address import mailbox_problem  # lazy: see refusal()

    if value is None:
        raise PropertyNullError(path)
    if not isinstance(value, EmailAddress):
        raise _wrong_type(path, value, "an EmailAddress")
    address = _require_str(value.address, f"{path}.address")
    if not address.strip():
        raise PropertyEmptyError(f"{path}.address")
    _check_optional_text(value.name, f"{path}.name")
    problem = mailbox_problem(address)
    if problem is not None:
        raise role.refusal(address, problem)


def _check_address_list(value: object, path: str, *, required: bool) -> None:
    if value is None:
        if required:
            raise PropertyNullError(path)
        return
    if not isinstance(value, (list, tuple)):
        raise _wrong_type(path, value, "a list of EmailAddress")
    if required and not value:
        raise PropertyEmptyError(path)
    for index, item in enumerate(value):
        _check_address(item, f"{path}[{index}]", _RECIPIENT)


def _check_attachment_path(item: object, path: str) -> None:
    if item is None:
        raise PropertyNullError(path)
    if not isinstance(item, (str, os.PathLike)):
        raise _wrong_type(path, item, "a file path (str or os.PathLike)")
    name: object = os.fspath(item)
    if not isinstance(name, str):
        raise _wrong_type(path, name, "a str path")
    if not name.strip() or "\0" in name:
        raise ArgumentError(
            path, f"'{path}' must be a non-blank file path without NUL."
        )
    _probe_readable(name)


def _probe_readable(name: str) -> None:
    """Raise the builtin OSError a later read of ``name`` would raise.

    Opening for reading is the only honest permission check: mode bits,
    ACLs, capabilities and mandatory access control all take part.
    """
    try:
        if stat.S_ISDIR(os.stat(name).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        fd = os.open(name, _PROBE_FLAGS)
    except OSError as exc:
        if exc.errno in _NOT_FOUND_ERRNOS:
            raise FileNotFoundError(
                errno.ENOENT, f"{os.strerror(errno.ENOENT)} ({exc.strerror})", name
            ) from exc
        raise
    os.close(fd)


def _check_attachments(value: object, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)):
        raise _wrong_type(path, value, "a list of file paths")
    for index, item in enumerate(value):
        _check_attachment_path(item, f"{path}[{index}]")


# The message's fields in constructor order, each with its check: the order
# of this table is the order in which problems are reported.
_MESSAGE_CHECKS: tuple[tuple[str, Callable[[object, str], None]], ...] = (
    ("to", partial(_check_address_list, required=True)),
    ("from_", partial(_check_address, role=_SENDER)),
    ("cc", partial(_check_address_list, required=False)),
    ("bcc", partial(_check_address_list, required=False)),
    ("priority", partial(_check_enum, enum_type=EmailMessagePriority)),
    ("subject", _check_optional_text),
    ("body_format", partial(_check_enum, enum_type=EmailMessageBodyFormat)),
    # Line breaks are the point of a body; only NUL cannot go on the wire.
    ("body", partial(_check_optional_text, forbidden=("\0",))),
    ("attachments", _check_attachments),
)


def validate_message(message: EmailMessage | None) -> None:
    """Check a message before any connection is opened.

    Fields are checked in constructor order and the first problem raises.
    Attachments are opened for reading (and closed) to prove they can be
    read.

    Args:
        message: the message to check.

    Raises:
        PropertyNullError: the message, ``to``, ``from_``, an address or an
            attachment path is None.
        PropertyEmptyError: ``to`` is empty, or an address is empty or
            whitespace.
        ArgumentError: a value has the wrong type; a display name or the
            subject contains CR, LF or NUL; the body contains NUL; the
            priority or body format is not a defined value; an attachment
            path is blank or contains NUL.
        SmtpCommandError: an address breaks RFC 5321/6531 mailbox syntax
            (501 with 5.1.7 for the sender, 5.1.3 for a recipient).
        FileNotFoundError: an attachment does not exist.
        IsADirectoryError: an attachment is a directory.
        PermissionError: an attachment cannot be opened for reading.
    """
    if message is None:
        raise PropertyNullError("message")
    if not isinstance(message, EmailMessage):
        raise _wrong_type("message", message, "an EmailMessage")
    for name, check in _MESSAGE_CHECKS:
        check(getattr(message, name), name)
