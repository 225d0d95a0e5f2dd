"""SASL mechanisms as pure challenge -> response objects."""

from __future__ import annotations

import pytest

from smtpcore.protocol.sasl import Login, Plain, choose_mechanism


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
        plain.respond(b"unexpected")


def test_login_answers_by_round_not_by_prompt() -> None:
    login = Login("user", "pässword")
    assert login.initial_response() is None
    assert login.respond(b"User Name\0") == b"user"
    assert login.respond(b"Password:") == "pässword".encode()
    with pytest.raises(ValueError):
        login.respond(b"Password:")


def test_secrets_are_not_in_repr() -> None:
    for mechanism in (Plain("user", "hunter2"), Login("user", "hunter2")):
        assert "hunter2" not in repr(mechanism) and "hunter2" not in str(mechanism)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ({"PLAIN", "LOGIN"}, b"PLAIN"),
        ({"LOGIN"}, b"LOGIN"),
        ({"CRAM-MD5", "LOGIN", "GSSAPI"}, b"LOGIN"),
        ({"GSSAPI"}, None),
        (set(), None),
    ],
)
def test_choice(offered: set[str], chosen: bytes | None) -> None:
    mechanism = choose_mechanism(offered, "u", "p")
    assert (mechanism.name if mechanism else None) == chosen
