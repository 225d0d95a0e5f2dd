"""Message integrity, property-based (issue 6, item 4).

Hypothesis generates messages (Unicode subjects and display names, bodies
with long lines, leading dots, mixed line ends and non-ASCII text,
attachments with random bytes and names, many recipients, every priority
and body format); each goes through aiosmtpd (one session reused across
examples, for speed) and is parsed back with the stdlib: the envelope
recipients, the headers, the body text and every attachment's name and
bytes must be what was given.

Where the stdlib reader, or any RFC 5322 reader, cannot tell, the
comparison says so instead of the generators avoiding it:

* display names are decoded per RFC 2047 6.2 (white space between adjacent
  encoded words is dropped; ``email.policy.default``'s phrase parser keeps
  it, so ``email.header.decode_header`` does the decoding), and compared
  with runs of SP/HTAB as one space and none at the ends: in a phrase,
  white space between words is folding white space (RFC 5322 3.2.2);
* a subject's leading SP/HTAB may be lost (unless the builder chose
  encoded words for other reasons): it cannot be told from the space after
  the colon (RFC 5322 2.2);
* an attachment's file name is read from the parsed Content-Disposition
  parameters, not with ``Message.get_filename()``, which strips white space
  and angle brackets from what it decodes;
* file names that look like encoded words and runs of white space in a
  non-ASCII subject have their own tests
  (:func:`test_a_file_name_that_looks_like_an_encoded_word_keeps_it`,
  :func:`test_white_space_runs_in_a_non_ascii_subject_survive`).

Example counts: CI runs :data:`EXAMPLES` (200) derandomised (profile
"ci"); the "big" profile of the root conftest raises every property test
here to its own ``max_examples``
(``pytest --hypothesis-profile=big --timeout=1800``).
"""

from __future__ import annotations

import email.message
import email.policy
import re
import tempfile
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.utils import getaddresses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpcore import (
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    SmtpClient,
)
from smtpcore.testserver import LocalSmtpServer
from tests.hostile.support import RECIPIENT, SENDER, details, examples

EXAMPLES = examples(200)

# What no header value may hold (line breaks and NUL, as str.splitlines()
# sees them, refused by the builder with ArgumentError) and what cannot be
# encoded at all (lone surrogates).
_UNWRITABLE = "\x00\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

_header_text = st.text(
    st.characters(codec="utf-8", exclude_characters=_UNWRITABLE),
    max_size=40,
)
# See test_white_space_runs_in_a_non_ascii_subject_survive.
_subjects = _header_text.map(lambda text: re.sub(r"[ \t]{2,}", " ", text))

# Atoms only: quoted local parts are valid but out of scope here.
_local_parts = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_-]{1,6}){0,2}",
    fullmatch=True,
)
_domains = st.sampled_from(
    ["example.com", "EXAMPLE.org", "mail.example.net", "bücher.example", "[127.0.0.1]"]
)
_addresses = st.builds("{}@{}".format, _local_parts, _domains)
_mailboxes = st.builds(EmailAddress, _addresses, st.one_of(st.none(), _header_text))

# Bodies: text from pieces that stress line handling, plus free text.
_body_pieces = st.one_of(
    st.sampled_from(["\r\n", "\n", "\r", ".", "..", ".\r\n", "\r\n.\r\n", " ", "\t"]),
    st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=30,
    ),
    st.integers(min_value=990, max_value=3000).map(lambda n: "x" * n),
    st.integers(min_value=300, max_value=600).map(lambda n: "é" * n),
)
_bodies = st.one_of(st.none(), st.lists(_body_pieces, max_size=12).map("".join))

# File names: any Unicode but "/", NUL and line breaks, at most 200 octets
# in UTF-8 (file systems allow 255).
_file_names = st.text(
    st.characters(codec="utf-8", exclude_characters=_UNWRITABLE + "/"),
    min_size=1,
    max_size=60,
).filter(
    lambda name: (
        name not in (".", "..") and len(name.encode()) <= 200 and "=?" not in name
    )
)
_attachments = st.lists(st.tuples(_file_names, st.binary(max_size=3000)), max_size=3)


def ascii_address(address: str) -> str:
    """``address`` as it must appear in headers and the envelope without
    SMTPUTF8: a non-ASCII domain in its IDNA A-label form."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def dedupe(addresses: list[str]) -> list[str]:
    """The envelope's recipients: first spelling wins, domains compared
    case-insensitively (RFC 5321 2.4)."""
    seen: set[str] = set()
    unique = []
    for address in addresses:
        local, _, domain = address.rpartition("@")
        key = f"{local}@{domain.lower()}"
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return unique


def phrase(text: str) -> str:
    """A display name as a reader sees it: runs of SP/HTAB as one space,
    none at the ends (RFC 5322 3.2.2)."""
    return re.sub(r"[ \t]+", " ", text).strip(" ")


def mailboxes(data: bytes, field: str) -> list[tuple[str, str]]:
    """The (display name, address) pairs of header ``field``, names decoded
    per RFC 2047 6.2."""
    legacy = email.message_from_bytes(data, policy=email.policy.compat32)
    values = [re.sub(r"\r?\n(?=[ \t])", "", str(v)) for v in legacy.get_all(field, [])]
    return [
        (phrase(str(make_header(decode_header(name)))), address)
        for name, address in getaddresses(values)
    ]


def lf_text(text: str) -> str:
    """Text with every CRLF, CR and LF as LF, ending with one LF (how a
    text part comes back)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none") as local:
        yield local


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def check_headers(
    data: bytes, parsed: email.message.EmailMessage, message: EmailMessage
) -> None:
    def given(addresses: list[EmailAddress]) -> list[tuple[str, str]]:
        return [
            (phrase(box.name or ""), ascii_address(box.address or ""))
            for box in addresses
        ]

    assert message.from_ is not None
    assert mailboxes(data, "From") == given([message.from_])
    assert mailboxes(data, "To") == given(message.to or [])
    assert mailboxes(data, "Cc") == given(message.cc or [])
    assert "Bcc" not in parsed
    if message.subject is None:
        assert "Subject" not in parsed
    else:
        subject = message.subject
        assert parsed["Subject"] in (subject, subject.lstrip(" \t"))
    x_priority: dict[object, str] = {
        EmailMessagePriority.URGENT: "1 (Highest)",
        EmailMessagePriority.NON_URGENT: "5 (Lowest)",
    }
    assert parsed["X-Priority"] == x_priority.get(message.priority)


def check_body(parsed: email.message.EmailMessage, message: EmailMessage) -> None:
    subtype = "html" if message.body_format == EmailMessageBodyFormat.HTML else "plain"
    body = parsed.get_body(preferencelist=(subtype,))
    assert body is not None and body.get_content_type() == f"text/{subtype}"
    content = body.get_content()
    assert isinstance(content, str)
    assert lf_text(content) == lf_text(message.body or "")


def file_name(part: email.message.EmailMessage) -> object:
    """The decoded ``filename`` parameter of a part's Content-Disposition."""
    return part["Content-Disposition"].params.get("filename")


def check_attachments(
    parsed: email.message.EmailMessage, files: list[tuple[str, bytes]]
) -> None:
    parts = list(parsed.iter_attachments())
    assert [file_name(part) for part in parts] == [name for name, _ in files]
    assert [part.get_payload(decode=True) for part in parts] == [
        data for _, data in files
    ]


def test_generated_messages_arrive_intact(
    server: LocalSmtpServer, folder: Path
) -> None:
    server.reset()
    with SmtpClient(details(server.port), timeout=10.0) as client:

        @settings(
            max_examples=EXAMPLES,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            to=st.lists(_mailboxes, min_size=1, max_size=12),
            cc=st.lists(_mailboxes, max_size=8),
            bcc=st.lists(_mailboxes, max_size=8),
            sender=_mailboxes,
            subject=st.one_of(st.none(), _subjects),
            body=_bodies,
            body_format=st.sampled_from(EmailMessageBodyFormat),
            priority=st.sampled_from(EmailMessagePriority),
            files=_attachments,
        )
        def check(
            to: list[EmailAddress],
            cc: list[EmailAddress],
            bcc: list[EmailAddress],
            sender: EmailAddress,
            subject: str | None,
            body: str | None,
            body_format: EmailMessageBodyFormat,
            priority: EmailMessagePriority,
            files: list[tuple[str, bytes]],
        ) -> None:
            paths = []
            for name, data in files:
                # One directory per file: two attachments may share a name.
                path = Path(tempfile.mkdtemp(dir=folder)) / name
                path.write_bytes(data)
                paths.append(path)
            message = EmailMessage(
                to, sender, cc, bcc, priority, subject, body_format, body, paths
            )
            before = len(server.messages)
            result = client.send(message)
            [received] = server.wait_for_messages(before + 1)[before:]

            envelope = [box.address or "" for box in [*to, *cc, *bcc]]
            expected = [ascii_address(a) for a in dedupe(envelope)]
            assert list(received.rcpt_tos) == expected
            assert result.accepted == dedupe(envelope)
            assert received.mail_from == ascii_address(sender.address or "")

            parsed = received.parsed()
            assert parsed["Message-ID"] == result.message_id
            check_headers(received.data, parsed, message)
            check_body(parsed, message)
            check_attachments(parsed, files)
            hidden = {ascii_address(b.address or "") for b in bcc}
            hidden -= {ascii_address(b.address or "") for b in [*to, *cc, sender]}
            for address in hidden:
                pattern = re.escape(address.encode())
                pattern = rb"(?<![\w.!#$%&'*+/=?^`{|}~-])" + pattern + rb"(?![\w.-])"
                found = re.search(pattern, received.data)
                assert found is None, address

        check()
    # Every example went over the one session.
    assert server.connections == 1


@pytest.mark.parametrize("name", ["=?utf-8?q?invoice?=.pdf", "=?utf-8?b?eA==?="])
def test_a_file_name_that_looks_like_an_encoded_word_keeps_it(
    server: LocalSmtpServer, folder: Path, name: str
) -> None:
    path = Path(tempfile.mkdtemp(dir=folder)) / name
    path.write_bytes(b"%PDF")
    server.reset()
    message = EmailMessage([RECIPIENT], SENDER, body="see attached", attachments=[path])
    with SmtpClient(details(server.port), timeout=10.0) as client:
        client.send(message)
    [received] = server.messages
    [part] = list(received.parsed().iter_attachments())
    assert file_name(part) == name


@pytest.mark.parametrize("space", ["  ", " \t", "\t "])
def test_white_space_runs_in_a_non_ascii_subject_survive(
    server: LocalSmtpServer, space: str
) -> None:
    subject = "é" * 20 + space + "é"
    server.reset()
    with SmtpClient(details(server.port), timeout=10.0) as client:
        client.send(EmailMessage([RECIPIENT], SENDER, subject=subject, body="b"))
    [received] = server.messages
    assert received.parsed()["Subject"] == subject
