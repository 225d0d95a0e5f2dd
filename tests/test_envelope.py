"""Tests for smtpcore.envelope: raw message checks and preparation."""

from __future__ import annotations

import pytest
from hypothesis import given

from smtpcore.envelope import check_raw_content, prepare_raw
from smtpcore.errors import ArgumentError
from smtpcore.protocol.data import check_raw_message
from tests.protocol.test_data import normalise, raw_bytes

SENDER = "sender@example.com"
RECIPIENT = "rcpt@example.net"
CLEAN = b"Subject: hi\r\n\r\n" + (b"y" * 78 + b"\r\n") * 50


def test_clean_bytes_are_taken_as_they_are() -> None:
    built = prepare_raw(SENDER, RECIPIENT, CLEAN)
    assert built.data is CLEAN  # no copy
    assert built.checked
    assert not built.binary
    assert built.sender == SENDER
    assert built.recipients == (RECIPIENT,)
    assert built.message_id is None


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_ends_are_normalised(eol: bytes) -> None:
    built = prepare_raw(SENDER, [RECIPIENT], b"a" + eol + b".b" + eol + b"c")
    assert built.data == b"a\r\n.b\r\nc"  # dots are stuffed on the wire
    assert built.checked


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_other_buffers_are_copied_before_the_check(kind: type) -> None:
    buffer = bytearray(b"a\nb\r\n")
    built = prepare_raw(SENDER, RECIPIENT, kind(buffer))
    buffer[0:1] = b"\0"
    assert type(built.data) is bytes
    assert built.data == b"a\r\nb\r\n"


def test_binary_content_is_not_checked_or_changed() -> None:
    data = bytearray(b"a\nb\0" + b"z" * 2000)
    built = prepare_raw(SENDER, RECIPIENT, data, binary=True)
    assert built.binary
    assert not built.checked
    assert type(built.data) is bytes
    assert built.data == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"a\0b", "contains a NUL byte"),
        (
            b"a\r\nb\nc\rd\r\n" + b"y" * 1200 + b"\r\nz",
            "line 5 is 1200 octets long; RFC 5321 4.5.3.1.6 allows 998 plus CRLF",
        ),
        (
            b"ab\n" * 3 + b"q" * 999,
            "line 4 is 999 octets long; RFC 5321 4.5.3.1.6 allows 998 plus CRLF",
        ),
    ],
)
def test_refusals_name_the_problem(data: bytes, reason: str) -> None:
    for check in (
        lambda: prepare_raw(SENDER, RECIPIENT, data),
        lambda: check_raw_content(data),
        lambda: check_raw_content(bytearray(data)),
    ):
        with pytest.raises(ArgumentError) as caught:
            check()
        assert str(caught.value) == f"the message cannot be sent: {reason}"
        assert caught.value.property_name == "data"


@pytest.mark.parametrize("data", ["text", None, 12])
def test_data_must_be_bytes(data: object) -> None:
    for check in (
        lambda: prepare_raw(SENDER, RECIPIENT, data),
        lambda: check_raw_content(data),
    ):
        with pytest.raises(ArgumentError, match="must be bytes"):
            check()


@given(data=raw_bytes)
def test_prepare_raw_decides_as_check_raw_message(data: bytes) -> None:
    problem = check_raw_message(data)
    if problem is None:
        assert prepare_raw(SENDER, RECIPIENT, data).data == normalise(data)
        check_raw_content(data)
        return
    expected = f"the message cannot be sent: {problem}"
    with pytest.raises(ArgumentError) as caught:
        prepare_raw(SENDER, RECIPIENT, data)
    assert str(caught.value) == expected
    with pytest.raises(ArgumentError) as caught:
        check_raw_content(data)
    assert str(caught.value) == expected
