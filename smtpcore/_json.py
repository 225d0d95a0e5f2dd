"""The seed platform's JSON shapes for the data model, read strictly.

Only the *structure* of a document is checked here: unknown keys, values of
the wrong JSON type, text that is not JSON at all.  Addresses, ranges and
attachment files are left to :func:`smtpcore.validation.validate_message` and
:func:`smtpcore.validation.validate_session_details`, because the seed's
constructors only store and coerce and ``from_json`` must behave like them.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from smtpcore.errors import ArgumentError
from smtpcore.models import (
    EmailAddress,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)

__all__ = ["message_kwargs", "session_details_kwargs"]

_E = TypeVar("_E", bound=enum.IntEnum)

# The seed's documents write enum values as C# member accesses outside any
# string (``"Priority": EmailMessagePriority.Urgent``), which is not JSON.
# The pattern consumes whole JSON strings first so that the same words inside
# a string value (a Subject, say) are never touched: ``re.sub`` scans left to
# right and a string, once matched, is skipped as a unit.
_STRING_OR_BARE_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|\b(?:EmailMessagePriority|EmailMessageBodyFormat)\.[A-Za-z_]\w*\b",
    re.DOTALL,
)

# JSON key (lower case, underscores removed) -> attribute name.  Removing
# underscores lets the Pythonic spelling (``body_format``, ``from_``) in as
# well as the seed's (``BodyFormat``, ``From``).
_MESSAGE_KEYS = {
    "to": "to",
    "from": "from_",
    "cc": "cc",
    "bcc": "bcc",
    "priority": "priority",
    "subject": "subject",
    "bodyformat": "body_format",
    "body": "body",
    "attachments": "attachments",
}
_ADDRESS_KEYS = {"name": "name", "address": "address"}
_DETAILS_KEYS = {"serverdetails": "server_details", "credentials": "credentials"}
_SERVER_KEYS = {"host": "host", "port": "port", "usessl": "use_ssl"}
_CREDENTIAL_KEYS = {"username": "username", "password": "password", "domain": "domain"}


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in document order.

    Used as ``object_pairs_hook`` so that a key given twice is reported
    instead of silently keeping the last value.
    """


def _replace_bare_tokens(text: str) -> str:
    def quote(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else f'"{token}"'

    return _STRING_OR_BARE_TOKEN.sub(quote, text)


def _normalise_key(key: str) -> str:
    return key.replace("_", "").lower()


def _snake_case(key: str) -> str:
    """``BodyFormatt`` -> ``body_formatt``: an unknown key as a path part."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages (never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (_Pairs, Mapping)):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Reader:
    """Walks one document; ``root`` names the whole argument in errors."""

    def __init__(self, root: str) -> None:
        self.root = root

    def wrong(self, path: str, expected: str, value: object) -> ArgumentError:
        where = path or self.root
        return ArgumentError(
            where, f"'{where}' must be {expected}, got {_kind(value)}."
        )

    def load(self, obj: object) -> Any:
        if isinstance(obj, Mapping):
            return obj
        if isinstance(obj, (bytes, bytearray)):
            try:
                # RFC 8259 8.1: JSON exchanged between systems is UTF-8; a
                # byte order mark may be ignored.
                obj = bytes(obj).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ArgumentError(
                    self.root, f"'{self.root}' is not valid UTF-8 JSON."
                ) from exc
        if not isinstance(obj, str):
            raise ArgumentError(
                self.root,
                f"'{self.root}' must be a JSON string, bytes or a mapping, "
                f"got {type(obj).__name__}.",
            )
        try:
            return json.loads(_replace_bare_tokens(obj), object_pairs_hook=_Pairs)
        except json.JSONDecodeError as exc:
            # exc.msg is a fixed phrase; the document itself (which may hold
            # a password) is never quoted.
            raise ArgumentError(
                self.root,
                f"'{self.root}' is not valid JSON: {exc.msg} at line "
                f"{exc.lineno} column {exc.colno}.",
            ) from exc
        except RecursionError as exc:
            raise ArgumentError(
                self.root, f"'{self.root}' is nested too deeply."
            ) from exc

    def members(
        self, value: object, path: str, keys: Mapping[str, str]
    ) -> dict[str, Any]:
        """Map an object's keys to attribute names; unknown or repeated keys
        raise, missing ones are simply absent from the result."""
        if isinstance(value, _Pairs):
            pairs: list[tuple[Any, Any]] = list(value)
        elif isinstance(value, Mapping):
            pairs = list(value.items())
        else:
            raise self.wrong(path, "an object", value)
        found: dict[str, Any] = {}
        for key, item in pairs:
            if not isinstance(key, str):
                raise ArgumentError(
                    path or self.root,
                    f"'{path or self.root}' has a key that is not a string.",
                )
            attr = keys.get(_normalise_key(key))
            if attr is None:
                expected = ", ".join(sorted(keys.values()))
                raise ArgumentError(
                    _join(path, _snake_case(key)),
                    f"Unknown key {key!r} in '{path or self.root}'; expected "
                    f"keys (any case): {expected}.",
                )
            if attr in found:
                raise ArgumentError(
                    _join(path, attr),
                    f"'{_join(path, attr)}' is given more than once.",
                )
            found[attr] = item
        return found

    def text(self, value: object, path: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise self.wrong(path, "a string or null", value)

    def port(self, value: object, path: str) -> int | None:
        # Ranges are validation's business; only the JSON type is checked.
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise self.wrong(path, "an integer or null", value)

    def flag(self, value: object, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        raise self.wrong(path, "true, false or null", value)

    def choice(
        self, value: object, path: str, enum_type: type[_E]
    ) -> _E | int | str | None:
        """An enum value as null, an int or a member name.

        Names match case-insensitively with or without the type prefix
        (``"EmailMessagePriority.Urgent"``, ``"urgent"``, ``"NON_URGENT"``).
        An unknown name or int is returned as given so that validation
        reports it with the list of allowed values.
        """
        if value is None or isinstance(value, enum_type):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str):
            raise self.wrong(path, "null, an integer or a name string", value)
        name = value.strip()
        prefix = f"{enum_type.__name__}."
        if name.lower().startswith(prefix.lower()):
            name = name[len(prefix) :]
        wanted = name.replace("_", "").replace("-", "").lower()
        for member in enum_type:
            if member.name.replace("_", "").lower() == wanted:
                return member
        return value

    def address(self, value: object, path: str) -> EmailAddress | str | None:
        # A bare string is what the constructor accepts for an address too;
        # an EmailAddress can only come from a mapping built in Python.
        if value is None or isinstance(value, (str, EmailAddress)):
            return value
        fields = self.members(value, path, _ADDRESS_KEYS)
        return EmailAddress(
            address=self.text(fields.get("address"), _join(path, "address")),
            name=self.text(fields.get("name"), _join(path, "name")),
        )

    def address_list(
        self, value: object, path: str
    ) -> list[EmailAddress | str | None] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or isinstance(value, _Pairs):
            raise self.wrong(path, "an array of address objects or null", value)
        return [
            self.address(item, f"{path}[{index}]") for index, item in enumerate(value)
        ]

    def paths(
        self, value: object, path: str
    ) -> list[str | os.PathLike[str] | None] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or isinstance(value, _Pairs):
            raise self.wrong(path, "an array of file path strings or null", value)
        result: list[str | os.PathLike[str] | None] = []
        for index, item in enumerate(value):
            if item is not None and not isinstance(item, (str, os.PathLike)):
                raise self.wrong(f"{path}[{index}]", "a file path string", item)
            result.append(item)
        return result


def message_kwargs(obj: object) -> dict[str, Any]:
    """Read an ``EmailMessage`` document into constructor keyword arguments.

    Args:
        obj: a JSON str, UTF-8 bytes or a decoded mapping.

    Returns:
        Keyword arguments for ``EmailMessage``; absent keys are None.

    Raises:
        ArgumentError: the document is not JSON, not an object, or has an
            unknown key or a value of the wrong JSON type.
    """
    reader = _Reader("message")
    fields = reader.members(reader.load(obj), "", _MESSAGE_KEYS)
    get = fields.get
    return {
        "to": reader.address_list(get("to"), "to"),
        "from_": reader.address(get("from_"), "from_"),
        "cc": reader.address_list(get("cc"), "cc"),
        "bcc": reader.address_list(get("bcc"), "bcc"),
        "priority": reader.choice(get("priority"), "priority", EmailMessagePriority),
        "subject": reader.text(get("subject"), "subject"),
        "body_format": reader.choice(
            get("body_format"), "body_format", EmailMessageBodyFormat
        ),
        "body": reader.text(get("body"), "body"),
        "attachments": reader.paths(get("attachments"), "attachments"),
    }


def session_details_kwargs(obj: object) -> dict[str, Any]:
    """Read a ``BasicEmailSessionDetails`` document into keyword arguments.

    Args:
        obj: a JSON str, UTF-8 bytes or a decoded mapping.

    Returns:
        Keyword arguments for ``BasicEmailSessionDetails``.  A missing
        ``Port``/``UseSsl`` takes the ``ServerDetails`` default (465, True);
        an explicit null stays None for validation to report.

    Raises:
        ArgumentError: the document is not JSON, not an object, or has an
            unknown key or a value of the wrong JSON type.  No message
            quotes a value, so the password cannot leak through one.
    """
    reader = _Reader("session_details")
    fields = reader.members(reader.load(obj), "", _DETAILS_KEYS)
    server = fields.get("server_details")
    if server is not None and not isinstance(server, ServerDetails):
        found = reader.members(server, "server_details", _SERVER_KEYS)
        options: dict[str, Any] = {}
        if "port" in found:
            options["port"] = reader.port(found["port"], "server_details.port")
        if "use_ssl" in found:
            options["use_ssl"] = reader.flag(found["use_ssl"], "server_details.use_ssl")
        server = ServerDetails(
            host=reader.text(found.get("host"), "server_details.host"), **options
        )
    credentials = fields.get("credentials")
    if credentials is not None and not isinstance(credentials, UserCredentials):
        found = reader.members(credentials, "credentials", _CREDENTIAL_KEYS)
        credentials = UserCredentials(
            username=reader.text(found.get("username"), "credentials.username"),
            password=reader.text(found.get("password"), "credentials.password"),
            domain=reader.text(found.get("domain"), "credentials.domain"),
        )
    return {"server_details": server, "credentials": credentials}
