"""OAuth 2.0 bearer tokens over SASL: XOAUTH2 (Google, Microsoft) and
OAUTHBEARER (RFC 7628)."""

from __future__ import annotations

import json
import re
from typing import ClassVar

from smtpcore.protocol.saslbase import SaslMechanism, TokenSource, utf8_credential
from smtpcore.protocol.scram import escape_saslname

__all__ = ["OAuthBearer", "XOAuth2"]

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
# / "/" ) *"="; checking it also keeps the \x01 separators out of a token.
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
# RFC 7628 3.1: value = *(VCHAR / SP / HTAB / CR / LF); a host name needs
# only VCHAR, and anything else could break the key/value framing.
_VCHAR = re.compile(rb"[\x21-\x7e]+")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _token(source: TokenSource) -> bytes:
    """Resolve and check an OAuth token; the token never appears in errors."""
    token = source() if callable(source) else source
    if not isinstance(token, str):
        raise ValueError("the OAuth token source did not return a str")
    raw = token.encode("utf-8", "replace")
    if not _B64TOKEN.fullmatch(raw):
        raise ValueError("the OAuth token is not an RFC 6750 b64token")
    return raw


def _oauth_user(username: str, mechanism: str) -> bytes:
    """A user name for an OAuth mechanism; a ^A in it would end its field."""
    user = utf8_credential(username, "user name")
    if _CONTROL.search(user):
        raise ValueError(f"the {mechanism} user name contains a control character")
    return user


class _OAuth(SaslMechanism):
    """What the token mechanisms share: everything is in the initial
    response, and the only challenge is a JSON error (RFC 7628 3.2.2).

    Attributes:
        last_error: the JSON error's ``status`` (e.g. ``"invalid_token"``,
            Google's XOAUTH2 says ``"400"``), or None.
    """

    # What answers the error challenge, so that the server ends the exchange.
    _error_reply: ClassVar[bytes]
    _message = b""
    last_error: str | None = None

    def initial_response(self) -> bytes | None:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        self._take_round(1)
        mechanism = self.name.decode("ascii")
        try:
            error = json.loads(challenge.decode("utf-8"))
        except (ValueError, RecursionError):
            # RecursionError: deeply nested arrays exhaust the JSON decoder.
            raise ValueError(f"the {mechanism} challenge is not JSON") from None
        status = error.get("status") if isinstance(error, dict) else None
        if isinstance(status, int) and not isinstance(status, bool):
            status = str(status)
        if not isinstance(status, str) or not status:
            raise ValueError(f"the {mechanism} error has no status")
        self.last_error = status
        return self._error_reply


class XOAuth2(_OAuth):
    """XOAUTH2 (Google's and Microsoft's OAuth 2 mechanism).

    Initial response: ``user=<u> ^A auth=Bearer <token> ^A ^A``.  A bad
    token gets a ``334`` whose challenge is a JSON error; the client answers
    it with an empty response and the server then sends ``535``.
    """

    name = b"XOAUTH2"
    _error_reply = b""

    def __init__(self, username: str, token: TokenSource) -> None:
        """Build the initial response; a callable token is called now.

        Args:
            username: the account.
            token: the access token, or a callable returning one.

        Raises:
            ValueError: the user name contains a control character, or the
                token is not an RFC 6750 b64token.
        """
        user = _oauth_user(username, "XOAUTH2")
        self._message = (
            b"user=" + user + b"\x01auth=Bearer " + _token(token) + b"\x01\x01"
        )


class OAuthBearer(_OAuth):
    """OAUTHBEARER (RFC 7628).

    Initial response (RFC 7628 3.1): ``n,a=<saslname>,`` then ``^A`` and
    ``key=value ^A`` pairs (host, port, auth) and a final ``^A``.  A bad
    token gets a ``334`` JSON error; RFC 7628 3.2.3 has the client answer
    with a single ``^A``, and the server then fails the exchange.
    """

    name = b"OAUTHBEARER"
    _error_reply = b"\x01"

    def __init__(
        self,
        username: str,
        token: TokenSource,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        """Build the initial response; a callable token is called now.

        Args:
            username: the authorization identity; "" to leave it out.
            token: the access token, or a callable returning one.
            host: the server's host name, sent as ``host=``.
            port: the server's port, sent as ``port=``.

        Raises:
            ValueError: a control character in the user name, a host that
                is not a printable ASCII (or IDNA-encodable) name, a port
                outside 1..65535, or a token that is not a b64token.
        """
        authzid = b""
        if username:
            # RFC 5801 4: saslname, with "," and "=" escaped.
            user = _oauth_user(username, "OAUTHBEARER").decode("utf-8")
            authzid = b"a=" + escape_saslname(user).encode("utf-8")
        pairs: list[bytes] = []
        if host is not None:
            try:
                raw = host.encode("ascii" if host.isascii() else "idna")
            except UnicodeError:
                raw = b""
            if not _VCHAR.fullmatch(raw):
                raise ValueError("the OAUTHBEARER host is not a valid host name")
            pairs.append(b"host=" + raw)
        if port is not None:
            if isinstance(port, bool) or not 0 < port < 65536:
                raise ValueError("the OAUTHBEARER port must be 1..65535")
            pairs.append(b"port=%d" % port)
        pairs.append(b"auth=Bearer " + _token(token))
        self._message = (
            b"n," + authzid + b",\x01" + b"".join(p + b"\x01" for p in pairs) + b"\x01"
        )
