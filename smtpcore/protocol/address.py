"""RFC 5321 mailbox syntax (with RFC 6531 UTF-8) and the envelope length limits.

The envelope addresses of ``MAIL FROM`` and ``RCPT TO`` are the one place where
caller text goes on the wire next to ESMTP parameters, so they are checked
against the RFC 5321 4.1.2 grammar *exactly*: anything the grammar does not
produce is refused, which is what stops CR/LF injection and parameter
smuggling such as ``a@b.com> SIZE=1``.

Every check is a compiled regular expression whose alternatives are disjoint,
or a ``str`` method: all linear in the length of the input, so a hostile
100 KB "address" costs milliseconds, never exponential backtracking.
"""

from __future__ import annotations

import functools
import ipaddress
import re

__all__ = [
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "encode_mailbox",
    "mailbox_problem",
    "needs_smtputf8",
]

MAX_LOCAL_PART = 64
"""RFC 5321 4.5.3.1.1: the local part is at most 64 octets."""

MAX_DOMAIN = 255
"""RFC 5321 4.5.3.1.2: a domain name or number is at most 255 octets."""

MAX_PATH = 256
"""RFC 5321 4.5.3.1.3: a path, angle brackets included, is at most 256 octets."""

# RFC 1035 2.3.4: a label is at most 63 octets.
_MAX_LABEL = 63

# Characters never allowed anywhere, not even in a quoted string: qtextSMTP
# and quoted-pairSMTP stop at %d32-126, and RFC 6531 3.3 only adds
# UTF8-non-ascii, which RFC 6532 3.1 does not let carry C1 controls.  U+2028
# and U+2029 are line breaks to every Unicode-aware log and parser downstream.
# Lone surrogates cannot be encoded as UTF-8 at all.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_LINE_BREAKS = frozenset("\r\n\x85\u2028\u2029")

# Unicode-aware ``\s``: an U+00A0 or U+3000 outside quotes is as much a
# word separator to a lenient server as an ASCII space.
_WHITESPACE = re.compile(r"\s")
_ANGLE = re.compile("[<>]")

# RFC 5322 3.2.3 atext, extended by RFC 6531 3.3 with UTF8-non-ascii.
# Controls and whitespace are refused before these patterns run, so the
# non-ASCII range can be taken whole.
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_NOT_ATEXT_OR_DOT = re.compile(f"[^{_ATEXT}.]")

# Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 4.1.2).  qtextSMTP
# excludes exactly '"' and '\\', so the two alternatives never both match and
# the pattern cannot backtrack.
_QUOTED_STRING = re.compile(
    r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"'
)

# How far a quoted string gets before it fails (only used to explain why).
_QUOTED_PREFIX = re.compile(r'"(?:[^"\\]|\\[\x20-\x7e])*')

# sub-domain = Let-dig [Ldh-str], with UTF8-non-ascii added (RFC 6531 3.3).
_NOT_LABEL_CHAR = re.compile(r"[^A-Za-z0-9\-\u0080-\U0010ffff]")

# The only Standardized-tag registered with IANA (RFC 5321 4.1.3).
_IPV6_TAG = "ipv6:"


# The same few addresses are checked for every message of a session (input
# check, command, encoding): the checks are pure functions of a str, so a
# bounded cache turns the repeats into one dictionary lookup.
@functools.lru_cache(maxsize=4096)
def mailbox_problem(address: str) -> str | None:
    """Check ``address`` against the RFC 5321 ``Mailbox`` grammar.

    UTF-8 is allowed in the local part and the domain as RFC 6531 3.3
    extends the grammar; control characters and line breaks never are.
    Length limits count octets of the UTF-8 encoding.

    Args:
        address: the bare mailbox, without angle brackets, e.g.
            ``"user@example.com"`` or ``'"john doe"@[IPv6:::1]'``.

    Returns:
        None if the address is valid, else a short human-readable reason
        such as ``'missing "@"'`` or ``'local part longer than 64 octets'``.

    Raises:
        Nothing: every input, however hostile, gets an answer.
    """
    if not address:
        return "empty address"
    problem = _character_problem(address)
    if problem is not None:
        return problem
    if address.startswith('"'):
        match = _QUOTED_STRING.match(address)
        if match is None:
            return _quoted_string_problem(address)
        local, rest = address[: match.end()], address[match.end() :]
        problem = _unquoted_text_problem(rest)
        if problem is not None:
            return problem
        if not rest.startswith("@"):
            return "text after the quoted local part" if rest else 'missing "@"'
        domain = rest[1:]
    else:
        problem = _unquoted_text_problem(address)
        if problem is not None:
            return problem
        local, at, domain = address.partition("@")
        if not at:
            return 'missing "@"'
        problem = _dot_string_problem(local)
        if problem is not None:
            return problem
    problem = _domain_problem(domain)
    if problem is not None:
        return problem
    return _length_problem(local, domain, address)


def needs_smtputf8(address: str) -> bool:
    """Tell whether ``address`` can only be sent with the SMTPUTF8 extension.

    A non-ASCII domain alone does not need it: it can be IDNA-encoded
    instead (see :func:`encode_mailbox`).  Only a non-ASCII local part, which
    has no ASCII form, does (RFC 6531 3.2).

    Args:
        address: the bare mailbox; it is not validated here.

    Returns:
        True if the local part (the text before the last ``"@"``, or the
        whole string if there is none) contains a non-ASCII character.

    Raises:
        Nothing.
    """
    # The domain cannot contain "@" (Domain and the IP literals have none),
    # but a quoted local part can, so split at the last one.
    local = address.rpartition("@")[0] if "@" in address else address
    return not local.isascii()


@functools.lru_cache(maxsize=4096)
def encode_mailbox(address: str, *, smtputf8: bool) -> bytes:
    """Encode a mailbox for ``MAIL FROM:<...>`` or ``RCPT TO:<...>``.

    Args:
        address: the bare mailbox, without angle brackets.  A quoted local
            part is kept exactly as written; the caller adds the brackets.
        smtputf8: whether the server offered SMTPUTF8 and the transaction
            uses it.  With it, the address is sent as UTF-8.  Without it, a
            non-ASCII domain is IDNA-encoded label by label and a non-ASCII
            local part is an error.

    Returns:
        The address as bytes: ASCII unchanged, else UTF-8 or IDNA-encoded.

    Raises:
        ValueError: the address is not a valid RFC 5321 mailbox; it needs
            SMTPUTF8 but ``smtputf8`` is False; or its domain cannot be
            IDNA-encoded (or would no longer fit the length limits once
            encoded).
    """
    problem = mailbox_problem(address)
    if problem is not None:
        raise ValueError(f"invalid mailbox {address!r}: {problem}")
    if address.isascii():
        return address.encode("ascii")
    if smtputf8:
        return address.encode("utf-8")
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError(
            f"mailbox {address!r} has a non-ASCII local part; it needs "
            "SMTPUTF8, which the server does not offer"
        )
    encoded = f"{local}@{_idna_domain(domain, address)}"
    # Nameprep can map a character to a hyphen or lengthen a label past the
    # limits, so the A-label form is checked like any ASCII address.
    problem = mailbox_problem(encoded)
    if problem is not None:
        raise ValueError(
            f"mailbox {address!r} is invalid once its domain is "
            f"IDNA-encoded as {encoded!r}: {problem}"
        )
    return encoded.encode("ascii")


def _idna_domain(domain: str, address: str) -> str:
    """IDNA-encode ``domain`` one label at a time (ASCII labels untouched).

    Label by label because the codec, given a whole name, also splits at
    U+3002 and other "dots" that our grammar treats as label characters,
    which would change the structure of the name behind the caller's back.
    """
    labels: list[str] = []
    for label in domain.split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            ace = label.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(
                f"the domain of mailbox {address!r} cannot be IDNA-encoded "
                f"(label {label!r}: {exc}); the server does not offer "
                "SMTPUTF8 to send it as UTF-8"
            ) from exc
        if "." in ace:
            raise ValueError(
                f"the domain label {label!r} of mailbox {address!r} "
                "IDNA-encodes to more than one label"
            )
        labels.append(ace)
    return ".".join(labels)


def _character_problem(address: str) -> str | None:
    """Refuse characters that no part of a mailbox may hold."""
    match = _FORBIDDEN.search(address)
    if match is None:
        return None
    char = match.group()
    if char in _LINE_BREAKS:
        return "contains a line break"
    if char == "\x00":
        return "contains a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "contains an unpaired surrogate"
    return f"contains the control character U+{ord(char):04X}"


def _unquoted_text_problem(text: str) -> str | None:
    """Refuse what may only appear inside a quoted string.

    Angle brackets and whitespace end the path on a lenient server, so the
    rest would be read as ESMTP parameters (RFC 5321 4.1.2 Mail-parameters).
    """
    if _ANGLE.search(text):
        return 'contains "<" or ">" outside a quoted string'
    if _WHITESPACE.search(text):
        return "contains whitespace outside a quoted string"
    return None


def _quoted_string_problem(address: str) -> str:
    """Say why a local part that opens with DQUOTE does not close properly."""
    # Control characters were refused already, so qtextSMTP can only fail
    # at a backslash: one whose next character is not ASCII (quoted-pairSMTP
    # is %d92 %d32-126 and RFC 6531 does not extend it), or one at the end.
    stop = _QUOTED_PREFIX.match(address)
    index = stop.end() if stop is not None else len(address)
    if index + 1 < len(address) and address[index] == "\\":
        return "backslash before a non-ASCII character in the local part"
    return "unterminated quoted local part"


def _dot_string_problem(local: str) -> str | None:
    """Check a Dot-string local part: Atom *("." Atom)."""
    if _DOT_STRING.fullmatch(local):
        return None
    if not local:
        return "empty local part"
    bad = _NOT_ATEXT_OR_DOT.search(local)
    if bad is not None:
        return f"local part contains the invalid character {bad.group()!r}"
    if local.startswith("."):
        return 'local part starts with "."'
    if local.endswith("."):
        return 'local part ends with "."'
    return 'local part contains ".."'


def _domain_problem(domain: str) -> str | None:
    """Check ``Domain / address-literal``."""
    if not domain:
        return "empty domain"
    if "@" in domain:
        return 'more than one "@"'
    if domain.startswith("["):
        return _address_literal_problem(domain)
    if domain.startswith("."):
        return 'domain starts with "."'
    if domain.endswith("."):
        return 'domain ends with "."'
    for label in domain.split("."):
        if not label:
            return 'domain contains ".."'
        bad = _NOT_LABEL_CHAR.search(label)
        if bad is not None:
            return f"domain contains the invalid character {bad.group()!r}"
        if label.startswith("-"):
            return 'domain label starts with "-"'
        if label.endswith("-"):
            return 'domain label ends with "-"'
        if len(label.encode("utf-8")) > _MAX_LABEL:
            return f"domain label longer than {_MAX_LABEL} octets"
    return None


def _address_literal_problem(literal: str) -> str | None:
    """Check ``"[" ( IPv4 / IPv6 / General-address-literal ) "]"``."""
    if not literal.endswith("]") or len(literal) < 2:
        return 'address literal without closing "]"'
    inner = literal[1:-1]
    if not inner.isascii():
        return "address literal contains a non-ASCII character"
    # ABNF strings are case-insensitive (RFC 5234 2.3): "ipv6:" is the tag too.
    if inner[: len(_IPV6_TAG)].lower() == _IPV6_TAG:
        text = inner[len(_IPV6_TAG) :]
        # ipaddress accepts RFC 4007 zone indexes ("fe80::1%eth0"), which
        # IPv6-addr in RFC 5321 4.1.3 does not.
        if "%" in text:
            return "IPv6 address literal with a zone index"
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return f"invalid IPv6 address literal {text!r}"
        return None
    if ":" in inner:
        # General-address-literal: the tag "MUST be specified in a
        # Standards-Track RFC and registered with IANA" (RFC 5321 4.1.3),
        # and IPv6 is the only one ever registered, so no server can route
        # any other.
        tag = inner.partition(":")[0]
        return f"unknown address literal tag {tag!r}"
    try:
        # Rejects leading zeros ("010"), which some resolvers read as octal.
        ipaddress.IPv4Address(inner)
    except ValueError:
        return f"invalid IPv4 address literal {inner!r}"
    return None


def _length_problem(local: str, domain: str, address: str) -> str | None:
    """Apply the RFC 5321 4.5.3.1 size limits, in octets of UTF-8."""
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        return f"local part longer than {MAX_LOCAL_PART} octets"
    if len(domain.encode("utf-8")) > MAX_DOMAIN:
        return f"domain longer than {MAX_DOMAIN} octets"
    # The path is "<" Mailbox ">", so the mailbox gets two octets less.
    if len(address.encode("utf-8")) + 2 > MAX_PATH:
        return f"address longer than {MAX_PATH - 2} octets"
    return None
