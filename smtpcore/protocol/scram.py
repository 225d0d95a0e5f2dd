"""The client side of SCRAM (RFC 5802, RFC 7677) and SASLprep (RFC 4013).

Pure computation: :class:`ScramClient` turns the server's messages into
the client's and checks the server's proof; the SASL wrapper in
:mod:`smtpcore.protocol.sasl` feeds it the decoded ``334`` challenges.

Channel binding (the ``-PLUS`` variants) is not implemented, so the GS2
header is always ``n,,`` (RFC 5802 6: "n" means the client does not
support channel binding).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable

from smtpcore.protocol.saslbase import SaslServerFailure

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "SCRAM_HASHES",
    "ScramClient",
    "escape_saslname",
    "saslprep",
]

# The hash behind each mechanism name.  SCRAM-SHA-512 is not in an RFC;
# it is the RFC 5802 construction with SHA-512, as servers implement it.
SCRAM_HASHES: dict[str, str] = {
    "SCRAM-SHA-1": "sha1",
    "SCRAM-SHA-256": "sha256",
    "SCRAM-SHA-512": "sha512",
}

# The iteration count comes from the server, and every iteration is an HMAC
# we compute: a hostile (or man-in-the-middle) server could send i=4e9 and
# keep us busy for hours.  RFC 7677 4 asks for at least 4096; real servers
# use up to a few hundred thousand (OWASP's PBKDF2 advice), so a million
# leaves room while bounding the work to about a second.
DEFAULT_MAX_ITERATIONS = 1_000_000

# RFC 5802 7: the GS2 header without channel binding and authzid; its
# base64 ("biws") is the c= attribute of the client-final message.
_GS2_HEADER = b"n,,"
# RFC 5802 7: printable = %x21-2B / %x2D-7E (printable ASCII except ",").
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# RFC 5802 7: attr-val = ALPHA "=" value.
_ATTRIBUTE = re.compile(r"([A-Za-z])=(.*)", re.DOTALL)
# RFC 5802 7: posit-number = %x31-39 *DIGIT; ten digits already exceed
# any bound we accept, so longer strings are refused before int().
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")
# Bytes of nonce entropy; RFC 5802 5.1 only asks for "a sequence of random
# printable ASCII characters", 24 random bytes make 32 base64 characters.
_NONCE_BYTES = 24
# RFC 5802 7 server-error-values that refuse the user or the password.
_CREDENTIAL_ERRORS = frozenset(
    {"invalid-proof", "unknown-user", "invalid-username-encoding"}
)

# RFC 4013 2.3: the prohibited output tables of stringprep (RFC 3454).
_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21_c22,  # ASCII and non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate code points
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, stored: bool, what: str = "string") -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    The whole profile is implemented on the stdlib's ``stringprep`` tables
    (Unicode 3.2, which RFC 3454 is defined on): mapping (2.1), NFKC (2.2),
    prohibited output (2.3), the bidirectional rule (2.4) and, for stored
    strings, unassigned code points (2.5).

    Args:
        text: the string to prepare.
        stored: True for a "stored string" (unassigned code points are
            refused), False for a "query" (they pass through).
        what: names the value in error messages; the value itself is never
            quoted there, it may be a password.

    Returns:
        The prepared string (possibly empty).

    Raises:
        ValueError: the string contains a prohibited or (stored) unassigned
            character, or breaks the bidirectional rule.
    """
    # RFC 4013 2.1: non-ASCII spaces map to SPACE, "commonly mapped to
    # nothing" characters (soft hyphen, zero-width joiners, ...) vanish.
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in prepared:
        if any(check(char) for check in _PROHIBITED):
            raise ValueError(
                f"the {what} contains a character SASLprep prohibits "
                "(RFC 4013 2.3: a control, private-use or similar character)"
            )
        if stored and stringprep.in_table_a1(char):
            raise ValueError(
                f"the {what} contains a character unassigned in Unicode 3.2, "
                "which SASLprep refuses in stored strings (RFC 4013 2.5)"
            )
    # RFC 3454 6: right-to-left text must not mix in left-to-right
    # characters and must begin and end with a right-to-left character.
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        raise ValueError(
            f"the {what} mixes right-to-left and left-to-right text in a way "
            "SASLprep forbids (RFC 3454 6)"
        )
    return prepared


def escape_saslname(name: str) -> str:
    """Escape a name for the ``n=`` / ``a=`` attributes (RFC 5802 5.1).

    Args:
        name: the (prepared) user name.

    Returns:
        The name with ``=`` written ``=3D`` and ``,`` written ``=2C``.

    Raises:
        ValueError: the name contains NUL, which a saslname cannot carry
            (RFC 5801 4: UTF8-char-safe excludes %x00).
    """
    if "\0" in name:
        raise ValueError("a SASL name cannot contain NUL")
    # "=" first, or the "=" of "=2C" would be escaped again.
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> list[tuple[str, str]]:
    """Split a SCRAM message into (name, value) pairs, in order."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the SCRAM {what} is not UTF-8") from None
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        match = _ATTRIBUTE.fullmatch(part)
        if match is None:
            raise ValueError(f"the SCRAM {what} has a malformed attribute")
        pairs.append((match[1], match[2]))
    return pairs


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"the SCRAM {what} is not valid base64") from None


def _shown(value: str) -> str:
    """A server-sent value made safe to put in an error message."""
    printable = "".join(char if char.isprintable() else "?" for char in value)
    return printable[:80]


class ScramClient:
    """One SCRAM exchange, client side (RFC 5802 3 and 5).

    Call :meth:`client_first`, then :meth:`client_final` with the server's
    first message, then :meth:`verify_server_final` with its last.  The
    password is kept only until the salted password is derived.

    Attributes:
        verified: True once the server's signature has been checked, i.e.
            the server has proved that it knows the password.
    """

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        nonce: str | None = None,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> None:
        """Prepare the exchange.

        Args:
            mechanism: ``SCRAM-SHA-1``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``.
            username: the user name; SASLprep'd as a query (RFC 5802 5.1).
            password: the password; SASLprep'd as a stored string
                (RFC 5802 2.2, "Normalize").
            nonce: the client nonce, for test vectors; random by default.
            max_iterations: the largest iteration count accepted from the
                server.

        Raises:
            ValueError: unknown mechanism, a user name or password SASLprep
                refuses, an empty prepared user name (RFC 5802 5.1 says to
                abort), or a nonce outside RFC 5802's printable set.
        """
        if mechanism not in SCRAM_HASHES:
            raise ValueError(f"unknown SCRAM mechanism {mechanism!r}")
        self._hash = SCRAM_HASHES[mechanism]
        prepared = saslprep(username, stored=False, what="user name")
        if not prepared:
            raise ValueError("the user name is empty after SASLprep")
        self._password: bytes | None = saslprep(
            password, stored=True, what="password"
        ).encode("utf-8")
        if nonce is None:
            nonce = base64.b64encode(secrets.token_bytes(_NONCE_BYTES)).decode()
        elif not _NONCE.fullmatch(nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        self._nonce = nonce
        self._max_iterations = max_iterations
        self._client_first_bare = f"n={escape_saslname(prepared)},r={nonce}".encode()
        self._server_signature: bytes | None = None
        self.verified = False

    def __repr__(self) -> str:
        return f"<ScramClient {self._hash} verified={self.verified}>"

    def client_first(self) -> bytes:
        """The client-first message, sent as AUTH's initial response.

        Returns:
            ``n,,n=<saslname>,r=<nonce>``.
        """
        return _GS2_HEADER + self._client_first_bare

    def client_final(self, server_first: bytes) -> bytes:
        """Check the server-first message and compute the client proof.

        Args:
            server_first: the decoded first challenge.

        Returns:
            The client-final message ``c=biws,r=<nonce>,p=<proof>``.

        Raises:
            ValueError: called twice, a malformed server-first message, an
                ``m=`` extension, a nonce that does not extend ours, a bad
                salt, or an iteration count outside 1..max_iterations.
        """
        password = self._password
        if password is None:
            raise ValueError("the SCRAM server-first message came twice")
        self._password = None
        nonce, salt, iterations = self._parse_server_first(server_first)
        salted = hashlib.pbkdf2_hmac(self._hash, password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = (
            b"c=" + base64.b64encode(_GS2_HEADER) + b",r=" + nonce.encode("ascii")
        )
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return without_proof + b",p=" + base64.b64encode(proof)

    def _parse_server_first(self, message: bytes) -> tuple[str, bytes, int]:
        pairs = _attributes(message, "server-first message")
        # RFC 5802 5.1: "m" is reserved for mandatory extensions the client
        # does not know, and "the client MUST cause authentication failure".
        if pairs[0][0] == "m":
            raise ValueError("the SCRAM server asks for an unknown extension (m=)")
        names = "".join(name for name, _ in pairs[:3])
        if names != "rsi":
            raise ValueError(
                "the SCRAM server-first message does not start with r=, s=, i="
            )
        (_, nonce), (_, salt_text), (_, count) = pairs[:3]
        # Later attributes are extensions (RFC 5802 7), which we ignore.
        if not _NONCE.fullmatch(nonce):
            raise ValueError("the SCRAM server nonce has invalid characters")
        # RFC 5802 5.1: the server's nonce is ours with its own appended.
        # Merely echoing ours would make the exchange replayable.
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ValueError("the SCRAM server nonce does not extend ours")
        salt = _b64decode(salt_text, "salt")
        if not salt:
            raise ValueError("the SCRAM salt is empty")
        if not _ITERATIONS.fullmatch(count):
            raise ValueError("the SCRAM iteration count is not a number in range")
        iterations = int(count)
        if iterations > self._max_iterations:
            raise ValueError(
                f"the SCRAM iteration count {iterations} exceeds "
                f"{self._max_iterations}; refused so a server cannot make us "
                "burn CPU"
            )
        return nonce, salt, iterations

    def verify_server_final(self, server_final: bytes) -> None:
        """Check the server's signature (RFC 5802 3: the server proves it
        knows the password too).

        Args:
            server_final: the decoded server-final message.

        Raises:
            ValueError: no client-final was computed yet, the server sent
                ``e=`` (its error is in the message), the message is
                malformed, or the signature is wrong.
        """
        expected = self._server_signature
        if expected is None or self.verified:
            raise ValueError("the SCRAM server-final message came out of order")
        pairs = _attributes(server_final, "server-final message")
        name, value = pairs[0]
        if name == "e":
            message = f"the SCRAM server reported {_shown(value)!r}"
            # RFC 5802 7: these values are about the user and the password,
            # or the server's load; the rest say the two sides do not fit.
            if value in _CREDENTIAL_ERRORS:
                raise SaslServerFailure(message, temporary=False)
            if value == "no-resources":
                raise SaslServerFailure(message, temporary=True)
            raise ValueError(message)
        if name != "v":
            raise ValueError("the SCRAM server-final message has no v=")
        # A comparison whose time does not depend on where the first
        # differing byte is, so timing tells a forger nothing.
        if not hmac.compare_digest(_b64decode(value, "server signature"), expected):
            raise ValueError(
                "the SCRAM server signature is wrong: the server does not "
                "know the password"
            )
        self.verified = True
