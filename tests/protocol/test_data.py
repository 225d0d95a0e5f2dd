"""Tests for smtpcore.protocol.data: DATA line ends, dot-stuffing, limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import LocalProtocolError
from smtpcore.protocol.data import (
    MAX_LINE_OCTETS,
    DataEncoder,
    check_and_normalise,
    check_raw_message,
    encode_bdat,
    encode_data,
    long_line_start,
    normalise_line_ends,
    stuff_dots,
)

# An independent statement of RFC 5321 2.3.8 normalisation for the oracle:
# the alternation tries CRLF first, so it is one line end, not two.
_ANY_EOL = re.compile(rb"\r\n|\r|\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def normalise(data: bytes) -> bytes:
    return _ANY_EOL.sub(b"\r\n", data)


def unstuff(wire: bytes) -> bytes:
    """Undo the encoding the way an RFC 5321 4.5.2 receiver does."""
    assert wire.endswith(b".\r\n")
    content = wire[: -len(b".\r\n")]
    lines = content.split(b"\r\n")
    assert lines[-1] == b""  # content, if any, ends with a line end
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def stream(data: bytes, cuts: list[int]) -> bytes:
    encoder = DataEncoder()
    out = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        out.append(encoder.feed(data[previous:cut]))
        previous = cut
    out.append(encoder.finish())
    return b"".join(out)


def assert_clean_wire(wire: bytes) -> None:
    assert not _BARE_CR.search(wire)
    assert not _BARE_LF.search(wire)
    assert wire.endswith(b".\r\n")
    # The terminator is the only CRLF "." CRLF; for empty content the wire is
    # ".\r\n" alone and the DATA command's CRLF precedes it.
    if wire != b".\r\n":
        assert wire.endswith(b"\r\n.\r\n")
        assert wire.find(b"\r\n.\r\n") == len(wire) - 5
        assert not wire.startswith(b".\r\n")


# ---------------------------------------------------------------- exact output


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a\n", b"a\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
        (b"a\nb", b"a\r\nb\r\n.\r\n"),
        (b"a\rb", b"a\r\nb\r\n.\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
        (b"a\n\rb", b"a\r\n\r\nb\r\n.\r\n"),
        (b"a\n\nb", b"a\r\n\r\nb\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b".hidden\r\n", b"..hidden\r\n.\r\n"),
        (b"..", b"...\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.b\n..c", b"a\r\n..b\r\n...c\r\n.\r\n"),
        (b"a.b\r\n", b"a.b\r\n.\r\n"),
        (b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\r\n\r\nbody\r\n.\r\n"),
    ],
)
def test_exact_wire_bytes(raw: bytes, wire: bytes) -> None:
    assert encode_data(raw) == wire
    # Byte by byte gives the same.
    assert stream(raw, list(range(1, len(raw)))) == wire


SMUGGLING = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
]


@pytest.mark.parametrize("vector", SMUGGLING)
def test_smuggling_vectors_cannot_end_the_data_early(vector: bytes) -> None:
    raw = b"Subject: hi\r\n\r\nbody" + vector + b"MAIL FROM:<evil@example.com>\r\n"
    for wire in (encode_data(raw), stream(raw, list(range(1, len(raw))))):
        assert_clean_wire(wire)
        assert wire.count(b"\r\n.\r\n") == 1
        # The lone dot line is doubled, so the server sees it as content.
        assert b"\r\n..\r\n" in wire
        assert unstuff(wire) == normalise(raw)


def test_crlf_split_across_feeds_stays_one_line_end() -> None:
    encoder = DataEncoder()
    first = encoder.feed(b"line one\r")
    assert first == b"line one"  # the CR waits for the next byte
    second = encoder.feed(b"\nline two\r\n")
    assert first + second == b"line one\r\nline two\r\n"
    assert encoder.finish() == b".\r\n"


def test_cr_at_the_end_of_a_feed_followed_by_other_text_is_a_line_end() -> None:
    encoder = DataEncoder()
    wire = encoder.feed(b"a\r") + encoder.feed(b"b") + encoder.finish()
    assert wire == b"a\r\nb\r\n.\r\n"


def test_cr_at_the_very_end_is_one_line_end() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"a\r") == b"a"
    assert encoder.finish() == b"\r\n.\r\n"


def test_chunks_of_a_lone_cr_then_dot() -> None:
    encoder = DataEncoder()
    parts = [encoder.feed(c) for c in (b"x", b"\r", b"", b"\r", b".", b"\n")]
    wire = b"".join(parts) + encoder.finish()
    assert wire == b"x\r\n\r\n..\r\n.\r\n"


def test_leading_dot_on_the_first_line_even_when_fed_alone() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b".") == b".."
    assert encoder.feed(b".") == b"."  # not at the start of a line any more
    assert encoder.feed(b"\r\n.") == b"\r\n.."
    assert encoder.finish() == b"\r\n.\r\n"


def test_dot_after_a_line_end_in_the_previous_chunk_is_doubled() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"a\r\n") == b"a\r\n"
    assert encoder.feed(b".b") == b"..b"
    assert encoder.feed(b"\n") == b"\r\n"
    assert encoder.feed(b".") == b".."


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "raw",
    [b"\x00", b"a\x00b", b"\r\n\x00\r\n", b"line\r\n.\x00\r\n", b"x" * 5000 + b"\x00"],
)
def test_nul_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_data(raw)
    assert check_raw_message(raw) == "contains a NUL byte"


def test_nul_in_a_later_chunk_is_refused_and_the_encoder_is_dead() -> None:
    encoder = DataEncoder()
    encoder.feed(b"fine\r\n")
    with pytest.raises(ValueError, match="NUL"):
        encoder.feed(b"bad\x00")
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"more")
    with pytest.raises(LocalProtocolError):
        encoder.finish()


def test_encoder_cannot_be_used_after_finish() -> None:
    encoder = DataEncoder()
    encoder.feed(b"a")
    encoder.finish()
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"b")
    with pytest.raises(LocalProtocolError):
        encoder.finish()


def test_max_line_octets_is_the_rfc_value() -> None:
    assert MAX_LINE_OCTETS == 998


@pytest.mark.parametrize(
    ("position", "eol"),
    [
        (position, eol)
        for position in ("first", "middle", "last")
        for eol in (b"\r\n", b"\n", b"\r")
    ]
    + [("last", b"")],
)
def test_998_octets_pass_and_999_fail(eol: bytes, position: str) -> None:
    def message(length: int) -> bytes:
        line = b"x" * length
        if position == "first":
            return line + eol + b"after\r\n"
        if position == "middle":
            return b"before\r\n" + line + eol + b"after\r\n"
        return b"before\n" + line + eol

    ok = message(998)
    assert check_raw_message(ok) is None
    wire = encode_data(ok)
    assert max(len(line) for line in wire.split(b"\r\n")) == 998

    too_long = message(999)
    reason = check_raw_message(too_long)
    assert reason is not None
    assert "999 octets" in reason
    with pytest.raises(ValueError, match="998"):
        encode_data(too_long)


def test_the_doubled_dot_does_not_count_towards_the_limit() -> None:
    # RFC 5321 4.5.3.1.6: "not counting the leading dot duplicated for
    # transparency".
    raw = b"." + b"x" * 997 + b"\r\n"
    assert check_raw_message(raw) is None
    assert encode_data(raw) == b".." + b"x" * 997 + b"\r\n.\r\n"


def test_check_raw_message_names_the_line() -> None:
    raw = b"a\r\nb\nc\rd\r\n" + b"y" * 1200 + b"\r\nz"
    assert check_raw_message(raw) == (
        "line 5 is 1200 octets long; RFC 5321 4.5.3.1.6 allows 998 plus CRLF"
    )


def test_check_raw_message_finds_a_long_line_after_many_short_ones() -> None:
    raw = b"ab\r\n" * 5000 + b"q" * 1000 + b"\nend"
    assert check_raw_message(raw) == (
        "line 5001 is 1000 octets long; RFC 5321 4.5.3.1.6 allows 998 plus CRLF"
    )
    assert check_raw_message(b"ab\r\n" * 5000 + b"q" * 998 + b"\nend") is None


@pytest.mark.parametrize("length", [998, 999])
@pytest.mark.parametrize("chunk_size", [1, 7, 500, 998, 999, 1000, 4096])
def test_long_line_spanning_chunk_boundaries(length: int, chunk_size: int) -> None:
    raw = b"head\r\n" + b"z" * length + b"\r\ntail\r\n"
    cuts = list(range(chunk_size, len(raw), chunk_size))
    if length <= MAX_LINE_OCTETS:
        assert stream(raw, cuts) == encode_data(raw)
    else:
        with pytest.raises(ValueError, match="998"):
            stream(raw, cuts)


def test_long_unterminated_line_fails_as_soon_as_it_is_too_long() -> None:
    encoder = DataEncoder()
    encoder.feed(b"a" * 500)
    encoder.feed(b"a" * 498)
    with pytest.raises(ValueError, match="998"):
        encoder.feed(b"a")


def test_held_cr_does_not_count_as_line_content() -> None:
    encoder = DataEncoder()
    encoder.feed(b"a" * 998 + b"\r")
    assert encoder.feed(b"\nb") == b"\r\nb"


def test_a_999_octet_line_is_found_at_every_offset() -> None:
    # The scan probes the data at intervals; a long line must be caught
    # wherever it starts relative to the probes: every start from 1 to 1001
    # (1002 once LF becomes CRLF) covers every residue of 999 and its
    # neighbours.
    for start in range(1, MAX_LINE_OCTETS + 4):
        prefix = b"p" * (start - 1) + b"\n"
        lines_before = 1
        if start > MAX_LINE_OCTETS:
            # Split the prefix so that it holds no long line itself.
            prefix = prefix[:500] + b"\n" + prefix[501:]
            lines_before = 2
        long_line = prefix + b"L" * 999 + b"\r\nend"
        reason = check_raw_message(long_line)
        assert reason == (
            f"line {lines_before + 1} is 999 octets long; "
            "RFC 5321 4.5.3.1.6 allows 998 plus CRLF"
        )
        with pytest.raises(ValueError, match="998"):
            encode_data(long_line)
        assert check_raw_message(prefix + b"S" * 998 + b"\nend") is None


def test_long_line_detection_with_mixed_line_ends() -> None:
    for eol in (b"\r", b"\n", b"\r\n"):
        short = (b"s" * 997 + eol) * 50
        assert check_raw_message(short) is None
        assert check_raw_message(short + b"L" * 999) is not None
        assert check_raw_message(b"L" * 999 + eol + short) is not None
        encode_data(short)


# ---------------------------------------------------------------- properties

# Line ends and dots are over-represented: they are where the bugs live.
message_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"\r\n.", b"\n.", b"."]),
        st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b"\x00", b"")),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=200)
@given(data=message_bytes, cut_points=st.lists(st.integers(0, 600), max_size=12))
def test_streaming_equals_one_shot_and_is_clean(
    data: bytes, cut_points: list[int]
) -> None:
    cuts = [c for c in cut_points if c <= len(data)]
    one_shot = encode_data(data)
    assert stream(data, cuts) == one_shot
    assert_clean_wire(one_shot)
    expected = normalise(data)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuff(one_shot) == expected
    assert check_raw_message(data) is None


@settings(max_examples=200)
@given(
    data=st.binary(max_size=3000).filter(lambda b: b"\x00" not in b),
    cut_points=st.lists(st.integers(0, 3000), max_size=6),
)
def test_check_raw_message_agrees_with_the_encoder(
    data: bytes, cut_points: list[int]
) -> None:
    longest = max(len(line) for line in _ANY_EOL.split(data))
    reason = check_raw_message(data)
    assert (reason is None) == (longest <= MAX_LINE_OCTETS)
    cuts = [c for c in cut_points if c <= len(data)]
    if reason is None:
        assert stream(data, cuts) == encode_data(data)
    else:
        with pytest.raises(ValueError):
            stream(data, cuts)


@settings(max_examples=100)
@given(
    lengths=st.lists(st.integers(0, 1100), min_size=1, max_size=8),
    eols=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=8, max_size=8),
)
def test_line_limit_is_exact_for_any_line_lengths(
    lengths: list[int], eols: list[bytes]
) -> None:
    data = b"".join(b"m" * n + eol for n, eol in zip(lengths, eols, strict=False))
    too_long = max(lengths) > MAX_LINE_OCTETS
    assert (check_raw_message(data) is not None) == too_long
    if too_long:
        with pytest.raises(ValueError):
            encode_data(data)
    else:
        assert unstuff(encode_data(data)) == normalise(data)


# ---------------------------------------------------------------- references
# Simple statements of what the fast functions compute, for the properties.


def is_clean_crlf(data: bytes) -> bool:
    """Every CR and every LF is part of a CRLF."""
    return data.count(b"\r\n") == data.count(b"\r") == data.count(b"\n")


def reference_long_line_start(data: bytes, *, crlf_only: bool = False) -> int | None:
    """Split into lines and measure each (CRLF is one line end)."""
    start = 0
    for eol in (re.compile(rb"\r\n") if crlf_only else _ANY_EOL).finditer(data):
        if eol.start() - start > MAX_LINE_OCTETS:
            return start
        start = eol.end()
    return start if len(data) - start > MAX_LINE_OCTETS else None


def reference_stuff_dots(data: bytes) -> bytes:
    return (b"." if data.startswith(b".") else b"") + data.replace(b"\r\n.", b"\r\n..")


# Line ends, dots and NUL one by one, and lines just under and over the
# limit, so that the 999-octet steps of long_line_start land everywhere.
_PIECES = [b"\r", b"\n", b"\r\n", b".", b"\0", b"x", b"ab", b"\r\n.", b"\n."]
_RUNS = [b"y" * n for n in (500, 997, 998, 999, 1000, 1001)]
piece_bytes = st.lists(st.sampled_from(_PIECES + _RUNS), max_size=24).map(b"".join)
# Content starting with a line end near a multiple of 999 (where the old
# probes and the new windows fall).
aligned_bytes = st.builds(
    lambda steps, shift, rest: b"z" * max(steps * 999 + shift, 0) + rest,
    st.integers(0, 3),
    st.integers(-3, 3),
    piece_bytes,
)
raw_bytes = st.one_of(piece_bytes, aligned_bytes)
# The same, already normalised (CRLF only, no NUL): what check_and_normalise
# hands on and stuff_dots takes.
crlf_bytes = raw_bytes.map(lambda b: normalise(b.replace(b"\0", b"")))


# ---------------------------------------------------------------- line ends


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", b""),
        (b"abc", b"abc"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        # Each CR and LF in the right number and order, but not adjacent:
        # the line ends' projection is CRLF CRLF, the text is not clean.
        (b"\rX\n", b"\r\nX\r\n"),
        (b"a\rb\nc\r\n", b"a\r\nb\r\nc\r\n"),
        (b"\r\r\n\n", b"\r\n\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b"\r\n\r", b"\r\n\r\n"),
        (b"\n\r\n", b"\r\n\r\n"),
        (b"x\r\n" * 3 + b"\r", b"x\r\n" * 3 + b"\r\n"),
    ],
)
def test_normalise_line_ends_exact(raw: bytes, expected: bytes) -> None:
    assert normalise_line_ends(raw) == expected
    assert normalise_line_ends(raw + b"tail") == expected + b"tail"
    assert normalise(raw) == expected  # the reference agrees


def test_normalise_line_ends_returns_clean_data_itself() -> None:
    clean = b"Subject: x\r\n\r\n" + (b"y" * 78 + b"\r\n") * 1000
    assert normalise_line_ends(clean) is clean
    for bad in (b"\r", b"\n", b"\r\r\n", b"\r\n\n"):
        dirty = clean + bad + b"z\r\n"
        assert normalise_line_ends(dirty) == normalise(dirty)


@given(data=raw_bytes)
def test_normalise_line_ends_matches_the_reference(data: bytes) -> None:
    result = normalise_line_ends(data)
    assert result == normalise(data)
    # No copy exactly when the data was clean: the fast test is exact.
    assert (result is data) == is_clean_crlf(data)


@given(
    parts=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"X", b"."]), max_size=30)
)
def test_the_clean_crlf_test_is_exact_on_short_mixes(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert (normalise_line_ends(data) is data) == is_clean_crlf(data)


# ---------------------------------------------------------------- line lengths


@pytest.mark.parametrize("crlf_only", [False, True])
@pytest.mark.parametrize("length", [997, 998, 999, 1000, 1001])
@pytest.mark.parametrize("offset", [0, 1, 2, 997, 998, 999, 1000, 1001, 1998, 1999])
def test_long_line_start_at_every_boundary(
    crlf_only: bool, length: int, offset: int
) -> None:
    # ``offset`` octets of short lines, then the line under test.
    head = (b"h" * 97 + b"\r\n") * (offset // 99) + b"h" * (offset % 99)
    if head and not head.endswith(b"\r\n"):
        head += b"\r\n"
    data = head + b"L" * length + b"\r\nafter\r\n"
    expected = len(head) if length > MAX_LINE_OCTETS else None
    assert long_line_start(data, crlf_only=crlf_only) == expected
    # Unterminated at the very end, too.
    assert long_line_start(head + b"L" * length, crlf_only=crlf_only) == expected


@pytest.mark.parametrize("eol", [b"\r", b"\n"])
def test_long_line_start_after_bare_line_ends(eol: bytes) -> None:
    data = (b"s" * 998 + eol) * 3 + b"L" * 999 + eol + b"tail"
    assert long_line_start(data) == 3 * 999
    assert long_line_start((b"s" * 998 + eol) * 5) is None


def test_long_line_start_on_a_crlf_split_by_the_window() -> None:
    # The first window's last octet is the CR of a CRLF, the long line
    # starts after the LF.
    data = b"a" * 998 + b"\r\n" + b"L" * 999
    assert long_line_start(data) == 1000
    assert long_line_start(data, crlf_only=True) == 1000


@given(data=raw_bytes)
def test_long_line_start_matches_the_reference(data: bytes) -> None:
    assert long_line_start(data) == reference_long_line_start(data)


@given(data=crlf_bytes)
def test_long_line_start_crlf_only_matches_the_reference(data: bytes) -> None:
    expected = reference_long_line_start(data, crlf_only=True)
    assert long_line_start(data, crlf_only=True) == expected
    assert long_line_start(data) == expected


# ---------------------------------------------------------------- check + normalise


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"a\r\nb\r\n",
        b"a\nb\rc",
        b"a\0b",
        b"a\r\nb\nc\rd\r\n" + b"y" * 1200 + b"\r\nz",
        b"ab\r\n" * 5000 + b"q" * 1000 + b"\nend",
        b"x\r\n" + b"y" * 999,
        b"\0" + b"y" * 2000,
    ],
)
def test_check_and_normalise_exact(raw: bytes) -> None:
    content, problem = check_and_normalise(raw)
    assert problem == check_raw_message(raw)
    if problem is None:
        assert content == normalise(raw)
    else:
        assert content is raw


def test_check_and_normalise_names_the_line_as_check_raw_message() -> None:
    raw = b"a\r\nb\nc\rd\r\n" + b"y" * 1200 + b"\r\nz"
    assert check_and_normalise(raw) == (
        raw,
        "line 5 is 1200 octets long; RFC 5321 4.5.3.1.6 allows 998 plus CRLF",
    )
    assert check_and_normalise(b"a\0") == (b"a\0", "contains a NUL byte")


def test_check_and_normalise_does_not_copy_clean_content() -> None:
    clean = b"To: x\r\n\r\n" + (b"y" * 78 + b"\r\n") * 100
    content, problem = check_and_normalise(clean)
    assert problem is None
    assert content is clean
    assert encode_bdat(clean) is clean


@given(data=raw_bytes)
def test_check_and_normalise_matches_check_then_normalise(data: bytes) -> None:
    content, problem = check_and_normalise(data)
    assert problem == check_raw_message(data)
    if problem is None:
        assert content == normalise(data)
        assert encode_bdat(data) == content
    else:
        assert content is data
        with pytest.raises(ValueError, match=re.escape(problem)):
            encode_bdat(data)


@given(data=raw_bytes)
def test_check_raw_message_reports_the_reference_line(data: bytes) -> None:
    if b"\0" in data:
        assert check_raw_message(data) == "contains a NUL byte"
        return
    lines = _ANY_EOL.split(data)
    long_lines = [
        (number, len(line))
        for number, line in enumerate(lines, 1)
        if len(line) > MAX_LINE_OCTETS
    ]
    if not long_lines:
        assert check_raw_message(data) is None
        return
    number, length = long_lines[0]
    assert check_raw_message(data) == (
        f"line {number} is {length} octets long; "
        "RFC 5321 4.5.3.1.6 allows 998 plus CRLF"
    )


# ---------------------------------------------------------------- stuff_dots


@pytest.mark.parametrize(
    ("content", "stuffed"),
    [
        (b"", b""),
        (b".", b".."),
        (b"..", b"..."),
        (b".\r\n", b"..\r\n"),
        (b"a.b\r\n", b"a.b\r\n"),
        (b"a\r\n.\r\n", b"a\r\n..\r\n"),
        (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n"),
        (b".a\r\n.\r\n.", b"..a\r\n..\r\n.."),
        (b"x.y\r\n\r\n.", b"x.y\r\n\r\n.."),
        (b"\r\n.", b"\r\n.."),
    ],
)
def test_stuff_dots_exact(content: bytes, stuffed: bytes) -> None:
    assert stuff_dots(content) == stuffed
    # With trailing data after a line end.
    tail = b"\r\n.t\r\nu.v\r\n"
    if content.endswith(b"\r\n"):
        assert stuff_dots(content + tail) == stuffed + b"\r\n..t\r\nu.v\r\n"


def test_stuff_dots_returns_the_data_itself_when_nothing_starts_with_a_dot() -> None:
    base64ish = b"QUJD" * 19 + b"\r\n"
    for data in (base64ish * 1000, b"a.b\r\n" * 1000, b"x" * 300 + b"." * 10):
        assert stuff_dots(data) is data


@pytest.mark.parametrize("dots", [0, 1, 5, 31, 32, 33, 100])
@pytest.mark.parametrize("line_start_every", [1, 3, 50])
def test_stuff_dots_with_many_dots(dots: int, line_start_every: int) -> None:
    # Past 32 dots the work is left to one replace: same result either way.
    lines = []
    for index in range(dots):
        text = b"y" * 70
        lines.append(b"." + text if index % line_start_every == 0 else text + b".")
    content = b"\r\n".join([b"head", *lines, b"end"]) + b"\r\n"
    assert stuff_dots(content) == reference_stuff_dots(content)
    assert stuff_dots(b"." + content) == reference_stuff_dots(b"." + content)


def test_stuff_dots_line_by_line_equals_whole() -> None:
    # Content sent in pieces that each start a line stuffs the same.
    content = b".a\r\nb.\r\n..\r\n\r\n.c\r\nd\r\n"
    pieces = content.split(b"\r\n")[:-1]
    assert b"".join(stuff_dots(p + b"\r\n") for p in pieces) == stuff_dots(content)


@given(data=crlf_bytes)
def test_stuff_dots_matches_the_reference(data: bytes) -> None:
    stuffed = stuff_dots(data)
    assert stuffed == reference_stuff_dots(data)
    if stuffed == data:
        assert stuffed is data


@given(
    lines=st.lists(
        st.lists(st.sampled_from([b".", b"x", b"..", b"a.b", b"QUJD"]), max_size=8).map(
            b"".join
        ),
        max_size=60,
    )
)
def test_stuff_dots_on_dotty_lines(lines: list[bytes]) -> None:
    data = b"\r\n".join(lines)
    assert stuff_dots(data) == reference_stuff_dots(data)
    # What a receiver does (RFC 5321 4.5.2) undoes it.
    assert unstuff(stuff_dots(data + b"\r\n") + b".\r\n") == data + b"\r\n"
