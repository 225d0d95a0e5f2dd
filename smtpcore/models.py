"""The block's data model: addresses, messages, server details, credentials.

Constructors only store and coerce (None -> empty list, int -> enum member,
``str`` -> :class:`EmailAddress`); validation happens when a message is sent,
before any connection is opened, so that a half-built object can be passed
around the way the seed platform's variables are.
"""

from __future__ import annotations

import enum
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

__all__ = [
    "BasicEmailSessionDetails",
    "EmailAddress",
    "EmailMessage",
    "EmailMessageBodyFormat",
    "EmailMessagePriority",
    "ServerDetails",
    "UserCredentials",
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
    # A blocking session's close(), or an asyncio session's coroutine
    # close() (then abort() is its synchronous, QUIT-less counterpart).
    def close(self) -> object: ...


@dataclass
class BasicEmailSessionDetails:
    """Server details and credentials; also holds the open session.

    Args:
        server_details: where to connect.
        credentials: None to send without AUTH.

    The session opened by :func:`smtpcore.send_email` with
    ``close_session=False`` lives here until :meth:`close` (or the end of a
    ``with`` block); one opened by :func:`smtpcore.aio.send_email_async`
    until ``await`` :meth:`aclose` (or the end of an ``async with`` block).
    """

    server_details: ServerDetails | None
    credentials: UserCredentials | None = None
    _session: _Session | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def close(self) -> None:
        """Close the open session, if any.  Safe to call more than once.

        An asyncio session cannot say QUIT from here: its connection is
        closed at once (use :meth:`aclose` to end it politely).
        """
        session, self._session = self._session, None
        if session is None:
            return
        abort = getattr(session, "abort", None)
        if inspect.iscoroutinefunction(session.close) and callable(abort):
            abort()
        else:
            session.close()

    async def aclose(self) -> None:
        """Close the open session, blocking or asyncio, saying QUIT."""
        session, self._session = self._session, None
        if session is not None:
            result = session.close()
            if inspect.isawaitable(result):
                await result

    def __enter__(self) -> BasicEmailSessionDetails:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> BasicEmailSessionDetails:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
