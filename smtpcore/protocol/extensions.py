"""The service extensions a server announces in its EHLO reply.

RFC 5321 4.1.1.1: the first line of a positive EHLO reply carries the
server's domain and a greeting; every further line is
``ehlo-keyword *( SP ehlo-param )``, and keywords are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpcore.errors import LocalProtocolError
from smtpcore.protocol.replies import SmtpReply

__all__ = ["Extensions"]

# RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
# Spelled out rather than \w so that no non-ASCII letter or "_" passes.
_EHLO_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

# RFC 4954 3 (via RFC 4422 3.1): sasl-mech = 1*20(UPPER-ALPHA / DIGIT / "-" /
# "_"), matched after upper-casing.  A token outside it cannot be a mechanism
# we could ask for, and it would later become a command argument.
_SASL_MECH = re.compile(r"[A-Z0-9_-]{1,20}")

# The pre-standard form "AUTH=LOGIN PLAIN" (sent by old Exchange and others,
# sometimes as the only AUTH line); it is not a valid ehlo-keyword.
_OLD_AUTH_PREFIX = "AUTH="

# SIZE values above 20 digits exceed any real limit (2**64 has 20), and
# int() refuses strings over 4300 digits with ValueError, which must not
# escape from a hostile reply.
_MAX_SIZE_DIGITS = 20


def _decode(token: bytes) -> str:
    """Decode one EHLO token; non-ASCII bytes become U+FFFD, never an error."""
    return token.decode("ascii", "replace")


@dataclass(frozen=True, slots=True)
class Extensions:
    """What a server supports, as announced in its EHLO reply.

    Attributes:
        keywords: upper-cased keyword -> its parameters, exactly as sent
            (ASCII-decoded, unknown bytes replaced).  A read-only mapping.
        auth_mechanisms: the SASL mechanisms offered (upper-cased), from both
            ``AUTH a b`` and the old ``AUTH=a b`` lines.
        size: the fixed message size limit in octets from ``SIZE n``, or None
            when there is none (``SIZE`` without a number, ``SIZE 0``, which
            RFC 1870 4 defines as "no fixed limit", a malformed number, or no
            SIZE keyword at all).

    Constructing directly copies and normalises the arguments (keywords and
    mechanisms upper-cased, the mapping made read-only), so an instance never
    changes.  Equality compares all fields; the hash leaves out ``keywords``.
    """

    keywords: Mapping[str, tuple[str, ...]] = field(hash=False)
    auth_mechanisms: frozenset[str] = frozenset()
    size: int | None = None

    def __post_init__(self) -> None:
        # A frozen dataclass can only set its fields through object.__setattr__;
        # the copy keeps the caller's dict from changing us afterwards.
        object.__setattr__(
            self,
            "keywords",
            MappingProxyType(
                {key.upper(): tuple(params) for key, params in self.keywords.items()}
            ),
        )
        object.__setattr__(
            self,
            "auth_mechanisms",
            frozenset(mech.upper() for mech in self.auth_mechanisms),
        )

    @classmethod
    def none(cls) -> Extensions:
        """Return the empty set of extensions.

        Returns:
            Extensions with no keyword, as before EHLO or after a HELO (which
            announces nothing).
        """
        return cls(keywords={})

    @classmethod
    def from_ehlo(cls, reply: SmtpReply) -> Extensions:
        """Parse a positive EHLO reply.

        Lines whose first token is not a valid ehlo-keyword are skipped, not
        refused: hostile or sloppy servers send junk, and the session works
        without the keyword the junk stood for.  A keyword announced twice
        keeps its first parameters, except AUTH, whose mechanisms are merged.

        Args:
            reply: the server's 2xx reply to EHLO.

        Returns:
            The announced extensions.

        Raises:
            LocalProtocolError: ``reply`` is not positive (a refused EHLO
                announces nothing; the caller should fall back to HELO).
        """
        if not reply.is_positive:
            raise LocalProtocolError(
                f"Extensions.from_ehlo() needs a positive reply, not {reply.code}."
            )
        keywords: dict[str, tuple[str, ...]] = {}
        # dicts, not sets, so that AUTH's parameters keep the server's order.
        auth_params: dict[str, None] = {}
        old_auth_params: dict[str, None] = {}
        # The first line is "domain [ SP ehlo-greet ]", not a keyword.
        for raw in reply.lines[1:]:
            # Split on any ASCII whitespace: servers pad with several spaces
            # or tabs, and a stray CR must not end up inside a parameter.
            tokens = raw.split()
            if not tokens:
                continue
            head = _decode(tokens[0])
            params = tuple(_decode(token) for token in tokens[1:])
            upper = head.upper()
            if upper.startswith(_OLD_AUTH_PREFIX):
                first = head[len(_OLD_AUTH_PREFIX) :]
                for param in (first, *params) if first else params:
                    old_auth_params[param] = None
                continue
            if _EHLO_KEYWORD.fullmatch(head) is None:
                continue
            if upper == "AUTH":
                for param in params:
                    auth_params[param] = None
                keywords[upper] = tuple(auth_params)
            elif upper not in keywords:
                keywords[upper] = params
        # A server that sends only the old form still offers AUTH; let
        # has("AUTH") say so.
        if old_auth_params and "AUTH" not in keywords:
            keywords["AUTH"] = tuple(old_auth_params)
        mechanisms = frozenset(
            mech
            for mech in (param.upper() for param in (*auth_params, *old_auth_params))
            if _SASL_MECH.fullmatch(mech)
        )
        return cls(
            keywords=keywords,
            auth_mechanisms=mechanisms,
            size=_parse_size(keywords.get("SIZE")),
        )

    def has(self, keyword: str) -> bool:
        """Tell whether the server announced ``keyword``.

        Args:
            keyword: an EHLO keyword, in any case.

        Returns:
            True if it was announced (with or without parameters).
        """
        return keyword.upper() in self.keywords

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920): commands may be sent in groups."""
        return "PIPELINING" in self.keywords

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207): the connection can be upgraded to TLS."""
        return "STARTTLS" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152): 8-bit message content is accepted."""
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531): UTF-8 addresses and headers are accepted."""
        return "SMTPUTF8" in self.keywords

    @property
    def chunking(self) -> bool:
        """CHUNKING (RFC 3030): BDAT may replace DATA."""
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030): binary content, sent with BDAT only."""
        return "BINARYMIME" in self.keywords

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461): delivery status notification parameters."""
        return "DSN" in self.keywords

    @property
    def enhancedstatuscodes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034): replies carry RFC 3463 statuses."""
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def requiretls(self) -> bool:
        """REQUIRETLS (RFC 8689): the message may demand TLS all the way."""
        return "REQUIRETLS" in self.keywords


def _parse_size(params: tuple[str, ...] | None) -> int | None:
    """Return the SIZE limit from the keyword's parameters, or None.

    RFC 1870 4: ``size-param ::= [1*DIGIT]``; absent or 0 means no fixed
    limit.  Anything else is malformed and treated as no known limit, so that
    a bad announcement never blocks a message the server would take.
    """
    if not params:
        return None
    value = params[0]
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_SIZE_DIGITS:
        return None
    return int(value) or None
