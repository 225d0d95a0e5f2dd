"""The block's data model: addresses, messages, server details, credentials.

Constructors only store and coerce (None -> empty list, int -> enum member,
``str`` -> :class:`EmailAddress`); validation happens when a message is sent,
before any connection is opened, so that a half-built object can be passed
around the way the seed platform's variables are.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, Union

from smtpcore.errors import (
    ArgumentError,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpErrorKind,
)

__all__ = [
    "BasicEmailSessionDetails",
    "EmailAddress",
    "EmailMessage",
    "EmailMessageBodyFormat",
    "EmailMessagePriority",
    "ServerDetails",
    "UserCredentials",
    "validate_message",
    "validate_session_details",
]


class EmailMessagePriority(enum.IntEnum):
    """Message priority, with the seed platform's numeric values."""

    NORMAL = 0
    NON_URGENT = 1
    URGENT = 2


class EmailMessageBodyFormat(enum.IntEnum):
    """Body format, with the seed platform's numeric values."""

    TEXT = 0
    HTML = 1


AttachmentPath = Union[str, "os.PathLike[str]"]


def _coerce_enum(enum_type: type[enum.IntEnum], value: Any, default: Any) -> Any:
    """Map None to ``default`` and a known int to its member; keep anything
    else as given so that validation can name it in an ``ArgumentError``."""
    if value is None:
        return default
    if isinstance(value, enum_type):
        return value
    # Only plain ints: a bool or another enum's member (HTML == 1) passed as
    # a priority is a mistake for validation to report, not a value.
    if isinstance(value, int) and not isinstance(value, (bool, enum.Enum)):
        try:
            return enum_type(value)
        except ValueError:
            return value
    return value


@dataclass
class EmailAddress:
    """A mailbox with an optional display name.

    Args:
        address: the addr-spec, e.g. ``"someone@example.com"``.
        name: the display name, or None.
    """

    address: str | None
    name: str | None = None

    def __str__(self) -> str:
        if self.name:
            return f"{self.name} <{self.address}>"
        return str(self.address)


def _coerce_address(value: Any) -> Any:
    return EmailAddress(value) if isinstance(value, str) else value


def _as_list(values: Any, convert: Callable[[Any], Any] | None = None) -> Any:
    """Copy any iterable into a list; keep anything else as given.

    Bytes and mappings are kept too: iterating them would silently give
    ints or keys, and validation should name the real mistake.  Constructors
    must not raise, so a non-iterable (an int) is kept for validation.
    """
    if isinstance(values, (bytes, bytearray, Mapping)):
        return values
    try:
        return [convert(v) if convert else v for v in values]
    except TypeError:
        return values


def _coerce_addresses(values: Any) -> Any:
    if values is None:
        return None
    if isinstance(values, (str, EmailAddress)):
        return [_coerce_address(values)]
    return _as_list(values, _coerce_address)


def _coerce_attachments(values: Any) -> Any:
    if values is None:
        return []
    return [values] if isinstance(values, (str, os.PathLike)) else _as_list(values)


# What the constructor accepts and coerces: wider than what it stores.
AddressInput = EmailAddress | str | None
AddressesInput = Iterable[EmailAddress | str] | EmailAddress | str | None


# init=False: the hand-written __init__ accepts the inputs the seed allows
# (str addresses, plain ints, any iterable) while the attributes keep the
# narrow types a type checker should see when reading a message.
@dataclass(init=False)
class EmailMessage:
    """An email message, in the seed block's constructor order.

    Args:
        to: recipients shown in the ``To`` header (``EmailAddress`` or str).
        from_: the sender.
        cc: recipients shown in the ``Cc`` header; None means none.
        bcc: recipients that get the message but appear in no header.
        priority: None means :attr:`EmailMessagePriority.NORMAL`.
        subject: the subject, or None for no Subject header.
        body_format: None means :attr:`EmailMessageBodyFormat.TEXT`.
        body: the body text; None means an empty body.
        attachments: file paths to attach; None means none.
    """

    to: list[EmailAddress] | None
    from_: EmailAddress | None
    cc: list[EmailAddress] | None
    bcc: list[EmailAddress] | None
    priority: EmailMessagePriority | None
    subject: str | None
    body_format: EmailMessageBodyFormat | None
    body: str | None
    attachments: list[AttachmentPath] | None

    def __init__(
        self,
        to: AddressesInput,
        from_: AddressInput,
        cc: AddressesInput = None,
        bcc: AddressesInput = None,
        priority: EmailMessagePriority | int | None = None,
        subject: str | None = None,
        body_format: EmailMessageBodyFormat | int | None = None,
        body: str | None = None,
        attachments: Iterable[AttachmentPath] | AttachmentPath | None = None,
    ) -> None:
        self.to = _coerce_addresses(to)
        self.from_ = _coerce_address(from_)
        self.cc = _coerce_addresses(cc) or []
        self.bcc = _coerce_addresses(bcc) or []
        self.priority = _coerce_enum(
            EmailMessagePriority, priority, EmailMessagePriority.NORMAL
        )
        self.subject = subject
        self.body_format = _coerce_enum(
            EmailMessageBodyFormat, body_format, EmailMessageBodyFormat.TEXT
        )
        self.body = body
        self.attachments = _coerce_attachments(attachments)

    @classmethod
    def from_json(cls, obj: str | bytes | Mapping[str, Any]) -> EmailMessage:
        """Build a message from the seed platform's JSON shape.

        Keys match case-insensitively; a missing key means None; in a JSON
        string the seed's bare tokens (``EmailMessagePriority.Urgent``) are
        accepted.  Only the structure is checked: no attachment is touched,
        :func:`validate_message` does the rest before sending.

        Args:
            obj: a JSON document (str or UTF-8 bytes) or a decoded mapping.

        Returns:
            The message, coerced like the constructor does.

        Raises:
            ArgumentError: not JSON, not an object, an unknown key or a value
                of the wrong JSON type; ``property_name`` names the field.
        """
        from smtpcore._json import message_kwargs

        return cls(**message_kwargs(obj))


@dataclass
class ServerDetails:
    """Where the SMTP server is and how to reach it.

    Args:
        host: host name or IP address.
        port: TCP port; 465 by default.
        use_ssl: True for TLS from the first byte (implicit TLS); False to
            connect in plain text and upgrade with STARTTLS when offered.
    """

    host: str | None
    port: int = 465
    use_ssl: bool = True


@dataclass
class UserCredentials:
    """Credentials for SMTP AUTH.  The password never appears in ``repr()``.

    Args:
        username: the user name.
        password: the password.
        domain: the NTLM domain, if any.
    """

    username: str | None
    password: str | None = field(default=None, repr=False)
    domain: str | None = None


class _Session(Protocol):
    def close(self) -> None: ...


@dataclass
class BasicEmailSessionDetails:
    """Server details and credentials; also holds the open session.

    Args:
        server_details: where to connect.
        credentials: None to send without AUTH.

    The session opened by :func:`smtpcore.send_email` with
    ``close_session=False`` lives here until :meth:`close` (or the end of a
    ``with`` block).
    """

    server_details: ServerDetails | None
    credentials: UserCredentials | None = None
    _session: _Session | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def close(self) -> None:
        """Close the open session, if any.  Safe to call more than once."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> BasicEmailSessionDetails:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def from_json(
        cls, obj: str | bytes | Mapping[str, Any]
    ) -> BasicEmailSessionDetails:
        """Build session details from the seed platform's JSON shape.

        Keys match case-insensitively; a missing ``Port``/``UseSsl`` takes
        the :class:`ServerDetails` default, any other missing key means None.
        No error message ever contains the password.

        Args:
            obj: a JSON document (str or UTF-8 bytes) or a decoded mapping.

        Returns:
            The details, with no session open.

        Raises:
            ArgumentError: not JSON, not an object, an unknown key or a value
                of the wrong JSON type.
        """
        from smtpcore._json import session_details_kwargs

        return cls(**session_details_kwargs(obj))


# --------------------------------------------------------------------------
# Validation, before any connection is opened.  The first problem raises, in
# a fixed order, so that the same input always reports the same error.
# --------------------------------------------------------------------------

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


def _check_credentials(credentials: object) -> None:
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
    _require_str(credentials.password, "credentials.password")
    _check_optional_text(credentials.password, "credentials.password")
    _check_optional_text(credentials.domain, "credentials.domain")


def validate_session_details(details: BasicEmailSessionDetails | None) -> None:
    """Check session details before any connection is opened.

    Args:
        details: the details to check.  ``credentials`` may be None.

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
    _check_credentials(details.credentials)


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
