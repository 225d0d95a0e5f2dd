"""Tests of the incremental, bounded SMTP reply parser."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import (
    LocalProtocolError,
    PropertyValueOutOfRangeError,
    SmtpProtocolError,
)
from smtpcore.protocol.replies import (
    MAX_LINE_LENGTH,
    MAX_REPLY_LINES,
    ReplyParser,
    SmtpReply,
)

# --------------------------------------------------------------------------
# Helpers: feed the same input in different splits.
# --------------------------------------------------------------------------


def _drain(parser: ReplyParser) -> list[SmtpReply]:
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    return replies


def _parse_chunks(chunks: Iterable[bytes], **kwargs: int) -> list[SmtpReply]:
    """Feed ``chunks`` one by one, collecting replies after each feed."""
    parser = ReplyParser(**kwargs)
    replies: list[SmtpReply] = []
    for chunk in chunks:
        parser.feed(chunk)
        replies.extend(_drain(parser))
    return replies


def _whole(data: bytes) -> list[bytes]:
    return [data]


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def _halves(data: bytes) -> list[bytes]:
    mid = len(data) // 2
    return [data[:mid], data[mid:]]


SPLITTERS: list[Callable[[bytes], list[bytes]]] = [_whole, _bytewise, _halves]
split = pytest.mark.parametrize("splitter", SPLITTERS, ids=["whole", "bytes", "halves"])


def _parse_all(
    data: bytes, splitter: Callable[[bytes], list[bytes]]
) -> list[SmtpReply]:
    return _parse_chunks(splitter(data))


def _raises(data: bytes, splitter: Callable[[bytes], list[bytes]]) -> str:
    """Feed ``data``, asserting SmtpProtocolError; return its message."""
    with pytest.raises(SmtpProtocolError) as info:
        _parse_all(data, splitter)
    return str(info.value)


# --------------------------------------------------------------------------
# Well-formed replies.
# --------------------------------------------------------------------------


@split
def test_single_line(splitter: Callable[[bytes], list[bytes]]) -> None:
    assert _parse_all(b"250 Ok\r\n", splitter) == [SmtpReply(250, (b"Ok",), None)]


@split
def test_code_only_line(splitter: Callable[[bytes], list[bytes]]) -> None:
    assert _parse_all(b"354\r\n", splitter) == [SmtpReply(354, (b"",), None)]


@split
def test_code_and_space_only(splitter: Callable[[bytes], list[bytes]]) -> None:
    assert _parse_all(b"221 \r\n", splitter) == [SmtpReply(221, (b"",), None)]


EHLO = (
    b"250-mail.example.com Hello\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-\r\n"
    b"250 CHUNKING\r\n"
)


@split
def test_multi_line(splitter: Callable[[bytes], list[bytes]]) -> None:
    [reply] = _parse_all(EHLO, splitter)
    assert reply.code == 250
    assert reply.lines == (
        b"mail.example.com Hello",
        b"PIPELINING",
        b"SIZE 10240000",
        b"",
        b"CHUNKING",
    )
    assert reply.enhanced_status is None


@split
def test_lf_only_line_ends(splitter: Callable[[bytes], list[bytes]]) -> None:
    data = EHLO.replace(b"\r\n", b"\n")
    assert _parse_all(data, splitter) == _parse_all(EHLO, _whole)


@split
def test_bare_cr_is_text(splitter: Callable[[bytes], list[bytes]]) -> None:
    # Only the CR right before LF is part of the line end.
    data = b"250 a\rb\r\r\n"
    assert _parse_all(data, splitter) == [SmtpReply(250, (b"a\rb\r",), None)]


@split
def test_text_is_kept_as_bytes(splitter: Callable[[bytes], list[bytes]]) -> None:
    data = b"550 caf\xc3\xa9 \xff\x00 nope\r\n"
    [reply] = _parse_all(data, splitter)
    assert reply.lines == (b"caf\xc3\xa9 \xff\x00 nope",)


@split
def test_two_replies_and_trailing_partial(
    splitter: Callable[[bytes], list[bytes]],
) -> None:
    parser = ReplyParser()
    for chunk in splitter(b"250 2.1.0 Ok\r\n550-5.1.1 no\r\n550 such user\r\n354 go"):
        parser.feed(chunk)
    assert parser.next_reply() == SmtpReply(250, (b"2.1.0 Ok",), "2.1.0")
    assert parser.buffered == len(b"550-5.1.1 no\r\n550 such user\r\n354 go")
    assert parser.next_reply() == SmtpReply(550, (b"5.1.1 no", b"such user"), "5.1.1")
    assert parser.buffered == len(b"354 go")
    assert parser.next_reply() is None
    assert parser.next_reply() is None  # asking again changes nothing
    parser.feed(b" ahead\r\n")
    assert parser.next_reply() == SmtpReply(354, (b"go ahead",), None)
    assert parser.buffered == 0


def test_known_reply_lines_parse_as_the_first_time() -> None:
    # A server repeats its lines for every message; a line seen before is
    # looked up, and must come out exactly as parsing it would.
    parser = ReplyParser()
    stream = b"250 2.1.0 Ok\r\n354 go\r\n250-2.1.0 Ok\r\n250 2.1.0 Ok\r\n"
    for _ in range(3):
        for chunk in [*_bytewise(stream), stream]:
            parser.feed(chunk)
    replies = _drain(parser)
    first = [
        SmtpReply(250, (b"2.1.0 Ok",), "2.1.0"),
        SmtpReply(354, (b"go",), None),
        SmtpReply(250, (b"2.1.0 Ok", b"2.1.0 Ok"), "2.1.0"),
    ]
    assert replies == first * 6
    assert parser.buffered == 0


def test_many_distinct_reply_lines_stay_correct() -> None:
    # More distinct lines than the parser remembers: it forgets and goes on.
    parser = ReplyParser()
    for round_ in range(2):
        for number in range(300):
            parser.feed(b"250 queued as %d\r\n" % number)
            reply = parser.next_reply()
            assert reply == SmtpReply(250, (b"queued as %d" % number,), None), round_
    parser.feed(b"250 queued as 7\r\n550 no\r")
    assert parser.next_reply() == SmtpReply(250, (b"queued as 7",), None)
    assert parser.next_reply() is None
    assert parser.buffered == len(b"550 no\r")


def test_buffered_counts_parsed_lines_of_an_unfinished_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250-one\r\n250-two\r\n")
    assert parser.next_reply() is None
    assert parser.buffered == 18
    parser.feed(b"250 three\r\n")
    assert parser.next_reply() == SmtpReply(250, (b"one", b"two", b"three"))
    assert parser.buffered == 0


def test_buffered_after_starttls_220_shows_injection() -> None:
    parser = ReplyParser()
    parser.feed(b"220 2.0.0 Ready to start TLS\r\nMAIL FROM:<evil@x>\r\n")
    assert parser.next_reply() == SmtpReply(
        220, (b"2.0.0 Ready to start TLS",), "2.0.0"
    )
    assert parser.buffered == len(b"MAIL FROM:<evil@x>\r\n")


def test_clear_drops_everything() -> None:
    parser = ReplyParser()
    parser.feed(b"250-one\r\n250-tw")
    assert parser.next_reply() is None
    parser.clear()
    assert parser.buffered == 0
    parser.feed(b"220 fresh\r\n")
    assert parser.next_reply() == SmtpReply(220, (b"fresh",))


def test_clear_resets_eof_and_failure() -> None:
    parser = ReplyParser()
    parser.feed(b"xyz\r\n")
    with pytest.raises(SmtpProtocolError):
        parser.next_reply()
    parser.feed_eof()
    parser.clear()
    parser.feed(b"250 ok\r\n")
    assert parser.next_reply() == SmtpReply(250, (b"ok",))


# --------------------------------------------------------------------------
# Enhanced status codes (RFC 3463, RFC 2034).
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"250 2.0.0 Ok\r\n", "2.0.0"),
        (b"550 5.1.1 User unknown\r\n", "5.1.1"),
        (b"452 4.3.1\r\n", "4.3.1"),
        (b"554 5.123.999 long parts\r\n", "5.123.999"),
        (b"250-2.1.5 first\r\n250 5.1.1 only the first line counts\r\n", "2.1.5"),
        (b"250 Ok\r\n", None),
        (b"250\r\n", None),
        (b"250 2.0\r\n", None),
        (b"250 2.0.\r\n", None),
        (b"550 2.0.0 class disagrees with the code\r\n", None),
        (b"250 5.0.0 class disagrees with the code\r\n", None),
        (b"354 3.0.0 class 3 does not exist\r\n", None),
        (b"550 5.1.1234 detail too long\r\n", None),
        (b"550 5.1234.1 subject too long\r\n", None),
        (b"550 5.1.1x glued\r\n", None),
        (b"550 5.1.1\tTAB is not a space\r\n", None),
        (b"550 5..1 empty subject\r\n", None),
        (b"550 x5.1.1\r\n", None),
        (b"250-Ok\r\n250 2.0.0 not on the first line\r\n", None),
    ],
)
def test_enhanced_status(data: bytes, expected: str | None) -> None:
    [reply] = _parse_all(data, _whole)
    assert reply.enhanced_status == expected
    # The status is never stripped from the text.
    assert reply.lines[-1] == data.rsplit(b"\r\n", 2)[-2][4:]


# --------------------------------------------------------------------------
# Malformed input.
# --------------------------------------------------------------------------


@split
@pytest.mark.parametrize(
    "data",
    [
        b"25\r\n",
        b"abc\r\n",
        b"2500 x\r\n",
        b"250x\r\n",
        b"250_x\r\n",
        b"\r\n",
        b"\n",
        b" 250 Ok\r\n",
        b"150 first digit 1 is unused\r\n",
        b"650 too big\r\n",
        b"050 too small\r\n",
        b"2a0 letter\r\n",
        b"\xd9\xa2\xd9\xa5\xd9\xa0 arabic digits\r\n",
        b"250-ok\r\n25\r\n",
    ],
)
def test_malformed_line(data: bytes, splitter: Callable[[bytes], list[bytes]]) -> None:
    message = _raises(data, splitter)
    assert "malformed" in message


def test_malformed_message_names_the_line_and_truncates() -> None:
    line = b"XYZ " + b"\x01" * 500
    message = _raises(line + b"\r\n", _whole)
    assert "b'XYZ \\x01" in message
    assert message.endswith("...")
    assert len(message) < 500


@split
def test_mixed_codes_in_multi_line_reply(
    splitter: Callable[[bytes], list[bytes]],
) -> None:
    message = _raises(b"250-one\r\n550 two\r\n", splitter)
    assert "550" in message
    assert "250" in message


def test_failure_is_permanent() -> None:
    parser = ReplyParser()
    parser.feed(b"nope\r\n250 ok\r\n")
    with pytest.raises(SmtpProtocolError):
        parser.next_reply()
    with pytest.raises(SmtpProtocolError):
        parser.next_reply()
    with pytest.raises(SmtpProtocolError):
        parser.feed(b"250 ok\r\n")


# --------------------------------------------------------------------------
# Bounds.
# --------------------------------------------------------------------------


def test_defaults() -> None:
    assert MAX_LINE_LENGTH == 8192
    assert MAX_REPLY_LINES == 512


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_line_length": 2}, "max_line_length"),
        ({"max_lines": 0}, "max_lines"),
    ],
)
def test_invalid_bounds(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(PropertyValueOutOfRangeError) as info:
        ReplyParser(**kwargs)
    assert info.value.property_name == name


def test_oversized_line_fails_fast_with_bounded_memory() -> None:
    parser = ReplyParser()
    chunk = b"2" * 65536
    total = 10 * 1024 * 1024
    fed = 0
    with pytest.raises(SmtpProtocolError, match="longer than 8192"):
        while fed < total:
            parser.feed(chunk)
            fed += len(chunk)
            assert parser.buffered <= MAX_LINE_LENGTH + 1
    assert fed < total
    # The chunk that broke the bound was not stored.
    assert parser.buffered <= MAX_LINE_LENGTH + 1


@split
def test_line_of_exactly_the_limit_is_accepted(
    splitter: Callable[[bytes], list[bytes]],
) -> None:
    line = b"250 " + b"x" * 12
    assert _parse_chunks(splitter(line + b"\r\n"), max_line_length=16) == [
        SmtpReply(250, (b"x" * 12,))
    ]
    assert _parse_chunks(splitter(line + b"\n"), max_line_length=16) == [
        SmtpReply(250, (b"x" * 12,))
    ]


@split
def test_line_one_over_the_limit_is_refused(
    splitter: Callable[[bytes], list[bytes]],
) -> None:
    with pytest.raises(SmtpProtocolError, match="longer than 16"):
        _parse_chunks(splitter(b"250 " + b"x" * 13 + b"\r\n"), max_line_length=16)


def test_limit_plus_cr_waits_for_lf() -> None:
    # 16 bytes of text and the CR of CRLF: valid so far.
    parser = ReplyParser(max_line_length=16)
    parser.feed(b"250 " + b"x" * 12 + b"\r")
    assert parser.next_reply() is None
    parser.feed(b"\n")
    assert parser.next_reply() == SmtpReply(250, (b"x" * 12,))


def test_limit_plus_non_cr_fails_in_feed() -> None:
    parser = ReplyParser(max_line_length=16)
    parser.feed(b"250 " + b"x" * 12)
    with pytest.raises(SmtpProtocolError):
        parser.feed(b"y")


def test_long_line_followed_by_lf_in_the_same_chunk() -> None:
    # The line ends inside the chunk, so feed() lets it through and
    # next_reply() measures it.
    parser = ReplyParser(max_line_length=16)
    parser.feed(b"250 " + b"x" * 100 + b"\r\n")
    with pytest.raises(SmtpProtocolError, match="longer than 16"):
        parser.next_reply()


@split
def test_too_many_lines(splitter: Callable[[bytes], list[bytes]]) -> None:
    data = b"250-x\r\n" * 4 + b"250 y\r\n"
    with pytest.raises(SmtpProtocolError, match="more than 4 lines"):
        _parse_chunks(splitter(data), max_lines=4)
    assert _parse_chunks(splitter(data), max_lines=5) == [
        SmtpReply(250, (b"x",) * 4 + (b"y",))
    ]


def test_too_many_lines_default_bound() -> None:
    parser = ReplyParser()
    parser.feed(b"250-x\r\n" * MAX_REPLY_LINES)
    assert parser.next_reply() is None
    parser.feed(b"250 y\r\n")
    with pytest.raises(SmtpProtocolError):
        parser.next_reply()


def test_bytewise_feeding_is_linear() -> None:
    # One 8000-byte line fed a byte at a time, calling next_reply() after
    # each byte: a parser that rescans the buffer does ~32 million byte
    # comparisons; this one does ~8000.  Measured indirectly through the
    # internal scan position, which must advance with the input.
    parser = ReplyParser()
    line = b"250 " + b"a" * 7996
    for i, byte in enumerate(line):
        parser.feed(bytes([byte]))
        assert parser.next_reply() is None
        assert parser._scan == i + 1
    parser.feed(b"\r\n")
    assert parser.next_reply() == SmtpReply(250, (b"a" * 7996,))


# --------------------------------------------------------------------------
# End of input.
# --------------------------------------------------------------------------


def test_eof_with_nothing_buffered() -> None:
    parser = ReplyParser()
    parser.feed_eof()
    assert parser.next_reply() is None


def test_eof_after_complete_replies_returns_them_first() -> None:
    parser = ReplyParser()
    parser.feed(b"250 a\r\n221 bye\r\n")
    parser.feed_eof()
    assert parser.next_reply() == SmtpReply(250, (b"a",))
    assert parser.next_reply() == SmtpReply(221, (b"bye",))
    assert parser.next_reply() is None


@pytest.mark.parametrize("partial", [b"2", b"250 Ok", b"250 Ok\r", b"250-a\r\n"])
def test_eof_with_partial_reply(partial: bytes) -> None:
    parser = ReplyParser()
    parser.feed(b"250 first\r\n" + partial)
    assert parser.next_reply() == SmtpReply(250, (b"first",))
    assert parser.next_reply() is None
    parser.feed_eof()
    with pytest.raises(SmtpProtocolError, match="middle of a reply"):
        parser.next_reply()


def test_feed_after_eof_is_a_local_error() -> None:
    parser = ReplyParser()
    parser.feed_eof()
    with pytest.raises(LocalProtocolError):
        parser.feed(b"250 ok\r\n")


# --------------------------------------------------------------------------
# Properties.
# --------------------------------------------------------------------------

_text = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r"))
_reply = st.tuples(
    st.integers(min_value=200, max_value=599),
    st.lists(_text, min_size=1, max_size=6),
)


def _encode(code: int, lines: list[bytes], newline: bytes) -> bytes:
    out = [b"%d-%s%s" % (code, text, newline) for text in lines[:-1]]
    last = lines[-1]
    out.append(
        b"%d %s%s" % (code, last, newline) if last else b"%d%s" % (code, newline)
    )
    return b"".join(out)


def _split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=150)
@given(
    replies=st.lists(_reply, min_size=1, max_size=6),
    newline=st.sampled_from([b"\r\n", b"\n"]),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_any_split_yields_the_same_replies(
    replies: list[tuple[int, list[bytes]]], newline: bytes, cuts: list[int]
) -> None:
    data = b"".join(_encode(code, lines, newline) for code, lines in replies)
    whole = _parse_chunks([data])
    assert [(r.code, list(r.lines)) for r in whole] == replies
    assert _parse_chunks(_split_at(data, cuts)) == whole
    assert _parse_chunks(_bytewise(data)) == whole
    # The second time round one parser knows the single-line replies.
    assert _parse_chunks([data, *_split_at(data, cuts)]) == whole + whole


# Fragments that combine into near-valid streams, so that the property below
# reaches deep parser states, not only the first-byte check.
_fragments = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.sampled_from(
            [b"250 ok\r\n", b"250-", b"550 ", b"2.0.0 ", b"\r\n", b"\n", b"\r", b"354"]
        ),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=200)
@given(
    data=st.one_of(st.binary(max_size=300), _fragments),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    max_line_length=st.integers(min_value=3, max_value=40),
    max_lines=st.integers(min_value=1, max_value=4),
)
def test_arbitrary_bytes_only_raise_protocol_errors(
    data: bytes, cuts: list[int], max_line_length: int, max_lines: int
) -> None:
    parser = ReplyParser(max_line_length=max_line_length, max_lines=max_lines)
    try:
        for chunk in _split_at(data, cuts):
            parser.feed(chunk)
            for reply in _drain(parser):
                assert 200 <= reply.code <= 599
                assert 1 <= len(reply.lines) <= max_lines
        parser.feed_eof()
        _drain(parser)
        # Without an error, everything was consumed by whole replies.
        assert parser.buffered == 0
    except SmtpProtocolError:
        pass


@settings(max_examples=100)
@given(code=st.integers(min_value=200, max_value=599), text=_text)
def test_enhanced_status_only_when_class_matches(code: int, text: bytes) -> None:
    [reply] = _parse_chunks([_encode(code, [text], b"\r\n")])
    status = reply.enhanced_status
    if status is not None:
        assert status[0] == str(code)[0]
        assert text.startswith(status.encode())
        assert text[len(status) : len(status) + 1] in (b"", b" ")
