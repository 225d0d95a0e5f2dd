"""Command objects: exact bytes, and refusal of anything that could inject."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore.errors import LocalProtocolError
from smtpcore.protocol.commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Data,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTls,
)


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Ehlo(b"[127.0.0.1]"), b"EHLO [127.0.0.1]\r\n"),
        (Helo(b"client.example"), b"HELO client.example\r\n"),
        (StartTls(), b"STARTTLS\r\n"),
        (Auth(b"PLAIN", b"\0u\0p"), b"AUTH PLAIN AHUAcA==\r\n"),
        (Auth(b"PLAIN", b""), b"AUTH PLAIN =\r\n"),
        (Auth(b"LOGIN"), b"AUTH LOGIN\r\n"),
        (AuthResponse(b"user"), b"dXNlcg==\r\n"),
        (AuthCancel(), b"*\r\n"),
        (Mail(b"a@example.com"), b"MAIL FROM:<a@example.com>\r\n"),
        (Mail(b""), b"MAIL FROM:<>\r\n"),
        (
            Mail(b"a@example.com", (b"SIZE=123", b"BODY=8BITMIME")),
            b"MAIL FROM:<a@example.com> SIZE=123 BODY=8BITMIME\r\n",
        ),
        (Rcpt(b'"john doe"@example.com'), b'RCPT TO:<"john doe"@example.com>\r\n'),
        (
            Rcpt(b"b@[192.0.2.1]", (b"NOTIFY=NEVER",)),
            b"RCPT TO:<b@[192.0.2.1]> NOTIFY=NEVER\r\n",
        ),
        (Data(), b"DATA\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Quit(), b"QUIT\r\n"),
    ],
)
def test_wire_bytes(command: object, wire: bytes) -> None:
    assert command.to_bytes() == wire  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "address",
    [
        b"a@example.com> SIZE=1",  # ESMTP parameter smuggling
        b"a@example.com>\r\nRCPT TO:<b@example.com",
        b"a@exa\nmple.com",
        b"a@exa\rmple.com",
        b"a\x00@example.com",
        b"<a@example.com>",
        b"a@example.com NOTIFY=NEVER",
        b"no-at-sign",
        b"\xff@example.com",
    ],
)
def test_paths_that_could_inject_are_refused(address: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        Mail(address)
    with pytest.raises(LocalProtocolError):
        Rcpt(address)


def test_rcpt_needs_an_address() -> None:
    with pytest.raises(LocalProtocolError):
        Rcpt(b"")


@pytest.mark.parametrize(
    "param", [b"", b"SIZE=", b"SIZE=1 2", b"SI ZE", b"=1", b"A=b=c", b"X=\r\n", b"-X"]
)
def test_bad_esmtp_params_are_refused(param: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        Mail(b"a@example.com", (param,))


@pytest.mark.parametrize("domain", [b"", b"a b", b"a\r\nMAIL", b"x\x00", b"x" * 256])
def test_bad_hello_domains_are_refused(domain: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        Ehlo(domain)
    with pytest.raises(LocalProtocolError):
        Helo(domain)


@pytest.mark.parametrize("name", [b"", b"plain", b"PL AIN", b"X" * 21, b"PLAIN\r\n"])
def test_bad_sasl_names_are_refused(name: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        Auth(name)


def test_commands_are_frozen() -> None:
    command = Mail(b"a@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.sender = b"b@example.com"  # type: ignore[misc]


def test_auth_payloads_are_not_in_repr() -> None:
    assert "secret" not in repr(Auth(b"PLAIN", b"\0user\0secret"))
    assert "secret" not in repr(AuthResponse(b"secret"))


@given(st.binary(min_size=1, max_size=60))
def test_no_command_line_ever_carries_a_stray_line_break(path: bytes) -> None:
    try:
        wire = Rcpt(path).to_bytes()
    except LocalProtocolError:
        return
    assert wire.count(b"\r") == 1 and wire.count(b"\n") == 1 and wire.endswith(b"\r\n")
    assert b"\x00" not in wire and wire.count(b">") == 1 + path.count(b">")
