"""Tests of the EHLO reply -> Extensions parser."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import LocalProtocolError, SmtpProtocolError
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.replies import ReplyParser, SmtpReply


def _ehlo(*lines: bytes) -> Extensions:
    """Build the EHLO reply from its lines and parse it."""
    return Extensions.from_ehlo(SmtpReply(250, (b"mx.example.org Hi", *lines)))


def _from_wire(data: bytes) -> Extensions:
    """Parse wire bytes with the reply parser, then the reply as EHLO."""
    parser = ReplyParser()
    parser.feed(data)
    reply = parser.next_reply()
    assert reply is not None
    assert parser.buffered == 0
    return Extensions.from_ehlo(reply)


# Captured from aiosmtpd 1.4.6 (decode_data=False, enable_SMTPUTF8=True,
# auth_require_tls=False).
AIOSMTPD = (
    b"250-mx.example.org\r\n"
    b"250-SIZE 33554432\r\n"
    b"250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-AUTH LOGIN PLAIN\r\n"
    b"250 HELP\r\n"
)

POSTFIX = (
    b"250-mail.example.com\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)


def test_aiosmtpd_reply() -> None:
    ext = _from_wire(AIOSMTPD)
    assert dict(ext.keywords) == {
        "SIZE": ("33554432",),
        "8BITMIME": (),
        "SMTPUTF8": (),
        "AUTH": ("LOGIN", "PLAIN"),
        "HELP": (),
    }
    assert ext.size == 33554432
    assert ext.auth_mechanisms == {"LOGIN", "PLAIN"}
    assert ext.eightbitmime
    assert ext.smtputf8
    assert not ext.pipelining
    assert not ext.starttls
    assert not ext.chunking
    assert not ext.enhancedstatuscodes


def test_postfix_reply() -> None:
    ext = _from_wire(POSTFIX)
    assert list(ext.keywords) == [
        "PIPELINING",
        "SIZE",
        "VRFY",
        "ETRN",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ]
    assert ext.size == 10240000
    assert ext.auth_mechanisms == frozenset()
    assert not ext.has("AUTH")
    assert ext.pipelining
    assert ext.starttls
    assert ext.enhancedstatuscodes
    assert ext.eightbitmime
    assert ext.dsn
    assert ext.smtputf8
    assert ext.chunking
    assert not ext.binarymime
    assert not ext.requiretls
    assert ext.has("vrfy")
    assert ext.has("Etrn")
    assert not ext.has("EXPN")


def test_first_line_is_not_a_keyword() -> None:
    # The greeting line names the server; "PIPELINING" there means nothing.
    ext = Extensions.from_ehlo(SmtpReply(250, (b"PIPELINING",)))
    assert not ext.pipelining
    assert ext == Extensions.none()


def test_greeting_only() -> None:
    assert Extensions.from_ehlo(SmtpReply(250, (b"mx Hi",))) == Extensions.none()


@pytest.mark.parametrize(
    ("code", "lines"), [(550, (b"no",)), (421, (b"bye",)), (354, (b"x", b"SIZE"))]
)
def test_negative_reply_is_refused(code: int, lines: tuple[bytes, ...]) -> None:
    with pytest.raises(LocalProtocolError):
        Extensions.from_ehlo(SmtpReply(code, lines))


def test_none() -> None:
    ext = Extensions.none()
    assert dict(ext.keywords) == {}
    assert ext.auth_mechanisms == frozenset()
    assert ext.size is None
    assert not ext.has("PIPELINING")
    assert not any(
        getattr(ext, name)
        for name in (
            "pipelining",
            "starttls",
            "eightbitmime",
            "smtputf8",
            "chunking",
            "binarymime",
            "dsn",
            "enhancedstatuscodes",
            "requiretls",
        )
    )


@pytest.mark.parametrize(
    ("keyword", "prop"),
    [
        (b"PIPELINING", "pipelining"),
        (b"STARTTLS", "starttls"),
        (b"8BITMIME", "eightbitmime"),
        (b"SMTPUTF8", "smtputf8"),
        (b"CHUNKING", "chunking"),
        (b"BINARYMIME", "binarymime"),
        (b"DSN", "dsn"),
        (b"ENHANCEDSTATUSCODES", "enhancedstatuscodes"),
        (b"REQUIRETLS", "requiretls"),
    ],
)
def test_convenience_properties(keyword: bytes, prop: str) -> None:
    assert getattr(_ehlo(keyword), prop) is True
    assert getattr(_ehlo(keyword.lower()), prop) is True
    assert getattr(_ehlo(b"OTHER"), prop) is False


# --------------------------------------------------------------------------
# AUTH.
# --------------------------------------------------------------------------


def test_auth_mechanisms_are_upper_cased() -> None:
    ext = _ehlo(b"auth login Plain CRAM-MD5 scram-sha-256 XOAUTH2")
    assert ext.auth_mechanisms == {
        "LOGIN",
        "PLAIN",
        "CRAM-MD5",
        "SCRAM-SHA-256",
        "XOAUTH2",
    }
    # Parameters stay as sent; only the keyword is upper-cased.
    assert ext.keywords["AUTH"] == (
        "login",
        "Plain",
        "CRAM-MD5",
        "scram-sha-256",
        "XOAUTH2",
    )


def test_old_auth_form_only() -> None:
    # Old Exchange: only "AUTH=LOGIN".
    ext = _ehlo(b"AUTH=LOGIN")
    assert ext.auth_mechanisms == {"LOGIN"}
    assert ext.has("AUTH")
    assert ext.keywords["AUTH"] == ("LOGIN",)
    assert "AUTH=LOGIN" not in ext.keywords


def test_old_auth_form_with_several_mechanisms() -> None:
    assert _ehlo(b"auth=login plain").auth_mechanisms == {"LOGIN", "PLAIN"}


def test_both_auth_forms_are_united() -> None:
    ext = _ehlo(b"AUTH GSSAPI NTLM", b"AUTH=LOGIN")
    assert ext.auth_mechanisms == {"GSSAPI", "NTLM", "LOGIN"}
    # keywords["AUTH"] holds what the standard AUTH line said.
    assert ext.keywords["AUTH"] == ("GSSAPI", "NTLM")


def test_repeated_auth_lines_are_merged() -> None:
    ext = _ehlo(b"AUTH PLAIN LOGIN", b"AUTH LOGIN XOAUTH2")
    assert ext.keywords["AUTH"] == ("PLAIN", "LOGIN", "XOAUTH2")
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN", "XOAUTH2"}


def test_auth_without_mechanisms() -> None:
    ext = _ehlo(b"AUTH", b"AUTH=")
    assert ext.has("AUTH")
    assert ext.auth_mechanisms == frozenset()


@pytest.mark.parametrize(
    "junk",
    [b"PL@IN", b"A" * 21, b"LOGIN\xff", b"\xc3\xa9", b"X=Y", b"a.b"],
)
def test_invalid_mechanism_names_are_dropped(junk: bytes) -> None:
    ext = _ehlo(b"AUTH PLAIN " + junk, b"AUTH=" + junk + b" LOGIN")
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN"}


def test_twenty_character_mechanism_is_kept() -> None:
    assert _ehlo(b"AUTH " + b"A_" * 10).auth_mechanisms == {"A_" * 10}


def test_many_mechanisms() -> None:
    # A line as long as the reply parser allows: thousands of mechanisms.
    names = [b"M%d" % i for i in range(1500)]
    line = b"AUTH " + b" ".join(names)
    assert len(line) < 8192
    ext = _ehlo(line, b"AUTH=" + b" ".join(names))
    assert ext.auth_mechanisms == {n.decode() for n in names}
    assert len(ext.keywords["AUTH"]) == 1500


# --------------------------------------------------------------------------
# SIZE.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"SIZE 35882577", 35882577),
        (b"size 1", 1),
        (b"SIZE", None),
        (b"SIZE 0", None),
        (b"SIZE 000", None),
        (b"SIZE -1", None),
        (b"SIZE 10MB", None),
        (b"SIZE 1e6", None),
        (b"SIZE \xd9\xa1", None),
        (b"SIZE 99999999999999999999", 99999999999999999999),
        (b"SIZE 999999999999999999999", None),
        (b"SIZE " + b"9" * 5000, None),
        (b"SIZE 100 200", 100),
    ],
)
def test_size(line: bytes, size: int | None) -> None:
    ext = _ehlo(line)
    assert ext.size == size
    assert ext.has("SIZE")


def test_no_size_keyword() -> None:
    ext = _ehlo(b"PIPELINING")
    assert ext.size is None
    assert not ext.has("SIZE")


def test_repeated_keyword_keeps_first_parameters() -> None:
    ext = _ehlo(b"SIZE 100", b"SIZE 200")
    assert ext.size == 100
    assert ext.keywords["SIZE"] == ("100",)


# --------------------------------------------------------------------------
# Case, whitespace and junk.
# --------------------------------------------------------------------------


def test_keywords_are_case_insensitive() -> None:
    ext = _ehlo(b"pipelining", b"StartTLS", b"x-Custom-Ext arg")
    assert list(ext.keywords) == ["PIPELINING", "STARTTLS", "X-CUSTOM-EXT"]
    assert ext.has("Pipelining")
    assert ext.has("starttls")
    assert ext.has("x-custom-ext")
    assert ext.keywords["X-CUSTOM-EXT"] == ("arg",)


def test_extra_whitespace_between_parameters() -> None:
    ext = _ehlo(b"AUTH  PLAIN\tLOGIN ", b"  SIZE   42  ")
    assert ext.keywords["AUTH"] == ("PLAIN", "LOGIN")
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert ext.size == 42


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b" ",
        b"-PIPELINING",
        b"PIPE_LINING",
        b"PIPE.LINING",
        b"\xffSTARTTLS",
        b"STARTTLS\xff",
        b"\xc3\x89TRN",
        b"<script>",
        b"=AUTH",
        b"\x00",
    ],
)
def test_junk_lines_are_skipped(junk: bytes) -> None:
    ext = _ehlo(b"PIPELINING", junk, b"SIZE 5")
    assert list(ext.keywords) == ["PIPELINING", "SIZE"]
    assert ext.size == 5


def test_non_ascii_parameters_are_replaced_not_fatal() -> None:
    ext = _ehlo(b"X-INFO caf\xc3\xa9")
    assert ext.keywords["X-INFO"] == ("caf\ufffd\ufffd",)


@settings(max_examples=200)
@given(lines=st.lists(st.binary(max_size=60), max_size=10))
def test_arbitrary_lines_never_raise(lines: list[bytes]) -> None:
    ext = Extensions.from_ehlo(SmtpReply(250, (b"mx", *lines)))
    for keyword, params in ext.keywords.items():
        assert keyword == keyword.upper()
        assert keyword.isascii()
        assert all(isinstance(p, str) for p in params)
    for mech in ext.auth_mechanisms:
        assert mech == mech.upper()
        assert 1 <= len(mech) <= 20
    assert ext.size is None or ext.size > 0


# --------------------------------------------------------------------------
# Immutability and value semantics.
# --------------------------------------------------------------------------


def test_is_immutable() -> None:
    ext = _from_wire(POSTFIX)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ext.size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ext.keywords["NEW"] = ()  # type: ignore[index]
    assert isinstance(ext.keywords, MappingProxyType)


def test_direct_construction_copies_and_normalises() -> None:
    source = {"pipelining": [], "auth": ["plain"]}
    ext = Extensions(keywords=source, auth_mechanisms=frozenset({"plain"}))  # type: ignore[arg-type]
    source["STARTTLS"] = []
    assert not ext.starttls
    assert ext.pipelining
    assert ext.keywords["AUTH"] == ("plain",)
    assert ext.auth_mechanisms == {"PLAIN"}


def test_equality_and_hash() -> None:
    a = _from_wire(POSTFIX)
    b = _from_wire(POSTFIX)
    assert a == b
    assert hash(a) == hash(b)
    assert a != _from_wire(AIOSMTPD)
    assert a != Extensions.none()


def test_reply_parser_errors_stay_in_the_parser() -> None:
    # An oversized EHLO line never reaches from_ehlo.
    parser = ReplyParser(max_line_length=64)
    parser.feed(b"250-mx\r\n250 AUTH " + b"PLAIN " * 20 + b"\r\n")
    with pytest.raises(SmtpProtocolError):
        parser.next_reply()
