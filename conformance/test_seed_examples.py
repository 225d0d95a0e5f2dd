"""The seven examples of the block's reference page, sent through
``send_email`` to a real aiosmtpd over STARTTLS+AUTH (587-like) and implicit
TLS+AUTH (465-like); every check reads what the server received."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import USER, Endpoint, Sender
from smtpcore import EmailAddress, EmailMessage
from smtpcore.demo import ATTACHMENT_TEXT, SEED_EXAMPLES, attachment_files, load_example
from smtpcore.testserver import ReceivedMessage

Deliver = Callable[[EmailMessage], ReceivedMessage]
SEED_PAGE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "seeds"
    / "000_07fdc04334be5b3a.txt"
)


@pytest.fixture(scope="module")
def folder() -> Iterator[str]:
    with attachment_files() as path:
        yield path


@pytest.fixture
def deliver(
    endpoint: Endpoint, send: Sender
) -> Callable[[EmailMessage], ReceivedMessage]:
    """Send through the blocking or the asyncio client (both run every
    example) and return what the server received."""

    def deliver(message: EmailMessage) -> ReceivedMessage:
        return _deliver(endpoint, send, message)

    return deliver


def _deliver(
    endpoint: Endpoint, send: Sender, message: EmailMessage
) -> ReceivedMessage:
    result = send(message, endpoint.details, **endpoint.options)
    [received] = endpoint.server.wait_for_messages(1)
    assert received.tls and received.auth_user == USER
    assert result.accepted == list(received.rcpt_tos)
    assert result.reply.code == 250 and result.rejected == {}
    assert result.message_id == received.parsed()["Message-ID"]
    return received


@pytest.mark.skipif(
    not SEED_PAGE.exists(), reason="shared/seeds is not beside the checkout"
)
def test_examples_are_the_seed_pages_own() -> None:
    page = SEED_PAGE.read_text(encoding="utf-8")
    for example in SEED_EXAMPLES:
        assert f"with value `{example.message_json}`" in page
        assert f"### {example.title}" in page


def test_single_recipient(deliver: Deliver, folder: str) -> None:
    got = deliver(load_example(SEED_EXAMPLES[0], folder))
    assert got.mail_from == "sender@outlook.com"
    assert got.rcpt_tos == ("recipient@outlook.com",)
    mail = got.parsed()
    assert (
        mail["To"] == "recipient@outlook.com" and mail["From"] == "sender@outlook.com"
    )
    assert mail["Subject"] == "Example email subject"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().rstrip("\r\n") == "Example email body"
    for header in ("Cc", "Bcc", "X-Priority", "Priority", "Importance"):
        assert mail[header] is None
    assert mail["Date"] is not None and mail["MIME-Version"] == "1.0"


def test_multiple_recipients(deliver: Deliver, folder: str) -> None:
    got = deliver(load_example(SEED_EXAMPLES[1], folder))
    want = (
        "recipient1@outlook.com",
        "recipient2@outlook.com",
        "recipient3@outlook.com",
    )
    assert got.mail_from == "sender@gmail.com" and got.rcpt_tos == want
    assert [a.addr_spec for a in got.parsed()["To"].addresses] == list(want)


def test_cc(deliver: Deliver, folder: str) -> None:
    got = deliver(load_example(SEED_EXAMPLES[2], folder))
    assert got.rcpt_tos == (
        "recipient@outlook.com",
        "cc1@outlook.com",
        "cc2@outlook.com",
    )
    cc = got.parsed()["Cc"]
    assert [a.addr_spec for a in cc.addresses] == ["cc1@outlook.com", "cc2@outlook.com"]


def test_bcc_gets_the_message_but_no_header_names_it(
    deliver: Deliver, folder: str
) -> None:
    # The seed: "the same approach would be used ... with BCC addresses".
    message = load_example(SEED_EXAMPLES[2], folder)
    message.cc, message.bcc = [], [EmailAddress("bcc1@outlook.com", "Hidden One")]
    got = deliver(message)
    assert got.rcpt_tos == ("recipient@outlook.com", "bcc1@outlook.com")
    assert b"bcc1" not in got.data and b"Hidden" not in got.data
    assert got.parsed()["Bcc"] is None


def test_urgent_priority(deliver: Deliver, folder: str) -> None:
    mail = deliver(load_example(SEED_EXAMPLES[3], folder)).parsed()
    assert mail["X-Priority"] == "1 (Highest)"
    assert mail["Priority"] == "urgent" and mail["Importance"] == "high"


def test_html_body(deliver: Deliver, folder: str) -> None:
    mail = deliver(load_example(SEED_EXAMPLES[4], folder)).parsed()
    assert mail.get_content_type() == "text/html"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().strip() == "<h1>Example email body</h1>"


@pytest.mark.parametrize(
    ("index", "names"),
    [(5, ["attachment.txt"]), (6, ["attachment1.txt", "attachment2.txt"])],
)
def test_attachments(
    deliver: Deliver, folder: str, index: int, names: list[str]
) -> None:
    mail = deliver(load_example(SEED_EXAMPLES[index], folder)).parsed()
    assert mail.get_content_type() == "multipart/mixed"
    body = mail.get_body(("plain",))
    assert (
        body is not None and body.get_content().rstrip("\r\n") == "Example email body"
    )
    attachments = list(mail.iter_attachments())
    assert [part.get_filename() for part in attachments] == names
    for part in attachments:
        assert part.get_content_type() == "text/plain"
        assert (
            part.get_payload(decode=True) == ATTACHMENT_TEXT[part.get_filename() or ""]
        )
        assert part.get_content_disposition() == "attachment"


def test_attachment_bytes_arrive_exactly(deliver: Deliver, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64 + b"\r\n.\r\n\x00\r.\n"
    path = tmp_path / "raw data.bin"
    path.write_bytes(data)
    message = EmailMessage(
        [EmailAddress("recipient@outlook.com")],
        "sender@outlook.com",
        subject="binary",
        attachments=[os.fspath(path)],
    )
    mail = deliver(message).parsed()
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "raw data.bin"
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_payload(decode=True) == data
