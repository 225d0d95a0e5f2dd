"""How the test server's replies and recorded parameters are worded:
RFC 3463 enhanced status codes added to aiosmtpd's replies, and ESMTP
parameter values kept as the client wrote them."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["options_as_sent", "with_enhanced_status"]

# RFC 2034 4 / RFC 3463: what the test server adds to a reply that has no
# enhanced status.  The greeting and the EHLO reply carry none.
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY_LINE = re.compile(r"([245])(\d\d)([ -]?)(.*)", re.DOTALL)
_NO_ENHANCED_AFTER = frozenset({"", "EHLO", "HELO", "LHLO"})
_SUCCESS_DETAIL = {"MAIL": "1.0", "RCPT": "1.5", "DATA": "6.0", "BDAT": "6.0"}
# Subjects and details for aiosmtpd's own refusals, by reply code.
_FAILURE_DETAIL = {500: "5.2", 501: "5.4", 502: "5.1", 503: "5.1", 504: "5.4"}
_FAILURE_DETAIL |= {530: "7.0", 552: "3.4", 554: "6.0", 555: "5.4"}


def options_as_sent(options: Sequence[str], raw: str) -> list[str]:
    """Give aiosmtpd's upper-cased parameters back the values the client
    wrote (RFC 3461 4: xtext values are case-sensitive).

    Args:
        options: the parameters as aiosmtpd split and upper-cased them.
        raw: the command's argument as received (``FROM:<a@b> ret=hdrs``).

    Returns:
        The parameters, keywords upper-cased, values as sent; a parameter
        that cannot be matched to the raw text stays as aiosmtpd had it.
    """
    if not options:
        return []
    tokens = raw.split()[-len(options) :]
    kept: list[str] = []
    for token, upper in zip(tokens, options, strict=False):
        key, eq, value = token.partition("=")
        kept.append(key.upper() + eq + value if token.upper() == upper else upper)
    return kept + list(options[len(kept) :])


def with_enhanced_status(text: str, verb: str) -> str:
    """Give every line of a reply an RFC 3463 status (RFC 2034 4: all
    replies but the greeting and the answer to EHLO carry one).

    Args:
        text: the reply, lines separated by CRLF, without the last CRLF.
        verb: the command it answers ("" for the greeting).

    Returns:
        The reply with ``class.subject.detail`` after each code that has
        none: by verb for successes (``2.1.0`` after MAIL, ``2.1.5`` after
        RCPT, ``2.6.0`` after the content), by code for refusals.
    """
    if verb in _NO_ENHANCED_AFTER:
        return text
    lines: list[str] = []
    for line in text.split("\r\n"):
        match = _REPLY_LINE.fullmatch(line)
        if match is None or _ENHANCED.match(match[4]):
            lines.append(line)
            continue
        cls, code = match[1], int(match[1] + match[2])
        if cls == "2":
            detail = _SUCCESS_DETAIL.get(verb, "0.0")
        else:
            detail = _FAILURE_DETAIL.get(code, "0.0")
        separator = match[3] or " "
        lines.append(f"{cls}{match[2]}{separator}{cls}.{detail} {match[4]}".rstrip())
    return "\r\n".join(lines)
