"""End-to-end tests of ``send_email`` against real aiosmtpd servers on loopback.

Every claim is checked on the server side: how many TCP connections it
accepted, which command lines it read on each, and which messages it took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from conftest import USER, Endpoint
from smtpcore import (
    ArgumentError,
    BasicEmailSessionDetails,
    EmailMessage,
    EmailSessionError,
    EmailSessionReason,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    ServerDetails,
    SmtpClient,
    SmtpCommandError,
    SmtpErrorKind,
    UserCredentials,
    send_email,
)
from smtpcore.testserver import LocalSmtpServer, ReceivedCommand, TlsMode

SENDER = "sender@example.com"
REFUSED = "nobody@example.com"
# Short enough to keep the file fast; long enough for a loaded CI machine.
TIMEOUT = 2.0


def message(subject: str, *to: str) -> EmailMessage:
    """A small text message from SENDER (to one recipient by default)."""
    return EmailMessage(
        list(to or ("recipient@example.com",)), SENDER, subject=subject, body=subject
    )


def opts(endpoint: Endpoint) -> dict[str, Any]:
    """send_email options for ``endpoint``: its CA trusted, a short timeout."""
    return {"tls_context": endpoint.context, "timeout": TIMEOUT}


def verbs(session: list[ReceivedCommand]) -> list[str]:
    """The command verbs of one recorded session, upper-cased."""
    return [c.line.split(" ", 1)[0].split(":", 1)[0].upper() for c in session]


def subjects(server: LocalSmtpServer) -> list[str]:
    """The Subject of every message the server accepted, oldest first."""
    return [str(m.parsed()["Subject"]) for m in server.messages]


# ------------------------------------------------------------ session reuse


def test_five_sends_on_one_open_session_use_one_connection(endpoint: Endpoint) -> None:
    server = endpoint.server
    for i in range(5):
        result = send_email(
            message(f"reuse {i}"),
            endpoint.details,
            close_session=False,
            **opts(endpoint),
        )
        assert result.reply.code == 250
    server.wait_for_messages(5)
    assert subjects(server) == [f"reuse {i}" for i in range(5)]
    assert server.connections == 1
    [session] = server.sessions
    # One EHLO round (two with STARTTLS), one AUTH, five transactions, and
    # the session is still open: no QUIT yet.
    assert verbs(session).count("AUTH") == 1
    assert verbs(session).count("MAIL") == 5
    assert "QUIT" not in verbs(session)

    endpoint.details.close()
    [session] = server.sessions
    assert verbs(session)[-1] == "QUIT"
    # Closed means closed: the next send needs a new connection.
    send_email(message("after close"), endpoint.details, **opts(endpoint))
    assert server.connections == 2


def test_close_session_default_opens_one_connection_per_send(
    endpoint: Endpoint,
) -> None:
    server = endpoint.server
    for i in range(3):
        send_email(message(f"fresh {i}"), endpoint.details, **opts(endpoint))
    assert server.connections == 3
    assert subjects(server) == [f"fresh {i}" for i in range(3)]
    for session in server.sessions:
        assert verbs(session).count("MAIL") == 1
        assert verbs(session)[-1] == "QUIT"


def test_with_block_closes_the_session(endpoint: Endpoint) -> None:
    server = endpoint.server
    with endpoint.details as details:
        for i in range(2):
            send_email(
                message(f"with {i}"), details, close_session=False, **opts(endpoint)
            )
        [session] = server.sessions
        assert "QUIT" not in verbs(session)
    assert server.connections == 1
    [session] = server.sessions
    assert verbs(session)[-1] == "QUIT"
    assert subjects(server) == ["with 0", "with 1"]


def test_close_twice_and_close_without_session_are_harmless(
    endpoint: Endpoint,
) -> None:
    endpoint.details.close()
    send_email(message("once"), endpoint.details, close_session=False, **opts(endpoint))
    endpoint.details.close()
    endpoint.details.close()
    [session] = endpoint.server.sessions
    assert verbs(session).count("QUIT") == 1


# --------------------------------------------------------------- reconnect


def test_dropped_idle_session_reconnects_without_loss_or_duplicate(
    endpoint: Endpoint,
) -> None:
    server = endpoint.server
    send_email(
        message("before drop"),
        endpoint.details,
        close_session=False,
        **opts(endpoint),
    )
    server.drop_connections()
    result = send_email(
        message("after drop"), endpoint.details, close_session=False, **opts(endpoint)
    )
    assert result.reply.code == 250
    assert server.connections == 2
    assert subjects(server) == ["before drop", "after drop"]
    first, second = server.sessions
    assert verbs(first).count("MAIL") == 1 and "QUIT" not in verbs(first)
    assert verbs(second).count("MAIL") == 1


@pytest.fixture(params=["starttls", "implicit"])
def restartable(
    request: pytest.FixtureRequest, ca: trustme.CA, password: str
) -> Iterator[Endpoint]:
    """A server of its own, so that stopping it disturbs no other test."""
    tls: TlsMode = request.param
    with LocalSmtpServer(tls=tls, users={USER: password}, ca=ca) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, tls == "implicit"),
            UserCredentials(USER, password),
        )
        endpoint = Endpoint(server, details, server.client_context(), password)
        yield endpoint
        details.close()


def test_server_restart_between_sends_reconnects(restartable: Endpoint) -> None:
    server, details = restartable.server, restartable.details
    options = opts(restartable)
    send_email(message("first life"), details, close_session=False, **options)
    assert subjects(server) == ["first life"]
    server.stop()
    server.start()  # same port; start() forgets the earlier records
    result = send_email(message("second life"), details, close_session=False, **options)
    assert result.reply.code == 250
    assert server.connections == 1
    assert subjects(server) == ["second life"]
    [session] = server.sessions
    assert verbs(session).count("MAIL") == 1


def test_server_gone_for_good_is_reported_not_retried_forever(
    restartable: Endpoint,
) -> None:
    server, details = restartable.server, restartable.details
    options = opts(restartable)
    send_email(message("last"), details, close_session=False, **options)
    server.stop()
    with pytest.raises(EmailSessionError) as caught:
        send_email(message("lost"), details, close_session=False, **options)
    # Nothing listens on the port any more: connection refused.
    assert caught.value.reason is EmailSessionReason.INVALID_PORT
    assert caught.value.port == server.port


# ------------------------------------------------------ refused recipients


@pytest.fixture(scope="module", params=[True, False], ids=["pipelining", "lockstep"])
def _refusing_server(request: pytest.FixtureRequest) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(
        tls="none", pipelining=request.param, refuse_recipients={REFUSED}
    ) as server:
        yield server


@pytest.fixture
def refusing(_refusing_server: LocalSmtpServer) -> Iterator[Endpoint]:
    """A plain-text server without AUTH that refuses RCPT TO:<REFUSED>."""
    server = _refusing_server
    server.reset()
    details = BasicEmailSessionDetails(ServerDetails(server.host, server.port, False))
    endpoint = Endpoint(server, details, server.client_context(), "")
    yield endpoint
    details.close()


@pytest.mark.parametrize(
    "recipients",
    [
        (REFUSED,),
        ("first@example.com", REFUSED),
        (REFUSED, "last@example.com"),
    ],
    ids=["alone", "second", "first"],
)
def test_refused_recipient_delivers_nothing_and_keeps_the_session(
    refusing: Endpoint, recipients: tuple[str, ...]
) -> None:
    server, details = refusing.server, refusing.details
    options = opts(refusing)
    with pytest.raises(SmtpCommandError) as caught:
        send_email(
            message("refused", *recipients), details, close_session=False, **options
        )
    error = caught.value
    assert error.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert error.mailbox == REFUSED and error.command == "RCPT TO"
    assert error.reply.code == 550 and error.reply.enhanced_status == "5.1.1"
    assert set(error.rejected) == {REFUSED}
    assert server.messages == []
    [session] = server.sessions
    assert "RSET" in verbs(session)
    # The next message goes over the same connection.
    result = send_email(message("accepted"), details, close_session=False, **options)
    assert result.accepted == ["recipient@example.com"]
    assert server.connections == 1
    assert subjects(server) == ["accepted"]


def test_allow_partial_delivers_to_the_accepted(refusing: Endpoint) -> None:
    to = ("one@example.com", REFUSED, "two@example.com")
    result = send_email(
        message("partial", *to),
        refusing.details,
        allow_partial=True,
        **opts(refusing),
    )
    assert result.accepted == ["one@example.com", "two@example.com"]
    assert list(result.rejected) == [REFUSED]
    assert result.rejected[REFUSED].code == 550
    [received] = refusing.server.messages
    assert received.rcpt_tos == ("one@example.com", "two@example.com")


def test_allow_partial_with_every_recipient_refused_raises(refusing: Endpoint) -> None:
    with pytest.raises(SmtpCommandError) as caught:
        send_email(
            message("none", REFUSED),
            refusing.details,
            allow_partial=True,
            **opts(refusing),
        )
    assert caught.value.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert refusing.server.messages == []


# ------------------------------------------------- input errors, no socket


def _missing(tmp_path: Path) -> EmailMessage:
    return EmailMessage(
        ["r@example.com"], SENDER, attachments=[str(tmp_path / "missing.txt")]
    )


# (id, message factory, expected exception, expected property_name or "").
BAD_MESSAGES: list[tuple[str, Callable[[Path], object], type[Exception], str]] = [
    ("none", lambda _: None, PropertyNullError, "message"),
    ("empty-to", lambda _: EmailMessage([], SENDER), PropertyEmptyError, "to"),
    (
        "no-from",
        lambda _: EmailMessage(["r@example.com"], None),
        PropertyNullError,
        "from_",
    ),
    (
        "bad-priority",
        lambda _: EmailMessage(["r@example.com"], SENDER, priority=7),
        ArgumentError,
        "priority",
    ),
    ("missing-attachment", _missing, FileNotFoundError, ""),
]


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [pytest.param(m, e, n, id=i) for i, m, e, n in BAD_MESSAGES],
)
def test_bad_message_is_refused_before_connecting(
    submission: Endpoint,
    tmp_path: Path,
    make: Callable[[Path], object],
    error: type[Exception],
    name: str,
) -> None:
    bad: Any = make(tmp_path)
    with pytest.raises(error) as caught:
        send_email(bad, submission.details, **opts(submission))
    if name:
        assert getattr(caught.value, "property_name", None) == name
    else:
        assert "missing.txt" in str(caught.value)
    assert submission.server.connections == 0


def test_missing_session_details_are_refused_before_connecting(
    submission: Endpoint,
) -> None:
    with pytest.raises(PropertyNullError) as caught:
        send_email(message("nowhere"), None, **opts(submission))  # type: ignore[arg-type]
    assert caught.value.property_name == "session_details"
    assert submission.server.connections == 0


@pytest.mark.parametrize(
    ("to", "from_", "kind", "status"),
    [
        ("not an address", SENDER, SmtpErrorKind.RECIPIENT_NOT_ACCEPTED, "5.1.3"),
        (
            "a@example.com> SIZE=1",
            SENDER,
            SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            "5.1.3",
        ),
        ("r@example.com", "no-at-sign", SmtpErrorKind.SENDER_NOT_ACCEPTED, "5.1.7"),
    ],
    ids=["recipient", "smuggled-parameter", "sender"],
)
def test_bad_address_is_refused_before_connecting(
    submission: Endpoint, to: str, from_: str, kind: SmtpErrorKind, status: str
) -> None:
    with pytest.raises(SmtpCommandError) as caught:
        send_email(EmailMessage([to], from_), submission.details, **opts(submission))
    error = caught.value
    assert error.kind is kind
    assert error.reply.code == 501 and error.reply.enhanced_status == status
    assert error.mailbox in (to, from_)
    assert submission.server.connections == 0


def test_bad_port_is_refused_before_connecting(submission: Endpoint) -> None:
    details = BasicEmailSessionDetails(ServerDetails(submission.server.host, 0, False))
    with pytest.raises(PropertyValueOutOfRangeError) as caught:
        send_email(message("port"), details, **opts(submission))
    assert caught.value.property_name == "server_details.port"
    assert submission.server.connections == 0


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"Subject: x\r\n\r\nnul \x00 here\r\n", "NUL"),
        (b"Subject: x\r\n\r\n" + b"a" * 999 + b"\r\n", "998"),
    ],
    ids=["nul", "long-line"],
)
def test_bad_raw_data_is_refused_before_connecting(
    submission: Endpoint, data: bytes, why: str
) -> None:
    client = SmtpClient(
        submission.details, tls_context=submission.context, timeout=TIMEOUT
    )
    with pytest.raises(ArgumentError) as caught:
        client.send_raw(SENDER, ["r@example.com"], data)
    assert caught.value.property_name == "data"
    assert why in str(caught.value)
    assert not client.is_connected
    assert submission.server.connections == 0


def test_bad_input_on_an_open_session_sends_nothing(submission: Endpoint) -> None:
    server, details = submission.server, submission.details
    options = opts(submission)
    send_email(message("good"), details, close_session=False, **options)
    [before] = server.sessions
    with pytest.raises(PropertyEmptyError):
        send_email(EmailMessage([], SENDER), details, close_session=False, **options)
    # The open session saw no command at all for the bad message, and
    # carries the next one.
    assert server.sessions == [before]
    send_email(message("good again"), details, close_session=False, **options)
    assert server.connections == 1
    assert subjects(server) == ["good", "good again"]
