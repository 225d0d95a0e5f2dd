"""SASL mechanisms as pure challenge -> response objects."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.protocol.ntlm import ntowfv2
from smtpcore.protocol.sasl import (
    MECHANISM_NAMES,
    OAUTH_PREFERENCE,
    PREFERENCE,
    CramMd5,
    Login,
    Ntlm,
    OAuthBearer,
    Plain,
    SaslMechanism,
    ScramSha1,
    ScramSha256,
    ScramSha512,
    XOAuth2,
    choose_mechanism,
)

# --------------------------------------------------------------- PLAIN, LOGIN


def test_plain_rfc4616_message() -> None:
    # RFC 4616 4: message = [authzid] UTF8NUL authcid UTF8NUL passwd
    plain = Plain("tim", "tanstaaftanstaaf")
    assert plain.initial_response() == b"\0tim\0tanstaaftanstaaf"
    assert Plain("tim", "pw", authzid="Ursel").initial_response() == b"Ursel\0tim\0pw"


def test_plain_is_utf8() -> None:
    assert Plain("üser", "pässwörd").initial_response() == "\0üser\0pässwörd".encode()


def test_plain_answers_an_empty_challenge_only() -> None:
    plain = Plain("u", "p")
    assert plain.respond(b"") == b"\0u\0p"
    with pytest.raises(ValueError):
        plain.respond(b"")  # a second challenge
    with pytest.raises(ValueError):
        Plain("u", "p").respond(b"unexpected")


@pytest.mark.parametrize(("user", "password"), [("u\0x", "p"), ("u", "p\0x")])
def test_plain_refuses_nul_in_credentials(user: str, password: str) -> None:
    # RFC 4616 2: NUL separates the fields, so it cannot be inside one.
    with pytest.raises(ValueError, match="NUL"):
        Plain(user, password)


def test_login_answers_by_round_not_by_prompt() -> None:
    login = Login("user", "pässword")
    assert login.initial_response() is None
    assert login.respond(b"User Name\0") == b"user"
    assert login.respond(b"Password:") == "pässword".encode()
    with pytest.raises(ValueError):
        login.respond(b"Password:")


@pytest.mark.parametrize("factory", [Plain, Login, CramMd5])
def test_lone_surrogates_are_refused_without_echoing(
    factory: Callable[[str, str], SaslMechanism],
) -> None:
    with pytest.raises(ValueError, match="surrogate") as caught:
        factory("user", "hunter2\udc80")
    assert "hunter2" not in str(caught.value)


# ------------------------------------------------------------------ CRAM-MD5


def test_cram_md5_rfc2195_example() -> None:
    cram = CramMd5("tim", "tanstaaftanstaaf")
    assert cram.initial_response() is None
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert cram.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def cram_server_accepts(
    response: bytes, challenge: bytes, secrets: dict[str, str]
) -> bool:
    """RFC 2195 2: the server recomputes the digest with the shared secret."""
    user, _, digest = response.rpartition(b" ")
    password = secrets.get(user.decode())
    if password is None:
        return False
    expected = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return hmac.compare_digest(expected.encode(), digest)


@pytest.mark.parametrize(
    ("user", "password"), [("tim", "tanstaaf"), ("ünï", "pässwörd"), ("a b", "")]
)
def test_cram_md5_round_trip(user: str, password: str) -> None:
    challenge = b"<12345.67890@mail.example>"
    response = CramMd5(user, password).respond(challenge)
    assert cram_server_accepts(response, challenge, {user: password})
    assert not cram_server_accepts(response, challenge, {user: password + "x"})
    assert not cram_server_accepts(response, b"<other@x>", {user: password})


@pytest.mark.parametrize("challenge", [b"", b"<a\r\nb>", b"<\xff>", b"<a\0b>"])
def test_cram_md5_refuses_bad_challenges(challenge: bytes) -> None:
    with pytest.raises(ValueError):
        CramMd5("u", "p").respond(challenge)


def test_cram_md5_second_challenge() -> None:
    cram = CramMd5("u", "p")
    cram.respond(b"<1@x>")
    with pytest.raises(ValueError):
        cram.respond(b"<2@x>")


# -------------------------------------------------------------------- SCRAM


def test_scram_sha1_rfc5802_through_the_mechanism() -> None:
    scram = ScramSha1("user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL")
    assert scram.name == b"SCRAM-SHA-1"
    assert scram.initial_response() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    assert scram.respond(
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    ) == (
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    with pytest.raises(ValueError, match="did not prove"):
        scram.complete()  # a 235 now would come from an impostor
    # RFC 4954 4: the server-final message arrives as a last 334 and is
    # answered with an empty response.
    assert scram.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=") == b""
    scram.complete()
    with pytest.raises(ValueError):
        scram.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")


def test_scram_sha256_rfc7677_through_the_mechanism() -> None:
    scram = ScramSha256("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert scram.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = scram.respond(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final.endswith(b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert scram.respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") == b""
    scram.complete()


def scram_server(hash_name: str, password: str) -> Callable[[bytes, int], bytes]:
    """A minimal SCRAM server that keeps only StoredKey and ServerKey."""
    salt, iterations = b"NaCl", 1024
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    stored_key = hashlib.new(
        hash_name, hmac.digest(salted, b"Client Key", hash_name)
    ).digest()
    server_key = hmac.digest(salted, b"Server Key", hash_name)
    seen: dict[str, bytes] = {}

    def step(message: bytes, index: int) -> bytes:
        if index == 0:
            seen["bare"] = message[3:]
            nonce = message.split(b",r=")[1] + b"srv"
            seen["first"] = b"r=%s,s=%s,i=%d" % (
                nonce,
                base64.b64encode(salt),
                iterations,
            )
            return seen["first"]
        without_proof, _, proof = message.rpartition(b",p=")
        auth = b",".join((seen["bare"], seen["first"], without_proof))
        signature = hmac.digest(stored_key, auth, hash_name)
        key = bytes(
            a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True)
        )
        if hashlib.new(hash_name, key).digest() != stored_key:
            return b"e=invalid-proof"
        return b"v=" + base64.b64encode(hmac.digest(server_key, auth, hash_name))

    return step


@pytest.mark.parametrize(
    ("factory", "hash_name"),
    [(ScramSha1, "sha1"), (ScramSha256, "sha256"), (ScramSha512, "sha512")],
)
def test_scram_round_trip(
    factory: Callable[[str, str], SaslMechanism], hash_name: str
) -> None:
    server = scram_server(hash_name, "s3cret")
    scram = factory("user", "s3cret")
    first = scram.initial_response()
    assert first is not None
    final = scram.respond(server(first, 0))
    assert scram.respond(server(final, 1)) == b""
    scram.complete()

    wrong = factory("user", "wrong")
    first = wrong.initial_response()
    assert first is not None
    with pytest.raises(ValueError, match="invalid-proof"):
        wrong.respond(server(wrong.respond(server(first, 0)), 1))
    with pytest.raises(ValueError):
        wrong.complete()


# ------------------------------------------------------------------- OAuth

GOOGLE_ERROR = base64.b64decode(
    # Google's documented XOAUTH2 failure challenge.
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K"
)


def test_xoauth2_initial_response() -> None:
    mech = XOAuth2(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    )
    assert mech.initial_response() == (
        b"user=someuser@example.com\x01"
        b"auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )


def test_xoauth2_error_challenge_gets_an_empty_answer() -> None:
    mech = XOAuth2("u@example.com", "token")
    assert mech.last_error is None
    assert mech.respond(GOOGLE_ERROR) == b""
    assert mech.last_error == "401"
    with pytest.raises(ValueError):
        mech.respond(GOOGLE_ERROR)


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 4.1, the initial client response.
    mech = OAuthBearer(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=143,
    )
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_minimal_and_escaped() -> None:
    assert OAuthBearer("", "t").initial_response() == b"n,,\x01auth=Bearer t\x01\x01"
    assert OAuthBearer("a,b=c", "t").initial_response() == (
        b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"
    )
    idn = OAuthBearer("u", "t", host="bücher.example").initial_response()
    assert idn is not None and b"host=xn--bcher-kva.example\x01" in idn


def test_oauthbearer_error_challenge_gets_kvsep() -> None:
    # RFC 7628 3.2.2 / 4.3: the error is JSON; 3.2.3: the client answers ^A.
    mech = OAuthBearer("user@example.com", "t")
    error = json.dumps(
        {
            "status": "invalid_token",
            "scope": "example_scope",
            "openid-configuration": "https://example.com/.well-known/openid-configuration",
        }
    ).encode()
    assert mech.respond(error) == b"\x01"
    assert mech.last_error == "invalid_token"
    with pytest.raises(ValueError):
        mech.respond(error)


@pytest.mark.parametrize("factory", [XOAuth2, OAuthBearer])
@pytest.mark.parametrize(
    "challenge",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"scope": "x"}',
        b'{"status": ""}',
        b'{"status": true}',
        b'{"status": null}',
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,  # would exhaust the decoder's recursion
    ],
)
def test_oauth_malformed_error_challenges(
    factory: Callable[[str, str], SaslMechanism], challenge: bytes
) -> None:
    with pytest.raises(ValueError):
        factory("u", "token").respond(challenge)


def test_oauth_integer_status_is_kept_as_text() -> None:
    mech = XOAuth2("u", "t")
    mech.respond(b'{"status": 400}')
    assert mech.last_error == "400"


@pytest.mark.parametrize(
    "token", ["", "has space", "a\x01b", "tök", "a=b", "tok\nen", "x" + "\u2028"]
)
def test_tokens_outside_b64token_are_refused_without_echoing(token: str) -> None:
    for factory in (XOAuth2, OAuthBearer):
        with pytest.raises(ValueError, match="b64token") as caught:
            factory("u", token)
        assert token not in str(caught.value) or not token


@pytest.mark.parametrize("user", ["a\x01b", "a\nb", "a\0b"])
def test_oauth_user_names_cannot_break_the_framing(user: str) -> None:
    for factory in (XOAuth2, OAuthBearer):
        with pytest.raises(ValueError, match="control"):
            factory(user, "t")


@pytest.mark.parametrize(
    ("host", "port"),
    [("a b", None), ("a\x01b", None), ("", None), (None, 0), (None, 70000)],
)
def test_oauthbearer_bad_host_or_port(host: str | None, port: int | None) -> None:
    with pytest.raises(ValueError):
        OAuthBearer("u", "t", host=host, port=port)


def test_token_callable_is_called_once_at_creation() -> None:
    calls: list[int] = []

    def fresh_token() -> str:
        calls.append(1)
        return f"token{len(calls)}"

    first = XOAuth2("u", fresh_token)
    assert calls == [1]
    assert first.initial_response() == b"user=u\x01auth=Bearer token1\x01\x01"
    first.respond(GOOGLE_ERROR)
    assert calls == [1]
    # The retry after an OAuth error is a new object: a new token.
    second = choose_mechanism({"XOAUTH2"}, "u", oauth_token=fresh_token)
    assert second is not None
    assert second.initial_response() == b"user=u\x01auth=Bearer token2\x01\x01"


def test_token_callable_returning_a_non_string() -> None:
    with pytest.raises(ValueError, match="str"):
        XOAuth2("u", lambda: None)  # type: ignore[arg-type, return-value]


# --------------------------------------------------------------------- NTLM


def _challenge(server_challenge: bytes, timestamp: int) -> bytes:
    """A CHALLENGE message with an MsvAvTimestamp (MS-NLMP 2.2.1.2)."""
    info = struct.pack("<HH", 7, 8) + struct.pack("<Q", timestamp) + b"\0" * 4
    return (
        b"NTLMSSP\0"
        + struct.pack("<I", 2)
        + struct.pack("<HHI", 0, 0, 48)
        + struct.pack("<I", 0xE28A8233)
        + server_challenge
        + b"\0" * 8
        + struct.pack("<HHI", len(info), len(info), 48)
        + info
    )


def test_ntlm_mechanism_round_trip() -> None:
    mech = Ntlm("bob", "pässword", "CORP")
    negotiate = mech.initial_response()
    assert negotiate is not None and negotiate.startswith(b"NTLMSSP\0\x01\0\0\0")
    answer = mech.respond(_challenge(b"\x07" * 8, 1234))
    # The server's check (MS-NLMP 3.2.5.1.2): NTProofStr from the NT blob.
    nt_len, _, nt_at = struct.unpack_from("<HHI", answer, 20)
    nt = answer[nt_at : nt_at + nt_len]
    key = ntowfv2("pässword", "bob", "CORP")
    assert hmac.digest(key, b"\x07" * 8 + nt[16:], "md5") == nt[:16]
    mech.complete()
    with pytest.raises(ValueError):
        mech.respond(_challenge(b"\x07" * 8, 1234))


def test_ntlm_mechanism_uses_the_domain_and_the_supplied_time() -> None:
    no_time = _challenge(b"\1" * 8, 0)[:40] + struct.pack("<HHI", 0, 0, 48)
    with pytest.raises(ValueError, match="timestamp"):
        Ntlm("u", "p", "D").respond(no_time)
    answer = Ntlm("u", "p", "D", timestamp=99, client_challenge=b"c" * 8).respond(
        no_time
    )
    (nt_at,) = struct.unpack_from("<I", answer, 24)
    assert struct.unpack_from("<Q", answer, nt_at + 24) == (99,)


# ------------------------------------------------------------ every mechanism

FACTORIES: dict[str, Callable[[], SaslMechanism]] = {
    "PLAIN": lambda: Plain("user", "hunter2"),
    "LOGIN": lambda: Login("user", "hunter2"),
    "CRAM-MD5": lambda: CramMd5("user", "hunter2"),
    "SCRAM-SHA-1": lambda: ScramSha1("user", "hunter2", max_iterations=64),
    "SCRAM-SHA-256": lambda: ScramSha256("user", "hunter2", max_iterations=64),
    "SCRAM-SHA-512": lambda: ScramSha512("user", "hunter2", max_iterations=64),
    "NTLM": lambda: Ntlm("user", "hunter2", "DOM", timestamp=0),
    "XOAUTH2": lambda: XOAuth2("user", "hunter2"),
    "OAUTHBEARER": lambda: OAuthBearer("user", "hunter2"),
}


def test_every_name_has_a_factory() -> None:
    assert set(FACTORIES) == set(MECHANISM_NAMES)
    assert {f().name.decode() for f in FACTORIES.values()} == set(MECHANISM_NAMES)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_secrets_are_not_in_repr(name: str) -> None:
    mechanism = FACTORIES[name]()
    assert "hunter2" not in repr(mechanism) and "hunter2" not in str(mechanism)


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "NTLM"])
def test_complete_is_a_no_op_for_mechanisms_without_a_server_proof(name: str) -> None:
    FACTORIES[name]().complete()  # must not raise, even before any round


@settings(max_examples=150)
@given(
    st.sampled_from(sorted(FACTORIES)),
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.sampled_from(
                [b"", b"r=", b"v=", b"e=x", b'{"status":"400"}', b"NTLMSSP\0\2\0\0\0"]
            ),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_random_challenges_give_bytes_or_value_error(
    name: str, challenges: list[bytes]
) -> None:
    mechanism = FACTORIES[name]()
    mechanism.initial_response()
    for challenge in challenges:
        try:
            response = mechanism.respond(challenge)
        except ValueError:
            return
        assert isinstance(response, bytes)


# ------------------------------------------------------------------- choice


def test_mechanism_name_tables() -> None:
    assert MECHANISM_NAMES == PREFERENCE + OAUTH_PREFERENCE
    assert len(set(MECHANISM_NAMES)) == len(MECHANISM_NAMES)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ({"PLAIN", "LOGIN"}, b"PLAIN"),
        ({"LOGIN"}, b"LOGIN"),
        ({"CRAM-MD5", "LOGIN", "GSSAPI"}, b"CRAM-MD5"),
        ({"NTLM", "LOGIN", "GSSAPI"}, b"NTLM"),
        ({"NTLM", "CRAM-MD5"}, b"NTLM"),
        ({"SCRAM-SHA-1", "NTLM", "PLAIN"}, b"SCRAM-SHA-1"),
        ({"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}, b"SCRAM-SHA-256"),
        ({"SCRAM-SHA-256", "SCRAM-SHA-512"}, b"SCRAM-SHA-512"),
        ({"SCRAM-SHA-256-PLUS", "PLAIN"}, b"PLAIN"),  # no channel binding
        ({"plain", "login"}, b"PLAIN"),  # case does not matter
        ({"XOAUTH2", "OAUTHBEARER", "PLAIN"}, b"PLAIN"),  # no token given
        ({"XOAUTH2", "OAUTHBEARER"}, None),
        ({"GSSAPI"}, None),
        (set(), None),
    ],
)
def test_choice(offered: set[str], chosen: bytes | None) -> None:
    mechanism = choose_mechanism(offered, "u", "p")  # the positional form
    assert (mechanism.name if mechanism else None) == chosen


# Strongest first, written out here so that a change to PREFERENCE shows.
EXPECTED_ORDER = [
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "NTLM",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
]


@pytest.mark.parametrize(
    ("stronger", "weaker"),
    [(a, b) for i, a in enumerate(EXPECTED_ORDER) for b in EXPECTED_ORDER[i + 1 :]],
)
def test_every_pair_picks_the_stronger(stronger: str, weaker: str) -> None:
    mechanism = choose_mechanism({weaker, stronger, "GSSAPI"}, "u", "p")
    assert mechanism is not None
    assert mechanism.name == stronger.encode()


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ({"XOAUTH2", "OAUTHBEARER", "PLAIN"}, b"OAUTHBEARER"),
        ({"XOAUTH2", "SCRAM-SHA-256"}, b"XOAUTH2"),
        ({"PLAIN", "SCRAM-SHA-256"}, None),  # a token means OAuth only
    ],
)
def test_choice_with_a_token(offered: set[str], chosen: bytes | None) -> None:
    mechanism = choose_mechanism(offered, username="u", password="p", oauth_token="t")
    assert (mechanism.name if mechanism else None) == chosen


def test_choice_passes_the_details_through() -> None:
    bearer = choose_mechanism(
        {"OAUTHBEARER"}, username="u", oauth_token="t", host="mx.example", port=587
    )
    assert bearer is not None
    assert bearer.initial_response() == (
        b"n,a=u,\x01host=mx.example\x01port=587\x01auth=Bearer t\x01\x01"
    )
    ntlm = choose_mechanism({"NTLM"}, username="u", password="p", domain="CORP")
    assert isinstance(ntlm, Ntlm)


def test_choice_skips_scram_when_saslprep_refuses_the_password() -> None:
    # A tab is prohibited by SASLprep (RFC 4013 2.3) but PLAIN carries it.
    mechanism = choose_mechanism({"SCRAM-SHA-256", "PLAIN"}, "u", "tab\there")
    assert mechanism is not None and mechanism.name == b"PLAIN"
    with pytest.raises(ValueError, match="password"):
        choose_mechanism({"SCRAM-SHA-256"}, "u", "tab\there")


@pytest.mark.parametrize(
    ("forced", "offered", "chosen"),
    [
        ("LOGIN", {"PLAIN", "LOGIN"}, b"LOGIN"),
        ("login", {"PLAIN", "LOGIN"}, b"LOGIN"),
        ("SCRAM-SHA-1", {"SCRAM-SHA-1", "SCRAM-SHA-512"}, b"SCRAM-SHA-1"),
        ("PLAIN", {"LOGIN"}, None),
    ],
)
def test_forced_mechanism(forced: str, offered: set[str], chosen: bytes | None) -> None:
    mechanism = choose_mechanism(offered, "u", "p", mechanism=forced)
    assert (mechanism.name if mechanism else None) == chosen


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"password": "p", "mechanism": "GSSAPI"}, "does not implement"),
        ({"password": "p", "mechanism": "XOAUTH2"}, "token"),
        ({"oauth_token": "t", "mechanism": "PLAIN"}, "password"),
        ({"oauth_token": "t", "mechanism": "NTLM"}, "password"),  # not offered
        ({}, "password or an OAuth token"),
        ({"password": "p\u0007", "mechanism": "SCRAM-SHA-256"}, "password"),
        ({"oauth_token": "bad token"}, "b64token"),
    ],
)
def test_choice_errors(kwargs: dict[str, str], match: str) -> None:
    offered = {"PLAIN", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-256"}
    with pytest.raises(ValueError, match=match):
        choose_mechanism(offered, "u", **kwargs)  # type: ignore[arg-type]
