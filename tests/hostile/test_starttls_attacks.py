"""STARTTLS attacks (issue 6, item 1).

* Response injection (CVE-2011-0411 and the "Buffering" class of the EAST
  study): plaintext a server, or a man in the middle, appends to the
  STARTTLS ``220`` must not be read as if it came over TLS.  Whole forged
  lines, a partial line, one octet: each is a ``SmtpProtocolError`` and the
  client sends nothing more (RFC 3207 4.2).
* Downgrade: when TLS is required (``starttls="required"``, or credentials
  without ``allow_insecure_auth``), a server that hides STARTTLS, refuses it
  or fails the handshake gets no AUTH and no MAIL.  The tests read what the
  server received.
* Capabilities seen before TLS are never used after it (RFC 3207 4.2).

Each end-to-end test runs with the blocking and the asyncio client (the
root conftest's ``send`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pytest
import trustme

from conftest import Sender
from smtpcore import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCoreError,
    SmtpProtocolError,
    UserCredentials,
)
from smtpcore.errors import LocalProtocolError
from smtpcore.protocol import NEED_DATA, SmtpConnection, SmtpReply, State
from smtpcore.protocol.commands import Auth, Ehlo, Mail, StartTls
from tests.hostile.fakeserver import Behaviour, FakeServer, Session
from tests.hostile.support import (
    FORBIDDEN_IN_CLEAR,
    RECIPIENT,
    USER,
    TlsPair,
    details,
    expired_pair,
    message,
    self_signed_pair,
    send_via,
    tls_pair,
)

# Every reply on loopback is instant; a second is only reached by the cases
# that wait for a silent server.
TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A client configuration under which TLS is required."""

    name: str
    credentials: bool
    starttls: Literal["auto", "required"]


REQUIRING_TLS = [
    # Credentials make TLS mandatory even under the default policy.
    Policy("credentials+auto", True, "auto"),
    Policy("no-credentials+required", False, "required"),
]


def run(
    send: Sender,
    server: FakeServer,
    tls: TlsPair,
    policy: Policy,
    password: str,
) -> SmtpCoreError | None:
    """Send one message to ``server`` under ``policy``; return the error, or
    None if the message was sent."""
    credentials = UserCredentials(USER, password) if policy.credentials else None
    try:
        send(
            message("attack"),
            details(server.port, credentials),
            tls_context=tls.client,
            timeout=TIMEOUT,
            starttls=policy.starttls,
        )
    except SmtpCoreError as error:
        return error
    return None


def assert_nothing_sent_in_clear(sessions: list[Session]) -> None:
    """No session carried credentials or a transaction before TLS, and none
    delivered a message without TLS."""
    assert sessions, "the client never connected"
    for session in sessions:
        assert not FORBIDDEN_IN_CLEAR & set(session.in_clear()), session.verbs()
        assert not session.contents or session.tls


# ------------------------------------------------------- response injection

# What the server sends right behind "220 Ready to start TLS\r\n", in the
# same write.
INJECTIONS = {
    # EAST testcases/smtp/Buffering/B_1.ron, step 2.
    "east-B_1": b"250-example.org\r\n250 AUTH LOGIN\r\n",
    "one-forged-line": b"250 AUTH PLAIN LOGIN\r\n",
    "partial-line-without-crlf": b"250 AUTH LOGIN",
    "one-octet": b"2",
    "bare-crlf": b"\r\n",
    "forged-auth-success": b"235 2.7.0 Authentication successful\r\n",
    "forged-354": b"354 go ahead\r\n",
    "start-of-a-multiline-reply": b"250-example.org\r\n",
}


@pytest.mark.parametrize("policy", REQUIRING_TLS, ids=lambda p: p.name)
@pytest.mark.parametrize("injected", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_lines_appended_to_the_220_are_refused_and_nothing_follows(
    fake: FakeServer,
    send: Sender,
    tls: TlsPair,
    password: str,
    injected: bytes,
    policy: Policy,
) -> None:
    behaviour = Behaviour(stls_response=b"220 Ready to start TLS\r\n" + injected)
    fake.reset(behaviour, tls.server)
    error = run(send, fake, tls, policy, password)
    assert isinstance(error, SmtpProtocolError)
    assert "injected" in str(error)
    [session] = fake.sessions
    # No further command, not even QUIT, and no TLS on a stream that
    # cannot be trusted.
    assert session.verbs() == ["EHLO", "STARTTLS"]
    assert not session.tls


@pytest.mark.parametrize("delay", [0.0, 0.02], ids=["at-once", "after-20ms"])
def test_injection_racing_the_handshake_is_never_read_as_a_reply(
    fake: FakeServer, send: Sender, tls: TlsPair, password: str, delay: float
) -> None:
    # The forged lines come in a write of their own, so they may reach the
    # client after it read the 220 and started the handshake: then they
    # must break the handshake, not be buffered and read after it.
    behaviour = Behaviour(
        after_stls=b"250-example.org\r\n250 AUTH LOGIN\r\n", after_stls_delay=delay
    )
    fake.reset(behaviour, tls.server)
    error = run(send, fake, tls, REQUIRING_TLS[0], password)
    assert isinstance(error, (SmtpProtocolError, EmailSessionError))
    [session] = fake.sessions
    assert session.verbs() == ["EHLO", "STARTTLS"]
    assert not session.tls


def test_a_client_sends_nothing_between_starttls_and_the_handshake(
    fake: FakeServer, send: Sender, tls: TlsPair, password: str
) -> None:
    # The other direction of RFC 3207 4.2: nothing pipelined behind
    # STARTTLS, or the server would read it as if it came over TLS.
    behaviour = Behaviour(capabilities=("STARTTLS", "PIPELINING"))
    fake.reset(behaviour, tls.server)
    assert run(send, fake, tls, REQUIRING_TLS[0], password) is None
    [session] = fake.sessions
    assert session.tls and session.plaintext_at_upgrade == b""
    assert session.in_clear() == ["EHLO", "STARTTLS"]


# ----------------------------------------------------------------- downgrade

_NOT_AVAILABLE = EmailSessionReason.STARTTLS_NOT_AVAILABLE


@dataclass(frozen=True, slots=True)
class Downgrade:
    """A server that keeps TLS from happening, and the error it earns."""

    behaviour: Behaviour
    error: type[SmtpCoreError]
    reason: EmailSessionReason | None


def refusing(response: bytes) -> Behaviour:
    """STARTTLS offered, then answered ``response`` (EAST O_2 to O_4)."""
    return Behaviour(stls_response=response, stls_make_transition=False)


DOWNGRADES = {
    # EAST O_1: STARTTLS not offered, AUTH offered in clear.
    "not-offered": Downgrade(
        Behaviour(capabilities=("AUTH PLAIN LOGIN",)), EmailSessionError, _NOT_AVAILABLE
    ),
    # EAST D_1: no ESMTP at all, so HELO and no STARTTLS.
    "ehlo-and-starttls-hidden": Downgrade(
        Behaviour(hide_commands=("EHLO", "STARTTLS")), EmailSessionError, _NOT_AVAILABLE
    ),
    "refused-454": Downgrade(
        refusing(b"454 TLS not available due to temporary reason\r\n"),
        EmailSessionError,
        _NOT_AVAILABLE,
    ),
    "refused-502": Downgrade(
        refusing(b"502 Command not implemented\r\n"), EmailSessionError, _NOT_AVAILABLE
    ),
    "refused-501": Downgrade(
        refusing(b"501 Syntax error\r\n"), EmailSessionError, _NOT_AVAILABLE
    ),
    # A reply STARTTLS cannot have (EAST O_4).
    "answered-354": Downgrade(
        refusing(b"354 do something else\r\n"), SmtpProtocolError, None
    ),
    "answered-421": Downgrade(
        refusing(b"421 4.3.2 shutting down\r\n"),
        EmailSessionError,
        EmailSessionReason.CONNECTION_LOST,
    ),
    "handshake-closed": Downgrade(
        Behaviour(stls_failure="close"),
        EmailSessionError,
        EmailSessionReason.CONNECTION_LOST,
    ),
    "handshake-garbage": Downgrade(
        Behaviour(stls_failure="garbage"),
        EmailSessionError,
        EmailSessionReason.CONNECTION_LOST,
    ),
}

# Servers whose certificate the client must refuse in the handshake.
MakePair = Callable[[trustme.CA], TlsPair]
BAD_CERTIFICATES: dict[str, tuple[MakePair, EmailSessionReason]] = {
    "untrusted-root": (
        lambda ca: TlsPair(tls_pair(trustme.CA()).server, tls_pair(ca).client),
        EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE,
    ),
    "self-signed": (
        self_signed_pair,
        EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE,
    ),
    "expired": (expired_pair, EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE),
    "wrong-name": (
        lambda ca: tls_pair(ca, "other.example.org"),
        EmailSessionReason.INVALID_SSL_CERTIFICATE,
    ),
}


@pytest.mark.parametrize("policy", REQUIRING_TLS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", DOWNGRADES.values(), ids=DOWNGRADES.keys())
def test_required_tls_is_never_downgraded(
    fake: FakeServer,
    send: Sender,
    tls: TlsPair,
    password: str,
    case: Downgrade,
    policy: Policy,
) -> None:
    fake.reset(case.behaviour, tls.server)
    error = run(send, fake, tls, policy, password)
    assert isinstance(error, case.error), error
    if case.reason is not None:
        assert isinstance(error, EmailSessionError)
        assert error.reason is case.reason
    assert_nothing_sent_in_clear(fake.sessions)
    assert all(not session.contents for session in fake.sessions)


@pytest.mark.parametrize("policy", REQUIRING_TLS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", BAD_CERTIFICATES)
def test_a_refused_certificate_gets_no_credentials_and_no_mail(
    fake: FakeServer,
    send: Sender,
    ca: trustme.CA,
    password: str,
    name: str,
    policy: Policy,
) -> None:
    make, reason = BAD_CERTIFICATES[name]
    pair = make(ca)
    fake.reset(Behaviour(), pair.server)
    error = run(send, fake, pair, policy, password)
    assert isinstance(error, EmailSessionError)
    assert error.reason is reason
    # The anti-virus diagnosis may take a second, unverified look at the
    # certificate: it must not carry credentials or mail either.
    for session in fake.sessions:
        assert not FORBIDDEN_IN_CLEAR & set(session.verbs()), session.verbs()


@pytest.mark.parametrize(
    "client",
    [
        "blocking",
        "asyncio",
    ],
)
@pytest.mark.parametrize("policy", REQUIRING_TLS, ids=lambda p: p.name)
def test_a_silent_handshake_times_out_and_sends_nothing(
    fake: FakeServer, tls: TlsPair, password: str, policy: Policy, client: str
) -> None:
    behaviour = Behaviour(stls_failure="silence")
    fake.reset(behaviour, tls.server)
    error = run(send_via(client), fake, tls, policy, password)
    assert isinstance(error, EmailSessionError)
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "handshake" in str(error)
    assert_nothing_sent_in_clear(fake.sessions)


def test_auto_without_credentials_sends_in_clear_but_required_does_not(
    fake: FakeServer, send: Sender, tls: TlsPair
) -> None:
    # The documented opportunistic behaviour ("auto": upgrade when offered)
    # and the policy that closes it: the same STARTTLS-stripping server.
    behaviour = Behaviour(capabilities=())
    fake.reset(behaviour, tls.server)
    send(message(), details(fake.port), tls_context=tls.client, timeout=TIMEOUT)
    with pytest.raises(EmailSessionError) as caught:
        send(
            message(),
            details(fake.port),
            tls_context=tls.client,
            timeout=TIMEOUT,
            starttls="required",
        )
    assert caught.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    clear, required = fake.sessions
    assert clear.in_clear()[:2] == ["EHLO", "MAIL"] and len(clear.contents) == 1
    assert not FORBIDDEN_IN_CLEAR & set(required.verbs())


# ------------------------------------------------ knowledge from before TLS


def test_capabilities_from_before_tls_are_not_used_after_it(
    fake: FakeServer, send: Sender, tls: TlsPair, password: str
) -> None:
    # Before TLS the server offers PLAIN, a 10-octet SIZE and PIPELINING;
    # after TLS only LOGIN.  A client that kept the old list would try
    # PLAIN, refuse the message as too big, or pipeline.
    behaviour = Behaviour(
        capabilities=("STARTTLS", "AUTH PLAIN LOGIN", "SIZE 10", "PIPELINING"),
        capabilities_tls=("AUTH LOGIN",),
    )
    fake.reset(behaviour, tls.server)
    send(
        message("two", RECIPIENT, "second@example.com"),
        details(fake.port, UserCredentials(USER, password)),
        tls_context=tls.client,
        timeout=TIMEOUT,
    )
    [session] = fake.sessions
    after = [seen for seen in session.seen if seen.tls]
    assert [seen.line for seen in after if seen.verb == "AUTH"] == [b"AUTH LOGIN"]
    [mail] = [seen.line for seen in after if seen.verb == "MAIL"]
    assert b"SIZE=" not in mail
    assert not any(seen.pipelined for seen in after)
    assert len(session.contents) == 1


def test_capabilities_offered_only_after_tls_are_used(
    fake: FakeServer, send: Sender, tls: TlsPair, password: str
) -> None:
    # The converse, which shows the detectors above can see a difference.
    behaviour = Behaviour(
        capabilities=("STARTTLS",),
        capabilities_tls=("AUTH PLAIN", "SIZE 100000", "PIPELINING"),
    )
    fake.reset(behaviour, tls.server)
    send(
        message("two", RECIPIENT, "second@example.com"),
        details(fake.port, UserCredentials(USER, password)),
        tls_context=tls.client,
        timeout=TIMEOUT,
    )
    [session] = fake.sessions
    after = {seen.verb: seen for seen in session.seen if seen.tls}
    assert after["AUTH"].line.startswith(b"AUTH PLAIN ")
    assert b" SIZE=" in after["MAIL"].line
    assert after["MAIL"].pipelined


# ------------------------------------------------------- the sans-IO engine

GREETING = b"220 mx.example.com ESMTP\r\n"
EHLO = b"250-mx.example.com\r\n250-AUTH PLAIN\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


def at_starttls() -> SmtpConnection:
    """An engine that has sent STARTTLS and waits for its reply."""
    conn = SmtpConnection()
    conn.receive_data(GREETING)
    assert isinstance(conn.next_event(), SmtpReply)
    conn.send(Ehlo(b"client.example.com"))
    conn.receive_data(EHLO)
    assert isinstance(conn.next_event(), SmtpReply)
    conn.send(StartTls())
    return conn


def feed(conn: SmtpConnection, data: bytes, *, bytewise: bool) -> list[SmtpReply]:
    """Feed ``data`` whole or one octet at a time, collecting replies."""
    replies: list[SmtpReply] = []
    pieces = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, SmtpReply)
            replies.append(event)
    return replies


@pytest.mark.parametrize("injected", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_engine_refuses_bytes_behind_the_220_in_the_same_feed(injected: bytes) -> None:
    conn = at_starttls()
    with pytest.raises(SmtpProtocolError, match="injected"):
        feed(conn, b"220 Ready to start TLS\r\n" + injected, bytewise=False)
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.tls_started()


def test_engine_upgrades_on_a_clean_220_fed_octet_by_octet() -> None:
    conn = at_starttls()
    [reply] = feed(conn, b"220 Ready to start TLS\r\n", bytewise=True)
    assert reply.code == 220 and conn.state is State.TLS_UPGRADE
    conn.tls_started()
    # RFC 3207 4.2: everything from before TLS is gone; EHLO is due again.
    assert conn.extensions.auth_mechanisms == frozenset()
    assert not conn.extensions.pipelining and not conn.extensions.starttls
    for command in (Auth(b"PLAIN", b"\0u\0p"), Mail(b"a@example.com")):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    conn.send(Ehlo(b"client.example.com"))
    [reply] = feed(conn, b"250-mx.example.com\r\n250 AUTH LOGIN\r\n", bytewise=True)
    assert conn.extensions.auth_mechanisms == frozenset({"LOGIN"})


@pytest.mark.parametrize("injected", [b"250 AUTH LOGIN", b"250-example.org\r\n"])
def test_engine_refuses_plaintext_arriving_after_the_220(injected: bytes) -> None:
    # Fed octet by octet, the 220 is complete (and answered) before the
    # injected bytes arrive, so the check at the 220 cannot see them.
    conn = at_starttls()
    [reply] = feed(conn, b"220 Ready to start TLS\r\n", bytewise=True)
    assert reply.code == 220
    with pytest.raises(SmtpProtocolError):
        feed(conn, injected, bytewise=True)
        conn.tls_started()
