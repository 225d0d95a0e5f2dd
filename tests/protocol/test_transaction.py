"""The mail transaction, sans-IO: exact bytes and round trips for batches,
CHUNKING, DSN, 8BITMIME, SMTPUTF8, REQUIRETLS and LMTP, played against
scripted server replies."""

from __future__ import annotations

import pytest

from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    SmtpCommandError,
    SmtpErrorKind,
)
from smtpcore.protocol.dialogue import Dialogue
from smtpcore.protocol.transaction import (
    Dsn,
    InMemoryMessage,
    SendOptions,
    SendResult,
    xtext,
)
from tests.protocol.test_dialogue import GREETING, Played, policy


def Msg(sender: str, recipients: tuple[str, ...], data: bytes) -> InMemoryMessage:
    return InMemoryMessage(data, sender, recipients, None)


def opened(capabilities: list[bytes], *, lmtp: bool = False) -> tuple[Dialogue, Played]:
    lines = [b"250-mx.example.com", *[b"250-" + c for c in capabilities[:-1]]]
    lines.append(b"250 " + capabilities[-1])
    dialogue = Dialogue(policy(implicit_tls=True, lmtp=lmtp))
    played = Played([GREETING, b"\r\n".join(lines) + b"\r\n"])
    played.run(dialogue.open())
    played.writes.clear()
    played.reads.clear()
    return dialogue, played


def message(n: int, *recipients: str) -> InMemoryMessage:
    return Msg("a@x.com", recipients or ("b@x.com",), b"Subject: %d\r\n\r\n.x\r\n" % n)


def test_batch_costs_one_round_trip_per_message_with_pipelining() -> None:
    dialogue, played = opened([b"PIPELINING"])
    played.chunks = [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued 0\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued 2\r\n",
    ]
    results: list[SendResult | Exception | None] = [None] * 3
    played.run(
        dialogue.send_batch([message(n) for n in range(3)], SendOptions(), results)
    )
    # One write per message after the first group: content + next group.
    group = b"MAIL FROM:<a@x.com>\r\nRCPT TO:<b@x.com>\r\nDATA\r\n"
    assert played.writes == [
        group,
        b"Subject: 0\r\n\r\n..x\r\n.\r\n" + group,
        b"Subject: 1\r\n\r\n..x\r\n.\r\n" + group,
        b"Subject: 2\r\n\r\n..x\r\n.\r\n",
    ]
    assert len(played.reads) == 4
    assert [r.reply.text for r in results if isinstance(r, SendResult)] == [
        "queued 0",
        "queued 1",
        "queued 2",
    ]
    assert dialogue.conn.idle


def test_a_refusal_in_one_message_affects_that_message_only() -> None:
    dialogue, played = opened([b"PIPELINING"])
    played.chunks = [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        # message 0 refused at the end; message 1's sender refused; its DATA
        # (in the group) is refused too, then RSET; message 2 goes through.
        b"554 5.7.1 spam\r\n550 5.7.1 sender\r\n503 no\r\n503 no\r\n",
        b"250 reset\r\n",
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued 2\r\n",
    ]
    results: list[SendResult | Exception | None] = [None] * 3
    played.run(
        dialogue.send_batch([message(n) for n in range(3)], SendOptions(), results)
    )
    first, second, third = results
    assert isinstance(first, SmtpCommandError)
    assert first.kind is SmtpErrorKind.MESSAGE_NOT_ACCEPTED and first.reply.code == 554
    assert isinstance(second, SmtpCommandError)
    assert second.kind is SmtpErrorKind.SENDER_NOT_ACCEPTED
    assert isinstance(third, SendResult) and third.reply.text == "queued 2"
    assert played.writes[2] == b"RSET\r\n"


def test_without_pipelining_everything_waits() -> None:
    dialogue, played = opened([b"8BITMIME"])
    played.chunks = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(message(0), SendOptions()))
    assert played.writes == [
        b"MAIL FROM:<a@x.com>\r\n",
        b"RCPT TO:<b@x.com>\r\n",
        b"DATA\r\n",
        b"Subject: 0\r\n\r\n..x\r\n.\r\n",
    ]


def test_chunking_single_recipient_is_one_write() -> None:
    dialogue, played = opened([b"PIPELINING", b"CHUNKING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"]
    result = played.run(dialogue.send(Msg("a@x.com", ("b@x.com",), b"Hi\n.\n")))
    # No dot-stuffing under BDAT; line ends still become CRLF.
    assert played.writes == [
        b"MAIL FROM:<a@x.com>\r\nRCPT TO:<b@x.com>\r\nBDAT 7 LAST\r\nHi\r\n.\r\n"
    ]
    assert result.reply.code == 250 and dialogue.conn.idle


def test_chunking_with_several_recipients_waits_and_then_rides_with_the_next() -> None:
    dialogue, played = opened([b"PIPELINING", b"CHUNKING"])
    two = [message(0, "b@x.com", "c@x.com"), message(1, "b@x.com", "c@x.com")]
    played.chunks = [
        b"250 ok\r\n250 ok\r\n250 ok\r\n",
        b"250 queued 0\r\n250 ok\r\n250 ok\r\n250 ok\r\n",
        b"250 queued 1\r\n",
    ]
    results: list[SendResult | Exception | None] = [None, None]
    played.run(dialogue.send_batch(two, SendOptions(), results))
    group = b"MAIL FROM:<a@x.com>\r\nRCPT TO:<b@x.com>\r\nRCPT TO:<c@x.com>\r\n"
    assert played.writes == [
        group,
        b"BDAT 18 LAST\r\nSubject: 0\r\n\r\n.x\r\n" + group,
        b"BDAT 18 LAST\r\nSubject: 1\r\n\r\n.x\r\n",
    ]
    assert all(isinstance(result, SendResult) for result in results)


def test_chunking_refused_recipient_sends_rset_not_bdat() -> None:
    dialogue, played = opened([b"PIPELINING", b"CHUNKING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n", b"250 reset\r\n"]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(message(0, "b@x.com", "c@x.com")))
    assert info.value.mailbox == "c@x.com"
    assert played.writes[-1] == b"RSET\r\n" and b"BDAT" not in b"".join(played.writes)


def test_refused_bdat_is_followed_by_rset() -> None:
    dialogue, played = opened([b"PIPELINING", b"CHUNKING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n552 5.3.4 too big\r\n", b"250 reset\r\n"]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(message(0)))
    assert info.value.command == "BDAT" and played.writes[-1] == b"RSET\r\n"
    assert dialogue.conn.idle


def test_dsn_parameters_only_when_offered() -> None:
    dsn = Dsn(notify=("SUCCESS", "FAILURE"), ret="HDRS", envid="id+1=2", orcpt=True)
    dialogue, played = opened([b"PIPELINING", b"DSN"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(message(0), SendOptions(dsn=dsn)))
    assert played.writes[0].split(b"\r\n")[:2] == [
        b"MAIL FROM:<a@x.com> RET=HDRS ENVID=id+2B1+3D2",
        b"RCPT TO:<b@x.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x.com",
    ]
    dialogue, played = opened([b"PIPELINING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(message(0), SendOptions(dsn=dsn)))
    assert b"NOTIFY" not in played.writes[0] and b"RET=" not in played.writes[0]


@pytest.mark.parametrize(
    ("value", "wire"), [("a@b.c", b"a@b.c"), ("a+b=c", b"a+2Bb+3Dc"), ("é", b"+C3+A9")]
)
def test_xtext(value: str, wire: bytes) -> None:
    assert xtext(value) == wire


def test_dsn_values_are_checked() -> None:
    with pytest.raises(ArgumentError):
        Dsn(notify=("NEVER", "SUCCESS"))
    with pytest.raises(ArgumentError):
        Dsn(ret="ALL")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        Dsn(envid="x" * 101)


def test_eight_bit_content() -> None:
    body = "Subject: é\r\n\r\nnaïve\r\n".encode()
    dialogue, played = opened([b"PIPELINING", b"8BITMIME"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(Msg("a@x.com", ("b@x.com",), body)))
    assert played.writes[0].startswith(b"MAIL FROM:<a@x.com> BODY=8BITMIME\r\n")
    # RFC 6152 3: no 8-bit content to a server without 8BITMIME.
    dialogue, played = opened([b"PIPELINING"])
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(Msg("a@x.com", ("b@x.com",), body)))
    assert info.value.reply.enhanced_status == "5.6.3" and played.writes == []


def test_smtputf8_addresses() -> None:
    dialogue, played = opened([b"PIPELINING", b"SMTPUTF8", b"8BITMIME"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(Msg("josé@x.com", ("b@x.com",), b"Hi\r\n")))
    assert played.writes[0].startswith("MAIL FROM:<josé@x.com> SMTPUTF8\r\n".encode())
    # Without SMTPUTF8: a non-ASCII domain goes out as IDNA, a non-ASCII
    # local part is refused before anything is sent.
    dialogue, played = opened([b"PIPELINING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(Msg("a@bücher.example", ("b@x.com",), b"Hi\r\n")))
    assert played.writes[0].startswith(b"MAIL FROM:<a@xn--bcher-kva.example>\r\n")
    dialogue, played = opened([b"PIPELINING"])
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(Msg("a@x.com", ("josé@x.com",), b"Hi\r\n")))
    assert info.value.reply.code == 553 and info.value.reply.enhanced_status == "5.6.7"
    assert played.writes == []


def test_requiretls() -> None:
    dialogue, played = opened([b"PIPELINING", b"REQUIRETLS"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(message(0), SendOptions(require_tls=True)))
    assert played.writes[0].startswith(b"MAIL FROM:<a@x.com> REQUIRETLS\r\n")
    dialogue, played = opened([b"PIPELINING"])
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(message(0), SendOptions(require_tls=True)))
    assert info.value.reply.enhanced_status == "5.7.30" and played.writes == []


def test_size_parameter_and_limit() -> None:
    dialogue, played = opened([b"PIPELINING", b"SIZE 100"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    played.run(dialogue.send(message(0)))
    assert played.writes[0].startswith(b"MAIL FROM:<a@x.com> SIZE=18\r\n")
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(Msg("a@x.com", ("b@x.com",), b"x" * 101)))
    assert info.value.reply.code == 552


def test_lmtp_one_reply_per_recipient() -> None:
    dialogue, played = opened([b"PIPELINING"], lmtp=True)
    played.chunks = [
        b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n",
        b"354 go\r\n",
        b"250 2.1.5 b delivered\r\n452 4.2.2 c over quota\r\n250 2.1.5 d delivered\r\n",
    ]
    three = message(0, "b@x.com", "c@x.com", "d@x.com")
    result = played.run(dialogue.send(three, SendOptions(allow_partial=True)))
    assert result.accepted == ["b@x.com", "d@x.com"]
    assert result.rejected["c@x.com"].code == 452
    # LMTP never puts DATA in the group: the replies after the content are
    # counted from the accepted recipients.
    assert played.writes[1] == b"DATA\r\n"
    assert dialogue.conn.idle


def test_lmtp_partial_failure_says_who_got_it() -> None:
    dialogue, played = opened([b"PIPELINING"], lmtp=True)
    played.chunks = [
        b"250 ok\r\n250 ok\r\n250 ok\r\n",
        b"354 go\r\n",
        b"250 2.1.5 delivered\r\n550 5.1.1 gone\r\n",
    ]
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(message(0, "b@x.com", "c@x.com")))
    assert info.value.accepted == ["b@x.com"] and list(info.value.rejected) == [
        "c@x.com"
    ]


def test_lmtp_greets_with_lhlo() -> None:
    dialogue = Dialogue(policy(implicit_tls=True, lmtp=True))
    played = Played([GREETING, b"250 mx\r\n"])
    played.run(dialogue.open())
    assert played.writes == [b"LHLO [127.0.0.1]\r\n"]


def test_broken_connection_mid_batch_leaves_the_rest_unsent() -> None:
    dialogue, played = opened([b"PIPELINING"])
    played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b""]
    results: list[SendResult | Exception | None] = [None, None]
    with pytest.raises(EmailSessionError) as info:
        played.run(
            dialogue.send_batch([message(0), message(1)], SendOptions(), results)
        )
    # Message 0's final reply never came: in doubt.  Message 1 got a group
    # but no content: not delivered, free to go over a new connection.
    assert info.value.delivery_unknown
    assert results == [None, None]


def test_binary_content_goes_octet_for_octet_with_binarymime() -> None:
    content = b"Subject: b\r\n\r\n\x00bare\nLF\rCR " + b"x" * 1200 + b"\r\n.\r\n"
    message = InMemoryMessage(content, "a@x.com", ("b@x.com",), None, binary=True)
    dialogue, played = opened([b"PIPELINING", b"CHUNKING", b"BINARYMIME"])
    played.chunks = [b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"]
    played.run(dialogue.send(message))
    [write] = played.writes
    assert write.startswith(b"MAIL FROM:<a@x.com> BODY=BINARYMIME\r\n")
    # The payload is exactly the content: no line-end change, no stuffing.
    assert write.endswith(b"BDAT %d LAST\r\n" % len(content) + content)


@pytest.mark.parametrize("caps", [[b"PIPELINING", b"CHUNKING"], [b"8BITMIME"]])
def test_binary_content_needs_chunking_and_binarymime(caps: list[bytes]) -> None:
    message = InMemoryMessage(b"\x00", "a@x.com", ("b@x.com",), None, binary=True)
    dialogue, played = opened(caps)
    with pytest.raises(SmtpCommandError) as info:
        played.run(dialogue.send(message))
    assert info.value.reply.enhanced_status == "5.6.3" and played.writes == []
