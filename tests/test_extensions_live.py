"""Every SMTP extension smtpcore uses, end to end against a live aiosmtpd.

Each test asserts both sides: what the server read (command lines, message
bytes, parameters, recorded by :class:`~smtpcore.testserver.LocalSmtpServer`)
and what the client reported.  The sans-IO decisions behind them are unit
tested in ``tests/protocol/test_transaction.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

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
from smtpcore.aio import AsyncSmtpClient
from smtpcore.client import RawItem
from smtpcore.protocol.transaction import Dsn
from smtpcore.testserver import LocalSmtpServer, ReceivedCommand, TlsMode

SENDER = "sender@example.com"
ONE, TWO, REFUSED = "one@example.net", "two@example.org", "nobody@example.com"
TIMEOUT = 5.0


def raw(subject: str, body: bytes = b"hello\r\n") -> bytes:
    return b"Subject: " + subject.encode() + b"\r\n\r\n" + body


def client(server: LocalSmtpServer, **options: Any) -> SmtpClient:
    """A client for ``server``'s plain port (STARTTLS when it offers it)."""
    session_details = options.pop(
        "details",
        BasicEmailSessionDetails(ServerDetails(server.host, server.port, False)),
    )
    return SmtpClient(
        session_details,
        tls_context=server.client_context(),
        timeout=TIMEOUT,
        **options,
    )


def lines(server: LocalSmtpServer) -> list[str]:
    """The command lines of the server's only session."""
    [session] = server.sessions
    return [command.line for command in session]


def verbs(session: Sequence[ReceivedCommand]) -> list[str]:
    return [c.line.split(" ", 1)[0].split(":", 1)[0].upper() for c in session]


@pytest.fixture
def transcript(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The ``smtpcore.transcript`` records, as they arrive."""
    caplog.set_level(logging.DEBUG, logger="smtpcore.transcript")
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("smtpcore.transcript")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# ---------------------------------------------------- PIPELINING, CHUNKING


def test_chunking_single_recipient_is_one_group(transcript: list[str]) -> None:
    data = b"Subject: c\r\n\r\n.leading dot\nbare LF\r\n"
    with LocalSmtpServer(tls="none", chunking=True) as server:
        with client(server) as smtp:
            result = smtp.send_raw(SENDER, [ONE], data)
        wire = data.replace(b"\nbare", b"\r\nbare")
        # RFC 3030: BDAT needs no dot-stuffing; the line ends are CRLF.
        assert server.messages[0].data == wire
        assert lines(server)[1:] == [
            f"MAIL FROM:<{SENDER}> SIZE={len(wire)}",
            f"RCPT TO:<{ONE}>",
            f"BDAT {len(wire)} LAST",
            "QUIT",
        ]
    assert result.accepted == [ONE] and result.reply.code == 250
    # RFC 2920: MAIL, RCPT and BDAT LAST were written before any reply.
    first_reply = next(i for i, r in enumerate(transcript) if r.startswith("S: 250 OK"))
    assert [r.split()[1] for r in transcript[first_reply - 3 : first_reply]] == [
        "MAIL",
        "RCPT",
        "BDAT",
    ]


def test_chunking_with_two_recipients_waits_for_their_replies(
    transcript: list[str],
) -> None:
    with LocalSmtpServer(tls="none", chunking=True) as server:
        with client(server) as smtp:
            result = smtp.send_raw(SENDER, [ONE, TWO], raw("two"))
        assert verbs(server.sessions[0])[1:] == ["MAIL", "RCPT", "RCPT", "BDAT", "QUIT"]
    assert result.accepted == [ONE, TWO]
    # The default all-or-nothing policy: BDAT only after both RCPT replies.
    bdat = next(i for i, r in enumerate(transcript) if r.startswith("C: BDAT"))
    assert transcript[bdat - 3 : bdat] == ["S: 250 OK"] * 3


def test_chunking_refused_recipient_gets_rset_not_bdat() -> None:
    server = LocalSmtpServer(tls="none", chunking=True, refuse_recipients=[REFUSED])
    with server, client(server) as smtp:
        with pytest.raises(SmtpCommandError) as info:
            smtp.send_raw(SENDER, [ONE, REFUSED], raw("refused"))
        assert smtp.send_raw(SENDER, [ONE], raw("next")).accepted == [ONE]
    assert info.value.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert info.value.mailbox == REFUSED
    assert verbs(server.sessions[0])[1:6] == ["MAIL", "RCPT", "RCPT", "RSET", "MAIL"]
    assert [m.parsed()["Subject"] for m in server.messages] == ["next"]


def test_streamed_attachment_goes_in_several_bdat_chunks(tmp_path: Path) -> None:
    # 4 MiB is where the MIME builder starts streaming attachments.
    blob = os.urandom(4 * 1024 * 1024 + 1)
    attachment = tmp_path / "blob.bin"
    attachment.write_bytes(blob)
    message = EmailMessage([ONE], SENDER, subject="big", attachments=[str(attachment)])
    with LocalSmtpServer(tls="none", chunking=True) as server:
        with client(server) as smtp:
            smtp.send(message)
        sent = [line for line in lines(server) if line.startswith("BDAT")]
        [received] = server.messages
    assert len(sent) > 2 and sent[-1] == "BDAT 0 LAST"
    assert sum(int(line.split()[1]) for line in sent) == len(received.data)
    [part] = received.parsed().iter_attachments()
    assert part.get_content() == blob


BATCH: list[RawItem] = [
    (SENDER, [ONE], raw("first")),
    (SENDER, [ONE, REFUSED], raw("second")),
    (SENDER, [ONE, TWO], raw("third")),
    (SENDER, [TWO], raw("fourth")),
]


@pytest.mark.parametrize("chunking", [True, False])
def test_send_many_refusal_in_message_k_affects_message_k_only(chunking: bool) -> None:
    server = LocalSmtpServer(tls="none", chunking=chunking, refuse_recipients=[REFUSED])
    with server, client(server) as smtp:
        results = smtp.send_many(BATCH)
    assert [type(r) for r in results] == [
        SendResult,
        SmtpCommandError,
        SendResult,
        SendResult,
    ]
    refusal = results[1]
    assert isinstance(refusal, SmtpCommandError)
    assert (refusal.kind, refusal.mailbox) == (
        SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
        REFUSED,
    )
    assert [m.parsed()["Subject"] for m in server.messages] == [
        "first",
        "third",
        "fourth",
    ]
    assert [m.rcpt_tos for m in server.messages] == [(ONE,), (ONE, TWO), (TWO,)]
    content = "BDAT" if chunking else "DATA"
    assert verbs(server.sessions[0]) == [
        "EHLO",
        *("MAIL", "RCPT", content),
        *("MAIL", "RCPT", "RCPT", "RSET"),
        *("MAIL", "RCPT", "RCPT", content),
        *("MAIL", "RCPT", content),
        "QUIT",
    ]
    if chunking:
        assert [m.data for m in server.messages] == [BATCH[i][2] for i in (0, 2, 3)]
        bdat = [line for line in lines(server) if line.startswith("BDAT")]
        assert bdat == [f"BDAT {len(BATCH[i][2])} LAST" for i in (0, 2, 3)]


def test_send_many_with_allow_partial_delivers_the_rest() -> None:
    server = LocalSmtpServer(tls="none", chunking=True, refuse_recipients=[REFUSED])
    with server, client(server) as smtp:
        results = smtp.send_many(BATCH[:2], allow_partial=True)
    assert all(isinstance(r, SendResult) for r in results)
    second = results[1]
    assert isinstance(second, SendResult)
    assert second.accepted == [ONE] and list(second.rejected) == [REFUSED]
    assert [m.rcpt_tos for m in server.messages] == [(ONE,), (ONE,)]


def test_send_many_through_the_asyncio_client() -> None:
    async def run(server: LocalSmtpServer) -> list[SendResult | Exception]:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, False)
        )
        async with AsyncSmtpClient(details, timeout=TIMEOUT) as smtp:
            return await smtp.send_many(BATCH)

    server = LocalSmtpServer(tls="none", chunking=True, refuse_recipients=[REFUSED])
    with server:
        results = asyncio.run(run(server))
    assert [isinstance(r, SendResult) for r in results] == [True, False, True, True]
    assert [m.parsed()["Subject"] for m in server.messages] == [
        "first",
        "third",
        "fourth",
    ]
    assert verbs(server.sessions[0]).count("BDAT") == 3


def test_transcript_of_a_pipelined_chunking_batch(transcript: list[str]) -> None:
    items: list[RawItem] = [
        (SENDER, [ONE], raw("first")),
        (SENDER, [ONE, TWO], raw("second")),
    ]
    server = LocalSmtpServer(tls="none", chunking=True)
    with server, client(server) as smtp:
        smtp.send_many(items)
    first, size = len(items[0][2]), len(items[1][2])
    start = transcript.index(f"C: MAIL FROM:<{SENDER}> SIZE={first}")
    assert transcript[start:] == [
        f"C: MAIL FROM:<{SENDER}> SIZE={first}",
        f"C: RCPT TO:<{ONE}>",
        f"C: BDAT {first} LAST <{first} octets>",
        "S: 250 OK",
        "S: 250 OK",
        # Message 2's group rides with message 1's content (RFC 2920 3.1).
        f"C: MAIL FROM:<{SENDER}> SIZE={size}",
        f"C: RCPT TO:<{ONE}>",
        f"C: RCPT TO:<{TWO}>",
        "S: 250 OK",
        "S: 250 OK",
        "S: 250 OK",
        "S: 250 OK",
        f"C: BDAT {size} LAST <{size} octets>",
        "S: 250 OK",
        "C: QUIT",
        "S: 221 Bye",
    ]
    assert [m.data for m in server.messages] == [item[2] for item in items]


# ---------------------------------------------------------------- 8BITMIME

EIGHT_BIT = raw("8", "gr\u00fc\u00dfe\r\n".encode())


@pytest.mark.parametrize(("data", "param"), [(EIGHT_BIT, True), (raw("7"), False)])
def test_body_8bitmime_only_for_8bit_content(data: bytes, param: bool) -> None:
    with LocalSmtpServer(tls="none") as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], data)
        [message] = server.messages
    assert ("BODY=8BITMIME" in message.mail_options) is param
    assert message.data == data


def test_8bit_content_is_refused_without_8bitmime() -> None:
    server = LocalSmtpServer(tls="none", eightbitmime=False)
    with server, client(server) as smtp:
        with pytest.raises(SmtpCommandError) as info:
            smtp.send_raw(SENDER, [ONE], EIGHT_BIT)
        smtp.send_raw(SENDER, [ONE], raw("7"))
    assert info.value.kind is SmtpErrorKind.MESSAGE_NOT_ACCEPTED
    assert (info.value.reply.code, info.value.reply.enhanced_status) == (554, "5.6.3")
    # Refused before MAIL: only the 7-bit message reached the server.
    assert verbs(server.sessions[0]).count("MAIL") == 1
    assert server.messages[0].mail_options == (f"SIZE={len(raw('7'))}",)


# ------------------------------------------------------- SMTPUTF8, IDNA

UTF8_SENDER = "j\u00f6s\u00e9@example.com"
UTF8_RECIPIENT = "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@\u03c0\u03b1\u03c1\u03ac.example"


def test_smtputf8_end_to_end() -> None:
    data = (
        f"From: {UTF8_SENDER}\r\nTo: {UTF8_RECIPIENT}\r\nSubject: \u00fc\r\n\r\nx\r\n"
    )
    with LocalSmtpServer(tls="none", smtputf8=True) as server:
        with client(server) as smtp:
            result = smtp.send_raw(UTF8_SENDER, [UTF8_RECIPIENT], data.encode())
        [message] = server.messages
        mail, rcpt = lines(server)[1:3]
    assert result.accepted == [UTF8_RECIPIENT]
    assert (message.mail_from, message.rcpt_tos) == (UTF8_SENDER, (UTF8_RECIPIENT,))
    # RFC 6531 3.4: the parameter, and the addresses in UTF-8.
    assert mail.startswith(f"MAIL FROM:<{UTF8_SENDER}> ") and "SMTPUTF8" in mail
    assert rcpt == f"RCPT TO:<{UTF8_RECIPIENT}>"
    assert message.parsed()["To"] == UTF8_RECIPIENT


def test_smtputf8_through_send_of_our_message() -> None:
    message = EmailMessage([UTF8_RECIPIENT], UTF8_SENDER, subject="\u00fc", body="x")
    server = LocalSmtpServer(tls="none", smtputf8=True)
    with server, client(server) as smtp:
        smtp.send(message)
    assert server.messages[0].rcpt_tos == (UTF8_RECIPIENT,)


def test_non_ascii_domain_is_idna_encoded_without_smtputf8() -> None:
    with LocalSmtpServer(tls="none") as server:
        with client(server) as smtp:
            result = smtp.send_raw(SENDER, ["a@b\u00fccher.example"], raw("idna"))
        [message] = server.messages
        assert lines(server)[2] == "RCPT TO:<a@xn--bcher-kva.example>"
    assert "SMTPUTF8" not in " ".join(message.mail_options)
    assert message.rcpt_tos == ("a@xn--bcher-kva.example",)
    assert result.accepted == ["a@b\u00fccher.example"]


def test_utf8_local_part_without_smtputf8_is_refused_before_sending() -> None:
    server = LocalSmtpServer(tls="none")
    with server, client(server) as smtp, pytest.raises(SmtpCommandError) as info:
        smtp.send_raw(UTF8_SENDER, [ONE], raw("utf8"))
    assert info.value.kind is SmtpErrorKind.SENDER_NOT_ACCEPTED
    assert (info.value.reply.code, info.value.reply.enhanced_status) == (553, "5.6.7")
    assert "MAIL" not in verbs(server.sessions[0])


# -------------------------------------------------------------------- SIZE


def test_size_parameter_and_refusal_before_mail() -> None:
    small, big = raw("s", b"x" * 100 + b"\r\n"), raw("b", b"x" * 600 + b"\r\n")
    with LocalSmtpServer(tls="none", data_size_limit=500) as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], small)
            with pytest.raises(SmtpCommandError) as info:
                smtp.send_raw(SENDER, [ONE], big)
        assert lines(server)[1] == f"MAIL FROM:<{SENDER}> SIZE={len(small)}"
        assert verbs(server.sessions[0]).count("MAIL") == 1
    # RFC 1870 6.1: not sent at all, with the error a server would give.
    assert info.value.kind is SmtpErrorKind.MESSAGE_NOT_ACCEPTED
    assert (info.value.reply.code, info.value.reply.enhanced_status) == (552, "5.3.4")


@pytest.mark.parametrize("chunking", [False, True])
def test_size_counts_the_octets_on_the_wire(chunking: bool) -> None:
    data = b"Subject: lf\n\nbare line feeds\n"
    with LocalSmtpServer(tls="none", chunking=chunking) as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], data)
        [message] = server.messages
    assert message.mail_options == (f"SIZE={len(message.data)}",)


# --------------------------------------------------------------------- DSN


def test_dsn_parameters_with_xtext() -> None:
    recipient = "a+b@example.com"
    dsn = Dsn(notify=("SUCCESS", "FAILURE"), ret="HDRS", envid="id+1=x y", orcpt=True)
    with LocalSmtpServer(tls="none", dsn=True) as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [recipient, ONE], raw("dsn"), dsn=dsn)
        [message] = server.messages
    # RFC 3461 4: "+", "=" and the space are xtext-encoded as +HH.
    assert message.mail_options[1:] == ("RET=HDRS", "ENVID=id+2B1+3Dx+20y")
    assert message.rcpt_options == (
        ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a+2Bb@example.com"),
        ("NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{ONE}"),
    )


def test_dsn_parameters_only_when_offered() -> None:
    dsn = Dsn(notify=("NEVER",), ret="FULL", envid="e1", orcpt=True)
    with LocalSmtpServer(tls="none") as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], raw("no dsn"), dsn=dsn)
        [message] = server.messages
        assert lines(server)[1:3] == [
            f"MAIL FROM:<{SENDER}> SIZE={len(raw('no dsn'))}",
            f"RCPT TO:<{ONE}>",
        ]
    assert message.rcpt_options == ((),)


# ------------------------------------------------------ ENHANCEDSTATUSCODES


@pytest.mark.parametrize("enhanced", [True, False])
def test_enhanced_status_codes_are_parsed(enhanced: bool) -> None:
    server = LocalSmtpServer(
        tls="none", enhancedstatuscodes=enhanced, refuse_recipients=[REFUSED]
    )
    with server, client(server) as smtp:
        result = smtp.send_raw(SENDER, [ONE, REFUSED], raw("esc"), allow_partial=True)
    # RFC 2034 4 / RFC 3463: "2.6.0" only from a server that added it.
    assert result.reply.enhanced_status == ("2.6.0" if enhanced else None)
    assert result.reply.text.endswith("OK")
    # The refusal carries its own status either way.
    assert result.rejected[REFUSED].enhanced_status == "5.1.1"


# -------------------------------------------------------------- REQUIRETLS


def test_requiretls_over_starttls_is_accepted() -> None:
    with LocalSmtpServer(requiretls=True) as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], raw("rt"), require_tls=True)
        [message] = server.messages
        mail = next(c for c in server.sessions[0] if c.line.startswith("MAIL"))
    assert mail.tls and mail.line.endswith(" REQUIRETLS")
    assert message.tls and "REQUIRETLS" in message.mail_options


@pytest.mark.parametrize(
    ("tls", "options", "why"),
    [
        ("none", {}, "not on TLS"),
        ("starttls", {"starttls": "never"}, "not on TLS"),
    ],
)
def test_requiretls_is_refused_before_sending_without_tls(
    tls: TlsMode, options: dict[str, Any], why: str
) -> None:
    server = LocalSmtpServer(tls=tls, requiretls=True, require_starttls=False)
    with (
        server,
        client(server, **options) as smtp,
        pytest.raises(SmtpCommandError) as info,
    ):
        smtp.send_raw(SENDER, [ONE], raw("rt"), require_tls=True)
    assert (info.value.reply.code, info.value.reply.enhanced_status) == (530, "5.7.30")
    assert why in str(info.value)
    assert not {"MAIL", "STARTTLS"} & set(verbs(server.sessions[0]))


def test_requiretls_is_refused_when_not_offered() -> None:
    server = LocalSmtpServer()
    with (
        server,
        client(server) as smtp,
        pytest.raises(SmtpCommandError, match="does not offer") as info,
    ):
        smtp.send_raw(SENDER, [ONE], raw("rt"), require_tls=True)
    assert info.value.reply.code == 530
    assert "MAIL" not in verbs(server.sessions[0])


# -------------------------------------------------------------------- LMTP

LMTP_RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]


@pytest.mark.parametrize("chunking", [False, True])
def test_lmtp_per_recipient_failure_after_the_content(chunking: bool) -> None:
    server = LocalSmtpServer(
        tls="none",
        lmtp=True,
        chunking=chunking,
        lmtp_refuse_after_data=["b@example.com"],
    )
    with server, client(server, lmtp=True) as smtp:
        result = smtp.send_raw(SENDER, LMTP_RECIPIENTS, raw("l1"), allow_partial=True)
        with pytest.raises(SmtpCommandError) as info:
            smtp.send_raw(SENDER, LMTP_RECIPIENTS, raw("l2"))
    assert result.accepted == ["a@example.com", "c@example.com"]
    assert result.rejected["b@example.com"].code == 552
    # RFC 2033 4.2: the others already have it, and the error says so.
    assert info.value.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert info.value.accepted == ["a@example.com", "c@example.com"]
    assert list(info.value.rejected) == ["b@example.com"]
    assert [m.rcpt_tos for m in server.messages] == [
        ("a@example.com", "c@example.com")
    ] * 2
    session = verbs(server.sessions[0])
    assert session[0] == "LHLO"
    assert session.count("BDAT" if chunking else "DATA") == 2


# --------------------------------------------------------- STARTTLS policy


@pytest.mark.parametrize(
    ("tls", "policy", "upgraded"),
    [
        ("starttls", "auto", True),
        ("starttls", "required", True),
        ("starttls", "never", False),
        ("none", "auto", False),
    ],
)
def test_starttls_policy_without_credentials(
    tls: TlsMode, policy: str, upgraded: bool
) -> None:
    server = LocalSmtpServer(tls=tls, require_starttls=False)
    with server, client(server, starttls=policy) as smtp:
        smtp.send_raw(SENDER, [ONE], raw("policy"))
    session = server.sessions[0]
    assert ("STARTTLS" in verbs(session)) is upgraded
    assert server.messages[0].tls is upgraded
    if upgraded:
        # RFC 3207 4.2: EHLO again over TLS; nothing of the mail in clear.
        assert verbs(session)[:3] == ["EHLO", "STARTTLS", "EHLO"]
        assert [c.tls for c in session[2:]] == [True] * len(session[2:])


@pytest.mark.parametrize(
    ("tls", "policy", "credentials"),
    [
        ("none", "required", None),
        ("none", "auto", UserCredentials("alice", "pw")),
        ("starttls", "never", UserCredentials("alice", "pw")),
    ],
)
def test_starttls_policy_refuses_before_anything_goes_in_clear(
    tls: TlsMode, policy: str, credentials: UserCredentials | None
) -> None:
    server = LocalSmtpServer(tls=tls, users={"alice": "pw"}, require_starttls=False)
    with server, pytest.raises(EmailSessionError) as info:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, False), credentials
        )
        client(server, details=details, starttls=policy).connect()
    assert info.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert not {"AUTH", "MAIL", "STARTTLS"} & set(verbs(server.sessions[0]))
    assert server.messages == []


def test_insecure_auth_when_explicitly_allowed() -> None:
    with LocalSmtpServer(tls="none", users={"alice": "pw"}) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, False),
            UserCredentials("alice", "pw"),
        )
        with client(server, details=details, allow_insecure_auth=True) as smtp:
            smtp.send_raw(SENDER, [ONE], raw("clear"))
    assert verbs(server.sessions[0])[:2] == ["EHLO", "AUTH"]
    assert server.messages[0].auth_user == "alice"
    assert not server.messages[0].tls


def test_binary_send_raw_arrives_octet_for_octet() -> None:
    data = b"Subject: bin\r\n\r\n\x00\x01 bare LF\n bare CR\r " + b"z" * 1500 + b"\r\n"
    with LocalSmtpServer(tls="none", chunking=True) as server:
        with client(server) as smtp:
            smtp.send_raw(SENDER, [ONE], data, binary=True)
        assert server.messages[0].data == data
        assert lines(server)[1:] == [
            f"MAIL FROM:<{SENDER}> SIZE={len(data)} BODY=BINARYMIME",
            f"RCPT TO:<{ONE}>",
            f"BDAT {len(data)} LAST",
            "QUIT",
        ]


def test_binary_send_raw_is_refused_without_binarymime() -> None:
    with LocalSmtpServer(tls="none") as server:
        with client(server) as smtp, pytest.raises(SmtpCommandError) as info:
            smtp.send_raw(SENDER, [ONE], b"\x00", binary=True)
        assert info.value.reply.code == 554
        assert not any(line.startswith("MAIL") for line in lines(server))
