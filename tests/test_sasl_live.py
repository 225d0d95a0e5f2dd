"""Every SASL mechanism of smtpcore, end to end against a live aiosmtpd.

The server sides (:mod:`smtpcore._aiosmtpd_ext`) check each exchange for
real: CRAM-MD5's HMAC, SCRAM's salted proof (RFC 5802) and its own
signature, NTLMv2's NTProofStr, the OAuth token.  Each test asserts what the
server recorded (the AUTH line, the authenticated user, whether a MAIL ever
arrived) as well as what the client reported.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from smtpcore import (
    BasicEmailSessionDetails,
    EmailSessionError,
    EmailSessionReason,
    SendResult,
    ServerDetails,
    SmtpClient,
    SmtpProtocolError,
    UserCredentials,
)
from smtpcore.aio import AsyncSmtpClient
from smtpcore.protocol.sasl import OAUTH_PREFERENCE, PREFERENCE
from smtpcore.testserver import LocalSmtpServer, ReceivedCommand

USER = "alice"
PASSWORD = secrets.token_urlsafe(12)
TOKEN = secrets.token_urlsafe(24)
RAW = b"Subject: sasl\r\n\r\nhello\r\n"
SENDER, RECIPIENT = "alice@example.com", "bob@example.net"
TIMEOUT = 5.0


@contextmanager
def auth_server(*mechanisms: str, **options: Any) -> Iterator[LocalSmtpServer]:
    """An implicit-TLS server offering exactly ``mechanisms``."""
    with LocalSmtpServer(
        tls="implicit",
        users={USER: PASSWORD},
        tokens={USER: TOKEN},
        mechanisms=mechanisms,
        **options,
    ) as server:
        yield server


def details(
    server: LocalSmtpServer, username: str = USER, password: str | None = PASSWORD
) -> BasicEmailSessionDetails:
    return BasicEmailSessionDetails(
        ServerDetails(server.host, server.port, True),
        UserCredentials(username, password),
    )


def send(
    server: LocalSmtpServer,
    session_details: BasicEmailSessionDetails | None = None,
    **options: Any,
) -> SendResult:
    """One raw message through a fresh ``SmtpClient``."""
    with SmtpClient(
        session_details or details(server),
        tls_context=server.client_context(),
        timeout=TIMEOUT,
        **options,
    ) as client:
        return client.send_raw(SENDER, [RECIPIENT], RAW)


def auth_lines(session: list[ReceivedCommand]) -> list[str]:
    return [c.line for c in session if c.line.upper().startswith("AUTH ")]


def mechanism_of(line: str) -> str:
    return line.split()[1]


def initial_response(line: str) -> bytes:
    """The decoded initial response of an ``AUTH name response`` line
    (empty when there is none)."""
    parts = line.split()
    return base64.b64decode(parts[2]) if len(parts) > 2 else b""


def verbs(session: list[ReceivedCommand]) -> list[str]:
    return [c.line.split(" ", 1)[0].split(":", 1)[0].upper() for c in session]


# ------------------------------------------------ each mechanism, right/wrong


@pytest.mark.parametrize("mechanism", PREFERENCE)
def test_password_mechanism_with_the_right_password(mechanism: str) -> None:
    with auth_server(mechanism) as server:
        result = send(server)
    assert result.accepted == [RECIPIENT]
    assert result.reply.code == 250
    [message] = server.messages
    assert (message.auth_user, message.data) == (USER, RAW)
    [session] = server.sessions
    [line] = auth_lines(session)
    assert mechanism_of(line) == mechanism
    # Of the initial responses only PLAIN's carries the password (RFC 4616;
    # under TLS here); SCRAM's names the user and a nonce.
    sent = initial_response(line)
    assert (PASSWORD.encode() in sent) is (mechanism == "PLAIN")
    assert sent.startswith(b"n,,n=alice,r=") is mechanism.startswith("SCRAM")
    assert verbs(session)[verbs(session).index("AUTH") + 1] == "MAIL"


@pytest.mark.parametrize("mechanism", PREFERENCE)
def test_password_mechanism_with_a_wrong_password(mechanism: str) -> None:
    with auth_server(mechanism) as server:
        wrong = details(server, password=PASSWORD + "x")
        with pytest.raises(EmailSessionError) as info:
            send(server, wrong)
    assert info.value.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    assert info.value.error_code == 300
    assert info.value.reply is not None and info.value.reply.code == 535
    assert server.messages == []
    [session] = server.sessions
    assert [mechanism_of(line) for line in auth_lines(session)] == [mechanism]
    assert "MAIL" not in verbs(session)


def test_unknown_user_is_refused_like_a_wrong_password() -> None:
    # SCRAM answers an unknown user with a made-up salt (RFC 5802 5.1), so
    # the refusal comes only after the proof, as for a wrong password.
    with (
        auth_server(*PREFERENCE) as server,
        pytest.raises(EmailSessionError) as info,
    ):
        send(server, details(server, username="mallory"))
    assert info.value.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    [line] = auth_lines(server.sessions[0])
    assert mechanism_of(line) == "SCRAM-SHA-512"


@pytest.mark.parametrize("mechanism", OAUTH_PREFERENCE)
def test_oauth_mechanism_with_the_right_token(mechanism: str) -> None:
    with auth_server(mechanism) as server:
        result = send(server, details(server, password=None), oauth_token=TOKEN)
    assert result.accepted == [RECIPIENT]
    assert server.messages[0].auth_user == USER
    [line] = auth_lines(server.sessions[0])
    assert mechanism_of(line) == mechanism
    response = initial_response(line)
    assert b"auth=Bearer " + TOKEN.encode() + b"\x01\x01" in response
    if mechanism == "OAUTHBEARER":
        # RFC 7628 3.1: GS2 header with the user, then host and port.
        assert response.startswith(b"n,a=alice,\x01host=127.0.0.1\x01")
        assert f"\x01port={server.port}\x01".encode() in response
    else:
        assert response.startswith(b"user=alice\x01")


@pytest.mark.parametrize("mechanism", OAUTH_PREFERENCE)
def test_oauth_mechanism_with_a_wrong_token(mechanism: str) -> None:
    with auth_server(mechanism) as server, pytest.raises(EmailSessionError) as info:
        send(server, details(server, password=None), oauth_token="expired-1")
    assert info.value.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    assert info.value.reply is not None and info.value.reply.code == 535
    # A string cannot get fresher: exactly one attempt.
    assert len(auth_lines(server.sessions[0])) == 1
    assert server.messages == []


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_server_with_a_wrong_signature_is_a_protocol_error(
    mechanism: str,
) -> None:
    # The server accepts our proof but cannot prove it knows the password
    # (RFC 5802 9): an impostor.  Nothing may be sent to it.
    with (
        auth_server(mechanism, scram_bad_signature=True) as server,
        pytest.raises(SmtpProtocolError, match="signature"),
    ):
        send(server)
    [session] = server.sessions
    assert [mechanism_of(line) for line in auth_lines(session)] == [mechanism]
    assert "MAIL" not in verbs(session)
    assert server.messages == []


def test_scram_saslprep_on_both_sides() -> None:
    # RFC 4013 2.1: a no-break space maps to a space, on each side.
    password = "pass\u00a0w\u00f6rd"
    with LocalSmtpServer(
        tls="implicit", users={USER: "pass w\u00f6rd"}, mechanisms=["SCRAM-SHA-256"]
    ) as server:
        result = send(server, details(server, password=password))
    assert result.accepted == [RECIPIENT]
    assert server.messages[0].auth_user == USER


@pytest.mark.parametrize(
    ("username", "domain"), [("alice", "EXAMPLE"), ("EXAMPLE\\alice", None)]
)
def test_ntlm_with_a_domain(username: str, domain: str | None) -> None:
    with auth_server("NTLM") as server:
        credentials = UserCredentials(username, PASSWORD, domain)
        session_details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, True), credentials
        )
        send(server, session_details)
    assert server.messages[0].auth_user == "alice"
    [line] = auth_lines(server.sessions[0])
    # MS-NLMP 2.2.1.1: the NEGOTIATE message rides with AUTH.
    assert initial_response(line)[:12] == b"NTLMSSP\0\x01\0\0\0"


# ------------------------------------------------------------------ choice


@pytest.mark.parametrize(
    "offered",
    [PREFERENCE[start:] for start in range(len(PREFERENCE))]
    + [("LOGIN", "CRAM-MD5"), ("PLAIN", "NTLM", "LOGIN"), ("XOAUTH2", "LOGIN")],
)
def test_automatic_choice_picks_the_strongest_offered(offered: tuple[str, ...]) -> None:
    strongest = next(name for name in PREFERENCE if name in offered)
    with auth_server(*offered) as server:
        send(server)
    [session] = server.sessions
    assert [mechanism_of(line) for line in auth_lines(session)] == [strongest]
    assert server.messages[0].auth_user == USER


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (("OAUTHBEARER", "XOAUTH2", *PREFERENCE), "OAUTHBEARER"),
        (("XOAUTH2", "SCRAM-SHA-512", "PLAIN"), "XOAUTH2"),
    ],
)
def test_a_token_chooses_an_oauth_mechanism(
    offered: tuple[str, ...], chosen: str
) -> None:
    with auth_server(*offered) as server:
        send(server, oauth_token=TOKEN)
    assert [mechanism_of(x) for x in auth_lines(server.sessions[0])] == [chosen]


@pytest.mark.parametrize("forced", ["LOGIN", "cram-md5", "SCRAM-SHA-1", "NTLM"])
def test_auth_mechanism_overrides_the_choice(forced: str) -> None:
    with auth_server(*PREFERENCE) as server:
        send(server, auth_mechanism=forced)
    [line] = auth_lines(server.sessions[0])
    assert mechanism_of(line) == forced.upper()
    assert server.messages[0].auth_user == USER


def test_forced_mechanism_not_offered_sends_no_auth() -> None:
    with (
        auth_server("PLAIN", "LOGIN") as server,
        pytest.raises(EmailSessionError) as info,
    ):
        send(server, auth_mechanism="SCRAM-SHA-256")
    assert info.value.reason is EmailSessionReason.NO_COMMON_AUTH_MECHANISM
    assert "SCRAM-SHA-256" in str(info.value)
    assert auth_lines(server.sessions[0]) == []


# ----------------------------------------------------- token asked again


def counting(*tokens: str) -> tuple[Callable[[], str], list[str]]:
    """A token source returning ``tokens`` in turn; the list records calls."""
    calls: list[str] = []

    def source() -> str:
        token = tokens[min(len(calls), len(tokens) - 1)]
        calls.append(token)
        return token

    return source, calls


@pytest.mark.parametrize("mechanism", OAUTH_PREFERENCE)
def test_expired_token_is_asked_again_once(mechanism: str) -> None:
    source, calls = counting("expired-1", TOKEN)
    with auth_server(mechanism) as server:
        result = send(server, details(server, password=None), oauth_token=source)
    assert result.accepted == [RECIPIENT]
    assert calls == ["expired-1", TOKEN]
    lines = auth_lines(server.sessions[0])
    assert [mechanism_of(line) for line in lines] == [mechanism, mechanism]
    assert [b"expired-1" in initial_response(line) for line in lines] == [True, False]
    assert server.messages[0].auth_user == USER


@pytest.mark.parametrize("mechanism", OAUTH_PREFERENCE)
def test_a_token_refused_twice_is_a_credentials_error(mechanism: str) -> None:
    source, calls = counting("expired-1", "expired-2", "expired-3")
    with auth_server(mechanism) as server, pytest.raises(EmailSessionError) as info:
        send(server, details(server, password=None), oauth_token=source)
    assert info.value.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    assert calls == ["expired-1", "expired-2"]
    assert len(auth_lines(server.sessions[0])) == 2
    assert server.messages == []


# --------------------------------------------------------- asyncio client


async def _send_async(
    server: LocalSmtpServer, session_details: BasicEmailSessionDetails, **options: Any
) -> SendResult:
    async with AsyncSmtpClient(
        session_details,
        tls_context=server.client_context(),
        timeout=TIMEOUT,
        **options,
    ) as client:
        return await client.send_raw(SENDER, [RECIPIENT], RAW)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "NTLM", "CRAM-MD5"])
def test_asyncio_client_authenticates_the_same_way(mechanism: str) -> None:
    with auth_server(mechanism) as server:
        result = asyncio.run(_send_async(server, details(server)))
    assert result.accepted == [RECIPIENT]
    assert [mechanism_of(x) for x in auth_lines(server.sessions[0])] == [mechanism]
    assert server.messages[0].auth_user == USER


def test_asyncio_client_asks_a_token_again() -> None:
    source, calls = counting("expired-1", TOKEN)
    with auth_server("XOAUTH2") as server:
        # A placeholder password: see the xfail test below.
        asyncio.run(_send_async(server, details(server), oauth_token=source))
    assert calls == ["expired-1", TOKEN]
    assert server.messages[0].auth_user == USER


def test_asyncio_client_takes_a_token_without_a_password() -> None:
    with auth_server("OAUTHBEARER") as server:
        no_password = details(server, password=None)
        asyncio.run(_send_async(server, no_password, oauth_token=TOKEN))
    assert server.messages[0].auth_user == USER
