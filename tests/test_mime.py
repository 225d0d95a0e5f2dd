"""Tests for smtpcore.mime: every message is parsed back with the stdlib."""

from __future__ import annotations

import copy
import email
import email.policy
import email.utils
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.message import EmailMessage as StdlibEmailMessage
from email.message import Message
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import ArgumentError
from smtpcore.mime import (
    MAX_LINE_OCTETS,
    BuiltMessage,
    _msgid_domain,
    build_message,
)
from smtpcore.models import (
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
)
from smtpcore.stdlibmsg import prepare_stdlib_message

# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------


def make(**kwargs: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "to": [EmailAddress("rcpt@example.com")],
        "from_": EmailAddress("sender@example.org"),
        "subject": "Hello",
        "body": "Body text",
    }
    fields.update(kwargs)
    return EmailMessage(**fields)


def parse(data: bytes) -> StdlibEmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, StdlibEmailMessage)
    return parsed


def assert_wire_clean(data: bytes) -> None:
    """7-bit, CRLF only, no line over 998 octets."""
    assert data.isascii()
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line
        assert len(line) <= MAX_LINE_OCTETS


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [
        line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in " \t"
    ]


def body_text(parsed: StdlibEmailMessage) -> str:
    part = parsed.get_body(preferencelist=("plain", "html"))
    assert isinstance(part, StdlibEmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def expected_body(body: str | None) -> str:
    """The body as it reads back: one kind of line end, a final one added."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def squash_ws(text: str) -> str:
    """Readers may fold runs of blanks and drop them at the ends (RFC 5322
    3.2.2 folding white space); nothing else may change."""
    return re.sub(r"[ \t]+", " ", text).strip(" \t")


def no_ws(text: str) -> str:
    """A display name as the stdlib reads it, less its white space: besides
    the folding of ``squash_ws``, its reader puts a space between adjacent
    encoded words in a phrase (RFC 2047 6.2 says to drop it) and trims
    Unicode spaces such as U+00A0 that an encoded word carried."""
    return re.sub(r"\s+", "", text)


def attachments_of(parsed: StdlibEmailMessage) -> list[StdlibEmailMessage]:
    return [p for p in parsed.iter_attachments() if isinstance(p, StdlibEmailMessage)]


# --------------------------------------------------------------------------
# build_message: headers.
# --------------------------------------------------------------------------


def test_header_order_without_cc_or_priority() -> None:
    built = build_message(make())
    assert header_names(built.data) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert_wire_clean(built.data)


def test_header_order_with_cc_priority_and_attachment(tmp_path: Path) -> None:
    attachment = tmp_path / "a.bin"
    attachment.write_bytes(b"\x00\x01")
    built = build_message(
        make(
            cc=["cc@example.com"],
            priority=EmailMessagePriority.URGENT,
            attachments=[attachment],
        )
    )
    assert header_names(built.data) == [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Priority",
        "X-Priority",
        "Importance",
        "Content-Type",
    ]


def test_subject_none_writes_no_subject_and_empty_writes_empty() -> None:
    assert "Subject" not in header_names(build_message(make(subject=None)).data)
    parsed = parse(build_message(make(subject="")).data)
    assert parsed["Subject"] == ""


def test_from_to_cc_headers() -> None:
    built = build_message(
        make(
            to=[EmailAddress("a@example.com", "Ann"), EmailAddress("b@example.com")],
            from_=EmailAddress("me@example.org", "Me"),
            cc=[EmailAddress("c@example.com", "Cy")],
        )
    )
    parsed = parse(built.data)
    to = [(a.display_name, a.addr_spec) for a in parsed["To"].addresses]
    assert to == [("Ann", "a@example.com"), ("", "b@example.com")]
    assert [(a.display_name, a.addr_spec) for a in parsed["Cc"].addresses] == [
        ("Cy", "c@example.com")
    ]
    assert [(a.display_name, a.addr_spec) for a in parsed["From"].addresses] == [
        ("Me", "me@example.org")
    ]
    assert b"\r\nTo: Ann <a@example.com>, b@example.com\r\n" in built.data


def test_bcc_is_in_the_envelope_and_nowhere_in_the_bytes() -> None:
    built = build_message(
        make(bcc=[EmailAddress("hidden-one@secret.example", "Hidden Person")])
    )
    assert "hidden-one@secret.example" in built.recipients
    assert b"hidden-one" not in built.data
    assert b"secret.example" not in built.data
    assert b"Hidden" not in built.data
    assert "Bcc" not in header_names(built.data)


def test_envelope_order_and_duplicates() -> None:
    built = build_message(
        make(
            to=["a@example.com", "Bob@Example.COM"],
            cc=["bob@example.com", "BOB@example.com", "a@EXAMPLE.com"],
            bcc=["Bob@example.com", "z@example.net", "z@Example.NET"],
            from_="Sender@Example.org",
        )
    )
    assert built.sender == "Sender@Example.org"
    # Local parts are compared exactly, domains case-insensitively; the first
    # spelling is kept.
    assert built.recipients == (
        "a@example.com",
        "Bob@Example.COM",
        "bob@example.com",
        "BOB@example.com",
        "z@example.net",
    )
    assert isinstance(built, BuiltMessage)


@pytest.mark.parametrize(
    "name",
    [
        "Jöhn Dœ",
        'Say "hi"',
        "Doe, John",
        "Smile 😀 please",
        "back\\slash",
        "a <b> @ c; d: [e]",
        "中文名字",
        "=?utf-8?q?not_an_encoded_word?=",
        "x=?us-ascii?q?a?=y",
        "control\x1fchar\x7f",
        "long " * 40,
    ],
    ids=lambda name: name[:24],
)
def test_display_names_read_back_exactly(name: str) -> None:
    built = build_message(
        make(
            to=[EmailAddress("a@example.com", name), EmailAddress("b@example.com")],
            from_=EmailAddress("me@example.org", name),
        )
    )
    assert_wire_clean(built.data)
    parsed = parse(built.data)
    to = parsed["To"].addresses
    assert [a.addr_spec for a in to] == ["a@example.com", "b@example.com"]
    assert to[0].display_name == name.strip()
    assert to[1].display_name == ""
    assert parsed["From"].addresses[0].display_name == name.strip()


def test_many_mailboxes_with_encoded_names_stay_apart() -> None:
    # CPython's own folder can wrap the comma between two such mailboxes
    # into an encoded word, merging them; every mailbox must survive.
    names = ["00000" + "\x80" * 9 + "\U00010000" * 2 + " 0", "Zoë", "x" * 90, ""]
    to = [
        EmailAddress(f"user{index}@example.com", names[index % len(names)])
        for index in range(40)
    ]
    built = build_message(make(to=to))
    assert_wire_clean(built.data)
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    parsed = parse(built.data)
    got = [(a.display_name, a.addr_spec) for a in parsed["To"].addresses]
    assert [addr for _, addr in got] == [a.address for a in to]
    assert [no_ws(name) for name, _ in got] == [no_ws(a.name or "") for a in to]


def test_quoted_local_part_survives() -> None:
    built = build_message(
        make(
            to=[EmailAddress('"john doe"@example.com', "John")],
            from_='"a.b,c"@example.org',
        )
    )
    parsed = parse(built.data)
    assert parsed["To"].addresses[0].addr_spec == '"john doe"@example.com'
    assert parsed["From"].addresses[0].addr_spec == '"a.b,c"@example.org'
    assert built.recipients == ('"john doe"@example.com',)
    assert built.sender == '"a.b,c"@example.org'


def test_non_ascii_local_part_gets_utf8_headers() -> None:
    # RFC 6532: the address goes into the header as UTF-8; the message is
    # then 8-bit and can only travel in an SMTPUTF8 session (the transaction
    # refuses it with 553 5.6.7 elsewhere).
    built = build_message(make(cc=["ok@example.com", "jörg@bücher.example"]))
    assert built.eight_bit
    assert "jörg@bücher.example".encode() in built.data
    # (The stdlib parser reads 8-bit header bytes as surrogate escapes, so
    # the raw header line is what to check.)
    [cc] = [line for line in built.data.split(b"\r\n") if line.startswith(b"Cc:")]
    assert cc.decode("utf-8") == "Cc: ok@example.com, jörg@bücher.example"


def test_non_ascii_domain_is_written_as_a_label() -> None:
    built = build_message(make(to=["info@Bücher.example"]))
    assert b"info@xn--bcher-kva.example" in built.data
    assert parse(built.data)["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert built.recipients == ("info@Bücher.example",)


def test_domain_whose_idna_2003_form_differs_is_refused() -> None:
    # IDNA 2003 maps "ß" to "ss": "faß.de" would silently become "fass.de".
    with pytest.raises(ArgumentError) as info:
        build_message(make(to=["a@faß.de"]))
    assert info.value.property_name == "to[0].address"


@pytest.mark.parametrize("address", ["a@b> SIZE=1", "", "a b@example.com"])
def test_unwritable_address_raises_argument_error(address: str) -> None:
    with pytest.raises(ArgumentError) as info:
        build_message(make(to=[address]))
    assert info.value.property_name == "to[0].address"


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\r", "\0", "\u2028", "\x0c"])
@pytest.mark.parametrize(
    ("field", "property_name"),
    [
        ("subject", "subject"),
        ("to_name", "to[0].name"),
        ("to_address", "to[0].address"),
        ("from_name", "from_.name"),
        ("cc_name", "cc[0].name"),
    ],
)
def test_header_injection_is_refused(bad: str, field: str, property_name: str) -> None:
    injected = f"x{bad}Bcc: victim@example.com"
    fields: dict[str, Any] = {}
    if field == "subject":
        fields["subject"] = injected
    elif field == "to_name":
        fields["to"] = [EmailAddress("a@example.com", injected)]
    elif field == "to_address":
        fields["to"] = [EmailAddress(f"a@example.com{bad}Bcc: victim@example.com")]
    elif field == "from_name":
        fields["from_"] = EmailAddress("a@example.com", injected)
    else:
        fields["cc"] = [EmailAddress("c@example.com", injected)]
    with pytest.raises(ValueError) as info:
        build_message(make(**fields))
    assert isinstance(info.value, ArgumentError)
    assert info.value.property_name == property_name


@pytest.mark.parametrize(
    "subject",
    [
        "Plain ASCII subject",
        "Grüße aus Köln",
        "Emoji 😀🎉 party",
        'Quotes "x" and, commas; too',
        "中文主题测试",
        "=?utf-8?q?looks_encoded?=",
        "prefix=?utf-8?b?QUJD?=suffix",
        "\x1fbell\x07 and \x7f",
        "x" * 1200,
        "word " * 300 + "end",
    ],
    ids=lambda subject: subject[:24],
)
def test_subject_reads_back_exactly(subject: str) -> None:
    built = build_message(make(subject=subject))
    assert_wire_clean(built.data)
    assert str(parse(built.data)["Subject"]) == subject


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (EmailMessagePriority.NORMAL, []),
        (
            EmailMessagePriority.URGENT,
            [
                ("Priority", "urgent"),
                ("X-Priority", "1 (Highest)"),
                ("Importance", "high"),
            ],
        ),
        (
            EmailMessagePriority.NON_URGENT,
            [
                ("Priority", "non-urgent"),
                ("X-Priority", "5 (Lowest)"),
                ("Importance", "low"),
            ],
        ),
        (None, []),
        (
            2,
            [
                ("Priority", "urgent"),
                ("X-Priority", "1 (Highest)"),
                ("Importance", "high"),
            ],
        ),
    ],
)
def test_priority_headers(priority: object, expected: list[tuple[str, str]]) -> None:
    built = build_message(make(priority=priority))
    parsed = parse(built.data)
    got = [
        (name, str(value))
        for name, value in parsed.items()
        if name in ("Priority", "X-Priority", "Importance")
    ]
    assert got == expected
    for name, value in expected:
        assert f"\r\n{name}: {value}\r\n".encode() in built.data


@pytest.mark.parametrize(
    ("field", "value"), [("priority", 7), ("body_format", 3), ("priority", "high")]
)
def test_unknown_enum_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ArgumentError) as info:
        build_message(make(**{field: value}))
    assert info.value.property_name == field


def test_missing_sender_is_refused() -> None:
    with pytest.raises(ArgumentError) as info:
        build_message(make(from_=None))
    assert info.value.property_name == "from_"


# --------------------------------------------------------------------------
# build_message: Date and Message-ID.
# --------------------------------------------------------------------------


def test_date_given_aware() -> None:
    when = datetime(
        2024, 2, 29, 13, 5, 9, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    parsed = parse(build_message(make(), date=when).data)
    assert parsed["Date"].datetime == when
    assert str(parsed["Date"]) == "Thu, 29 Feb 2024 13:05:09 +0530"


def test_date_given_naive_is_local_time() -> None:
    when = datetime(2024, 7, 1, 8, 0, 0)
    parsed = parse(build_message(make(), date=when).data)
    assert parsed["Date"].datetime == when.astimezone()


def test_date_defaults_to_now_with_zone() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    parsed = parse(build_message(make()).data)
    after = datetime.now(timezone.utc)
    stamp = parsed["Date"].datetime
    assert stamp.utcoffset() is not None
    assert before <= stamp <= after


_MSGID = re.compile(r"<[^<>@\s]+@([^<>@\s]+)>\Z")


def test_message_id_uses_sender_domain_and_is_unique() -> None:
    first = build_message(make(from_="x@Mail.Example.org"))
    second = build_message(make(from_="x@Mail.Example.org"))
    assert first.message_id is not None and second.message_id is not None
    match = _MSGID.match(first.message_id)
    assert match is not None and match.group(1) == "Mail.Example.org"
    assert first.message_id != second.message_id
    assert str(parse(first.data)["Message-ID"]) == first.message_id


@pytest.mark.parametrize("literal", ["[127.0.0.1]", "[IPv6:::1]"])
def test_message_id_with_address_literal_domain(literal: str) -> None:
    built = build_message(make(from_=f"x@{literal}"))
    assert built.message_id is not None
    assert built.message_id.endswith(f"@{literal}>")
    assert str(parse(built.data)["Message-ID"]) == built.message_id


def test_message_id_domain_fallback() -> None:
    assert _msgid_domain("example.com") == "example.com"
    assert _msgid_domain("[10.0.0.1]") == "[10.0.0.1]"
    for bad in ["", "a..b", "a b", "[a[b]", "exämple.com", ".lead"]:
        assert _msgid_domain(bad) == "localhost"


# --------------------------------------------------------------------------
# build_message: bodies.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body_format", "subtype"),
    [
        (EmailMessageBodyFormat.TEXT, "plain"),
        (EmailMessageBodyFormat.HTML, "html"),
        (None, "plain"),
        (1, "html"),
    ],
)
def test_body_format_content_type(body_format: object, subtype: str) -> None:
    body = "<p>Hello</p>" if subtype == "html" else "Hello"
    parsed = parse(build_message(make(body_format=body_format, body=body)).data)
    assert parsed.get_content_type() == f"text/{subtype}"
    assert parsed.get_content_charset() == "utf-8"
    assert body_text(parsed) == expected_body(body)


def test_short_ascii_body_is_7bit_and_verbatim() -> None:
    body = "Line one\n.Leading dot\n\nLast line"
    built = build_message(make(body=body))
    parsed = parse(built.data)
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    assert built.data.endswith(b"\r\n\r\nLine one\r\n.Leading dot\r\n\r\nLast line\r\n")


def test_line_of_998_octets_stays_7bit() -> None:
    body = "y" * MAX_LINE_OCTETS
    built = build_message(make(body=body))
    assert parse(built.data)["Content-Transfer-Encoding"] == "7bit"
    assert_wire_clean(built.data)


def test_body_with_a_5000_character_line() -> None:
    body = "".join(chr(0x61 + i % 26) for i in range(5000))
    built = build_message(make(body=body))
    assert_wire_clean(built.data)
    parsed = parse(built.data)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(parsed) == body + "\n"


def test_body_of_chinese_text_uses_base64() -> None:
    body = "中文电子邮件正文。第二句话在这里。\n" * 200
    built = build_message(make(body=body))
    assert_wire_clean(built.data)
    parsed = parse(built.data)
    assert parsed["Content-Transfer-Encoding"] == "base64"
    assert body_text(parsed) == body


def test_mostly_ascii_body_uses_quoted_printable() -> None:
    body = "Dear Zoë, the café opens at nine.\n" * 20
    parsed = parse(build_message(make(body=body)).data)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(parsed) == body


def test_line_endings_are_normalised() -> None:
    built = build_message(make(body="a\r\nb\rc\nd\r\n\r\ne"))
    assert built.data.endswith(b"\r\n\r\na\r\nb\r\nc\r\nd\r\n\r\ne\r\n")
    assert body_text(parse(built.data)) == "a\nb\nc\nd\n\ne\n"


@pytest.mark.parametrize("body", [None, ""])
def test_empty_body(body: str | None) -> None:
    built = build_message(make(body=body))
    assert_wire_clean(built.data)
    assert body_text(parse(built.data)) == "\n"


def test_body_with_nul_is_encoded() -> None:
    built = build_message(make(body="a\0b"))
    assert b"\0" not in built.data
    parsed = parse(built.data)
    assert parsed["Content-Transfer-Encoding"] != "7bit"
    assert body_text(parsed) == "a\0b\n"


def test_body_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(ArgumentError) as info:
        build_message(make(body="bad \udc80"))
    assert info.value.property_name == "body"


# --------------------------------------------------------------------------
# build_message: attachments.
# --------------------------------------------------------------------------

_TRICKY_BYTES = bytes(range(256)) + b"\r\n\r\n.\r\n\n\r\x00\x00" + os.urandom(4096)


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("report.pdf", "application/pdf"),
        ("my notes.txt", "text/plain"),
        ("Größe résumé.txt", "text/plain"),
        ("报告 2024.png", "image/png"),
        ('a "quoted", name; x=y.bin', "application/octet-stream"),
        ("no-extension", "application/octet-stream"),
        ("archive.tar.gz", "application/octet-stream"),
        ("forwarded.eml", "application/octet-stream"),
        ("长" * 60 + ".pdf", "application/pdf"),
    ],
)
def test_attachment_round_trip(
    tmp_path: Path, filename: str, content_type: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(_TRICKY_BYTES)
    built = build_message(make(body="See attached.", attachments=[str(path)]))
    assert_wire_clean(built.data)
    parsed = parse(built.data)
    assert parsed.get_content_type() == "multipart/mixed"
    parts = list(parsed.iter_parts())
    assert len(parts) == 2
    assert parts[0].get_content_type() == "text/plain"
    assert "MIME-Version" not in parts[1]
    (attachment,) = attachments_of(parsed)
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == filename
    assert attachment.get_content_type() == content_type
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_payload(decode=True) == _TRICKY_BYTES
    assert body_text(parsed) == "See attached.\n"


def test_several_attachments_keep_order_and_html_body(tmp_path: Path) -> None:
    payloads = [os.urandom(n) for n in (0, 1, 57, 10_000)]
    paths = []
    for index, payload in enumerate(payloads):
        path = tmp_path / f"file{index}.dat"
        path.write_bytes(payload)
        paths.append(path)
    built = build_message(
        make(
            body="<b>hi</b>", body_format=EmailMessageBodyFormat.HTML, attachments=paths
        )
    )
    parsed = parse(built.data)
    first = next(iter(parsed.iter_parts()))
    assert first.get_content_type() == "text/html"
    got = [
        (a.get_filename(), a.get_payload(decode=True)) for a in attachments_of(parsed)
    ]
    assert got == [(p.name, b) for p, b in zip(paths, payloads, strict=True)]


def test_missing_attachment(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_message(make(attachments=[tmp_path / "absent.txt"]))


def test_directory_attachment(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        build_message(make(attachments=[tmp_path]))


def test_attachment_name_with_line_break_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil\nX-Injected: yes.txt"
    path.write_bytes(b"x")
    with pytest.raises(ArgumentError) as info:
        build_message(make(attachments=[path]))
    assert info.value.property_name == "attachments[0]"


# --------------------------------------------------------------------------
# build_message: properties over many inputs.
# --------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    ["=?", "?=", '"', "\\", ",", ";", "<", ">", "@", "😀", "中文", " ", "\t", "."]
)
_HEADER_CHARS = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="\x00\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
)
_header_text = st.lists(st.one_of(_HEADER_CHARS, _FRAGMENTS), max_size=40).map("".join)

_LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
_line = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=80),
    st.text("a. ", max_size=1500),
    st.builds(lambda n, c: c * n, st.integers(990, 1010), st.sampled_from(["x", "é"])),
    st.sampled_from([".", "..", ".x", "From me", "-- ", "=", "\0"]),
)
_body = st.one_of(
    st.none(),
    st.lists(st.tuples(_line, _LINE_ENDS), max_size=12).map(
        lambda pairs: "".join(line + end for line, end in pairs)
    ),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(body=_body, subject=_header_text, name=_header_text)
def test_any_message_is_wire_clean_and_reads_back(
    body: str | None, subject: str, name: str
) -> None:
    built = build_message(
        make(
            body=body,
            subject=subject,
            to=[
                EmailAddress("a@example.com", name),
                EmailAddress("b@example.com", name),
            ],
            cc=[EmailAddress("c@example.com", name)],
            bcc=["d@example.com"],
        )
    )
    assert_wire_clean(built.data)
    # Nothing a value holds can add or hide a header.
    assert header_names(built.data) == [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    parsed = parse(built.data)
    assert body_text(parsed) == expected_body(body)
    assert squash_ws(str(parsed["Subject"])) == squash_ws(subject)
    names = [a.display_name for a in parsed["To"].addresses + parsed["Cc"].addresses]
    assert [no_ws(n) for n in names] == [no_ws(name)] * 3
    addrs = [a.addr_spec for a in parsed["To"].addresses + parsed["Cc"].addresses]
    assert addrs == ["a@example.com", "b@example.com", "c@example.com"]
    assert built.recipients == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    )


_ascii_name = st.text(
    st.sampled_from(list(' \t"\\,;:<>@.()[]abXY01-_!#')), max_size=200
)


@settings(max_examples=150, deadline=None)
@given(
    name=_ascii_name,
    address=st.sampled_from(["a@example.com", '"john doe"@example.com']),
)
def test_ascii_display_names_fold_and_read_back(name: str, address: str) -> None:
    built = build_message(
        make(to=[EmailAddress(address, name), EmailAddress("b@example.com", name)])
    )
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    to = parse(built.data)["To"].addresses
    assert [a.addr_spec for a in to] == [address, "b@example.com"]
    # Quoted names come back exactly; unquoted ones as a phrase, whose runs
    # of blanks readers may fold.
    for mailbox in to:
        assert mailbox.display_name in (name, squash_ws(name))


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(max_size=3000))
def test_any_attachment_bytes_round_trip(payload: bytes, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("att") / "blob.txt"
    path.write_bytes(payload)
    built = build_message(make(attachments=[path]))
    assert_wire_clean(built.data)
    (attachment,) = attachments_of(parse(built.data))
    assert attachment.get_payload(decode=True) == payload


# --------------------------------------------------------------------------
# prepare_stdlib_message.
# --------------------------------------------------------------------------


def stdlib_message(
    headers: Sequence[tuple[str, str]], body: str = "Hi\n"
) -> StdlibEmailMessage:
    msg = StdlibEmailMessage()
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    return msg


def test_stdlib_bcc_removed_from_wire_but_kept_in_caller() -> None:
    msg = stdlib_message(
        [
            ("From", "Me <me@example.org>"),
            ("To", "a@example.com, Bee <b@example.com>"),
            ("Cc", "c@example.com"),
            ("Bcc", "secret@hidden.example"),
            ("Subject", "s"),
        ]
    )
    before = msg.as_bytes()
    built = prepare_stdlib_message(msg)
    assert built.sender == "me@example.org"
    assert built.recipients == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "secret@hidden.example",
    )
    assert b"secret" not in built.data and b"Bcc" not in built.data
    assert msg["Bcc"] == "secret@hidden.example"
    assert msg.as_bytes() == before
    assert_wire_clean(built.data)
    assert parse(built.data)["To"] == "a@example.com, Bee <b@example.com>"
    assert built.message_id is None
    assert b"Message-ID" not in built.data


def test_stdlib_sender_header_wins_over_from() -> None:
    msg = stdlib_message(
        [
            ("From", "a@example.org"),
            ("Sender", "S <s@example.org>"),
            ("To", "t@example.com"),
        ]
    )
    assert prepare_stdlib_message(msg).sender == "s@example.org"


def test_stdlib_message_id_is_reported() -> None:
    msg = stdlib_message(
        [
            ("From", "a@example.org"),
            ("To", "t@example.com"),
            ("Message-ID", "<x.1@example.org>"),
        ]
    )
    built = prepare_stdlib_message(msg)
    assert built.message_id == "<x.1@example.org>"
    assert built.data.count(b"Message-ID") == 1


def test_stdlib_resent_block() -> None:
    msg = stdlib_message(
        [
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-From", "Fwd <fwd@example.org>"),
            ("Resent-To", "new@example.com"),
            ("Resent-Cc", "newcc@example.com"),
            ("Resent-Bcc", "newbcc@example.com"),
            ("From", "orig@example.org"),
            ("To", "old@example.com"),
            ("Bcc", "oldbcc@example.com"),
        ]
    )
    built = prepare_stdlib_message(msg)
    assert built.sender == "fwd@example.org"
    assert built.recipients == (
        "new@example.com",
        "newcc@example.com",
        "newbcc@example.com",
    )
    assert b"newbcc" not in built.data and b"oldbcc" not in built.data
    assert b"Resent-To: new@example.com" in built.data
    assert msg["Resent-Bcc"] == "newbcc@example.com" and msg["Bcc"] is not None


def test_stdlib_resent_sender_wins() -> None:
    msg = stdlib_message(
        [
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-Sender", "rs@example.org"),
            ("Resent-From", "rf@example.org"),
            ("Resent-To", "new@example.com"),
            ("From", "orig@example.org"),
            ("To", "old@example.com"),
        ]
    )
    assert prepare_stdlib_message(msg).sender == "rs@example.org"


def test_stdlib_several_resent_blocks_are_refused() -> None:
    msg = Message()
    for name, value in [
        ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
        ("Resent-From", "a@example.org"),
        ("Resent-Date", "Tue, 2 Jan 2024 00:00:00 +0000"),
        ("Resent-From", "b@example.org"),
        ("To", "t@example.com"),
    ]:
        msg[name] = value
    with pytest.raises(ValueError, match="Resent"):
        prepare_stdlib_message(msg)


def test_stdlib_explicit_envelope() -> None:
    msg = stdlib_message(
        [("From", "a@example.org"), ("To", "t@example.com"), ("Bcc", "b@example.com")]
    )
    built = prepare_stdlib_message(
        msg, from_addr="bounce@example.org", to_addrs=["x@example.com", "X@EXAMPLE.COM"]
    )
    assert built.sender == "bounce@example.org"
    assert built.recipients == ("x@example.com", "X@EXAMPLE.COM")
    assert b"b@example.com" not in built.data
    single = prepare_stdlib_message(msg, to_addrs="only@example.com")
    assert single.recipients == ("only@example.com",)


def test_stdlib_duplicates_and_groups() -> None:
    msg = stdlib_message(
        [
            ("From", "a@example.org"),
            ("To", "undisclosed-recipients:;"),
            ("Cc", "c@Example.com"),
            ("Bcc", "c@example.COM, d@example.com"),
        ]
    )
    assert prepare_stdlib_message(msg).recipients == ("c@Example.com", "d@example.com")


def test_stdlib_long_8bit_line_is_refused() -> None:
    msg = stdlib_message([("From", "a@example.org"), ("To", "t@example.com")])
    msg.set_content("z" * 1200, cte="8bit")
    with pytest.raises(ValueError, match="998") as info:
        prepare_stdlib_message(msg)
    assert isinstance(info.value, ArgumentError)


def test_stdlib_long_line_by_default_is_encoded() -> None:
    msg = stdlib_message(
        [("From", "a@example.org"), ("To", "t@example.com")], "z" * 1200
    )
    built = prepare_stdlib_message(msg)
    assert_wire_clean(built.data)
    assert body_text(parse(built.data)) == "z" * 1200 + "\n"


def test_stdlib_compat32_message_with_header_objects() -> None:
    msg = MIMEText("hello wörld", "plain", "utf-8")
    # compat32 takes Header objects; typeshed types MIMEText's values as str.
    msg["Subject"] = Header("Grüße", "utf-8")  # type: ignore[assignment]
    msg["From"] = "a@example.org"
    msg["To"] = "t@example.com"
    msg["Bcc"] = "hidden@example.com"
    snapshot = copy.deepcopy(msg)
    built = prepare_stdlib_message(msg)
    assert_wire_clean(built.data)
    parsed = parse(built.data)
    assert str(parsed["Subject"]) == "Grüße"
    assert body_text(parsed) == "hello wörld"
    assert b"hidden" not in built.data
    assert built.recipients == ("t@example.com", "hidden@example.com")
    assert msg.as_string() == snapshot.as_string()


@pytest.mark.parametrize(
    "headers",
    [
        [("To", "t@example.com")],
        [("From", "undisclosed:;"), ("To", "t@example.com")],
    ],
)
def test_stdlib_without_sender_is_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ArgumentError) as info:
        prepare_stdlib_message(stdlib_message(headers))
    assert info.value.property_name == "from_addr"


def test_stdlib_without_recipients_gives_an_empty_envelope() -> None:
    # Refusing it is the envelope check's job (PropertyEmptyError there).
    built = prepare_stdlib_message(stdlib_message([("From", "a@example.org")]))
    assert built.recipients == ()
    msg = stdlib_message([("From", "a@example.org"), ("To", "t@example.com")])
    assert prepare_stdlib_message(msg, to_addrs=[]).recipients == ()
