"""SASL mechanisms as pure challenge -> response objects (RFC 4422).

A mechanism knows nothing of SMTP: the dialogue sends ``AUTH <name>`` with
the mechanism's initial response, decodes each ``334`` challenge and hands
it to :meth:`SaslMechanism.respond`, and calls
:meth:`SaslMechanism.complete` after ``235``.  Objects hold secrets, so
their ``repr`` never shows them.

Every problem with a challenge is a :class:`ValueError` (the dialogue
cancels the exchange with ``*``); so is a credential a mechanism cannot
carry, raised when the object is created.  The SCRAM and NTLM computations
live in :mod:`smtpcore.protocol.scram` and :mod:`smtpcore.protocol.ntlm`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from smtpcore.protocol.ntlm import NtlmClient
from smtpcore.protocol.oauth import OAuthBearer, XOAuth2
from smtpcore.protocol.saslbase import (
    MAX_ROUNDS,
    SaslMechanism,
    TokenSource,
    utf8_credential,
)
from smtpcore.protocol.scram import DEFAULT_MAX_ITERATIONS, ScramClient

__all__ = [
    "MAX_ROUNDS",
    "MECHANISM_NAMES",
    "OAUTH_PREFERENCE",
    "PREFERENCE",
    "CramMd5",
    "Login",
    "Ntlm",
    "OAuthBearer",
    "Plain",
    "SaslMechanism",
    "Scram",
    "ScramSha1",
    "ScramSha256",
    "ScramSha512",
    "TokenSource",
    "XOAuth2",
    "choose_mechanism",
]

# Password mechanisms, strongest first.  SCRAM never shows the password to
# the server and proves the server knows it; NTLM and CRAM-MD5 do not send
# it but their hashes can be attacked offline; PLAIN before LOGIN only
# because both send the password and PLAIN needs one round trip less.
PREFERENCE: tuple[str, ...] = (
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "NTLM",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)
# Token mechanisms: the standard one (RFC 7628) before the older vendor one.
OAUTH_PREFERENCE: tuple[str, ...] = ("OAUTHBEARER", "XOAUTH2")
MECHANISM_NAMES: tuple[str, ...] = PREFERENCE + OAUTH_PREFERENCE

_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


class Plain(SaslMechanism):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in UTF-8."""

    name = b"PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        """Build the message.

        Args:
            username: the authentication identity.
            password: the password.
            authzid: the identity to act as; "" for the same one.

        Raises:
            ValueError: a value contains NUL (RFC 4616 2 excludes it) or is
                not encodable text.
        """
        parts = (
            utf8_credential(authzid, "authorization identity"),
            utf8_credential(username, "user name"),
            utf8_credential(password, "password"),
        )
        if any(b"\0" in part for part in parts):
            raise ValueError("PLAIN cannot carry a NUL in a user name or password")
        self._message = b"\0".join(parts)

    def initial_response(self) -> bytes | None:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        self._take_round(1)
        # RFC 4616 2: with no initial response the server sends an empty
        # challenge and the message follows; anything more is an error.
        if challenge:
            raise ValueError("PLAIN expects an empty challenge")
        return self._message


class Login(SaslMechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password.

    Servers word the prompts differently ("Username:", "User Name", ...),
    so the answer goes by round, not by the prompt's text.
    """

    name = b"LOGIN"

    def __init__(self, username: str, password: str) -> None:
        """Keep the two answers.

        Args:
            username: the user name.
            password: the password.

        Raises:
            ValueError: a value is not encodable text.
        """
        self._answers = (
            utf8_credential(username, "user name"),
            utf8_credential(password, "password"),
        )

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        return self._answers[self._take_round(2)]


class CramMd5(SaslMechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = b"CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        """Keep the user name and the HMAC key.

        Args:
            username: the user name.
            password: the password (the HMAC key).

        Raises:
            ValueError: a value is not encodable text.
        """
        self._username = utf8_credential(username, "user name")
        self._key = utf8_credential(password, "password")

    def initial_response(self) -> bytes | None:
        # RFC 2195 2: the server speaks first, with the challenge.
        return None

    def respond(self, challenge: bytes) -> bytes:
        self._take_round(1)
        # RFC 2195 2: the challenge is a msg-id such as "<1896.697@host>";
        # only its being non-empty printable ASCII matters to the digest.
        if not _PRINTABLE.fullmatch(challenge):
            raise ValueError("the CRAM-MD5 challenge is empty or not printable ASCII")
        digest = hmac.digest(self._key, challenge, "md5").hex().encode("ascii")
        return self._username + b" " + digest


class Scram(SaslMechanism):
    """SCRAM (RFC 5802, RFC 7677); use a subclass, which fixes the hash.

    Three steps: the client-first message goes with AUTH; the server-first
    challenge is answered with the client proof; the server-final challenge
    carries the server's own proof, answered with an empty response
    (RFC 4954 4 has no room for data in the ``235``).
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        nonce: str | None = None,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> None:
        """Prepare the exchange; see :class:`ScramClient` for the details.

        Args:
            username: the user name (SASLprep'd as a query).
            password: the password (SASLprep'd as a stored string).
            nonce: the client nonce, for test vectors; random by default.
            max_iterations: the largest iteration count accepted.

        Raises:
            ValueError: SASLprep refuses the user name or password.
        """
        self._client = ScramClient(
            self.name.decode("ascii"),
            username,
            password,
            nonce=nonce,
            max_iterations=max_iterations,
        )

    def initial_response(self) -> bytes | None:
        return self._client.client_first()

    def respond(self, challenge: bytes) -> bytes:
        if self._take_round(2) == 0:
            return self._client.client_final(challenge)
        self._client.verify_server_final(challenge)
        return b""

    def complete(self) -> None:
        """Refuse a ``235`` that came without the server's proof.

        Raises:
            ValueError: the server never sent a valid ``v=``: it did not
                prove it knows the password (it may be an impostor that
                accepts anything).
        """
        if not self._client.verified:
            raise ValueError(
                f"{self.name.decode('ascii')}: the server did not prove it "
                "knows the password"
            )


class ScramSha1(Scram):
    """SCRAM-SHA-1 (RFC 5802)."""

    name = b"SCRAM-SHA-1"


class ScramSha256(Scram):
    """SCRAM-SHA-256 (RFC 7677)."""

    name = b"SCRAM-SHA-256"


class ScramSha512(Scram):
    """SCRAM-SHA-512: RFC 5802's construction over SHA-512."""

    name = b"SCRAM-SHA-512"


class Ntlm(SaslMechanism):
    """NTLM (MS-NLMP, NTLMv2) as Exchange offers it (MS-SMTPNTLM).

    The NEGOTIATE message goes with AUTH, the one challenge is the
    CHALLENGE message, the answer the AUTHENTICATE message.
    """

    name = b"NTLM"

    def __init__(
        self,
        username: str,
        password: str,
        domain: str | None = None,
        *,
        workstation: str = "",
        client_challenge: bytes | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Derive the key.

        Args:
            username, password, domain, workstation, client_challenge,
            timestamp: as for :class:`~smtpcore.protocol.ntlm.NtlmClient`.

        Raises:
            ValueError: a bad client challenge or timestamp.
        """
        self._client = NtlmClient(
            username,
            password,
            domain,
            workstation=workstation,
            client_challenge=client_challenge,
            timestamp=timestamp,
        )

    def initial_response(self) -> bytes | None:
        return self._client.negotiate()

    def respond(self, challenge: bytes) -> bytes:
        self._take_round(1)
        return self._client.authenticate(challenge)


_SCRAM: dict[str, type[Scram]] = {
    cls.name.decode("ascii"): cls for cls in (ScramSha1, ScramSha256, ScramSha512)
}


@dataclass(frozen=True, slots=True)
class _Secrets:
    username: str
    password: str | None = field(default=None, repr=False)
    domain: str | None = None
    token: TokenSource | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    ntlm_timestamp: int | None = None


def _create(name: str, secrets: _Secrets) -> SaslMechanism:
    """Create the mechanism ``name`` (one of :data:`MECHANISM_NAMES`)."""
    username, password = secrets.username, secrets.password
    if name in OAUTH_PREFERENCE:
        if secrets.token is None:
            raise ValueError(f"{name} needs an OAuth token")
        if name == "XOAUTH2":
            return XOAuth2(username, secrets.token)
        return OAuthBearer(
            username, secrets.token, host=secrets.host, port=secrets.port
        )
    if password is None:
        raise ValueError(f"{name} needs a password")
    if name in _SCRAM:
        return _SCRAM[name](username, password)
    if name == "NTLM":
        return Ntlm(
            username, password, secrets.domain, timestamp=secrets.ntlm_timestamp
        )
    if name == "CRAM-MD5":
        return CramMd5(username, password)
    if name == "PLAIN":
        return Plain(username, password)
    return Login(username, password)


def choose_mechanism(
    offered: Collection[str],
    username: str,
    password: str | None = None,
    *,
    domain: str | None = None,
    oauth_token: TokenSource | None = None,
    mechanism: str | None = None,
    host: str | None = None,
    port: int | None = None,
    ntlm_timestamp: int | None = None,
) -> SaslMechanism | None:
    """Pick the best mechanism both sides support and create it.

    With a token, only OAuth mechanisms are considered (OAUTHBEARER before
    XOAUTH2): a caller who has a token wants it used, not a fallback that
    sends a password.  Otherwise the strongest password mechanism in
    :data:`PREFERENCE` wins; one that cannot carry these credentials (SCRAM
    refuses what SASLprep refuses) is skipped for the next one.

    Args:
        offered: the mechanism names from the EHLO reply (any case).
        username: the user name.
        password: the password, for password mechanisms.
        domain: the NT domain, for NTLM.
        oauth_token: an access token or a callable returning one; the
            callable is called once, when the mechanism is created.
        mechanism: force this mechanism instead of choosing.
        host: the server's host name (OAUTHBEARER sends it).
        port: the server's port (OAUTHBEARER sends it).
        ntlm_timestamp: now in FILETIME units, for NTLMv2 when the server
            sends no timestamp of its own.

    Returns:
        A fresh mechanism object, or None if nothing usable (or, with
        ``mechanism``, not that one) is offered.

    Raises:
        ValueError: ``mechanism`` is not in :data:`MECHANISM_NAMES` or the
            secret it needs was not given (whether offered or not); neither
            a password nor a token was given; the token or OAuth details
            are malformed; or the credentials suit none of the offered
            password mechanisms (the first such problem is raised).
    """
    available = {name.upper() for name in offered}
    if mechanism is not None:
        forced = mechanism.upper()
        if forced not in MECHANISM_NAMES:
            raise ValueError(f"smtpcore does not implement {mechanism!r}")
        if forced in OAUTH_PREFERENCE and oauth_token is None:
            raise ValueError(f"{forced} needs an OAuth token")
        if forced in PREFERENCE and password is None:
            raise ValueError(f"{forced} needs a password")
        candidates: tuple[str, ...] = (forced,)
    elif oauth_token is not None:
        candidates = OAUTH_PREFERENCE
    elif password is not None:
        candidates = PREFERENCE
    else:
        raise ValueError("AUTH needs a password or an OAuth token")
    problem: ValueError | None = None
    for name in candidates:
        if name not in available:
            continue
        try:
            secrets = _Secrets(
                username, password, domain, oauth_token, host, port, ntlm_timestamp
            )
            return _create(name, secrets)
        except ValueError as exc:
            # A token that is malformed for one OAuth mechanism is for the
            # other too, and a forced choice has no alternative.
            if mechanism is not None or name in OAUTH_PREFERENCE:
                raise
            problem = problem or exc
    if problem is not None:
        raise problem
    return None
