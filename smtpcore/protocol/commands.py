"""SMTP commands as frozen, validated value objects.

Each command checks its arguments when it is constructed, so an object that
exists can always be put on the wire: CR, LF and NUL are refused everywhere
(RFC 5321 2.3.8: they may only appear as the line terminator), and ESMTP
parameters must match the grammar of RFC 5321 4.1.2, which is what stops a
value like ``a@b.com> SIZE=1`` from smuggling parameters through an address.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from typing import ClassVar

from smtpcore.errors import LocalProtocolError
from smtpcore.protocol.address import mailbox_problem

__all__ = [
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "Helo",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "StartTls",
]

_FORBIDDEN = re.compile(rb"[\r\n\x00]")
# RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value]; esmtp-value
# is any CHAR except "=", SP and controls.  RFC 6531 3.3 admits UTF-8 there.
_ESMTP_PARAM = re.compile(
    rb"[A-Za-z0-9][A-Za-z0-9-]*(=[\x21-\x3c\x3e-\x7e\x80-\xff]+)?"
)
# RFC 5321 4.1.1.1: the EHLO/HELO argument is a Domain or an address literal;
# we only insist on one printable token, the server judges the rest.
_HELLO_DOMAIN = re.compile(rb"[\x21-\x7e]{1,255}")
# RFC 4954 4: the mechanism name is 1*20 of upper-case letters, digits, - and _.
_SASL_NAME = re.compile(rb"[A-Z0-9_-]{1,20}")


def _check_domain(verb: str, domain: bytes) -> None:
    if not _HELLO_DOMAIN.fullmatch(domain):
        raise LocalProtocolError(f"{verb} needs one printable token, got {domain!r}")


def _check_path(verb: str, path: bytes, *, allow_empty: bool) -> None:
    if not path:
        if allow_empty:
            return  # RFC 5321 4.5.5: the null reverse-path "<>" for bounces
        raise LocalProtocolError(f"{verb} needs an address")
    problem = _path_problem(path)
    if problem is not None:
        raise LocalProtocolError(f"{verb} address {problem}")


# Every MAIL and RCPT is checked, mostly with the same few addresses again.
@functools.lru_cache(maxsize=4096)
def _path_problem(path: bytes) -> str | None:
    if _FORBIDDEN.search(path):
        return "contains CR, LF or NUL"
    try:
        problem = mailbox_problem(path.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "not valid UTF-8"
    return None if problem is None else f"{path!r} is invalid: {problem}"


def _check_params(verb: str, params: tuple[bytes, ...]) -> None:
    for param in params:
        if not _ESMTP_PARAM.fullmatch(param):
            raise LocalProtocolError(
                f"{verb} parameter {param!r} is not an esmtp-param"
            )


def _with_params(line: bytes, params: tuple[bytes, ...]) -> bytes:
    if params:
        line += b" " + b" ".join(params)
    return line + b"\r\n"


@dataclass(frozen=True, slots=True)
class _Bare:
    """A command without arguments: its bytes are a class constant."""

    wire: ClassVar[bytes]

    def to_bytes(self) -> bytes:
        return self.wire


@dataclass(frozen=True, slots=True)
class Ehlo:
    """``EHLO domain`` (RFC 5321 4.1.1.1)."""

    domain: bytes
    verb: ClassVar[str] = "EHLO"

    def __post_init__(self) -> None:
        _check_domain(self.verb, self.domain)

    def to_bytes(self) -> bytes:
        return b"EHLO " + self.domain + b"\r\n"


@dataclass(frozen=True, slots=True)
class Helo:
    """``HELO domain``, the fallback for servers without ESMTP."""

    domain: bytes
    verb: ClassVar[str] = "HELO"

    def __post_init__(self) -> None:
        _check_domain(self.verb, self.domain)

    def to_bytes(self) -> bytes:
        return b"HELO " + self.domain + b"\r\n"


@dataclass(frozen=True, slots=True)
class Lhlo:
    """``LHLO domain``: LMTP's EHLO (RFC 2033 4.1)."""

    domain: bytes
    verb: ClassVar[str] = "LHLO"

    def __post_init__(self) -> None:
        _check_domain(self.verb, self.domain)

    def to_bytes(self) -> bytes:
        return b"LHLO " + self.domain + b"\r\n"


@dataclass(frozen=True, slots=True)
class Bdat:
    """``BDAT size [LAST]`` (RFC 3030 2): the next ``size`` octets are
    message content, sent as they are (no dot-stuffing)."""

    size: int
    last: bool = False
    verb: ClassVar[str] = "BDAT"

    def __post_init__(self) -> None:
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or self.size < 0
        ):
            raise LocalProtocolError(
                f"BDAT size must be a whole number >= 0, not {self.size!r}"
            )

    def to_bytes(self) -> bytes:
        return b"BDAT %d%s\r\n" % (self.size, b" LAST" if self.last else b"")


@dataclass(frozen=True, slots=True)
class StartTls(_Bare):
    """``STARTTLS`` (RFC 3207)."""

    verb: ClassVar[str] = "STARTTLS"
    wire: ClassVar[bytes] = b"STARTTLS\r\n"


@dataclass(frozen=True, slots=True)
class Auth:
    """``AUTH mechanism [initial-response]`` (RFC 4954 4).

    ``initial_response`` is the raw SASL response; it is base64-encoded on
    the wire, and an empty one is sent as ``=`` as RFC 4954 4 requires.
    """

    mechanism: bytes
    initial_response: bytes | None = None
    verb: ClassVar[str] = "AUTH"

    def __post_init__(self) -> None:
        if not _SASL_NAME.fullmatch(self.mechanism):
            raise LocalProtocolError(f"invalid SASL mechanism name {self.mechanism!r}")

    def to_bytes(self) -> bytes:
        line = b"AUTH " + self.mechanism
        if self.initial_response is not None:
            line += b" " + (base64.b64encode(self.initial_response) or b"=")
        return line + b"\r\n"

    def __repr__(self) -> str:
        # The initial response of PLAIN carries the password.
        shown = "" if self.initial_response is None else ", <redacted>"
        return f"Auth({self.mechanism!r}{shown})"


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A SASL response line sent after a ``334`` challenge."""

    data: bytes
    verb: ClassVar[str] = "AUTH"

    def to_bytes(self) -> bytes:
        return base64.b64encode(self.data) + b"\r\n"

    def __repr__(self) -> str:
        return "AuthResponse(<redacted>)"


@dataclass(frozen=True, slots=True)
class AuthCancel(_Bare):
    """``*``: abandon an AUTH exchange (RFC 4954 4)."""

    verb: ClassVar[str] = "AUTH"
    wire: ClassVar[bytes] = b"*\r\n"


@dataclass(frozen=True, slots=True)
class Mail:
    """``MAIL FROM:<sender> [params]`` (RFC 5321 4.1.1.2).

    ``sender`` is the encoded mailbox without angle brackets; empty means
    the null reverse-path.
    """

    sender: bytes
    params: tuple[bytes, ...] = ()
    verb: ClassVar[str] = "MAIL FROM"

    def __post_init__(self) -> None:
        _check_path(self.verb, self.sender, allow_empty=True)
        _check_params(self.verb, self.params)

    def to_bytes(self) -> bytes:
        return _with_params(b"MAIL FROM:<" + self.sender + b">", self.params)


@dataclass(frozen=True, slots=True)
class Rcpt:
    """``RCPT TO:<recipient> [params]`` (RFC 5321 4.1.1.3)."""

    recipient: bytes
    params: tuple[bytes, ...] = ()
    verb: ClassVar[str] = "RCPT TO"
    # Built once: a transaction's RCPTs are reused for every message of a
    # batch with the same envelope.
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_path(self.verb, self.recipient, allow_empty=False)
        _check_params(self.verb, self.params)
        wire = _with_params(b"RCPT TO:<" + self.recipient + b">", self.params)
        object.__setattr__(self, "_wire", wire)

    def to_bytes(self) -> bytes:
        return self._wire


@dataclass(frozen=True, slots=True)
class Data(_Bare):
    """``DATA`` (RFC 5321 4.1.1.4)."""

    verb: ClassVar[str] = "DATA"
    wire: ClassVar[bytes] = b"DATA\r\n"


@dataclass(frozen=True, slots=True)
class Rset(_Bare):
    """``RSET``: abort the mail transaction (RFC 5321 4.1.1.5)."""

    verb: ClassVar[str] = "RSET"
    wire: ClassVar[bytes] = b"RSET\r\n"


@dataclass(frozen=True, slots=True)
class Noop(_Bare):
    """``NOOP`` (RFC 5321 4.1.1.9)."""

    verb: ClassVar[str] = "NOOP"
    wire: ClassVar[bytes] = b"NOOP\r\n"


@dataclass(frozen=True, slots=True)
class Quit(_Bare):
    """``QUIT`` (RFC 5321 4.1.1.10)."""

    verb: ClassVar[str] = "QUIT"
    wire: ClassVar[bytes] = b"QUIT\r\n"


Command = (
    Ehlo
    | Helo
    | Lhlo
    | StartTls
    | Auth
    | AuthResponse
    | AuthCancel
    | Mail
    | Rcpt
    | Data
    | Bdat
    | Rset
    | Noop
    | Quit
)
