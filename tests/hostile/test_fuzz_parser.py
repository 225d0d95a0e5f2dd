"""Fuzzing the reply parser and the conversation (issue 6, item 5).

Random server output, and byte-level mutations of real server transcripts
fed in arbitrary pieces, must never make the sans-IO core raise anything
but smtpcore's own errors, never make it loop, and never make it buffer
more than its documented bound (``MAX_REPLY_LINES`` lines of
``MAX_LINE_LENGTH`` octets, replies.py).  A 100 MB reply line and an
endless multi-line reply, sent by a real server on loopback, fail fast with
bounded memory in both clients.

(tests/protocol/test_replies.py has the parser's unit tests and its own
random-bytes property; this file attacks the whole conversation.)
"""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    EmailSessionError,
    EmailSessionReason,
    SendResult,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.protocol.dialogue import (
    Conversation,
    Dialogue,
    Read,
    SessionPolicy,
    UpgradeTls,
    Write,
)
from smtpcore.protocol.replies import MAX_LINE_LENGTH, MAX_REPLY_LINES, ReplyParser
from tests.hostile.support import (
    RECIPIENT,
    SENDER,
    details,
    examples,
    message,
    send_via,
)
from tests.rawserver import RawConnection, RawServer

# The most bytes a parser may hold between two feeds: one unfinished reply
# of MAX_REPLY_LINES lines with CRLF, the line in progress (and its CR),
# and the rest of the last piece fed.
PIECE = 4096
BOUND = MAX_REPLY_LINES * (MAX_LINE_LENGTH + 2) + MAX_LINE_LENGTH + 1 + PIECE

# Requests a whole session may make: a handful per command; anything near
# this is a loop.
MAX_REQUESTS = 200


# ----------------------------------------------------- real transcripts

# What real servers say in a whole session with STARTTLS, AUTH and one
# message, one element per server turn (texts as these products send them;
# CHUNKING left out after TLS, so that the message goes with DATA).
TRANSCRIPTS: dict[str, list[bytes]] = {
    "postfix": [
        b"220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n",
        b"250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        b"220 2.0.0 Ready to start TLS\r\n",
        b"250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
        b"235 2.7.0 Authentication successful\r\n",
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
        b"250 2.0.0 Ok: queued as 4XyZ1abc\r\n",
        b"221 2.0.0 Bye\r\n",
    ],
    "exchange": [
        b"220 EX01.example.com Microsoft ESMTP MAIL Service ready at "
        b"Mon, 1 Jan 2024 00:00:00 +0000\r\n",
        b"250-EX01.example.com Hello [192.0.2.1]\r\n250-SIZE 37748736\r\n"
        b"250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-STARTTLS\r\n250-X-ANONYMOUSTLS\r\n250-AUTH NTLM\r\n"
        b"250-X-EXPS GSSAPI NTLM\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
        b"250-CHUNKING\r\n250 XRDST\r\n",
        b"220 2.0.0 SMTP server ready\r\n",
        b"250-EX01.example.com Hello [192.0.2.1]\r\n250-SIZE 37748736\r\n"
        b"250-PIPELINING\r\n250-AUTH LOGIN\r\n250 8BITMIME\r\n",
        b"334 VXNlcm5hbWU6\r\n",
        b"334 UGFzc3dvcmQ6\r\n",
        b"235 2.7.0 Authentication successful\r\n",
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n",
        b"354 Start mail input; end with <CRLF>.<CRLF>\r\n",
        b"250 2.6.0 <id@EX01.example.com> [InternalId=1] Queued mail for delivery\r\n",
        b"221 2.0.0 Service closing transmission channel\r\n",
    ],
    "gmail": [
        b"220 smtp.gmail.com ESMTP a1sm123456wrb.1 - gsmtp\r\n",
        b"250-smtp.gmail.com at your service, [192.0.2.1]\r\n"
        b"250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
        b"250 SMTPUTF8\r\n",
        b"220 2.0.0 Ready to start TLS\r\n",
        b"250-smtp.gmail.com at your service, [192.0.2.1]\r\n"
        b"250-SIZE 35882577\r\n250-8BITMIME\r\n"
        b"250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n",
        b"235 2.7.0 Accepted\r\n",
        b"250 2.1.0 OK a1sm123456wrb.1 - gsmtp\r\n"
        b"250 2.1.5 OK a1sm123456wrb.1 - gsmtp\r\n"
        b"354  Go ahead a1sm123456wrb.1 - gsmtp\r\n",
        b"250 2.0.0 OK  1700000000 a1sm123456wrb.1 - gsmtp\r\n",
        b"221 2.0.0 closing connection a1sm123456wrb.1 - gsmtp\r\n",
    ],
}


def session(dialogue: Dialogue) -> Conversation[SendResult]:
    """A whole session: open (STARTTLS, AUTH), one message, QUIT."""
    yield from dialogue.open()
    result = yield from dialogue.transaction(
        SENDER, [RECIPIENT], b"Subject: fuzz\r\n\r\nbody\r\n", message_id="<x@y>"
    )
    yield from dialogue.quit()
    return result


@dataclass(frozen=True, slots=True)
class Run:
    """How a conversation fed with given server output ended."""

    result: SendResult | None
    error: SmtpCoreError | None
    requests: int


def drive(pieces: Iterator[bytes]) -> Run:
    """Run :func:`session` on the sans-IO core, answering each Read with
    the next piece (EOF when they run out); any exception that is not an
    SmtpCoreError propagates and fails the test."""
    dialogue = Dialogue(
        SessionPolicy(
            host="mx.example.com",
            port=587,
            local_hostname="client.example.com",
            username="user@example.com",
            password="fuzz-password",
            timeout=30.0,
        )
    )
    conversation = session(dialogue)
    value: bytes | None = None
    for requests in range(1, MAX_REQUESTS + 1):
        try:
            request = conversation.send(value)
        except StopIteration as stop:
            return Run(stop.value, None, requests)
        except SmtpCoreError as error:
            return Run(None, error, requests)
        if isinstance(request, Read):
            value = next(pieces, b"")
        else:
            assert isinstance(request, (Write, UpgradeTls))
            value = None
    raise AssertionError(f"the conversation made more than {MAX_REQUESTS} requests")


def check(run: Run) -> None:
    """A run ended in a delivered message or in one of smtpcore's errors
    (anything else has already propagated out of :func:`drive`)."""
    if run.error is None:
        assert run.result is not None and run.result.reply.is_positive
    else:
        assert run.result is None and isinstance(run.error, SmtpCoreError)


def test_the_transcripts_are_whole_sessions() -> None:
    # The fuzzing below starts from these: unmutated, each is a success.
    for turns in TRANSCRIPTS.values():
        run = drive(iter(turns))
        assert run.error is None and run.result is not None, run.error
        assert run.result.reply.code == 250


def pieces_of(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` split at ``cuts`` (taken modulo its length), in order."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return (data[a:b] for a, b in itertools.pairwise(bounds) if b > a)


# One mutation: (what, where, how much / which byte).
_mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "duplicate", "crlf", "digit"]),
        st.integers(min_value=0),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=6,
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    """Apply byte-level mutations, as a fuzzer does to a seed input."""
    buf = bytearray(data)
    for what, where, value in mutations:
        at = where % (len(buf) + 1)
        if what == "flip" and at < len(buf):
            buf[at] ^= 1 << (value % 8)
        elif what == "insert":
            buf[at:at] = bytes([value]) * (1 + value % 4)
        elif what == "delete":
            del buf[at : at + 1 + value % 16]
        elif what == "duplicate":
            end = buf.find(b"\n", at)
            buf[at:at] = buf[at : end + 1 if end >= 0 else len(buf)]
        elif what == "crlf":
            buf[at:at] = [b"\r", b"\n", b"\r\n", b"\n\r"][value % 4]
        elif what == "digit":
            buf[at:at] = b"0123456789-  "[value % 13 : value % 13 + 1]
    return bytes(buf)


def mutated_pieces(
    turns: list[bytes], mutations: list[tuple[str, int, int]], cuts: list[int]
) -> Iterator[bytes]:
    """Each turn mutated, then split at ``cuts``: the pieces of one turn
    never merge with the next, which would put the reply after STARTTLS in
    the same read as its 220 (an injection, refused before anything else
    could be reached)."""
    count = len(turns)
    changed = [
        mutate(turn, [(w, p // count, v) for w, p, v in mutations if p % count == i])
        for i, turn in enumerate(turns)
    ]
    for turn in changed:
        yield from pieces_of(turn, cuts)


@settings(max_examples=examples(200))
@given(
    name=st.sampled_from(sorted(TRANSCRIPTS)),
    mutations=_mutations,
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_mutated_transcripts_only_raise_smtpcore_errors(
    name: str, mutations: list[tuple[str, int, int]], cuts: list[int]
) -> None:
    run = drive(mutated_pieces(TRANSCRIPTS[name], mutations, cuts))
    check(run)


@settings(max_examples=examples(200))
@given(
    noise=st.binary(max_size=2000),
    lines=st.lists(
        st.tuples(
            st.sampled_from(
                [b"220", b"250", b"235", b"334", b"354", b"421", b"5", b""]
            ),
            st.sampled_from([b" ", b"-", b"", b"\t"]),
            st.binary(max_size=30),
            st.sampled_from([b"\r\n", b"\n", b"\r", b""]),
        ),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_random_replies_only_raise_smtpcore_errors(
    noise: bytes, lines: list[tuple[bytes, bytes, bytes, bytes]], cuts: list[int]
) -> None:
    data = b"".join(b"".join(parts) for parts in lines) + noise
    check(drive(pieces_of(data, cuts)))


@settings(max_examples=examples(200))
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(min_value=0)))
def test_the_parser_is_bounded_and_split_independent(
    data: bytes, cuts: list[int]
) -> None:
    def parse(pieces: Iterator[bytes]) -> tuple[list[object], bool]:
        parser = ReplyParser()
        replies: list[object] = []
        try:
            for piece in pieces:
                parser.feed(piece)
                # Each call returns a reply, None, or raises: it cannot
                # return more replies than there are line ends.
                for _ in range(piece.count(b"\n") + len(replies) + 2):
                    reply = parser.next_reply()
                    if reply is None:
                        break
                    replies.append(reply)
                else:
                    raise AssertionError("next_reply() kept returning replies")
                assert parser.buffered <= BOUND
        except SmtpProtocolError:
            return replies, True
        return replies, False

    whole, whole_failed = parse(iter([data]))
    for pieces in (
        pieces_of(data, cuts),
        (data[i : i + 1] for i in range(len(data))),
    ):
        split, split_failed = parse(pieces)
        assert whole_failed == split_failed
        # Fed whole, a too-long last line fails in feed(), before the
        # replies ahead of it are read; otherwise the split changes nothing.
        assert split[: len(whole)] == whole
        if not whole_failed:
            assert split == whole


def test_an_endless_multiline_reply_is_cut_off_within_the_bound() -> None:
    parser = ReplyParser()
    piece = b"250-" + b"x" * 60 + b"\r\n"
    fed = 0
    with pytest.raises(SmtpProtocolError, match=f"more than {MAX_REPLY_LINES}"):
        # Far more than the bound, in pieces of several lines each.
        while fed < 100 * 1024 * 1024:
            parser.feed(piece * 64)
            fed += len(piece) * 64
            assert parser.next_reply() is None
            assert parser.buffered <= BOUND
    assert fed <= (MAX_REPLY_LINES + 64) * len(piece)


def test_a_100_mb_line_fails_before_more_than_a_line_is_buffered() -> None:
    parser = ReplyParser()
    parser.feed(b"250-")
    fed = 4
    with pytest.raises(SmtpProtocolError, match="longer than"):
        while fed < 100 * 1024 * 1024:
            parser.feed(b"x" * PIECE)
            fed += PIECE
            assert parser.next_reply() is None
    assert parser.buffered <= MAX_LINE_LENGTH + 1
    assert fed <= MAX_LINE_LENGTH + 2 * PIECE


# ------------------------------------------------- the same, on loopback

HUNDRED_MB = 100 * 1024 * 1024
_CHUNK = b"x" * 65536
_LINES = b"250-" + b"y" * 60 + b"\r\n"


class Flood:
    """A server that floods from ``at`` (the greeting, or the reply to
    EHLO) with ``head`` then ``body`` again and again, up to 100 MB or until
    the client hangs up; ``sent`` counts the octets that went out."""

    def __init__(self, at: str, head: bytes, body: bytes) -> None:
        self.at, self.head, self.body = at, head, body
        self.sent = 0

    def script(self, conn: RawConnection) -> None:
        if self.at == "ehlo":
            conn.send(b"220 flood.test ESMTP\r\n")
            if not conn.read_line():
                return
        conn.send(self.head)
        while self.sent < HUNDRED_MB:
            conn.send(self.body)  # OSError once the client hung up
            self.sent += len(self.body)


FLOODS: dict[str, tuple[str, bytes, bytes, type[SmtpCoreError]]] = {
    # What floods before a greeting is not an SMTP server (INVALID_PORT).
    "100mb-greeting-line": ("greeting", b"220 ", _CHUNK, EmailSessionError),
    "100mb-ehlo-line": ("ehlo", b"250-", _CHUNK, SmtpProtocolError),
    "endless-ehlo-reply": (
        "ehlo",
        b"",
        _LINES * (65536 // len(_LINES)),
        SmtpProtocolError,
    ),
}


@pytest.mark.parametrize("client", ["blocking", "asyncio"])
@pytest.mark.parametrize("name", FLOODS)
def test_a_flooding_server_fails_fast_with_bounded_memory(
    name: str, client: str
) -> None:
    at, head, body, error_type = FLOODS[name]
    flood = Flood(at, head, body)
    with RawServer(flood.script) as server:
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(error_type) as caught:
                send_via(client)(message(), details(server.port), timeout=5.0)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    if isinstance(caught.value, EmailSessionError):
        assert caught.value.reason is EmailSessionReason.INVALID_PORT
    # The client hung up long before the flood was over ...
    assert flood.sent < HUNDRED_MB // 10
    # ... and held a few reads' worth, never the flood (the bound of one
    # reply is 4 MiB; a line is 8 KiB).
    assert peak < 8 * 1024 * 1024
    assert elapsed < 5.0
