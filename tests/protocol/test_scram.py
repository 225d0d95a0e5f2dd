"""SCRAM client (RFC 5802, RFC 7677) and SASLprep (RFC 4013)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.protocol.saslbase import SaslServerFailure
from smtpcore.protocol.scram import (
    DEFAULT_MAX_ITERATIONS,
    SCRAM_HASHES,
    ScramClient,
    escape_saslname,
    saslprep,
)

# ------------------------------------------------------------------ SASLprep


@pytest.mark.parametrize(
    ("given_text", "prepared"),
    [  # RFC 4013 3, the examples that succeed
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),  # case is preserved
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        # Beyond the RFC's table: non-ASCII space -> SPACE, zero-width gone.
        ("a\u00a0b", "a b"),
        ("a\u200bb", "ab"),
        ("", ""),
    ],
)
def test_saslprep_rfc4013_examples(given_text: str, prepared: str) -> None:
    assert saslprep(given_text, stored=True) == prepared


@pytest.mark.parametrize(
    "text",
    [
        "\u0007",  # RFC 4013 3: prohibited character (ASCII control)
        "\u0627\u0031",  # RFC 4013 3: bidirectional check
        "a\tb",  # C.2.1
        "a\u0085b",  # C.2.2 non-ASCII control
        "\ue000",  # C.3 private use
        "\ufffe",  # C.4 non-character
        "\ud800",  # C.5 surrogate
        "\u200e",  # C.8 LEFT-TO-RIGHT MARK
        "\U000e0001",  # C.9 tagging
        "\u05d0a\u05d0",  # RandAL with an L character
        "\u05d0\u0031",  # RandAL not at the end
    ],
)
def test_saslprep_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text, stored=False)


def test_unassigned_code_points_only_in_queries() -> None:
    # U+0221 is unassigned in Unicode 3.2 (RFC 3454 table A.1).
    assert saslprep("a\u0221", stored=False) == "a\u0221"
    with pytest.raises(ValueError, match="unassigned"):
        saslprep("a\u0221", stored=True)


def test_saslprep_errors_never_quote_the_value() -> None:
    with pytest.raises(ValueError) as caught:
        saslprep("hunter2\u0007", stored=True, what="password")
    assert "hunter2" not in str(caught.value)
    assert "password" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("user", "user"), ("a,b", "a=2Cb"), ("a=b", "a=3Db"), ("=,=", "=3D=2C=3D")],
)
def test_escape_saslname(name: str, escaped: str) -> None:
    assert escape_saslname(name) == escaped


def test_saslname_cannot_carry_nul() -> None:
    with pytest.raises(ValueError):
        escape_saslname("a\0b")


# ------------------------------------------------------------- test vectors

# RFC 5802 5 (SCRAM-SHA-1) and RFC 7677 3 (SCRAM-SHA-256), byte for byte.
VECTORS = {
    "SCRAM-SHA-1": (
        "fyko+d2lbbFgONRv9qkxdawL",
        b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    "SCRAM-SHA-256": (
        "rOprNGfwEbeRWgbNEkqO",
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
}


@pytest.mark.parametrize("mechanism", sorted(VECTORS))
def test_rfc_vectors(mechanism: str) -> None:
    nonce, client_first, server_first, client_final, server_final = VECTORS[mechanism]
    client = ScramClient(mechanism, "user", "pencil", nonce=nonce)
    assert client.client_first() == client_first
    assert client.client_final(server_first) == client_final
    assert not client.verified
    client.verify_server_final(server_final)
    assert client.verified


@pytest.mark.parametrize("mechanism", sorted(VECTORS))
def test_rfc_vectors_with_a_wrong_password_fail_at_the_server_signature(
    mechanism: str,
) -> None:
    nonce, _, server_first, client_final, server_final = VECTORS[mechanism]
    client = ScramClient(mechanism, "user", "pencil!", nonce=nonce)
    assert client.client_final(server_first) != client_final
    with pytest.raises(ValueError, match="signature"):
        client.verify_server_final(server_final)
    assert not client.verified


# ------------------------------------------------ a server side, for tests


class ScramServer:
    """RFC 5802 3 from the server's side: it stores only StoredKey and
    ServerKey, and checks the client's proof against StoredKey."""

    def __init__(
        self, mechanism: str, username: str, password: str, iterations: int = 4096
    ) -> None:
        self.hash = SCRAM_HASHES[mechanism]
        self.username = username
        self.salt = b"salt-" + mechanism.encode()
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac(
            self.hash,
            saslprep(password, stored=True).encode(),
            self.salt,
            iterations,
        )
        client_key = hmac.digest(salted, b"Client Key", self.hash)
        self.stored_key = hashlib.new(self.hash, client_key).digest()
        self.server_key = hmac.digest(salted, b"Server Key", self.hash)

    def first(self, client_first: bytes) -> bytes:
        assert client_first.startswith(b"n,,")
        self.client_first_bare = client_first[3:]
        attrs = dict(a.split(b"=", 1) for a in self.client_first_bare.split(b","))
        assert attrs[b"n"].decode() == escape_saslname(self.username)
        self.nonce = attrs[b"r"] + b"server-nonce"
        salt = base64.b64encode(self.salt)
        self.server_first = (
            b"r=" + self.nonce + b",s=" + salt + b",i=%d" % self.iterations
        )
        return self.server_first

    def final(self, client_final: bytes) -> bytes:
        without_proof, _, proof = client_final.rpartition(b",p=")
        assert without_proof == b"c=biws,r=" + self.nonce
        auth = b",".join((self.client_first_bare, self.server_first, without_proof))
        signature = hmac.digest(self.stored_key, auth, self.hash)
        client_key = bytes(
            a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True)
        )
        if hashlib.new(self.hash, client_key).digest() != self.stored_key:
            return b"e=invalid-proof"
        return b"v=" + base64.b64encode(hmac.digest(self.server_key, auth, self.hash))


def exchange(client: ScramClient, server: ScramServer) -> None:
    server_final = server.final(
        client.client_final(server.first(client.client_first()))
    )
    client.verify_server_final(server_final)


@pytest.mark.parametrize("mechanism", sorted(SCRAM_HASHES))
@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("user", "pencil"),
        ("a,b=c", "p,a=ss"),  # escaping of the saslname
        ("üser", "pässwörd"),
        ("I\u00adX", "\u2168"),  # SASLprep'd on both sides
        ("u", ""),
    ],
)
def test_round_trip(mechanism: str, username: str, password: str) -> None:
    server = ScramServer(mechanism, saslprep(username, stored=False), password)
    client = ScramClient(mechanism, username, password)
    exchange(client, server)
    assert client.verified


@pytest.mark.parametrize("mechanism", sorted(SCRAM_HASHES))
def test_round_trip_wrong_password_gets_the_servers_error(mechanism: str) -> None:
    server = ScramServer(mechanism, "user", "right")
    client = ScramClient(mechanism, "user", "wrong")
    with pytest.raises(SaslServerFailure, match="invalid-proof") as caught:
        exchange(client, server)
    assert caught.value.temporary is False


@pytest.mark.parametrize(
    ("error", "kind", "temporary"),
    [
        ("unknown-user", SaslServerFailure, False),
        ("invalid-username-encoding", SaslServerFailure, False),
        ("no-resources", SaslServerFailure, True),
        ("other-error", ValueError, None),
        ("channel-bindings-dont-match", ValueError, None),
    ],
)
def test_server_errors_say_whether_the_credentials_failed(
    error: str, kind: type[ValueError], temporary: bool | None
) -> None:
    # RFC 5802 7: some server-error-values refuse the user or the password,
    # "no-resources" is the server's load, the rest say the sides do not fit.
    server = ScramServer("SCRAM-SHA-256", "user", "pencil")
    client = ScramClient("SCRAM-SHA-256", "user", "pencil")
    client.client_final(server.first(client.client_first()))
    with pytest.raises(ValueError, match=error) as caught:
        client.verify_server_final(b"e=" + error.encode())
    assert type(caught.value) is kind
    assert getattr(caught.value, "temporary", None) is temporary


def test_random_nonce_is_fresh_and_printable() -> None:
    first = ScramClient("SCRAM-SHA-256", "u", "p").client_first()
    second = ScramClient("SCRAM-SHA-256", "u", "p").client_first()
    assert first != second
    nonce = first.split(b",r=")[1]
    assert len(nonce) >= 24 and b"," not in nonce and nonce.isascii()


def test_secrets_are_not_in_repr_or_kept() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "hunter2", nonce="abc")
    assert "hunter2" not in repr(client)
    client.client_final(b"r=abcdef,s=c2FsdA==,i=1")
    assert all(b"hunter2" not in repr(v).encode() for v in vars(client).values())


# ----------------------------------------------------- refusing bad input


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("SCRAM-MD5", "u", "p"), "unknown"),
        (("SCRAM-SHA-256", "", "p"), "empty"),
        (("SCRAM-SHA-256", "\u00ad", "p"), "empty"),  # maps to nothing
        (("SCRAM-SHA-256", "u\u0007", "p"), "user name"),
        (("SCRAM-SHA-256", "u", "p\u0007"), "password"),
        (("SCRAM-SHA-256", "u", "p\u0221"), "unassigned"),  # stored string
    ],
)
def test_bad_credentials(args: tuple[str, str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ScramClient(*args)


@pytest.mark.parametrize("nonce", ["", "a,b", "caf\u00e9", "sp ace"])
def test_bad_injected_nonce(nonce: str) -> None:
    with pytest.raises(ValueError, match="nonce"):
        ScramClient("SCRAM-SHA-1", "u", "p", nonce=nonce)


SERVER_FIRST_OK = b"r=abcXYZ,s=c2FsdA==,i=4096"

BAD_SERVER_FIRST = {
    "empty": b"",
    "not utf-8": b"r=abc\xff,s=c2FsdA==,i=1",
    "mandatory extension": b"m=ext,r=abcXYZ,s=c2FsdA==,i=1",
    "wrong order": b"s=c2FsdA==,r=abcXYZ,i=1",
    "missing i": b"r=abcXYZ,s=c2FsdA==",
    "attribute without =": b"r=abcXYZ,s=c2FsdA==,i",
    "two-letter attribute": b"r=abcXYZ,ss=c2FsdA==,i=1",
    "empty attribute": b"r=abcXYZ,,s=c2FsdA==,i=1",
    "nonce not ours": b"r=zzzXYZ,s=c2FsdA==,i=1",
    "nonce only ours": b"r=abc,s=c2FsdA==,i=1",
    "nonce with space": b"r=abc X,s=c2FsdA==,i=1",
    "salt not base64": b"r=abcXYZ,s=c2Fsd!==,i=1",
    "salt bad padding": b"r=abcXYZ,s=c2FsdA=,i=1",
    "salt empty": b"r=abcXYZ,s=,i=1",
    "i zero": b"r=abcXYZ,s=c2FsdA==,i=0",
    "i negative": b"r=abcXYZ,s=c2FsdA==,i=-1",
    "i leading zero": b"r=abcXYZ,s=c2FsdA==,i=01",
    "i plus sign": b"r=abcXYZ,s=c2FsdA==,i=+1",
    "i not a number": b"r=abcXYZ,s=c2FsdA==,i=many",
    "i with spaces": b"r=abcXYZ,s=c2FsdA==,i= 1",
    "i unicode digits": "r=abcXYZ,s=c2FsdA==,i=\u0661".encode(),
    "i huge": b"r=abcXYZ,s=c2FsdA==,i=" + b"9" * 5000,
    "i over the bound": b"r=abcXYZ,s=c2FsdA==,i=%d" % (DEFAULT_MAX_ITERATIONS + 1),
    "trailing comma": SERVER_FIRST_OK + b",",
}


@pytest.mark.parametrize("name", sorted(BAD_SERVER_FIRST))
def test_bad_server_first(name: str) -> None:
    client = ScramClient("SCRAM-SHA-256", "u", "p", nonce="abc")
    with pytest.raises(ValueError):
        client.client_final(BAD_SERVER_FIRST[name])


@pytest.mark.parametrize(
    "message", [b"m=ext,r=abcXYZ,s=c2FsdA==,i=1", b"m=ext,s=c2FsdA==,i=1"]
)
def test_mandatory_extension_is_refused_as_such(message: bytes) -> None:
    # RFC 5802 5.1: "m" marks an extension the client must understand.
    client = ScramClient("SCRAM-SHA-256", "u", "p", nonce="abc")
    with pytest.raises(ValueError, match=r"unknown extension \(m=\)"):
        client.client_final(message)


def test_iteration_bound_is_configurable_and_explained() -> None:
    client = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc", max_iterations=10)
    with pytest.raises(ValueError, match="CPU"):
        client.client_final(b"r=abcXYZ,s=c2FsdA==,i=11")
    at_bound = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc", max_iterations=10)
    assert at_bound.client_final(b"r=abcXYZ,s=c2FsdA==,i=10").startswith(b"c=biws,")


def test_extensions_after_i_are_ignored() -> None:
    # RFC 5802 7: server-first-message ends with ["," extensions].
    plain = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc")
    extended = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc")
    proof = plain.client_final(SERVER_FIRST_OK).split(b",p=")[1]
    with_ext = extended.client_final(SERVER_FIRST_OK + b",x=future")
    # The proof covers the whole server-first message, extension included.
    assert with_ext.split(b",p=")[1] != proof


def test_server_first_twice_is_refused() -> None:
    client = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc")
    client.client_final(SERVER_FIRST_OK)
    with pytest.raises(ValueError, match="twice"):
        client.client_final(SERVER_FIRST_OK)


def _after_first() -> ScramClient:
    client = ScramClient(
        "SCRAM-SHA-1", "user", "pencil", nonce=VECTORS["SCRAM-SHA-1"][0]
    )
    client.client_final(VECTORS["SCRAM-SHA-1"][2])
    return client


BAD_SERVER_FINAL = {
    "empty": b"",
    "no v": b"x=abc",
    "bad base64": b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ",
    "wrong signature": b"v=" + base64.b64encode(b"\0" * 20),
    "short signature": b"v=" + base64.b64encode(b"\0" * 4),
    "verifier second": b"x=1,v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
}


@pytest.mark.parametrize("name", sorted(BAD_SERVER_FINAL))
def test_bad_server_final(name: str) -> None:
    client = _after_first()
    with pytest.raises(ValueError):
        client.verify_server_final(BAD_SERVER_FINAL[name])
    assert not client.verified


def test_server_error_is_reported_safely() -> None:
    client = _after_first()
    with pytest.raises(ValueError, match="invalid-proof") as caught:
        client.verify_server_final(b"e=invalid-proof\x1b[31m")
    assert "\x1b" not in str(caught.value)


def test_server_final_extensions_and_order() -> None:
    client = _after_first()
    client.verify_server_final(VECTORS["SCRAM-SHA-1"][4] + b",x=ext")
    assert client.verified
    with pytest.raises(ValueError, match="order"):
        client.verify_server_final(VECTORS["SCRAM-SHA-1"][4])
    early = ScramClient("SCRAM-SHA-1", "user", "pencil")
    with pytest.raises(ValueError, match="order"):
        early.verify_server_final(VECTORS["SCRAM-SHA-1"][4])


# ------------------------------------------------------------- properties

_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=","), max_size=12
)


@settings(max_examples=200)
@given(
    suffix=_value,
    salt=_value,
    count=st.one_of(st.integers(-5, 2000).map(str), _value),
    extra=st.lists(_value, max_size=3),
)
def test_structured_server_first_gives_a_proof_or_value_error(
    suffix: str, salt: str, count: str, extra: list[str]
) -> None:
    message = ",".join([f"r=abc{suffix}", f"s={salt}", f"i={count}", *extra])
    client = ScramClient("SCRAM-SHA-256", "u", "p", nonce="abc", max_iterations=2000)
    try:
        final = client.client_final(message.encode())
    except ValueError:
        return
    assert final.startswith(b"c=biws,r=abc" + suffix.encode() + b",p=")


@settings(max_examples=200)
@given(st.binary(max_size=120), st.binary(max_size=120))
def test_random_messages_give_bytes_or_value_error(first: bytes, final: bytes) -> None:
    client = ScramClient("SCRAM-SHA-1", "u", "p", nonce="abc", max_iterations=100)
    try:
        client.client_final(first)
        client.verify_server_final(final)
    except ValueError:
        return
    raise AssertionError("random bytes proved knowledge of the password")
