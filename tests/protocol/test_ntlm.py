"""NTLM (MS-NLMP, NTLMv2) and the pure-Python MD4 behind it."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.protocol.ntlm import (
    NEGOTIATE_OEM,
    NEGOTIATE_UNICODE,
    NtlmClient,
    md4,
    negotiate_message,
    ntlmv2_response,
    ntowfv1,
    ntowfv2,
    parse_challenge,
)

# ---------------------------------------------------------------- MD4


@pytest.mark.parametrize(
    ("message", "digest"),
    [  # RFC 1320 A.5, the whole test suite
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "043f8582f241db351ce627e153e7f0e4",
        ),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_rfc1320_suite(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


def _reference_md4() -> object | None:
    try:
        return hashlib.new("md4")
    except ValueError:  # OpenSSL 3 without the legacy provider
        return None


@pytest.mark.skipif(_reference_md4() is None, reason="hashlib has no MD4 here")
@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_md4_matches_hashlib_when_it_has_md4(data: bytes) -> None:
    assert md4(data) == hashlib.new("md4", data).digest()


@pytest.mark.parametrize("size", [55, 56, 63, 64, 65, 119, 120, 128])
def test_md4_padding_edges_differ_from_neighbours(size: int) -> None:
    # Lengths around the 56-mod-64 padding boundary take different paths;
    # each must give a distinct 16-byte digest, stable across calls.
    digests = {md4(b"x" * n) for n in (size - 1, size, size + 1)}
    assert len(digests) == 3
    assert md4(b"x" * size) == md4(b"x" * size)
    assert all(len(d) == 16 for d in digests)


# ------------------------------------------------------ MS-NLMP 4.2.4 vectors

USER, DOMAIN, PASSWORD = "User", "Domain", "Password"
SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")
CLIENT_CHALLENGE = b"\xaa" * 8
# MS-NLMP 4.2.4.3: the CHALLENGE message of the NTLMv2 example (flags
# 0xe28a8233, target name "Server", target info NbDomainName "Domain" and
# NbComputerName "Server", no MsvAvTimestamp, hence a time of zero).
SPEC_CHALLENGE = bytes.fromhex(
    "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef"
    "00000000000000002400240044000000060070170000000f5300650072007600"
    "6500720002000c0044006f006d00610069006e0001000c005300650072007600"
    "6500720000000000"
)
SPEC_TARGET_INFO = bytes.fromhex(
    "02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000"
)
# MS-NLMP 4.2.4.1.1 / 4.2.4.2.1 / 4.2.4.2.2 / 4.2.4.1.2.
SPEC_NTOWFV2 = "0c868a403bfd7a93a3001ef22ef02e3f"
SPEC_LMV2 = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
SPEC_NT_PROOF = "68cd0ab851e51c96aabc927bebef6a1c"
SPEC_TEMP = (
    "01010000000000000000000000000000aaaaaaaaaaaaaaaa00000000"
    + SPEC_TARGET_INFO.hex()
    + "00000000"
)
SPEC_SESSION_BASE_KEY = "8de40ccadbc14a82f15cb0ad0de95ca3"


def test_ntowfv1_ms_nlmp_4_2_2_1_2() -> None:
    assert ntowfv1(PASSWORD).hex() == "a4f49c406510bdcab6824ee7c30fd852"


def test_ntowfv2_ms_nlmp_4_2_4_1_1() -> None:
    assert ntowfv2(PASSWORD, USER, DOMAIN).hex() == SPEC_NTOWFV2
    # The user name is upper-cased, the domain is not.
    assert ntowfv2(PASSWORD, "USER", DOMAIN).hex() == SPEC_NTOWFV2
    assert ntowfv2(PASSWORD, USER, "DOMAIN").hex() != SPEC_NTOWFV2


def test_ntowfv2_keeps_characters_windows_does_not_expand() -> None:
    # Python upper-cases "ß" to "SS"; Windows keeps one unit per unit.
    assert ntowfv2("pw", "straße", "") == ntowfv2("pw", "STRAßE", "")
    assert ntowfv2("pw", "straße", "") != ntowfv2("pw", "STRASSE", "")


def test_ntlmv2_response_ms_nlmp_4_2_4_2() -> None:
    response = ntlmv2_response(
        bytes.fromhex(SPEC_NTOWFV2),
        SERVER_CHALLENGE,
        CLIENT_CHALLENGE,
        0,
        SPEC_TARGET_INFO,
    )
    assert response.lm_response.hex() == SPEC_LMV2
    assert response.nt_proof_str.hex() == SPEC_NT_PROOF
    assert response.nt_response.hex() == SPEC_NT_PROOF + SPEC_TEMP
    assert response.session_base_key.hex() == SPEC_SESSION_BASE_KEY


def test_parse_spec_challenge() -> None:
    parsed = parse_challenge(SPEC_CHALLENGE)
    assert parsed.flags == 0xE28A8233
    assert parsed.server_challenge == SERVER_CHALLENGE
    assert parsed.target_info == SPEC_TARGET_INFO
    assert parsed.timestamp is None


# ------------------------------------------------- the server side, for tests


@dataclass(frozen=True, slots=True)
class Authenticate:
    """What a server reads from an AUTHENTICATE message (MS-NLMP 2.2.1.3)."""

    lm: bytes
    nt: bytes
    domain: bytes
    user: bytes
    workstation: bytes
    session_key: bytes
    flags: int


def parse_authenticate(message: bytes) -> Authenticate:
    assert message[:8] == b"NTLMSSP\0"
    assert struct.unpack_from("<I", message, 8) == (3,)
    fields: list[bytes] = []
    for index in range(6):
        length, maximum, offset = struct.unpack_from("<HHI", message, 12 + 8 * index)
        assert length == maximum
        assert offset >= 64 and offset + length <= len(message)
        fields.append(message[offset : offset + length])
    lm, nt, domain, user, workstation, session_key = fields
    (flags,) = struct.unpack_from("<I", message, 60)
    return Authenticate(lm, nt, domain, user, workstation, session_key, flags)


def build_challenge(
    server_challenge: bytes,
    target_info: bytes,
    *,
    flags: int = 0xE28A8233,
    target_name: bytes = "Server".encode("utf-16-le"),
) -> bytes:
    """A CHALLENGE message as a server would send it (no version field)."""
    name_at = 48
    info_at = name_at + len(target_name)
    return (
        b"NTLMSSP\0"
        + struct.pack("<I", 2)
        + struct.pack("<HHI", len(target_name), len(target_name), name_at)
        + struct.pack("<I", flags)
        + server_challenge
        + b"\0" * 8
        + struct.pack("<HHI", len(target_info), len(target_info), info_at)
        + target_name
        + target_info
    )


def av_pairs(*pairs: tuple[int, bytes]) -> bytes:
    body = b"".join(struct.pack("<HH", i, len(v)) + v for i, v in pairs)
    return body + b"\0\0\0\0"  # MsvAvEOL


def server_verifies(message: bytes, password: str, server_challenge: bytes) -> bool:
    """MS-NLMP 3.2.5.1.2: recompute NTProofStr from the user's NT hash."""
    fields = parse_authenticate(message)
    user = fields.user.decode("utf-16-le")
    domain = fields.domain.decode("utf-16-le")
    nt = fields.nt
    key = ntowfv2(password, user, domain)
    expected = hmac.digest(key, server_challenge + nt[16:], "md5")
    return hmac.compare_digest(expected, nt[:16])


# --------------------------------------------------------------- the client


def test_negotiate_message_shape() -> None:
    message = NtlmClient(USER, PASSWORD, DOMAIN).negotiate()
    assert message == negotiate_message()
    assert len(message) == 32
    assert message[:12] == b"NTLMSSP\0\x01\0\0\0"
    (flags,) = struct.unpack_from("<I", message, 12)
    assert flags & NEGOTIATE_UNICODE and flags & 0x00080000  # extended security
    assert message[16:] == b"\0" * 16  # no domain, no workstation


def test_authenticate_against_the_spec_challenge() -> None:
    client = NtlmClient(
        USER, PASSWORD, DOMAIN, client_challenge=CLIENT_CHALLENGE, timestamp=0
    )
    fields = parse_authenticate(client.authenticate(SPEC_CHALLENGE))
    # MS-NLMP 4.2.4.3 shows the same responses in its AUTHENTICATE message.
    assert fields.lm.hex() == SPEC_LMV2
    assert fields.nt.hex() == SPEC_NT_PROOF + SPEC_TEMP
    assert fields.domain == DOMAIN.encode("utf-16-le")
    assert fields.user == USER.encode("utf-16-le")
    assert fields.workstation == b""
    assert fields.session_key == b""
    flags = fields.flags
    assert flags & NEGOTIATE_UNICODE and not flags & NEGOTIATE_OEM
    assert not flags & 0x40000000  # no key exchange: nothing is signed
    assert client.response is not None
    assert client.response.session_base_key.hex() == SPEC_SESSION_BASE_KEY


def test_recorded_exchange_with_more_av_pairs() -> None:
    # A recorded Office Communications Server 2007 R2 exchange (kept in
    # pidgin-sipe's test suite): five AV pairs, no MsvAvTimestamp, so the
    # client's own time (2010-03-01) was used.
    challenge = bytes.fromhex(
        "4E544C4D53535000020000000000000038000000F38298E2DD1BAAF4E7E218D1"
        "000000000000000096009600380000000502CE0E0000000F02000A0043004F00"
        "53004D004F000100180043004F0053004D004F002D004F00430053002D005200"
        "32000400160063006F0073006D006F002E006C006F00630061006C0003003000"
        "63006F0073006D006F002D006F00630073002D00720032002E0063006F007300"
        "6D006F002E006C006F00630061006C000500160063006F0073006D006F002E00"
        "6C006F00630061006C0000000000"
    )
    client = NtlmClient(
        "User",
        "Pa$$word",
        "COSMO",
        workstation="COSMO-OCS-R2",
        client_challenge=bytes.fromhex("D6AE875CB0FDAA41"),
        timestamp=struct.unpack("<Q", bytes.fromhex("59519A1727B9CA01"))[0],
    )
    fields = parse_authenticate(client.authenticate(challenge))
    assert fields.lm.hex().upper() == (
        "A1E92EFE4E078BF7C5C0049ACC6166C2D6AE875CB0FDAA41"
    )
    assert fields.nt[:16].hex().upper() == ("8DC0C800AE76ECA606D2B9FBEBD04731")
    assert fields.workstation == "COSMO-OCS-R2".encode("utf-16-le")


def test_server_timestamp_wins_and_lm_response_is_zero() -> None:
    stamp = 0x01D0_1234_5678_9ABC
    info = av_pairs((2, "D".encode("utf-16-le")), (7, struct.pack("<Q", stamp)))
    challenge = build_challenge(b"\x11" * 8, info)
    client = NtlmClient("u", "p", "D", timestamp=42)
    message = client.authenticate(challenge)
    fields = parse_authenticate(message)
    nt = fields.nt
    assert struct.unpack_from("<Q", nt, 24) == (stamp,)  # not 42
    # MS-NLMP 3.1.5.1.2: with MsvAvTimestamp, Z(24) instead of LMv2.
    assert fields.lm == b"\0" * 24
    assert server_verifies(message, "p", b"\x11" * 8)


def test_round_trip_against_a_server() -> None:
    challenge = build_challenge(
        b"\x42" * 8, av_pairs((1, "SRV".encode("utf-16-le")), (7, b"\1" * 8))
    )
    message = NtlmClient("alice", "correct horse", "CORP").authenticate(challenge)
    assert server_verifies(message, "correct horse", b"\x42" * 8)
    assert not server_verifies(message, "wrong horse", b"\x42" * 8)
    assert not server_verifies(message, "correct horse", b"\x43" * 8)


def test_random_client_challenge_differs_each_time() -> None:
    challenge = build_challenge(b"\x42" * 8, av_pairs((7, b"\1" * 8)))
    one = NtlmClient("a", "p", "").authenticate(challenge)
    two = NtlmClient("a", "p", "").authenticate(challenge)
    assert one != two


def test_domain_backslash_user_is_split_when_no_domain_given() -> None:
    challenge = build_challenge(b"\x42" * 8, av_pairs((7, b"\1" * 8)))
    fields = parse_authenticate(NtlmClient("CORP\\bob", "pw").authenticate(challenge))
    assert fields.domain == "CORP".encode("utf-16-le")
    assert fields.user == "bob".encode("utf-16-le")
    # An explicit domain keeps the user name whole.
    explicit = NtlmClient("CORP\\bob", "pw", "X").authenticate(challenge)
    assert parse_authenticate(explicit).user == "CORP\\bob".encode("utf-16-le")


def test_oem_strings_when_the_server_has_no_unicode() -> None:
    challenge = build_challenge(
        b"\x42" * 8, av_pairs((7, b"\1" * 8)), flags=0x00008203 & ~NEGOTIATE_UNICODE
    )
    fields = parse_authenticate(NtlmClient("bob", "pw", "CORP").authenticate(challenge))
    assert fields.user == b"bob"
    assert fields.flags & NEGOTIATE_OEM
    with pytest.raises(ValueError, match="OEM"):
        NtlmClient("bjørn", "pw", "CORP").authenticate(challenge)


def test_no_timestamp_anywhere_is_refused() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        NtlmClient(USER, PASSWORD, DOMAIN).authenticate(SPEC_CHALLENGE)


@pytest.mark.parametrize(
    ("client_challenge", "timestamp", "match"),
    [
        (b"short", None, "8 bytes"),
        (b"\0" * 9, None, "8 bytes"),
        (None, -1, "64"),
        (None, 1 << 64, "64"),
    ],
)
def test_bad_client_parameters(
    client_challenge: bytes | None, timestamp: int | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        NtlmClient(
            "u", "p", "d", client_challenge=client_challenge, timestamp=timestamp
        )


def test_password_is_not_kept_or_shown() -> None:
    client = NtlmClient("u", "hunter2", "d")
    assert "hunter2" not in repr(client)
    assert all("hunter2" not in repr(value) for value in vars(client).values())


# ------------------------------------------------------- malformed challenges


def _with(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


MALFORMED = {
    "empty": b"",
    "not ntlmssp": b"X" * 64,
    "negotiate type": _with(SPEC_CHALLENGE, 8, b"\1\0\0\0"),
    "authenticate type": _with(SPEC_CHALLENGE, 8, b"\3\0\0\0"),
    "32-byte nt4 style": SPEC_CHALLENGE[:32],
    "target name past end": _with(SPEC_CHALLENGE, 12, b"\xff\0\xff\0"),
    "target info past end": _with(SPEC_CHALLENGE, 40, b"\x25\0\x25\0"),
    "target info offset huge": _with(SPEC_CHALLENGE, 44, b"\xff\xff\xff\xff"),
    "no string encoding": _with(SPEC_CHALLENGE, 20, b"\x30\x82\x8a\xe2"),
    "no eol": build_challenge(b"\1" * 8, av_pairs((7, b"\1" * 8))[:-4]),
    "av pair overruns": build_challenge(b"\1" * 8, b"\x02\x00\x10\x00abcd"),
    "short timestamp": build_challenge(b"\1" * 8, av_pairs((7, b"\1" * 4))),
    "truncated payload": SPEC_CHALLENGE[:-1],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_challenge_is_a_value_error(name: str) -> None:
    client = NtlmClient(USER, PASSWORD, DOMAIN, timestamp=0)
    with pytest.raises(ValueError):
        client.authenticate(MALFORMED[name])


def test_every_truncation_is_refused_and_trailing_bytes_are_ignored() -> None:
    # Fed byte by byte as prefixes: none but the whole message parses.
    for end in range(len(SPEC_CHALLENGE)):
        with pytest.raises(ValueError):
            parse_challenge(SPEC_CHALLENGE[:end])
    # Trailing data after the payload is not pointed at by any field.
    assert parse_challenge(SPEC_CHALLENGE + b"junk") == parse_challenge(SPEC_CHALLENGE)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.integers(0, len(SPEC_CHALLENGE) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, len(SPEC_CHALLENGE)),
)
def test_mutated_challenges_give_bytes_or_value_error(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(SPEC_CHALLENGE)
    for at, value in edits:
        data[at] = value
    client = NtlmClient(USER, PASSWORD, DOMAIN, timestamp=0)
    try:
        message = client.authenticate(bytes(data[: max(cut, 48)]))
    except ValueError:
        return
    sent = parse_authenticate(message)
    # A mutated flags field may leave the server offering OEM strings only
    # (MS-NLMP 2.2.2.5): then the name goes as its ASCII bytes.
    encoding = "utf-16-le" if sent.flags & NEGOTIATE_UNICODE else "ascii"
    assert sent.user == USER.encode(encoding)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_random_challenges_give_bytes_or_value_error(data: bytes) -> None:
    client = NtlmClient(USER, PASSWORD, DOMAIN, timestamp=0)
    try:
        message = client.authenticate(b"NTLMSSP\0\2\0\0\0" + data)
    except ValueError:
        return
    assert message.startswith(b"NTLMSSP\0\3\0\0\0")
