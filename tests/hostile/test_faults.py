"""Faults at every point of a transaction (issue 6, item 6).

The server hangs up, answers ``421`` and hangs up (RFC 5321 3.8), or goes
silent, at every point of a session with STARTTLS and AUTH: after the
greeting, at EHLO, STARTTLS, the EHLO after TLS, AUTH, MAIL, the first and
the second RCPT, DATA, in the middle of the message content, and before the
final reply.  A server that sends one octet per second meets the timeouts
as configured.

Each case must end in a classified ``EmailSessionError``; the session kept
on the details is then marked broken (not connected), and the next
``send_email`` with the same details connects afresh and delivers.  When
the content went out whole but its final reply never came, the error says
that delivery is unknown (``delivery_unknown``), so that a caller can
decide about a retry; everywhere else it says the message was not
delivered.  Every case runs with both clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pytest

from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    EmailSessionError,
    EmailSessionReason,
    SmtpClient,
    UserCredentials,
)
from smtpcore.aio import AsyncSmtpClient
from tests.hostile.fakeserver import (
    POINTS,
    SHUTDOWN,
    Behaviour,
    FakeServer,
    Fault,
    FaultAction,
    Point,
    Session,
)
from tests.hostile.support import (
    RECIPIENT,
    SENDER,
    USER,
    TlsPair,
    details,
    send_via,
)

CLIENTS = ["blocking", "asyncio"]
# Replies on loopback are instant: this only bounds the broken cases.
TIMEOUT = 2.0
# The silent cases wait this long for each reply.
SHORT = 0.5
# Large enough that the client is still writing when a server that read
# BODY_READ octets hangs up (more than the socket buffers of both ends).
BIG_BODY = ("x" * 900 + "\n") * (8 * 1024 * 1024 // 901)

# The command each point is reached by, as the server records it.
VERB_AT: dict[Point, str | None] = {
    "GREETING": None,
    "EHLO": "EHLO",
    "STARTTLS": "STARTTLS",
    "EHLO_TLS": "EHLO",
    "AUTH": "AUTH",
    "MAIL": "MAIL",
    "RCPT1": "RCPT",
    "RCPT2": "RCPT",
    "DATA": "DATA",
    "BODY": "DATA",
    "FINAL": "DATA",
}


def mail(body: str = "fault") -> EmailMessage:
    """A message to two recipients (so that there is a second RCPT)."""
    return EmailMessage(
        [RECIPIENT, "second@example.com"], SENDER, subject="fault", body=body
    )


@dataclass
class Outcome:
    """What the first, failing send did (``broken``: the repr of the session
    it left on the details) and what the retry did."""

    error: EmailSessionError
    elapsed: float
    details: BasicEmailSessionDetails
    broken: str
    first: Session
    second: Session


def provoke(
    server: FakeServer,
    tls: TlsPair,
    fault: Fault,
    client: str,
    *,
    credentials: UserCredentials | None = None,
    body: str = "fault",
    behaviour: Behaviour | None = None,
    **options: object,
) -> Outcome:
    """Send through ``server`` misbehaving per ``fault`` (session kept
    open), then send again on the same details; return both sessions.

    ``behaviour`` is the server's otherwise (default: STARTTLS, then AUTH
    PLAIN); ``options`` go to both sends.
    """
    server.reset(replace(behaviour or Behaviour(), fault=fault), tls.server)
    send = send_via(client)
    kept = details(server.port, credentials)
    settings = {"tls_context": tls.client, "timeout": TIMEOUT, **options}
    started = time.monotonic()
    with pytest.raises(EmailSessionError) as caught:
        send(mail(body), kept, close_session=False, **settings)
    elapsed = time.monotonic() - started
    # The failed session is kept on the details, and broken.
    session = kept._session
    assert isinstance(session, (SmtpClient, AsyncSmtpClient))
    assert not session.is_connected
    broken = repr(session)
    # The next send on the same details connects afresh and delivers.
    result = send(mail("after the fault"), kept, **settings)
    assert result.reply.code == 250
    assert kept._session is None
    first, second = server.sessions
    assert len(second.contents) == 1 and second.verbs()[-1] == "QUIT"
    return Outcome(caught.value, elapsed, kept, broken, first, second)


def check_the_failed_session(outcome: Outcome, point: Point) -> None:
    """The first session stopped where the fault struck."""
    verbs = outcome.first.verbs()
    verb = VERB_AT[point]
    if verb is None:
        assert verbs == []
    else:
        # Nothing after the command the server did not answer (AUTH payload
        # lines aside, there are none with PLAIN).
        assert verbs[-1] == verb, verbs
    assert verbs.count("DATA") == (1 if verb == "DATA" else 0)
    if point not in ("BODY", "FINAL"):
        assert outcome.first.contents == []


def check_unknown(error: EmailSessionError, unknown: bool) -> None:
    """``delivery_unknown`` is ``unknown``, and the message says so."""
    assert error.delivery_unknown is unknown
    assert ("delivery is unknown" in str(error)) is unknown




def fault_params(action: FaultAction) -> list[object]:
    params: list[object] = []
    for point in POINTS:
        if point == "BODY":
            continue  # see test_the_server_hangs_up_in_the_middle_of_the_content
        for client in CLIENTS:
            name = f"{point}-{client}"
            params.append(pytest.param(point, client, id=name))
    return params


@pytest.mark.parametrize(("point", "client"), fault_params("close"))
def test_the_server_hangs_up(
    fake: FakeServer, tls: TlsPair, password: str, point: Point, client: str
) -> None:
    outcome = provoke(
        fake,
        tls,
        Fault(point, "close"),
        client,
        credentials=UserCredentials(USER, password),
    )
    error = outcome.error
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    assert error.error_code == 103
    # Only a hang-up before the final reply leaves the outcome open.
    check_unknown(error, point == "FINAL")
    check_the_failed_session(outcome, point)


@pytest.mark.parametrize(("point", "client"), fault_params("421"))
def test_the_server_answers_421_and_hangs_up(
    fake: FakeServer, tls: TlsPair, password: str, point: Point, client: str
) -> None:
    outcome = provoke(
        fake,
        tls,
        Fault(point, "421"),
        client,
        credentials=UserCredentials(USER, password),
    )
    error = outcome.error
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    if point != "GREETING":
        # The 421 answered a command: it is what the error reports.
        assert error.reply is not None and error.reply.code == 421
        assert SHUTDOWN.decode().strip() in str(error)
    # A 421 is a reply: even as the final reply it says "not delivered".
    check_unknown(error, False)
    check_the_failed_session(outcome, point)


@pytest.mark.parametrize(("point", "client"), fault_params("silence"))
def test_the_server_goes_silent(
    fake: FakeServer, tls: TlsPair, password: str, point: Point, client: str
) -> None:
    outcome = provoke(
        fake,
        tls,
        Fault(point, "silence"),
        client,
        credentials=UserCredentials(USER, password),
        timeout=SHORT,
        data_timeout=SHORT,
    )
    error = outcome.error
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert error.error_code == 102
    assert f"{SHORT:g}s" in str(error)
    check_unknown(error, point == "FINAL")
    check_the_failed_session(outcome, point)
    # One wait for the one reply that never came (the greeting and the
    # replies before it are instant).
    assert outcome.elapsed < SHORT * 5




@pytest.mark.parametrize(
    ("action", "client"),
    [
        ("close", "blocking"),
        ("close", "asyncio"),
        ("421", "blocking"),
        ("421", "asyncio"),
    ],
)
def test_the_server_hangs_up_in_the_middle_of_the_content(
    tls: TlsPair, password: str, action: FaultAction, client: str
) -> None:
    # A small receive buffer, so that the client is still writing when the
    # server stops reading after BODY_READ octets and hangs up.
    with FakeServer(context=tls.server, receive_buffer=65536) as server:
        outcome = provoke(
            server,
            tls,
            Fault("BODY", action),
            client,
            credentials=UserCredentials(USER, password),
            body=BIG_BODY,
        )
    error = outcome.error
    assert error.reason is EmailSessionReason.CONNECTION_LOST
    if action == "close":
        # The content never went out whole: certainly not delivered.
        check_unknown(error, False)
    # (After a 421 the client may have read the 421 once its writes were
    # done, or failed writing; it reports either honestly.)
    [partial] = outcome.first.contents
    assert not partial.endswith(b"\r\n.\r\n")
    check_the_failed_session(outcome, "BODY")


# ------------------------------------------------- one octet per second


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("point", ["GREETING", "EHLO", "AUTH", "FINAL"])
def test_one_octet_per_second_meets_the_timeout(
    fake: FakeServer, tls: TlsPair, password: str, point: Point, client: str
) -> None:
    # Each read waits at most the timeout (data_timeout for the final
    # reply); a gap of a second between octets exceeds both.
    outcome = provoke(
        fake,
        tls,
        Fault(point, "dribble", interval=1.0),
        client,
        credentials=UserCredentials(USER, password),
        timeout=SHORT if point != "FINAL" else 5.0,
        data_timeout=SHORT,
    )
    error = outcome.error
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    check_unknown(error, point == "FINAL")
    assert outcome.elapsed < 1.0 + SHORT * 3




@pytest.mark.parametrize("client", CLIENTS)
def test_a_reply_dribbled_inside_the_timeout_is_still_bounded(
    fake: FakeServer, tls: TlsPair, client: str
) -> None:
    # Seven octets, one every 0.3 s: each read is quick, the greeting
    # takes 2.1 s, twice the timeout.
    fake.reset(
        Behaviour(
            greeting=b"220 x\r\n", fault=Fault("GREETING", "dribble", interval=0.3)
        ),
        tls.server,
    )
    started = time.monotonic()
    with pytest.raises(EmailSessionError) as caught:
        send_via(client)(
            mail(), details(fake.port), tls_context=tls.client, timeout=1.0
        )
    assert caught.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert time.monotonic() - started < 2.0
