"""The server side of every SASL mechanism smtpcore speaks, for
:mod:`smtpcore.testserver` (aiosmtpd has only PLAIN and LOGIN).

The exchanges (:class:`ScramServerExchange`, :class:`NtlmServerExchange`,
the OAuth parsers) are pure computations, tested with the RFC vectors;
:class:`SaslMechanisms` wires them into aiosmtpd as ``auth_MECHANISM``
handler methods.  Private to the test server; needs the ``test`` extra.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, AuthResult

from smtpcore.protocol import ntlm
from smtpcore.protocol.scram import SCRAM_HASHES, saslprep

# Every mechanism the test server can offer; aiosmtpd has PLAIN and LOGIN.
SASL_MECHANISMS: tuple[str, ...] = (
    *("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"),
    *("SCRAM-SHA-512", "XOAUTH2", "OAUTHBEARER", "NTLM"),
)

# RFC 7677 4: "at least 4096"; more only slows the tests down.
SCRAM_ITERATIONS = 4096
# MS-NLMP 2.2.2.5 flags the client module does not need.
_TARGET_TYPE_DOMAIN = 0x00010000
_NEGOTIATE_TARGET_INFO = 0x00800000
_STRINGS = ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_OEM
# 100 ns ticks between 1601-01-01 (FILETIME) and 1970-01-01 (Unix).
_FILETIME_EPOCH = 116_444_736_000_000_000
_NTLM_SIGNATURE = b"NTLMSSP\0"
_NTLM_DOMAIN = "EXAMPLE"


# ------------------------------------------------------------------ SCRAM


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What a SCRAM server stores instead of the password (RFC 5802 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def derive(
        cls, mechanism: str, password: str, salt: bytes, iterations: int
    ) -> ScramCredentials:
        """Derive StoredKey and ServerKey from a password.

        Args:
            mechanism: a key of ``SCRAM_HASHES``.
            password: the password (SASLprep'd here as a stored string).
            salt: the salt.
            iterations: the PBKDF2 iteration count.

        Returns:
            The stored credentials.

        Raises:
            ValueError: SASLprep refuses the password.
        """
        name = SCRAM_HASHES[mechanism]
        prepared = saslprep(password, stored=True, what="password").encode()
        salted = hashlib.pbkdf2_hmac(name, prepared, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", name)
        return cls(
            salt,
            iterations,
            hashlib.new(name, client_key).digest(),
            hmac.digest(salted, b"Server Key", name),
        )


def _unescape_saslname(name: str) -> str:
    # RFC 5802 5.1: "=2C" is ",", "=3D" is "="; any other "=" is an error.
    if re.search(r"=(?!2C|3D)", name):
        raise ValueError("malformed saslname")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServerExchange:
    """One SCRAM exchange, server side (RFC 5802 3 and 5.1).

    Args:
        mechanism: ``SCRAM-SHA-1``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``.
        lookup: user name -> stored credentials, or None if unknown.
        nonce: the server's part of the nonce (random by default).
        bad_signature: send a wrong ServerSignature, to test clients.
    """

    def __init__(
        self,
        mechanism: str,
        lookup: Callable[[str], ScramCredentials | None],
        *,
        nonce: str | None = None,
        bad_signature: bool = False,
    ) -> None:
        self._hash = SCRAM_HASHES[mechanism]
        self._lookup = lookup
        self._server_nonce = nonce or secrets.token_urlsafe(18)
        self._bad_signature = bad_signature
        self._expected: tuple[bytes, str, ScramCredentials | None] | None = None
        self.user: str | None = None

    def server_first(self, client_first: bytes) -> bytes:
        """Answer the client-first message.

        Args:
            client_first: ``gs2-header client-first-message-bare``.

        Returns:
            ``r=<nonce>,s=<salt>,i=<iterations>``.

        Raises:
            ValueError: a malformed message, or channel binding asked for.
        """
        text = client_first.decode("utf-8")
        flag, authzid, bare = [*text.split(",", 2), "", ""][:3]
        # RFC 5802 7: "p=" asks for channel binding, which we do not offer.
        if flag not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise ValueError("unsupported GS2 header")
        match = re.fullmatch(r"n=([^,]+),r=([\x21-\x2b\x2d-\x7e]+)(,.*)?", bare)
        if match is None:
            raise ValueError("malformed client-first message")
        self.user = _unescape_saslname(match[1])
        nonce = match[2] + self._server_nonce
        stored = self._lookup(self.user)
        # RFC 5802 5.1: an unknown user gets a made-up salt, so the reply
        # does not tell who exists; the proof then fails.
        salt = stored.salt if stored else secrets.token_bytes(16)
        count = stored.iterations if stored else SCRAM_ITERATIONS
        first = f"r={nonce},s={base64.b64encode(salt).decode()},i={count}"
        gs2 = base64.b64encode(f"{flag},{authzid},".encode()).decode()
        without_proof = f"c={gs2},r={nonce}"
        auth_message = f"{bare},{first},{without_proof}".encode()
        self._expected = (auth_message, without_proof, stored)
        return first.encode()

    def server_final(self, client_final: bytes) -> bytes | None:
        """Check the client proof.

        Args:
            client_final: ``c=...,r=...,p=<proof>``.

        Returns:
            ``v=<ServerSignature>``, or None when the proof is wrong.

        Raises:
            ValueError: out of order, or a malformed message.
        """
        if self._expected is None:
            raise ValueError("client-final before client-first")
        auth_message, without_proof, stored = self._expected
        self._expected = None
        head, sep, proof_text = client_final.decode("ascii").rpartition(",p=")
        # Extensions between r= and p= are not ours; the exact prefix is.
        if not sep or head != without_proof:
            raise ValueError("channel binding or nonce does not match")
        proof = base64.b64decode(proof_text, validate=True)
        if stored is None:
            return None
        signature = hmac.digest(stored.stored_key, auth_message, self._hash)
        if len(proof) != len(signature):
            return None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._hash, client_key).digest(), stored.stored_key
        ):
            return None
        server_signature = hmac.digest(stored.server_key, auth_message, self._hash)
        if self._bad_signature:
            server_signature = bytes([server_signature[0] ^ 1]) + server_signature[1:]
        return b"v=" + base64.b64encode(server_signature)


# ------------------------------------------------------------------- NTLM


def _av_pair(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def _payload(data: bytes, at: int) -> bytes:
    length, _, offset = struct.unpack_from("<HHI", data, at)
    if offset + length > len(data):
        raise ValueError("an NTLM field points past the end of the message")
    return data[offset : offset + length]


class NtlmServerExchange:
    """One NTLM exchange, server side: CHALLENGE out, NTLMv2 verified.

    Args:
        password_of: (user, domain) -> the password, or None if unknown.
        server_challenge: 8 bytes (random by default).
        timestamp: the FILETIME sent as MsvAvTimestamp (now by default).
    """

    def __init__(
        self,
        password_of: Callable[[str, str], str | None],
        *,
        server_challenge: bytes | None = None,
        timestamp: int | None = None,
    ) -> None:
        self._password_of = password_of
        self._server_challenge = server_challenge or secrets.token_bytes(8)
        if timestamp is None:
            timestamp = time.time_ns() // 100 + _FILETIME_EPOCH
        self._timestamp = timestamp
        self._target_info = b""
        self.user: str | None = None

    def challenge(self, negotiate: bytes) -> bytes:
        """The CHALLENGE message (MS-NLMP 2.2.1.2) for a NEGOTIATE message.

        Args:
            negotiate: the client's NEGOTIATE message.

        Returns:
            The CHALLENGE, with MsvAvTimestamp in its target info.

        Raises:
            ValueError: not a NEGOTIATE message.
        """
        if len(negotiate) < 16 or not negotiate.startswith(_NTLM_SIGNATURE):
            raise ValueError("not an NTLMSSP message")
        message_type, client_flags = struct.unpack_from("<II", negotiate, 8)
        if message_type != 1:
            raise ValueError("not an NTLM NEGOTIATE message")
        # What the client asked for of what we support, plus the target.
        flags = client_flags & ntlm.CLIENT_FLAGS & ~_STRINGS
        flags |= ntlm.REQUEST_TARGET | _TARGET_TYPE_DOMAIN | _NEGOTIATE_TARGET_INFO
        unicode = client_flags & ntlm.NEGOTIATE_UNICODE
        flags |= ntlm.NEGOTIATE_UNICODE if unicode else ntlm.NEGOTIATE_OEM
        name = _NTLM_DOMAIN.encode("utf-16-le" if unicode else "ascii")
        # MS-NLMP 2.2.2.1: AV_PAIR values are UTF-16 whatever the flags say.
        self._target_info = (
            _av_pair(2, _NTLM_DOMAIN.encode("utf-16-le"))
            + _av_pair(1, b"S\0M\0T\0P\0")
            + _av_pair(7, struct.pack("<Q", self._timestamp))
            + _av_pair(0, b"")
        )
        info = self._target_info
        # Signature, type 2, TargetNameFields, flags, ServerChallenge,
        # Reserved, TargetInfoFields (48 octets), then the two payloads.
        header = struct.pack(
            "<8sIHHII8s8xHHI",
            *(_NTLM_SIGNATURE, 2, len(name), len(name), 48, flags),
            *(self._server_challenge, len(info), len(info), 48 + len(name)),
        )
        return header + name + info

    def verify(self, authenticate: bytes) -> bool:
        """Recompute NTProofStr (MS-NLMP 3.3.2) from the AUTHENTICATE message.

        Args:
            authenticate: the client's answer to :meth:`challenge`.

        Returns:
            True if the client knows the password and answered this
            challenge with the server's timestamp and target info.

        Raises:
            ValueError: a malformed AUTHENTICATE message.
        """
        if len(authenticate) < 64 or not authenticate.startswith(_NTLM_SIGNATURE):
            raise ValueError("not an NTLMSSP message")
        (message_type,) = struct.unpack_from("<I", authenticate, 8)
        (flags,) = struct.unpack_from("<I", authenticate, 60)
        if message_type != 3:
            raise ValueError("not an NTLM AUTHENTICATE message")
        encoding = "utf-16-le" if flags & ntlm.NEGOTIATE_UNICODE else "ascii"
        nt_response = _payload(authenticate, 20)
        domain = _payload(authenticate, 28).decode(encoding)
        self.user = _payload(authenticate, 36).decode(encoding)
        password = self._password_of(self.user, domain)
        # NTProofStr (16), then "temp": versions (2), Z(6), time (8), the
        # client challenge (8), Z(4), the target info, Z(4).
        temp = nt_response[16:]
        if password is None or len(temp) < 28 + len(self._target_info) + 4:
            return False
        # MS-NLMP 3.1.5.1.2: the client must echo the server's time and
        # target info; a stale or forged blob fails here.
        if temp[8:16] != struct.pack("<Q", self._timestamp) or (
            temp[28 : 28 + len(self._target_info)] != self._target_info
        ):
            return False
        key = ntlm.ntowfv2(password, self.user, domain)
        proof = hmac.digest(key, self._server_challenge + temp, "md5")
        return hmac.compare_digest(proof, nt_response[:16])


# ------------------------------------------------------------------ OAuth


def parse_xoauth2(message: bytes) -> tuple[str, str]:
    """Split an XOAUTH2 initial response.

    Args:
        message: ``user=U ^A auth=Bearer T ^A ^A``.

    Returns:
        (U, T): the user and the token.

    Raises:
        ValueError: malformed.
    """
    fields = message.decode("utf-8").split("\x01")
    if len(fields) != 4 or fields[2:] != ["", ""]:
        raise ValueError("malformed XOAUTH2 message")
    pairs = dict(field.partition("=")[::2] for field in fields[:2])
    auth = pairs.get("auth", "")
    if "user" not in pairs or not auth.startswith("Bearer "):
        raise ValueError("malformed XOAUTH2 message")
    return pairs["user"], auth[len("Bearer ") :]


def parse_oauthbearer(message: bytes) -> tuple[str, str]:
    """Split an OAUTHBEARER initial response.

    Args:
        message: RFC 7628 3.1 ``n,a=U,^A key=value ^A ... ^A``.

    Returns:
        (U, token), with U's saslname escapes undone.

    Raises:
        ValueError: malformed, or no authorization identity.
    """
    header, sep, rest = message.decode("utf-8").partition("\x01")
    parts = header.split(",")
    if not sep or len(parts) != 3 or parts[0] != "n" or parts[2]:
        raise ValueError("malformed OAUTHBEARER GS2 header")
    if not parts[1].startswith("a="):
        raise ValueError("OAUTHBEARER without a user (a=)")
    if not rest.endswith("\x01\x01"):
        raise ValueError("OAUTHBEARER message does not end with ^A^A")
    pairs = dict(kv.partition("=")[::2] for kv in rest[:-2].split("\x01"))
    auth = pairs.get("auth", "")
    if not auth.startswith("Bearer "):
        raise ValueError("OAUTHBEARER without auth=Bearer")
    return _unescape_saslname(parts[1][2:]), auth[len("Bearer ") :]


# -------------------------------------------------------- aiosmtpd glue

_HANDLED = AuthResult(success=False, handled=True)  # a reply went out already
_INVALID = AuthResult(success=False, handled=False)  # aiosmtpd sends 535 5.7.8


async def _initial_response(server: SMTP, args: Sequence[str]) -> bytes | None:
    """The initial response (RFC 4954 4: "=" is an empty one), or the
    answer to an empty challenge; None once a 501 has been sent."""
    if len(args) == 1:
        blob = await server.challenge_auth("")
        return blob if isinstance(blob, bytes) else None
    if args[1] == "=":
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None


class SaslMechanisms:
    """aiosmtpd ``auth_*`` handler methods (``__`` becomes ``-``).

    Args:
        users: login -> password; None for no password mechanism.
        tokens: login -> OAuth token; None for no token mechanism.
        scram_bad_signature: SCRAM servers prove a wrong signature.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None,
        tokens: Mapping[str, str] | None,
        *,
        scram_bad_signature: bool = False,
    ) -> None:
        self.users = dict(users) if users is not None else None
        self.tokens = dict(tokens) if tokens is not None else None
        self.scram_bad_signature = scram_bad_signature
        # A real server stores salted keys, never the password: derive them
        # once per (mechanism, user) with a random salt.
        self._scram_store: dict[tuple[str, str], ScramCredentials] = {}

    def _password(self, user: str) -> str | None:
        return None if self.users is None else self.users.get(user)

    def _scram_credentials(self, mechanism: str, user: str) -> ScramCredentials | None:
        key, password = (mechanism, user), self._password(user)
        if key not in self._scram_store and password is not None:
            salt = secrets.token_bytes(16)
            self._scram_store[key] = ScramCredentials.derive(
                mechanism, password, salt, SCRAM_ITERATIONS
            )
        return self._scram_store.get(key)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """CRAM-MD5 (RFC 2195): a msg-id challenge, ``user SP hex-digest``."""
        if len(args) != 1:
            # RFC 2195 2: the server speaks first; no initial response.
            await server.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return _HANDLED
        # RFC 2195 2: a msg-id, unique for this exchange.
        challenge = f"<{secrets.token_hex(6)}.{time.time_ns()}@{server.hostname}>"
        answer = await server.challenge_auth(challenge)
        if not isinstance(answer, bytes):
            return _HANDLED
        user, _, digest = answer.decode("utf-8", "replace").rpartition(" ")
        password = self._password(user)
        if password is None:
            return _INVALID
        expected = hmac.digest(password.encode(), challenge.encode(), "md5").hex()
        if not hmac.compare_digest(expected, digest.lower()):
            return _INVALID
        return AuthResult(success=True, auth_data=user)

    async def _scram(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        client_first = await _initial_response(server, args)
        if client_first is None:
            return _HANDLED
        exchange = ScramServerExchange(
            mechanism,
            functools.partial(self._scram_credentials, mechanism),
            bad_signature=self.scram_bad_signature,
        )
        try:
            server_first = exchange.server_first(client_first)
            client_final = await server.challenge_auth(server_first)
            if not isinstance(client_final, bytes):
                return _HANDLED
            server_final = exchange.server_final(client_final)
        except ValueError:  # binascii.Error and UnicodeDecodeError too
            await server.push("501 5.5.2 Malformed SCRAM message")
            return _HANDLED
        if server_final is None:
            # A wrong proof fails at once with 535, without an
            # "e=invalid-proof" server-final first (RFC 4422 3.6 lets the
            # server end the exchange with an outcome at any point).
            return _INVALID
        # RFC 4954 4: the server's proof travels in a 334; the client answers
        # it with an empty line (or "*" if the proof is wrong).
        if not isinstance(await server.challenge_auth(server_final), bytes):
            return _HANDLED
        return AuthResult(success=True, auth_data=exchange.user)

    async def auth_SCRAM__SHA__1(self, server: SMTP, args: list[str]) -> AuthResult:
        """SCRAM-SHA-1 (RFC 5802)."""
        return await self._scram(server, args, "SCRAM-SHA-1")

    async def auth_SCRAM__SHA__256(self, server: SMTP, args: list[str]) -> AuthResult:
        """SCRAM-SHA-256 (RFC 7677)."""
        return await self._scram(server, args, "SCRAM-SHA-256")

    async def auth_SCRAM__SHA__512(self, server: SMTP, args: list[str]) -> AuthResult:
        """SCRAM-SHA-512 (RFC 5802's construction over SHA-512)."""
        return await self._scram(server, args, "SCRAM-SHA-512")

    async def _oauth(
        self,
        server: SMTP,
        args: list[str],
        parse: Callable[[bytes], tuple[str, str]],
        error: Mapping[str, str],
    ) -> AuthResult:
        message = await _initial_response(server, args)
        if message is None:
            return _HANDLED
        try:
            user, token = parse(message)
        except ValueError:
            await server.push("501 5.5.2 Malformed OAuth message")
            return _HANDLED
        expected = (self.tokens or {}).get(user)
        if expected is not None and hmac.compare_digest(
            expected.encode(), token.encode()
        ):
            return AuthResult(success=True, auth_data=user)
        # RFC 7628 3.2.2 (and Google's XOAUTH2): the failure is a 334 with a
        # JSON error; after the client's answer the exchange fails.
        if not isinstance(await server.challenge_auth(json.dumps(error)), bytes):
            return _HANDLED
        return _INVALID

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2, with Google's error challenge."""
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.test/"}
        return await self._oauth(server, args, parse_xoauth2, error)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """OAUTHBEARER (RFC 7628)."""
        error = {"status": "invalid_token", "scope": "mail"}
        return await self._oauth(server, args, parse_oauthbearer, error)

    async def auth_NTLM(self, server: SMTP, args: list[str]) -> AuthResult:
        """NTLM as Exchange speaks it (MS-SMTPNTLM), NTLMv2 only."""
        negotiate = await _initial_response(server, args)
        if negotiate is None:
            return _HANDLED

        def password_of(user: str, domain: str) -> str | None:
            found = self._password(user)
            return found if found is not None else self._password(f"{domain}\\{user}")

        exchange = NtlmServerExchange(password_of)
        try:
            answer = await server.challenge_auth(exchange.challenge(negotiate))
            if not isinstance(answer, bytes):
                return _HANDLED
            verified = exchange.verify(answer)
        except (ValueError, struct.error):
            await server.push("501 5.5.2 Malformed NTLM message")
            return _HANDLED
        if not verified:
            # Exchange's wording for a failed NTLM exchange.
            return AuthResult(
                success=False,
                handled=False,
                message="535 5.7.3 Authentication unsuccessful",
            )
        return AuthResult(success=True, auth_data=exchange.user)
