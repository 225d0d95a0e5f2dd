"""The conversation, driven by scripted server bytes (no sockets: the
dialogue is sans-IO, so a test plays the transport)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

import pytest

from smtpcore.errors import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.protocol.commands import Mail, Rcpt
from smtpcore.protocol.dialogue import (
    Conversation,
    Dialogue,
    Read,
    SessionPolicy,
    UpgradeTls,
    Write,
)
from smtpcore.protocol.state import State

T = TypeVar("T")

GREETING = b"220 mx.example.com ESMTP\r\n"
EHLO_TLS = b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO_AUTH = (
    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 100000\r\n"
    b"250 AUTH PLAIN LOGIN\r\n"
)
EHLO_NOPIPE = b"250-mx.example.com\r\n250 AUTH LOGIN\r\n"


class Played:
    """Plays the transport: answers each Read with the next scripted chunk
    (b"" = EOF) and records what the conversation wrote."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = list(chunks)
        self.writes: list[bytes] = []
        self.reads: list[Read] = []
        self.upgrades = 0

    def run(self, conversation: Conversation[T]) -> T:
        value: bytes | None = None
        while True:
            try:
                request = conversation.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = None
            if isinstance(request, Write):
                self.writes.append(request.data)
            elif isinstance(request, Read):
                self.reads.append(request)
                assert self.chunks, f"conversation read past the script: {request}"
                value = self.chunks.pop(0)
            else:
                assert isinstance(request, UpgradeTls)
                self.upgrades += 1

    @property
    def wire(self) -> bytes:
        return b"".join(self.writes)


def policy(**overrides: object) -> SessionPolicy:
    values: dict[str, object] = {
        "host": "mx.example.com",
        "port": 587,
        "local_hostname": "[127.0.0.1]",
        "timeout": 7.0,
        "data_timeout": 60.0,
    }
    values.update(overrides)
    return SessionPolicy(**values)  # type: ignore[arg-type]


def opened(ehlo: bytes = EHLO_AUTH, **overrides: object) -> tuple[Dialogue, Played]:
    dialogue = Dialogue(policy(implicit_tls=True, **overrides))
    played = Played([GREETING, ehlo])
    played.run(dialogue.open())
    played.writes.clear()
    return dialogue, played


def test_starttls_auth_and_pipelined_transaction() -> None:
    dialogue = Dialogue(policy(username="user", password="hunter2"))
    played = Played(
        [GREETING, EHLO_TLS, b"220 2.0.0 go ahead\r\n", EHLO_AUTH, b"235 2.7.0 ok\r\n"]
    )
    played.run(dialogue.open())
    assert played.upgrades == 1
    assert played.writes == [
        b"EHLO [127.0.0.1]\r\n",
        b"STARTTLS\r\n",
        b"EHLO [127.0.0.1]\r\n",
        b"AUTH PLAIN " + base64.b64encode(b"\0user\0hunter2") + b"\r\n",
    ]
    assert played.reads[0].waiting_for == "the greeting"
    assert all(read.timeout == 7.0 for read in played.reads)
    played.writes.clear()
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 queued as X\r\n"]
    result = played.run(
        dialogue.transaction(
            "a@example.com", ["b@example.com"], b"Hi\n.\n", message_id="<1@x>"
        )
    )
    assert played.writes == [
        b"MAIL FROM:<a@example.com> SIZE=5\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
        b"Hi\r\n..\r\n.\r\n",
    ]
    final = played.reads[-1]
    assert final.timeout == 60.0 and final.in_doubt
    assert result.accepted == ["b@example.com"] and result.rejected == {}
    assert result.reply.code == 250 and result.message_id == "<1@x>"
    assert dialogue.conn.idle


def test_login_mechanism_when_plain_is_not_offered() -> None:
    dialogue = Dialogue(policy(implicit_tls=True, username="üser", password="pässword"))
    played = Played(
        [
            GREETING,
            EHLO_NOPIPE,
            b"334 VXNlcm5hbWU6\r\n",
            b"334 UGFzc3dvcmQ6\r\n",
            b"235 ok\r\n",
        ]
    )
    played.run(dialogue.open())
    assert played.writes[1:] == [
        b"AUTH LOGIN\r\n",
        base64.b64encode("üser".encode()) + b"\r\n",
        base64.b64encode("pässword".encode()) + b"\r\n",
    ]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            b"535 5.7.8 Authentication credentials invalid\r\n",
            EmailSessionReason.INVALID_USERNAME_OR_PASSWORD,
        ),
        (
            b"454 4.7.0 Temporary authentication failure\r\n",
            EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE,
        ),
        (
            b"534 5.7.9 Authentication mechanism is too weak\r\n",
            EmailSessionReason.NO_COMMON_AUTH_MECHANISM,
        ),
    ],
)
def test_auth_failures_are_classified(reply: bytes, reason: EmailSessionReason) -> None:
    dialogue = Dialogue(policy(implicit_tls=True, username="u", password="hunter2"))
    played = Played([GREETING, EHLO_AUTH, reply])
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.open())
    assert info.value.reason is reason and info.value.reply is not None
    assert info.value.host == "mx.example.com" and info.value.port == 587
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value)


def test_no_common_mechanism() -> None:
    dialogue = Dialogue(policy(implicit_tls=True, username="u", password="p"))
    played = Played([GREETING, b"250-mx\r\n250 AUTH GSSAPI\r\n"])
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.open())
    assert info.value.reason is EmailSessionReason.NO_COMMON_AUTH_MECHANISM
    assert "GSSAPI" in str(info.value)
    assert played.writes == [b"EHLO [127.0.0.1]\r\n"]


def test_garbage_challenge_cancels_auth() -> None:
    dialogue = Dialogue(policy(implicit_tls=True, username="u", password="p"))
    played = Played(
        [GREETING, EHLO_NOPIPE, b"334 !!!not base64\r\n", b"501 cancelled\r\n"]
    )
    with pytest.raises(SmtpProtocolError):
        played.run(dialogue.open())
    assert played.writes[-1] == b"*\r\n"


def test_credentials_are_never_sent_without_tls() -> None:
    dialogue = Dialogue(policy(username="u", password="p"))
    played = Played([GREETING, b"250-mx\r\n250 AUTH PLAIN\r\n"])
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.open())
    assert info.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert played.writes == [b"EHLO [127.0.0.1]\r\n"]


def test_insecure_auth_when_explicitly_allowed() -> None:
    dialogue = Dialogue(policy(username="u", password="p", allow_insecure_auth=True))
    played = Played([GREETING, b"250-mx\r\n250 AUTH PLAIN\r\n", b"235 ok\r\n"])
    played.run(dialogue.open())
    assert played.writes[-1].startswith(b"AUTH PLAIN ")


@pytest.mark.parametrize("refusal", [b"454 4.7.0 TLS not available\r\n", b"502 no\r\n"])
def test_refused_starttls(refusal: bytes) -> None:
    # Without credentials "auto" carries on in clear...
    dialogue = Dialogue(policy())
    played = Played([GREETING, EHLO_TLS, refusal])
    played.run(dialogue.open())
    assert played.upgrades == 0 and dialogue.conn.idle
    # ...but "required" stops before anything else is sent.
    dialogue = Dialogue(policy(starttls="required"))
    played = Played([GREETING, EHLO_TLS, refusal])
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.open())
    assert info.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert played.writes == [b"EHLO [127.0.0.1]\r\n", b"STARTTLS\r\n"]


def test_starttls_never() -> None:
    dialogue = Dialogue(policy(starttls="never"))
    played = Played([GREETING, EHLO_TLS])
    played.run(dialogue.open())
    assert played.writes == [b"EHLO [127.0.0.1]\r\n"] and played.upgrades == 0


def test_helo_fallback() -> None:
    dialogue = Dialogue(policy(implicit_tls=True))
    played = Played([GREETING, b"500 5.5.1 unrecognized\r\n", b"250 mx\r\n"])
    played.run(dialogue.open())
    assert played.writes == [b"EHLO [127.0.0.1]\r\n", b"HELO [127.0.0.1]\r\n"]


def test_refused_greeting_quits() -> None:
    dialogue = Dialogue(policy())
    played = Played([b"554 5.7.1 go away\r\n", b"221 bye\r\n"])
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.open())
    assert info.value.reply.code == 554 and info.value.command == "greeting"
    assert played.writes == [b"QUIT\r\n"]


def test_not_smtp_is_invalid_port() -> None:
    dialogue = Dialogue(policy())
    played = Played([b"HTTP/1.1 400 Bad Request\r\n"])
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.open())
    assert info.value.reason is EmailSessionReason.INVALID_PORT


def test_closed_before_greeting_is_connection_lost() -> None:
    dialogue = Dialogue(policy())
    with pytest.raises(EmailSessionError) as info:
        Played([b""]).run(dialogue.open())
    assert info.value.reason is EmailSessionReason.CONNECTION_LOST
    assert "the greeting" in str(info.value)


def test_refused_recipient_aborts_everything_by_default() -> None:
    dialogue, played = opened()
    played.chunks = [
        b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n",
        b"250 reset\r\n",
    ]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com", "c@x.com"], b"body"))
    error = info.value
    assert error.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert error.mailbox == "c@x.com" and error.reply.enhanced_status == "5.1.1"
    assert list(error.rejected) == ["c@x.com"]
    # With several recipients DATA waits for the RCPT replies, then RSET.
    assert played.writes == [
        b"MAIL FROM:<a@x.com> SIZE=4\r\nRCPT TO:<b@x.com>\r\nRCPT TO:<c@x.com>\r\n",
        b"RSET\r\n",
    ]
    assert dialogue.conn.idle


def test_allow_partial_delivers_to_the_rest() -> None:
    dialogue, played = opened()
    played.chunks = [
        b"250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n",
        b"250 queued\r\n",
    ]
    result = played.run(
        dialogue.transaction(
            "a@x.com", ["b@x.com", "c@x.com"], b"body", allow_partial=True
        )
    )
    assert result.accepted == ["c@x.com"]
    assert result.rejected["b@x.com"].code == 550
    assert played.writes[0].endswith(b"RCPT TO:<c@x.com>\r\nDATA\r\n")


def test_allow_partial_with_every_recipient_refused_raises() -> None:
    dialogue, played = opened()
    played.chunks = [
        b"250 ok\r\n550 no\r\n554 5.5.1 no valid recipients\r\n",
        b"250 ok\r\n",
    ]
    with pytest.raises(SmtpCommandError) as info:
        played.run(
            dialogue.transaction("a@x.com", ["b@x.com"], b"x", allow_partial=True)
        )
    assert info.value.kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    assert played.writes[-1] == b"RSET\r\n"


def test_refused_sender() -> None:
    dialogue, played = opened(EHLO_NOPIPE)
    played.chunks = [b"553 5.7.1 sender refused\r\n", b"250 ok\r\n"]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x"))
    assert info.value.kind is SmtpErrorKind.SENDER_NOT_ACCEPTED
    assert info.value.command == "MAIL FROM" and info.value.mailbox == "a@x.com"
    # Without PIPELINING nothing follows a refused MAIL but the RSET.
    assert played.writes == [b"MAIL FROM:<a@x.com>\r\n", b"RSET\r\n"]


def test_refused_message() -> None:
    dialogue, played = opened()
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"554 5.7.1 spam\r\n"]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x"))
    assert info.value.kind is SmtpErrorKind.MESSAGE_NOT_ACCEPTED
    assert not info.value.is_transient
    assert dialogue.conn.idle


def test_354_after_a_refused_sender_leaves_the_connection_to_be_dropped() -> None:
    dialogue, played = opened()
    played.chunks = [b"550 no\r\n503 no\r\n354 go\r\n"]
    with pytest.raises(SmtpCommandError):
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x"))
    # No content, no RSET: only closing the connection aborts after 354.
    assert dialogue.conn.state is State.CONTENT and len(played.writes) == 1


def test_message_over_the_advertised_size_is_refused_before_mail() -> None:
    dialogue, played = opened()
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x" * 100001))
    assert info.value.reply.code == 552 and info.value.reply.enhanced_status == "5.3.4"
    assert played.writes == []


def test_421_mid_transaction_is_connection_lost() -> None:
    dialogue, played = opened(EHLO_NOPIPE)
    played.chunks = [b"421 4.3.2 shutting down\r\n"]
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x"))
    assert info.value.reason is EmailSessionReason.CONNECTION_LOST
    assert not info.value.delivery_unknown


def test_lost_before_the_final_reply_is_delivery_unknown() -> None:
    dialogue, played = opened()
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b""]
    with pytest.raises(EmailSessionError) as info:
        played.run(dialogue.transaction("a@x.com", ["b@x.com"], b"x"))
    assert info.value.delivery_unknown and "delivery is unknown" in str(info.value)


def test_quit_tolerates_a_server_that_hangs_up() -> None:
    dialogue, played = opened()
    played.chunks = [b""]
    played.run(dialogue.quit())
    assert played.writes == [b"QUIT\r\n"]


def pipelined_group(dialogue: Dialogue, commands: int) -> None:
    """MAIL and RCPTs written as one group, ``commands`` replies due."""
    dialogue.conn.send(Mail(b"a@example.com"))
    for index in range(commands - 1):
        dialogue.conn.send(Rcpt(b"r%d@example.com" % index))


@pytest.mark.parametrize(
    "chunks",
    [
        [b"250 a\r\n250 b\r\n250 c\r\n"],
        [b"250 a\r\n25", b"0 b\r\n", b"250 c\r\n"],
        [b"2", b"50 a\r\n250 b\r", b"\n250 c\r\n250 next\r\n"],
    ],
    ids=["one read", "split mid-reply", "split everywhere, trailing reply"],
)
def test_replies_reads_a_group_in_any_split(chunks: list[bytes]) -> None:
    dialogue, played = opened()
    pipelined_group(dialogue, 3)
    played.chunks = list(chunks)
    played.reads.clear()
    replies = played.run(dialogue.replies(3, "the replies to the group"))
    assert [reply.lines for reply in replies] == [(b"a",), (b"b",), (b"c",)]
    assert len(played.reads) == len(chunks)  # one read per chunk, no more
    assert all(r.waiting_for == "the replies to the group" for r in played.reads)


def test_replies_stops_at_a_421_and_at_eof() -> None:
    dialogue, played = opened()
    pipelined_group(dialogue, 3)
    played.chunks = [b"250 a\r\n421 4.3.2 shutting down\r\n"]
    with pytest.raises(EmailSessionError) as caught:
        played.run(dialogue.replies(3, "the reply to RCPT TO"))
    assert caught.value.reason is EmailSessionReason.CONNECTION_LOST
    assert "421" in str(caught.value) and "the reply to RCPT TO" in str(caught.value)

    dialogue, played = opened()
    pipelined_group(dialogue, 2)
    played.chunks = [b"250 a\r\n", b""]
    with pytest.raises(EmailSessionError) as caught:
        played.run(dialogue.replies(2, "the reply to RCPT TO"))
    assert caught.value.reason is EmailSessionReason.CONNECTION_LOST
    assert "closed the connection" in str(caught.value)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (b"invalid-proof", EmailSessionReason.INVALID_USERNAME_OR_PASSWORD),
        (b"unknown-user", EmailSessionReason.INVALID_USERNAME_OR_PASSWORD),
        (b"no-resources", EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE),
    ],
)
def test_scram_error_inside_the_exchange_is_an_auth_failure(
    error: bytes, reason: EmailSessionReason
) -> None:
    # RFC 5802 7: the server may refuse in its server-final message (e=...)
    # rather than with a reply code; the client cancels (RFC 4954 4).
    dialogue = Dialogue(policy(implicit_tls=True, username="user", password="pencil"))
    conversation = dialogue.open()
    writes: list[bytes] = []
    server = iter(
        [
            lambda: GREETING,
            lambda: b"250-mx.example.com\r\n250 AUTH SCRAM-SHA-256\r\n",
            lambda: b"334 " + base64.b64encode(server_first(writes[-1])) + b"\r\n",
            lambda: b"334 " + base64.b64encode(b"e=" + error) + b"\r\n",
            lambda: b"501 5.7.0 cancelled\r\n",
        ]
    )
    value: bytes | None = None
    with pytest.raises(EmailSessionError) as caught:
        while True:
            request = conversation.send(value)
            value = None
            if isinstance(request, Write):
                writes.append(request.data)
            else:
                value = next(server)()
    assert caught.value.reason is reason
    assert error.decode() in str(caught.value)
    assert writes[-1] == b"*\r\n"


def server_first(auth_line: bytes) -> bytes:
    """A SCRAM server-first message extending the nonce in ``AUTH ... <b64>``."""
    client_first = base64.b64decode(auth_line.split()[-1])
    nonce = client_first.split(b",r=")[1]
    return b"r=" + nonce + b"srv,s=" + base64.b64encode(b"salt") + b",i=4096"
