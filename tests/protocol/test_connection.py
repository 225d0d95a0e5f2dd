"""SmtpConnection: the state machine, pipelining rules, STARTTLS, replies fed
whole, byte by byte and with trailing data."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore.errors import LocalProtocolError, SmtpProtocolError
from smtpcore.protocol import (
    NEED_DATA,
    ConnectionClosed,
    SmtpConnection,
    SmtpReply,
    State,
)
from smtpcore.protocol.commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
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

GREETING = b"220 mx.example.com ESMTP ready\r\n"
EHLO_PLAIN = b"250-mx.example.com\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"
EHLO_PIPE = b"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
OK = b"250 2.0.0 Ok\r\n"


def whole(conn: SmtpConnection, data: bytes) -> list[SmtpReply]:
    conn.receive_data(data)
    return drain(conn)


def bytewise(conn: SmtpConnection, data: bytes) -> list[SmtpReply]:
    replies: list[SmtpReply] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        replies += drain(conn)
    return replies


def drain(conn: SmtpConnection) -> list[SmtpReply]:
    replies = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return replies
        assert isinstance(event, SmtpReply), event
        replies.append(event)


FEEDERS: list[Callable[[SmtpConnection, bytes], list[SmtpReply]]] = [whole, bytewise]


def greeted(ehlo: bytes = EHLO_PLAIN) -> SmtpConnection:
    conn = SmtpConnection()
    whole(conn, GREETING)
    conn.send(Ehlo(b"[127.0.0.1]"))
    whole(conn, ehlo)
    assert conn.state is State.READY
    return conn


@pytest.mark.parametrize("feed", FEEDERS)
def test_greeting_and_ehlo(
    feed: Callable[[SmtpConnection, bytes], list[SmtpReply]],
) -> None:
    conn = SmtpConnection()
    assert conn.state is State.GREETING
    [greeting] = feed(conn, GREETING)
    assert greeting.code == 220 and greeting.lines == (b"mx.example.com ESMTP ready",)
    assert conn.state is State.HELLO
    assert conn.send(Ehlo(b"[127.0.0.1]")) == b"EHLO [127.0.0.1]\r\n"
    [reply] = feed(conn, EHLO_PLAIN)
    assert reply.code == 250 and len(reply.lines) == 3
    assert conn.state is State.READY and conn.idle
    assert conn.extensions.starttls and conn.extensions.size == 1000
    assert not conn.extensions.pipelining


def test_trailing_data_stays_buffered_for_the_next_reply() -> None:
    conn = SmtpConnection()
    # The EHLO reply arrives glued to the greeting and cut in the middle.
    conn.receive_data(GREETING + EHLO_PLAIN[:10])
    assert conn.next_event() == SmtpReply(220, (b"mx.example.com ESMTP ready",))
    # The EHLO reply is not owed yet: nothing more may be consumed...
    conn.send(Ehlo(b"x.example"))
    assert conn.next_event() is NEED_DATA
    conn.receive_data(EHLO_PLAIN[10:])
    reply = conn.next_event()
    assert isinstance(reply, SmtpReply) and reply.code == 250
    assert conn.state is State.READY


def test_nothing_can_be_sent_before_the_greeting() -> None:
    conn = SmtpConnection()
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo(b"x.example"))
    assert conn.state is State.GREETING


@pytest.mark.parametrize(
    "command", [Mail(b"a@example.com"), Rcpt(b"a@example.com"), Data(), StartTls()]
)
def test_transaction_commands_need_ehlo_first(command: object) -> None:
    conn = SmtpConnection()
    whole(conn, GREETING)
    with pytest.raises(LocalProtocolError):
        conn.send(command)  # type: ignore[arg-type]
    assert conn.state is State.HELLO and conn.pending == ()


def test_rcpt_and_data_need_mail_first() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.send(Rcpt(b"b@example.com"))
    with pytest.raises(LocalProtocolError):
        conn.send(Data())


def test_unpipelined_transaction() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    # Without PIPELINING every command waits for its reply.
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt(b"b@example.com"))
    whole(conn, OK)
    conn.send(Rcpt(b"b@example.com"))
    whole(conn, OK)
    conn.send(Data())
    [reply] = whole(conn, b"354 End data with <CR><LF>.<CR><LF>\r\n")
    assert reply.is_intermediate and conn.state is State.CONTENT
    wire = conn.send_content(b".hidden\n", end=False) + conn.send_content(
        b"x", end=True
    )
    assert wire == b"..hidden\r\nx\r\n.\r\n"
    assert conn.state is State.CONTENT_DONE
    whole(conn, b"250 2.0.0 queued\r\n")
    assert conn.idle


def test_pipelined_group_and_its_rules() -> None:
    conn = greeted(EHLO_PIPE)
    wire = conn.send(Mail(b"a@example.com")) + conn.send(Rcpt(b"b@example.com"))
    wire += conn.send(Data())
    assert wire == b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
    # RFC 2920 3.1: DATA ends a group.
    with pytest.raises(LocalProtocolError, match="wait"):
        conn.send(Rset())
    replies = bytewise(conn, OK + OK + b"354 go\r\n")
    assert [r.code for r in replies] == [250, 250, 354]
    assert conn.state is State.CONTENT


def test_next_transaction_may_follow_the_final_dot() -> None:
    conn = greeted(EHLO_PIPE)
    conn.send(Mail(b"a@example.com"))
    conn.send(Rcpt(b"b@example.com"))
    conn.send(Data())
    whole(conn, OK + OK + b"354 go\r\n")
    conn.send_content(b"one", end=True)
    # RFC 2920 3.1: message content may be the first "command" of a group.
    conn.send(Mail(b"a@example.com"))
    conn.send(Rcpt(b"c@example.com"))
    conn.send(Data())
    replies = whole(conn, b"250 queued 1\r\n" + OK + OK + b"354 go\r\n")
    assert [r.code for r in replies] == [250, 250, 250, 354]
    assert conn.state is State.CONTENT


def test_refused_mail_in_a_group_is_settled_by_the_data_reply() -> None:
    conn = greeted(EHLO_PIPE)
    for command in (Mail(b"a@example.com"), Rcpt(b"b@example.com"), Data()):
        conn.send(command)
    whole(conn, b"550 5.1.0 no\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n")
    assert conn.idle


def test_refused_mail_without_pipelining_returns_to_ready() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    whole(conn, b"553 5.1.8 sender rejected\r\n")
    assert conn.idle


def test_rset_ends_a_transaction() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    whole(conn, OK)
    conn.send(Rset())
    whole(conn, OK)
    assert conn.idle


def test_content_only_after_354() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.send_content(b"x", end=True)


def test_content_with_nul_breaks_the_connection() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    whole(conn, OK)
    conn.send(Rcpt(b"b@example.com"))
    whole(conn, OK)
    conn.send(Data())
    whole(conn, b"354 go\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send_content(b"a\x00b", end=True)
    assert conn.state is State.ERROR


@pytest.mark.parametrize("feed", FEEDERS)
def test_starttls_then_everything_is_forgotten(
    feed: Callable[[SmtpConnection, bytes], list[SmtpReply]],
) -> None:
    conn = greeted()
    conn.send(StartTls())
    feed(conn, b"220 2.0.0 Ready to start TLS\r\n")
    assert conn.state is State.TLS_UPGRADE
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())
    conn.tls_started()
    assert conn.tls_active and conn.state is State.HELLO
    # RFC 3207 4.2: capabilities from before TLS are discarded.
    assert not conn.extensions.starttls and conn.extensions.size is None
    with pytest.raises(LocalProtocolError):
        conn.send(Mail(b"a@example.com"))
    conn.send(Ehlo(b"x.example"))
    feed(conn, b"250-mx\r\n250 AUTH PLAIN\r\n")
    assert conn.extensions.auth_mechanisms == frozenset({"PLAIN"})
    with pytest.raises(LocalProtocolError):
        conn.send(StartTls())


@pytest.mark.parametrize(
    "injected", [b"250-mx\r\n250 AUTH LOGIN\r\n", b"250 AUTH", b"x"]
)
def test_bytes_after_the_starttls_220_are_an_attack(injected: bytes) -> None:
    conn = greeted()
    conn.send(StartTls())
    conn.receive_data(b"220 Ready to start TLS\r\n" + injected)
    with pytest.raises(SmtpProtocolError, match="injected"):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(SmtpProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.tls_started()


def test_tls_started_needs_a_220() -> None:
    with pytest.raises(LocalProtocolError):
        greeted().tls_started()


def test_refused_starttls_leaves_a_usable_session() -> None:
    conn = greeted()
    conn.send(StartTls())
    whole(conn, b"454 4.7.0 TLS not available\r\n")
    assert conn.idle and not conn.tls_active


def test_helo_gives_no_extensions() -> None:
    conn = SmtpConnection()
    whole(conn, GREETING)
    conn.send(Ehlo(b"x.example"))
    whole(conn, b"502 5.5.2 EHLO not implemented\r\n")
    assert conn.state is State.HELLO
    conn.send(Helo(b"x.example"))
    whole(conn, b"250 mx\r\n")
    assert conn.idle and not conn.extensions.keywords


def test_auth_exchange() -> None:
    conn = greeted(b"250-mx\r\n250 AUTH LOGIN\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(AuthResponse(b"user"))
    conn.send(Auth(b"LOGIN"))
    whole(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.AUTH
    with pytest.raises(LocalProtocolError):
        conn.send(Auth(b"PLAIN"))
    conn.send(AuthResponse(b"user"))
    whole(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(AuthResponse(b"pass"))
    whole(conn, b"235 2.7.0 Authentication successful\r\n")
    assert conn.idle


def test_auth_cancel_needs_a_challenge_and_starttls_needs_plain_text() -> None:
    conn = greeted(b"250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n")
    with pytest.raises(LocalProtocolError, match="334 challenge"):
        conn.send(AuthCancel())
    conn.tls_active = True
    with pytest.raises(LocalProtocolError, match="already active"):
        conn.send(StartTls())
    assert conn.idle  # refused before anything was sent


def test_send_takes_commands_only() -> None:
    conn = greeted(EHLO_PIPE)
    with pytest.raises(LocalProtocolError, match="send_bdat"):
        conn.send(Bdat(10, last=True))
    with pytest.raises(LocalProtocolError, match="not an SMTP command"):
        conn.send(b"NOOP\r\n")  # type: ignore[arg-type]
    assert conn.idle


def test_transcript_redacts_auth(caplog: pytest.LogCaptureFixture) -> None:
    conn = greeted(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n")
    with caplog.at_level(logging.DEBUG, logger="smtpcore.transcript"):
        conn.send(Auth(b"PLAIN", b"\0user\0hunter2"))
        whole(conn, b"334 \r\n")
        conn.send(AuthResponse(b"hunter2"))
        whole(conn, b"235 ok\r\n")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["C: AUTH PLAIN <redacted>", "S: 334", "C: <redacted>", "S: 235 ok"]
    assert "hunter2" not in caplog.text and "aHVudGVyMg" not in caplog.text


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (Mail(b"a@example.com"), b"354 go ahead\r\n"),
        (Ehlo(b"x.example"), b"334 what\r\n"),
        (Noop(), b"354 x\r\n"),
    ],
)
def test_a_reply_the_command_does_not_allow_is_a_protocol_error(
    command: object, reply: bytes
) -> None:
    conn = greeted()
    if isinstance(command, Ehlo):
        conn = SmtpConnection()
        whole(conn, GREETING)
    conn.send(command)  # type: ignore[arg-type]
    conn.receive_data(reply)
    with pytest.raises(SmtpProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


def test_data_answered_with_250_is_a_protocol_error() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    whole(conn, OK)
    conn.send(Rcpt(b"b@example.com"))
    whole(conn, OK)
    conn.send(Data())
    conn.receive_data(OK)
    with pytest.raises(SmtpProtocolError):
        conn.next_event()


def test_unsolicited_reply_is_a_protocol_error() -> None:
    conn = greeted()
    conn.receive_data(OK)
    with pytest.raises(SmtpProtocolError, match="unsolicited"):
        conn.next_event()


def test_unsolicited_421_closes() -> None:
    conn = greeted()
    conn.receive_data(b"421 4.4.2 idle timeout\r\n")
    reply = conn.next_event()
    assert isinstance(reply, SmtpReply) and reply.code == 421
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(Mail(b"a@example.com"))


def test_421_to_a_command_closes() -> None:
    conn = greeted()
    conn.send(Mail(b"a@example.com"))
    whole(conn, b"421 4.3.2 shutting down\r\n")
    assert conn.state is State.CLOSED and conn.pending == ()


def test_refused_greeting_allows_only_quit() -> None:
    conn = SmtpConnection()
    whole(conn, b"554 5.3.2 no service\r\n")
    assert conn.state is State.REFUSED
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo(b"x.example"))
    conn.send(Quit())
    whole(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    ("data", "partial"), [(b"", False), (b"250-mx\r\n250 PIPE", True)]
)
def test_eof(data: bytes, partial: bool) -> None:
    conn = greeted()
    conn.send(Noop())
    conn.receive_data(data)
    conn.receive_data(b"")
    event = conn.next_event()
    assert isinstance(event, ConnectionClosed) and event.partial is partial
    assert conn.state is State.CLOSED


def test_reply_after_eof_is_still_delivered() -> None:
    conn = greeted()
    conn.send(Quit())
    conn.receive_data(b"221 2.0.0 Bye\r\n")
    conn.receive_data(b"")
    reply = conn.next_event()
    assert isinstance(reply, SmtpReply) and reply.code == 221
    assert conn.state is State.CLOSED
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_malformed_reply_breaks_the_connection() -> None:
    conn = SmtpConnection()
    conn.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(SmtpProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


def test_oversized_reply_line_fails_while_feeding() -> None:
    conn = greeted()
    conn.send(Noop())
    with pytest.raises(SmtpProtocolError):
        for _ in range(1000):
            conn.receive_data(b"x" * 65536)
    assert conn.state is State.ERROR


def at_content() -> SmtpConnection:
    conn = greeted(EHLO_PIPE)
    conn.send(Mail(b"a@example.com"))
    conn.send(Rcpt(b"b@example.com"))
    conn.send(Data())
    whole(conn, OK + OK + b"354 go\r\n")
    return conn


@given(
    st.lists(
        st.binary(max_size=40).map(lambda line: line.translate(None, b"\r\n\0")),
        max_size=12,
    ),
    st.booleans(),
    st.integers(min_value=1, max_value=4),
)
def test_checked_content_is_encoded_like_unchecked(
    lines: list[bytes], trailing: bool, pieces: int
) -> None:
    # The fast path for prepared content must produce exactly the bytes
    # the full encoder does, in one piece or in line-aligned pieces.
    data = b"\r\n".join(lines) + (b"\r\n" if trailing and lines else b"")
    expected = at_content().send_content(data, end=True)
    conn = at_content()
    if pieces > 1 and trailing:
        chunks = [
            b"\r\n".join(lines[i : i + 3]) + b"\r\n" for i in range(0, len(lines), 3)
        ]
        wire = b"".join(conn.send_content(chunk, checked=True) for chunk in chunks)
        wire += conn.send_content(b"", end=True, checked=True)
    else:
        wire = conn.send_content(data, end=True, checked=True)
    assert wire == expected
    assert conn.state is State.CONTENT_DONE
