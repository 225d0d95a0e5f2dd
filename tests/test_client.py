"""End-to-end tests of ``SmtpClient`` against real servers on loopback.

aiosmtpd (through :class:`~smtpcore.testserver.LocalSmtpServer`) plays the
well-behaved server and records what it read; :mod:`tests.rawserver` plays
the misbehaving ones (silent, hanging up at a chosen point).  Timeouts are
short so the file runs in seconds; elapsed times are only checked against
generous upper bounds, to prove a timeout was enforced at all.
"""

from __future__ import annotations

import base64
import email.message
import logging
import re
import secrets
import ssl
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import USER, Endpoint
from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    EmailSessionError,
    EmailSessionReason,
    SendResult,
    ServerDetails,
    SmtpClient,
    SmtpCommandError,
    SmtpErrorKind,
    UserCredentials,
)
from smtpcore.client import SendItem
from smtpcore.testserver import LocalSmtpServer, ReceivedCommand
from tests.rawserver import RawConnection, RawServer, smtp_script

SENDER = "sender@example.com"
RECIPIENT = "recipient@example.com"
REFUSED = "nobody@example.com"
TIMEOUT = 2.0
# Timing is never asserted except as "the timeout was enforced at all": an
# operation bounded by t seconds must end well within SLACK * t.
SLACK = 5


def message(subject: str, *to: str) -> EmailMessage:
    """A small text message from SENDER (to RECIPIENT by default)."""
    return EmailMessage(list(to or (RECIPIENT,)), SENDER, subject=subject, body="hi")


def tls_client(
    endpoint: Endpoint,
    details: BasicEmailSessionDetails | None = None,
    **options: Any,
) -> SmtpClient:
    """A client for ``endpoint`` (or other ``details`` on its server) that
    trusts its CA."""
    return SmtpClient(
        details or endpoint.details,
        tls_context=endpoint.context,
        timeout=TIMEOUT,
        **options,
    )


def verbs(session: list[ReceivedCommand]) -> list[str]:
    """The command verbs of one recorded session, upper-cased."""
    return [c.line.split(" ", 1)[0].split(":", 1)[0].upper() for c in session]


def plain_details(
    port: int, credentials: UserCredentials | None = None
) -> BasicEmailSessionDetails:
    """Details for a plain-text (``use_ssl=False``) server on 127.0.0.1."""
    return BasicEmailSessionDetails(
        ServerDetails("127.0.0.1", port, False), credentials
    )


# ------------------------------------------------------------------ servers


@pytest.fixture(scope="module")
def _plain_server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", refuse_recipients={REFUSED}) as server:
        yield server


@pytest.fixture
def plain(_plain_server: LocalSmtpServer) -> LocalSmtpServer:
    """Plain text, no AUTH, PIPELINING, refuses RCPT TO:<REFUSED>."""
    _plain_server.reset()
    return _plain_server


# ---------------------------------------------------------------- lifecycle


def test_context_manager_connects_on_enter_and_quits_on_exit(
    plain: LocalSmtpServer,
) -> None:
    with SmtpClient(plain_details(plain.port), timeout=TIMEOUT) as client:
        assert client.is_connected
        # Connected before any send: greeting and EHLO are done.
        assert plain.connections == 1
        assert verbs(plain.sessions[0]) == ["EHLO"]
        client.send(message("in with"))
    assert not client.is_connected
    [session] = plain.sessions
    assert verbs(session)[-1] == "QUIT"
    assert len(plain.messages) == 1


def test_send_on_a_closed_client_connects_first(plain: LocalSmtpServer) -> None:
    client = SmtpClient(plain_details(plain.port), timeout=TIMEOUT)
    assert not client.is_connected and plain.connections == 0
    client.send(message("one"))
    assert client.is_connected and plain.connections == 1
    client.close()
    client.close()  # twice is harmless
    client.send(message("two"))
    client.close()
    assert plain.connections == 2
    assert [verbs(s).count("MAIL") for s in plain.sessions] == [1, 1]


def test_noop_connects_and_answers(plain: LocalSmtpServer) -> None:
    client = SmtpClient(plain_details(plain.port), timeout=TIMEOUT)
    try:
        reply = client.noop()
        assert reply.code == 250 and reply.is_positive
        assert client.noop().code == 250
    finally:
        client.close()
    [session] = plain.sessions
    assert verbs(session) == ["EHLO", "NOOP", "NOOP", "QUIT"]


# -------------------------------------------------------------------- sends


def test_stdlib_message_loses_bcc_header_but_keeps_the_recipient(
    plain: LocalSmtpServer,
) -> None:
    mail = email.message.EmailMessage()
    mail["From"] = SENDER
    mail["To"] = RECIPIENT
    mail["Bcc"] = "hidden@example.com"
    mail["Subject"] = "stdlib"
    mail.set_content("body\n")
    with SmtpClient(plain_details(plain.port), timeout=TIMEOUT) as client:
        result = client.send(mail)
    [received] = plain.messages
    assert received.rcpt_tos == (RECIPIENT, "hidden@example.com")
    assert result.accepted == [RECIPIENT, "hidden@example.com"]
    assert b"hidden" not in received.data and b"Bcc" not in received.data
    assert received.parsed()["Subject"] == "stdlib"
    # The caller's object is not modified.
    assert mail["Bcc"] == "hidden@example.com"


def expected_wire(data: bytes) -> bytes:
    """What the server must receive for ``data``: every CRLF, bare CR and
    bare LF as one CRLF (RFC 5321 2.3.8), ending with CRLF."""
    normal = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return normal if not normal or normal.endswith(b"\r\n") else normal + b"\r\n"


def test_send_raw_normalises_line_ends_and_stuffs_dots(plain: LocalSmtpServer) -> None:
    data = (
        b"Subject: raw\n\n"
        b".leading dot\n"
        b"..two dots\r"
        b".\n"  # a lone dot mid-message must not end it
        b"\r\n.\r\n"
        b"last line without end"
    )
    with SmtpClient(plain_details(plain.port), timeout=TIMEOUT) as client:
        result = client.send_raw(SENDER, RECIPIENT, data)
    assert result.message_id is None and result.accepted == [RECIPIENT]
    [received] = plain.messages
    assert received.data == expected_wire(data)
    assert received.mail_from == SENDER and received.rcpt_tos == (RECIPIENT,)


# Bytes that stress the encoder: dots, bare CR and LF, 8-bit octets.
_line_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))
_raw_messages = st.lists(
    st.tuples(st.sampled_from([b"", b".", b".."]), _line_bytes), max_size=12
).map(lambda parts: b"".join(dot + rest for dot, rest in parts))


def test_send_raw_content_arrives_exactly(plain: LocalSmtpServer) -> None:
    # One session carries every example: fast, and it proves that no
    # example's content leaks into the next transaction.
    with SmtpClient(plain_details(plain.port), timeout=TIMEOUT) as client:

        @settings(max_examples=60)
        @given(data=_raw_messages)
        def check(data: bytes) -> None:
            client.send_raw(SENDER, [RECIPIENT], data)
            assert plain.messages[-1].data == expected_wire(data)

        check()
    assert plain.connections == 1


def test_send_many_reports_each_item_in_order(plain: LocalSmtpServer) -> None:
    stdlib = email.message.EmailMessage()
    stdlib["From"], stdlib["To"], stdlib["Subject"] = SENDER, RECIPIENT, "item 2"
    stdlib.set_content("x\n")
    items: list[SendItem] = [
        message("item 0"),
        (SENDER, [REFUSED], b"Subject: item 1\r\n\r\nrefused\r\n"),
        stdlib,
        message("item 3", RECIPIENT, REFUSED),
        (SENDER, RECIPIENT, b"Subject: item 4\r\n\r\nraw\r\n"),
    ]
    with SmtpClient(plain_details(plain.port), timeout=TIMEOUT) as client:
        results = client.send_many(items)
    assert len(results) == 5
    for index in (0, 2, 4):
        assert isinstance(results[index], SendResult)
    for index in (1, 3):
        error = results[index]
        assert isinstance(error, SmtpCommandError)
        assert error.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
        assert error.mailbox == REFUSED
    assert plain.connections == 1
    assert [m.parsed()["Subject"] for m in plain.messages] == [
        "item 0",
        "item 2",
        "item 4",
    ]


def test_size_limit_refuses_before_mail() -> None:
    with LocalSmtpServer(tls="none", data_size_limit=1000) as server:
        big = EmailMessage([RECIPIENT], SENDER, subject="big", body="x" * 5000)
        with SmtpClient(plain_details(server.port), timeout=TIMEOUT) as client:
            with pytest.raises(SmtpCommandError) as caught:
                client.send(big)
            error = caught.value
            assert error.kind is SmtpErrorKind.MESSAGE_NOT_ACCEPTED
            assert error.reply.code == 552
            assert "MAIL" not in verbs(server.sessions[0])
            # Refused locally: the session is untouched and carries on.
            client.send(message("small"))
        assert server.connections == 1
        assert len(server.messages) == 1


# -------------------------------------------------- credentials and secrecy


def secret_forms(secret: str) -> list[str]:
    """The secret in clear and every base64 form it can take inside a
    longer base64 payload (PLAIN's ``\\0user\\0password``): for each of the
    three alignments, the encoding of the whole 3-octet groups it fills."""
    raw = secret.encode()
    forms = [secret, base64.b64encode(raw).decode()]
    for skip in range(3):
        whole = raw[skip:]
        whole = whole[: len(whole) - len(whole) % 3]
        forms.append(base64.b64encode(whole).decode())
    return forms


def test_secret_forms_find_a_plain_payload() -> None:
    # The detector itself must be able to fail.
    secret = secrets.token_urlsafe(18)
    for user in ("", "u", "us", USER):
        payload = base64.b64encode(f"\0{user}\0{secret}".encode()).decode()
        assert any(form in payload for form in secret_forms(secret)[2:])


def test_wrong_password_is_reported_and_never_shown(
    submission: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = secrets.token_urlsafe(18)
    details = BasicEmailSessionDetails(
        submission.details.server_details, UserCredentials(USER, wrong)
    )
    caplog.set_level(logging.DEBUG, logger="smtpcore.transcript")
    with pytest.raises(EmailSessionError) as caught:
        tls_client(submission, details).connect()
    error = caught.value
    assert error.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    assert error.error_code == 300
    assert error.reply is not None and error.reply.code == 535
    # The server really got the wrong password, in a form the detector
    # recognises: so there was something to leak, and it would be seen.
    [auth] = [c.line for c in submission.server.sessions[0] if c.line[:4] == "AUTH"]
    assert any(form in auth for form in secret_forms(wrong))
    shown = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        repr(details),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
    ]
    assert caplog.records, "the transcript logged nothing"
    for text in shown:
        for form in secret_forms(wrong):
            assert form not in text


def test_transcript_redacts_auth(
    submission: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore.transcript")
    with tls_client(submission) as client:
        client.send(message("logged"))
    lines = [r.getMessage() for r in caplog.records if r.name == "smtpcore.transcript"]
    assert "C: AUTH PLAIN <redacted>" in lines
    assert any(line.startswith("C: MAIL FROM:") for line in lines)
    for form in secret_forms(submission.password):
        assert form not in caplog.text


# ------------------------------------------------ timeouts and lost servers


def raw_client(
    server: RawServer, *, timeout: float = TIMEOUT, data_timeout: float = 600.0
) -> SmtpClient:
    """A client for a raw server: plain text, no AUTH."""
    return SmtpClient(
        plain_details(server.port), timeout=timeout, data_timeout=data_timeout
    )


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])
def test_replies_arriving_one_octet_at_a_time(pipelining: bool) -> None:
    # The transport hands the parser whatever one recv() returned: here
    # every reply, the multiline EHLO included, comes in many pieces.
    ehlo: tuple[bytes, ...] = (b"raw.test", b"SIZE 1000000", b"8BITMIME")
    ehlo += (b"PIPELINING",) if pipelining else ()
    with RawServer(smtp_script("never", "close", ehlo=ehlo, dribble=True)) as server:
        with raw_client(server) as client:
            result = client.send(message("dribbled", RECIPIENT, "second@example.com"))
            assert client.noop().code == 250
        [conn] = server.connections
    assert result.reply.code == 250 and result.reply.enhanced_status == "2.0.0"
    assert result.accepted == [RECIPIENT, "second@example.com"]
    assert len(conn.contents) == 1
    # SIZE was understood from the fragmented EHLO reply.
    assert conn.lines[1].startswith(b"MAIL FROM:<sender@example.com> SIZE=")


def test_silent_server_times_out_waiting_for_the_greeting() -> None:
    with RawServer(lambda conn: conn.hold()) as server:
        client = raw_client(server, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as caught:
            client.connect()
        elapsed = time.monotonic() - started
    error = caught.value
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert error.error_code == 102
    assert "greeting" in str(error)
    assert isinstance(error.__cause__, TimeoutError)
    assert elapsed < 0.5 * SLACK
    assert not client.is_connected


def test_no_reply_after_content_times_out_with_data_timeout() -> None:
    with RawServer(smtp_script("CONTENT", "silence")) as server:
        # The command timeout is long: only data_timeout can end this early.
        client = raw_client(server, timeout=10.0, data_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as caught:
            client.send(message("in doubt"))
        elapsed = time.monotonic() - started
        assert len(server.connections[0].contents) == 1
    error = caught.value
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert error.delivery_unknown is True
    assert "final reply" in str(error) and "delivery is unknown" in str(error)
    assert elapsed < 0.3 * SLACK
    assert not client.is_connected


def test_final_reply_later_than_the_command_timeout_is_waited_for() -> None:
    # The final reply has data_timeout, not the command timeout: a reply
    # that comes after the latter but well within the former is delivery.
    def slow_final_reply(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")
        for reply in (b"250 raw.test\r\n", b"250 OK\r\n", b"250 OK\r\n"):
            conn.read_line()
            conn.send(reply)
        conn.read_line()
        conn.send(b"354 go ahead\r\n")
        conn.contents.append(conn.read_until(b"\r\n.\r\n"))
        time.sleep(0.8)
        conn.send(b"250 2.0.0 queued\r\n")
        conn.read_line()
        conn.send(b"221 bye\r\n")

    with RawServer(slow_final_reply) as server:
        with raw_client(server, timeout=0.25, data_timeout=10.0) as client:
            result = client.send(message("slow queue"))
        assert len(server.connections[0].contents) == 1
    assert result.reply.code == 250 and result.reply.enhanced_status == "2.0.0"


def test_close_after_content_is_lost_with_delivery_unknown() -> None:
    with RawServer(smtp_script("CONTENT", "close")) as server:
        client = raw_client(server)
        with pytest.raises(EmailSessionError) as caught:
            client.send(message("in doubt"))
        assert server.accepted == 1  # an unknown outcome is never retried
    assert caught.value.reason is EmailSessionReason.CONNECTION_LOST
    assert caught.value.error_code == 103
    assert caught.value.delivery_unknown is True


def test_close_after_mail_is_lost_and_nothing_was_delivered() -> None:
    with RawServer(smtp_script("MAIL", "close")) as server:
        client = raw_client(server)
        with pytest.raises(EmailSessionError) as caught:
            client.send(message("not delivered"))
        assert server.accepted == 1
        assert server.connections[0].contents == []
    assert caught.value.reason is EmailSessionReason.CONNECTION_LOST
    assert caught.value.delivery_unknown is False
    assert not client.is_connected


def test_silence_after_mail_times_out_with_the_command_timeout() -> None:
    with RawServer(smtp_script("MAIL", "silence")) as server:
        client = raw_client(server, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as caught:
            client.send(message("stalled"))
        elapsed = time.monotonic() - started
    assert caught.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert caught.value.delivery_unknown is False
    assert "MAIL" in str(caught.value)
    assert elapsed < 0.3 * SLACK * 2  # greeting and EHLO are instant


def serve_one_message_then_hang_up(conn: RawConnection) -> None:
    """Take one whole transaction, then hang up on the next MAIL without a
    reply: a drop that no idle check can see coming."""
    conn.send(b"220 raw.test ESMTP\r\n")
    mails = 0
    while line := conn.read_line():
        verb = line[:4].upper()
        if verb == b"MAIL":
            mails += 1
            if mails == 2:
                return
        if verb == b"EHLO":
            conn.send(b"250 raw.test\r\n")
        elif verb == b"DATA":
            conn.send(b"354 go ahead\r\n")
            conn.contents.append(conn.read_until(b"\r\n.\r\n"))
            conn.send(b"250 queued\r\n")
        else:
            conn.send(b"250 OK\r\n")


def test_reused_session_dropped_at_mail_is_retried_once_on_a_new_connection() -> None:
    well_behaved = smtp_script("never", "close")
    scripts = iter([serve_one_message_then_hang_up, well_behaved])
    with RawServer(lambda conn: next(scripts)(conn)) as server:
        client = raw_client(server)
        client.send(message("first"))
        # Nothing of the second message was delivered on the dropped
        # connection (no final reply was outstanding), so one retry on a
        # fresh connection cannot duplicate it.
        result = client.send(message("second"))
        client.close()
        assert result.reply.code == 250
        assert server.accepted == 2
        first, second = server.connections
    assert [b"Subject: first" in c for c in first.contents] == [True]
    assert [b"Subject: second" in c for c in second.contents] == [True]
    assert first.lines[-1].startswith(b"MAIL FROM:")


def serve_one_message_then_421(conn: RawConnection) -> None:
    """Take one message, then announce an idle shutdown and hang up, as
    RFC 5321 3.8 allows a server to do at any time."""
    conn.send(b"220 raw.test ESMTP\r\n")
    while line := conn.read_line():
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.send(b"250 raw.test\r\n")
        elif verb == b"DATA":
            conn.send(b"354 go ahead\r\n")
            conn.contents.append(conn.read_until(b"\r\n.\r\n"))
            conn.send(b"250 queued\r\n421 4.4.2 idle too long, closing\r\n")
            return
        else:
            conn.send(b"250 OK\r\n")


def test_idle_421_and_close_is_followed_by_a_fresh_connection() -> None:
    scripts = iter([serve_one_message_then_421, smtp_script("never", "close")])
    with RawServer(lambda conn: next(scripts)(conn)) as server:
        client = raw_client(server)
        client.send(message("first"))
        result = client.send(message("second"))
        client.close()
        assert result.reply.code == 250
        first, second = server.connections
    assert len(first.contents) == 1 and len(second.contents) == 1
    assert b"Subject: second" in second.contents[0]
    assert first.lines[-1] == b"DATA"  # nothing was sent after the 421


# ------------------------------------------------------------- large uploads


def upload_server(
    on_data: Callable[[RawConnection], bytes],
    buffer: int,
    ssl_context: ssl.SSLContext | None = None,
) -> RawServer:
    """A server whose handling of the message content after 354 is
    ``on_data`` (it returns the content read, or ``b""`` if it gave up);
    ``buffer`` is its SO_RCVBUF, so a server that reads slowly pushes back;
    with ``ssl_context`` it runs implicit TLS."""

    def script(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")
        while line := conn.read_line():
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.send(b"250 raw.test\r\n")
            elif verb == b"DATA":
                conn.send(b"354 go ahead\r\n")
                content = on_data(conn)
                if not content:
                    return
                conn.contents.append(content)
                conn.send(b"250 queued\r\n")
            elif verb == b"QUIT":
                conn.send(b"221 bye\r\n")
                return
            else:
                conn.send(b"250 OK\r\n")

    return RawServer(script, receive_buffer=buffer, ssl_context=ssl_context)


def big_message(megabytes: int) -> bytes:
    """A raw message of about ``megabytes`` MiB in 902-octet lines."""
    line = b"x" * 900 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (megabytes * 1024 * 1024 // len(line))


@pytest.mark.parametrize("use_ssl", [False, True], ids=["plain", "implicit-tls"])
def test_slow_upload_is_not_timed_out_while_it_progresses(
    use_ssl: bool, ca: trustme.CA
) -> None:
    # The server reads a little every 20 ms for 0.8 s: far longer than the
    # 0.3 s timeout in total, but it never stops making progress.  RFC 5321
    # 4.5.3.2.5 times each block of data, not the whole message.
    data = big_message(8)

    def slowly(conn: RawConnection) -> bytes:
        return conn.read_slowly(b"\r\n.\r\n", seconds=0.8, pause=0.02)

    server_context = client_context = None
    if use_ssl:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_context)
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
    with upload_server(slowly, 65536, server_context) as server:
        details = BasicEmailSessionDetails(
            ServerDetails("127.0.0.1", server.port, use_ssl)
        )
        client = SmtpClient(details, timeout=0.3, tls_context=client_context)
        result = client.send_raw(SENDER, RECIPIENT, data)
        client.close()
        [conn] = server.connections
    assert result.reply.code == 250
    assert conn.contents == [data + b".\r\n"]


def test_server_that_stops_reading_times_out_while_sending() -> None:
    # 16 MiB is more than the loopback socket buffers hold, so the client's
    # writes block once the server stops reading.
    data = big_message(16)

    def stop_reading(conn: RawConnection) -> bytes:
        conn.stall()
        return b""

    with upload_server(stop_reading, 4096) as server:
        client = SmtpClient(plain_details(server.port), timeout=0.3)
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as caught:
            client.send_raw(SENDER, RECIPIENT, data)
        elapsed = time.monotonic() - started
    error = caught.value
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "sending" in str(error)
    # The content never went out whole: the server cannot have taken it.
    assert error.delivery_unknown is False
    assert elapsed < 0.3 * SLACK
    assert not client.is_connected
