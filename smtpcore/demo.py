"""``smtpcore demo``: the seven examples of the seed block, sent for real.

Starts a local aiosmtpd server with a trustme certificate (STARTTLS and AUTH
on a port like 587), sends every example through :func:`smtpcore.send_email`
on one reused session, and prints what the server received.  Needs the
``test`` extra (aiosmtpd, trustme).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailMessage,
    ServerDetails,
    UserCredentials,
)

__all__ = ["SEED_EXAMPLES", "SeedExample", "attachment_files", "run_demo"]


@dataclass(frozen=True)
class SeedExample:
    """One example of the block's reference page, its message JSON verbatim
    (bare ``EmailMessagePriority.Urgent`` tokens included)."""

    title: str
    message_json: str
    use_ssl: bool  # the example's own server setting (465 true, 587 false)


# Copied verbatim from the block's reference page (a test checks this).
SEED_EXAMPLES: tuple[SeedExample, ...] = (
    SeedExample(
        "Sending an email to a single recipient",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], '
        '"Bcc": [],"Priority": null, "Subject": "Example email subject", '
        '"BodyFormat":null, "Body": "Example email body", "Attachments": []}',
        False,
    ),
    SeedExample(
        "Sending an email to multiple recipients",
        '{"To":  [{"Name":  null,  "Address":  "recipient1@outlook.com"}, '
        ' {"Name":  null,  "Address":  "recipient2@outlook.com"}, {"Name": null, '
        '"Address": "recipient3@outlook.com"}], "From": {"Name": null, '
        '"Address": "sender@gmail.com"}, "Cc": [], "Bcc": [], "Priority": null, '
        '"Subject": "Example email subject", "BodyFormat": null, '
        '"Body": "Example email body", "Attachments": []}',
        True,
    ),
    SeedExample(
        "Sending an email with CC or BCC addresses",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, '
        '"Cc": [{"Name": null, "Address": "cc1@outlook.com"}, {"Name": null, '
        '"Address": "cc2@outlook.com"}], "Bcc": [], "Priority": null, '
        '"Subject": "Example email subject", "BodyFormat": null, '
        '"Body": "Example email body", "Attachments": []}',
        False,
    ),
    SeedExample(
        "Sending an email with a different priority",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], '
        '"Bcc": [], "Priority": EmailMessagePriority.Urgent, '
        '"Subject": "Example email subject", "BodyFormat": null, '
        '"Body": "Example email body", "Attachments": []}',
        False,
    ),
    SeedExample(
        "Sending an email with a HTML body",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], '
        '"Bcc": [], "Priority": null, "Subject": "Example email subject", '
        '"BodyFormat": EmailMessageBodyFormat.Html, '
        '"Body": "<h1>Example email body</h1>", "Attachments": []}',
        False,
    ),
    SeedExample(
        "Sending an email with a single attachment",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], '
        '"Bcc": [], "Priority": null, "Subject": "Example email subject", '
        '"BodyFormat": null, "Body": "Example email body", '
        '"Attachments": ["C:/attachment.txt"]}',
        False,
    ),
    SeedExample(
        "Sending an email with mutiple attachments",
        '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], '
        '"From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], '
        '"Bcc": [], "Priority": null, "Subject": "Example email subject", '
        '"BodyFormat": null, "Body": "Example email body", '
        '"Attachments": ["C:/attachment1.txt", "C:/attachment2.txt"]}',
        False,
    ),
)

ATTACHMENT_TEXT = {
    "attachment.txt": b"The single attachment of the seed example.\r\n",
    "attachment1.txt": b"First of two attachments.\r\n",
    "attachment2.txt": b"Second of two attachments.\r\n",
}


@contextmanager
def attachment_files() -> Iterator[str]:
    """A temporary folder holding the examples' attachment files.

    Yields:
        The folder; the examples' ``C:/name`` paths map to files in it.
    """
    with tempfile.TemporaryDirectory(prefix="smtpcore-demo-") as folder:
        for name, data in ATTACHMENT_TEXT.items():
            with open(os.path.join(folder, name), "wb") as file:
                file.write(data)
        yield folder


def load_example(example: SeedExample, folder: str) -> EmailMessage:
    """Parse an example's JSON and point its attachments into ``folder``."""
    message = EmailMessage.from_json(example.message_json)
    message.attachments = [
        os.path.join(folder, os.path.basename(os.fspath(path)))
        for path in message.attachments or []
    ]
    return message


def run_demo(out: TextIO) -> int:
    """Send the seven seed examples to a local server and show what arrived.

    Args:
        out: where to print.

    Returns:
        0 when all seven arrived intact, 1 otherwise.
    """
    from smtpcore.session import send_email
    from smtpcore.testserver import LocalSmtpServer

    user = "sender@outlook.com"
    password = secrets.token_urlsafe(16)  # made per run, never stored
    with (
        LocalSmtpServer(tls="starttls", users={user: password}) as server,
        attachment_files() as folder,
    ):
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, use_ssl=False),
            UserCredentials(user, password),
        )
        print(
            f"Local SMTP server on {server.host}:{server.port} "
            "(aiosmtpd, STARTTLS with a trustme certificate, AUTH required)",
            file=out,
        )
        with details:
            for number, example in enumerate(SEED_EXAMPLES, 1):
                message = load_example(example, folder)
                result = send_email(
                    message,
                    details,
                    close_session=False,
                    tls_context=server.client_context(),
                )
                print(f"{number}. {example.title}: {result.reply}", file=out)
        received = server.wait_for_messages(len(SEED_EXAMPLES))
        print(
            f"\nThe server received {len(received)} messages over "
            f"{server.connections} connection(s):",
            file=out,
        )
        for number, item in enumerate(received, 1):
            parsed = item.parsed()
            parts = [part for part in parsed.walk() if not part.is_multipart()]
            files = [p.get_filename() for p in parts if p.get_filename()]
            body = parsed.get_body(("html", "plain"))
            print(
                f"{number}. from {item.mail_from} to {', '.join(item.rcpt_tos)} "
                f"(TLS={item.tls}, AUTH={item.auth_user})",
                file=out,
            )
            print(
                f"   Subject: {parsed['Subject']}  Cc: {parsed['Cc'] or '-'}  "
                f"X-Priority: {parsed['X-Priority'] or '-'}",
                file=out,
            )
            content = body.get_content().strip() if body is not None else ""
            kind = body.get_content_type() if body is not None else "-"
            print(
                f"   Body ({kind}): {content!r}  Attachments: {files or '-'}", file=out
            )
        return 0 if len(received) == len(SEED_EXAMPLES) else 1
