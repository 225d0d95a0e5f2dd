"""NTLM authentication (MS-NLMP), NTLMv2 only, in pure Python.

SMTP carries NTLM as a SASL-like exchange (MS-SMTPNTLM): ``AUTH NTLM``
with the NEGOTIATE message, a ``334`` with the CHALLENGE message, and the
AUTHENTICATE message as the answer.  Only NTLMv2 responses are produced:
NTLMv1 and LM responses are breakable offline and servers can refuse them.

MD4 is implemented here because ``hashlib`` only has it when OpenSSL's
legacy provider is loaded, which OpenSSL 3 does not do by default.

Not implemented, because SMTP does not use them: signing and sealing
(no key exchange, no session key is sent), the MIC, and channel bindings.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from dataclasses import dataclass

__all__ = [
    "ChallengeMessage",
    "NtlmClient",
    "Ntlmv2Response",
    "md4",
    "negotiate_message",
    "ntlmv2_response",
    "ntowfv1",
    "ntowfv2",
    "parse_challenge",
]

_SIGNATURE = b"NTLMSSP\0"
_MASK32 = 0xFFFFFFFF

# MS-NLMP 2.2.2.5 NEGOTIATE flags.
NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ALWAYS_SIGN = 0x00008000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_56 = 0x80000000

# What we ask for and accept.  Extended session security is what makes a
# server pick NTLMv2-level protection; 128/56 are expected by servers even
# though no key is derived for SMTP.
CLIENT_FLAGS = (
    NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_128
    | NEGOTIATE_56
)

# MS-NLMP 2.2.2.1 AV_PAIR ids used here.
_AV_EOL = 0x0000
_AV_TIMESTAMP = 0x0007


# --------------------------------------------------------------------- MD4


def _rotl(value: int, shift: int) -> int:
    value &= _MASK32
    return ((value << shift) | (value >> (32 - shift))) & _MASK32


def md4(data: bytes) -> bytes:
    """MD4 (RFC 1320); only for the NT hash, which MS-NLMP defines with it.

    Args:
        data: the message.

    Returns:
        The 16-byte digest.
    """
    # RFC 1320 3.1-3.2: a 1 bit, zeros up to 56 mod 64, the bit length as a
    # little-endian 64-bit number.
    bit_length = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    message = (
        data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_length)
    )
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(message), 64):
        x = struct.unpack_from("<16I", message, offset)
        a, b, c, d = state
        # RFC 1320 3.4: each step updates one of a, d, c, b in turn; rotating
        # the tuple after every step keeps the formula the same for all four.
        for i in range(16):  # round 1: F(x,y,z) = xy v not(x)z
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl(a + f + x[i], (3, 7, 11, 19)[i % 4]), b, c
        for i in range(16):  # round 2: G(x,y,z) = xy v xz v yz
            g = (b & c) | (b & d) | (c & d)
            k = (i % 4) * 4 + i // 4
            a, b, c, d = (
                d,
                _rotl(a + g + x[k] + 0x5A827999, (3, 5, 9, 13)[i % 4]),
                b,
                c,
            )
        for i in range(16):  # round 3: H(x,y,z) = x xor y xor z
            h = b ^ c ^ d
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            a, b, c, d = (
                d,
                _rotl(a + h + x[k] + 0x6ED9EBA1, (3, 9, 11, 15)[i % 4]),
                b,
                c,
            )
        state = [(s + v) & _MASK32 for s, v in zip(state, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *state)


# ------------------------------------------------------------ key derivation


def _utf16(text: str) -> bytes:
    # Windows strings are UTF-16 code units; a lone surrogate is a valid
    # unit there, so it is passed through rather than refused.
    return text.encode("utf-16-le", "surrogatepass")


def _upper(text: str) -> str:
    # Windows upper-cases one UTF-16 unit to one unit; Python may expand
    # ("ß" -> "SS"), which would change the key, so such characters stay.
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in text)


def ntowfv1(password: str) -> bytes:
    """The NT hash: MD4 of the UTF-16LE password (MS-NLMP 3.3.1).

    Args:
        password: the password.

    Returns:
        16 bytes.
    """
    return md4(_utf16(password))


def ntowfv2(password: str, user: str, domain: str) -> bytes:
    """NTOWFv2 (MS-NLMP 3.3.2): the NTLMv2 response key.

    Args:
        password: the password.
        user: the user name (upper-cased here, as the spec says).
        domain: the user's domain, as given (case matters).

    Returns:
        16 bytes.
    """
    return hmac.digest(ntowfv1(password), _utf16(_upper(user) + domain), "md5")


# ------------------------------------------------------------------ messages


def negotiate_message(flags: int = CLIENT_FLAGS) -> bytes:
    """The NEGOTIATE message (MS-NLMP 2.2.1.1), without domain or version.

    Args:
        flags: the NEGOTIATE flags to announce.

    Returns:
        32 bytes.
    """
    empty_field = struct.pack("<HHI", 0, 0, 0)
    return _SIGNATURE + struct.pack("<II", 1, flags) + empty_field * 2


@dataclass(frozen=True, slots=True)
class ChallengeMessage:
    """What matters of a CHALLENGE message (MS-NLMP 2.2.1.2).

    Attributes:
        flags: the server's NEGOTIATE flags.
        server_challenge: the 8-byte nonce.
        target_info: the raw AV_PAIR list, copied into the NTLMv2 response.
        timestamp: MsvAvTimestamp from the target info (FILETIME: 100 ns
            units since 1601-01-01 UTC), or None.
    """

    flags: int
    server_challenge: bytes
    target_info: bytes
    timestamp: int | None


def _field(data: bytes, at: int, what: str) -> bytes:
    """The payload a (length, max length, offset) field points at."""
    length, _, offset = struct.unpack_from("<HHI", data, at)
    if offset + length > len(data):
        raise ValueError(f"the NTLM {what} points past the end of the message")
    return data[offset : offset + length]


def _timestamp(target_info: bytes) -> int | None:
    """Walk the AV_PAIR list (MS-NLMP 2.2.2.1); return MsvAvTimestamp."""
    timestamp: int | None = None
    position = 0
    while position + 4 <= len(target_info):
        av_id, av_len = struct.unpack_from("<HH", target_info, position)
        position += 4
        if position + av_len > len(target_info):
            raise ValueError("an NTLM target info entry runs past its end")
        if av_id == _AV_EOL:
            return timestamp
        if av_id == _AV_TIMESTAMP:
            if av_len != 8:
                raise ValueError("the NTLM timestamp is not 8 bytes")
            (timestamp,) = struct.unpack_from("<Q", target_info, position)
        position += av_len
    raise ValueError("the NTLM target info does not end with MsvAvEOL")


def parse_challenge(data: bytes) -> ChallengeMessage:
    """Parse and check a CHALLENGE message.

    Args:
        data: the decoded ``334`` challenge.

    Returns:
        The parsed message.

    Raises:
        ValueError: wrong signature or type, truncated, a field pointing
            outside the message, a malformed target info, or neither
            Unicode nor OEM strings offered.
    """
    # MS-NLMP 2.2.1.2: signature, type, TargetNameFields, flags, server
    # challenge, Reserved, TargetInfoFields: 48 bytes before any payload.
    # (NT4-era servers sent 32 bytes and no target info, which an NTLMv2
    # response is built around.)
    if len(data) < 48 or not data.startswith(_SIGNATURE):
        raise ValueError("the NTLM challenge is not an NTLMSSP message")
    (message_type,) = struct.unpack_from("<I", data, 8)
    if message_type != 2:
        raise ValueError(f"expected an NTLM CHALLENGE message, got type {message_type}")
    (flags,) = struct.unpack_from("<I", data, 20)
    if not flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM):
        raise ValueError("the NTLM server offers neither Unicode nor OEM strings")
    _field(data, 12, "target name")
    target_info = _field(data, 40, "target info")
    timestamp = _timestamp(target_info) if target_info else None
    return ChallengeMessage(flags, data[24:32], target_info, timestamp)


@dataclass(frozen=True, slots=True)
class Ntlmv2Response:
    """The results of MS-NLMP 3.3.2 ComputeResponse for NTLMv2.

    Attributes:
        nt_response: NTProofStr followed by the client blob ("temp").
        lm_response: LMv2: HMAC over both challenges, then the client's.
        session_base_key: HMAC_MD5(ResponseKeyNT, NTProofStr).
    """

    nt_response: bytes
    lm_response: bytes
    session_base_key: bytes

    @property
    def nt_proof_str(self) -> bytes:
        """The first 16 bytes of the NT response, the proof itself."""
        return self.nt_response[:16]


def ntlmv2_response(
    response_key: bytes,
    server_challenge: bytes,
    client_challenge: bytes,
    timestamp: int,
    target_info: bytes,
) -> Ntlmv2Response:
    """Compute the NTLMv2 responses (MS-NLMP 3.3.2).

    Args:
        response_key: :func:`ntowfv2` of the credentials.
        server_challenge: 8 bytes from the CHALLENGE message.
        client_challenge: 8 random bytes.
        timestamp: FILETIME (100 ns units since 1601-01-01 UTC).
        target_info: the server's AV_PAIR list, copied verbatim.

    Returns:
        The responses and the session base key.
    """
    # temp = Responserversion, HiResponserversion, Z(6), Time,
    # ClientChallenge, Z(4), ServerName (the AV pairs), Z(4).
    temp = (
        b"\x01\x01"
        + b"\0" * 6
        + struct.pack("<Q", timestamp)
        + client_challenge
        + b"\0" * 4
        + target_info
        + b"\0" * 4
    )
    proof = hmac.digest(response_key, server_challenge + temp, "md5")
    lm = hmac.digest(response_key, server_challenge + client_challenge, "md5")
    return Ntlmv2Response(
        nt_response=proof + temp,
        lm_response=lm + client_challenge,
        session_base_key=hmac.digest(response_key, proof, "md5"),
    )


class NtlmClient:
    """One NTLM exchange, client side.

    The password is reduced to the NTLMv2 response key at construction and
    not kept.
    """

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
        """Derive the response key.

        Args:
            username: the user name; ``DOMAIN\\user`` is split when
                ``domain`` is None (the form Windows users type).
            password: the password.
            domain: the NT domain; None or "" for none (e.g. with a
                ``user@domain`` UPN as the user name).
            workstation: the client's NetBIOS name; "" sends none (a
                sans-IO core cannot ask the OS).
            client_challenge: 8 bytes, for test vectors; random by default.
            timestamp: FILETIME to use when the server sends no
                MsvAvTimestamp; the core has no clock.

        Raises:
            ValueError: the client challenge is not 8 bytes or the timestamp
                is not a 64-bit unsigned number.
        """
        if domain is None:
            domain, _, user = username.rpartition("\\")
        else:
            user = username
        if client_challenge is None:
            client_challenge = secrets.token_bytes(8)
        if len(client_challenge) != 8:
            raise ValueError("the NTLM client challenge must be 8 bytes")
        if timestamp is not None and not 0 <= timestamp < 1 << 64:
            raise ValueError("the NTLM timestamp must fit 64 unsigned bits")
        self._user = user
        self._domain = domain
        self._workstation = workstation
        self._key = ntowfv2(password, user, domain)
        self._client_challenge = client_challenge
        self._timestamp = timestamp
        self.response: Ntlmv2Response | None = None

    def __repr__(self) -> str:
        return "<NtlmClient>"

    def negotiate(self) -> bytes:
        """The NEGOTIATE message, sent as AUTH's initial response.

        Returns:
            The message bytes.
        """
        return negotiate_message()

    def authenticate(self, challenge: bytes) -> bytes:
        """Answer a CHALLENGE message with an AUTHENTICATE message.

        Args:
            challenge: the decoded ``334`` challenge.

        Returns:
            The AUTHENTICATE message (MS-NLMP 2.2.1.3) without version,
            MIC or session key.

        Raises:
            ValueError: the challenge is malformed, or carries no
                timestamp and none was supplied, or OEM strings are needed
                for a name that is not ASCII.
        """
        parsed = parse_challenge(challenge)
        # MS-NLMP 3.1.5.1.2: with MsvAvTimestamp the client must use the
        # server's time (it is what the server checks for freshness).
        timestamp = parsed.timestamp
        if timestamp is None:
            timestamp = self._timestamp
        if timestamp is None:
            raise ValueError(
                "the NTLM challenge has no timestamp and none was supplied"
            )
        response = ntlmv2_response(
            self._key,
            parsed.server_challenge,
            self._client_challenge,
            timestamp,
            parsed.target_info,
        )
        self.response = response
        # MS-NLMP 3.1.5.1.2: with MsvAvTimestamp present the client SHOULD
        # send Z(24) instead of the LMv2 response.
        lm_response = (
            b"\0" * 24 if parsed.timestamp is not None else response.lm_response
        )
        flags = parsed.flags & CLIENT_FLAGS
        if flags & NEGOTIATE_UNICODE:
            flags &= ~NEGOTIATE_OEM
            strings = [_utf16(s) for s in (self._domain, self._user, self._workstation)]
        else:
            strings = [_oem(s) for s in (self._domain, self._user, self._workstation)]
        payload = [*strings, lm_response, response.nt_response, b""]
        # Header: signature, type, six (length, max, offset) fields in the
        # order LM, NT, domain, user, workstation, session key; then flags.
        order = (3, 4, 0, 1, 2, 5)
        offsets: list[int] = []
        position = 64
        for part in payload:
            offsets.append(position)
            position += len(part)
        header = _SIGNATURE + struct.pack("<I", 3)
        for index in order:
            length = len(payload[index])
            if length > 0xFFFF:
                raise ValueError("an NTLM AUTHENTICATE field exceeds 65535 bytes")
            header += struct.pack("<HHI", length, length, offsets[index])
        header += struct.pack("<I", flags)
        return header + b"".join(payload)


def _oem(text: str) -> bytes:
    # The OEM code page is the server's; ASCII is the part every code page
    # shares, so only ASCII is sent without Unicode.
    if not text.isascii():
        raise ValueError("the NTLM server wants OEM strings, and a name is not ASCII")
    return text.encode("ascii")
