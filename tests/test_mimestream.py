"""Streamed attachments: the same message as an in-memory build, sent chunk
by chunk over DATA and BDAT, arriving octet for octet."""

from __future__ import annotations

import base64
import email
import email.policy
import os
import random
from pathlib import Path

import pytest

from conftest import Endpoint
from smtpcore import EmailMessage, SmtpClient
from smtpcore.envelope import prepare
from smtpcore.mime import STREAM_THRESHOLD, BuiltMessage, build_message
from smtpcore.mimestream import BLOCK, StreamedMessage, base64_size, stream_base64
from smtpcore.protocol.dialogue import Dialogue
from smtpcore.protocol.transaction import SendOptions
from tests.protocol.test_dialogue import GREETING, Played, policy


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    # Just over two read blocks, with bytes that look like line ends and dots.
    rng = random.Random(7)
    path.write_bytes(rng.randbytes(2 * BLOCK + 1001) + b"\r\n.\r\n")
    return path


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 113, 114, BLOCK, BLOCK + 1])
def test_base64_stream_matches_its_size_and_decodes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    encoded = b"".join(stream_base64(str(path)))
    assert len(encoded) == base64_size(size)
    assert base64.b64decode(encoded) == data
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 76 for line in lines)
    assert b"\n" not in encoded.replace(b"\r\n", b"")


def test_streamed_build_is_the_in_memory_build(big_file: Path) -> None:
    message = EmailMessage(
        ["b@example.com"],
        "a@example.com",
        subject="s",
        body="text",
        attachments=[str(big_file)],
    )
    streamed = build_message(message, stream_threshold=1000)
    whole = build_message(message, stream_threshold=None)
    assert isinstance(streamed, StreamedMessage) and isinstance(whole, BuiltMessage)
    content = b"".join(streamed.chunks())
    assert len(content) == streamed.size
    # Same structure; only the random parts (boundary, Message-ID) differ.
    a = email.message_from_bytes(content, policy=email.policy.default)
    b = email.message_from_bytes(whole.data, policy=email.policy.default)
    [part_a], [part_b] = list(a.iter_attachments()), list(b.iter_attachments())
    assert part_a.get_payload(decode=True) == part_b.get_payload(decode=True)
    assert part_a.get_filename() == part_b.get_filename() == "data.bin"
    assert part_a["Content-Type"] == part_b["Content-Type"]
    assert all(chunk.endswith(b"\r\n") for chunk in streamed.chunks())


def test_small_attachments_stay_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"x" * 10)
    built = build_message(EmailMessage(["b@x.com"], "a@x.com", attachments=[str(path)]))
    assert isinstance(built, BuiltMessage)


@pytest.mark.parametrize("chunking", [False, True])
def test_streamed_content_on_the_wire(big_file: Path, chunking: bool) -> None:
    message = EmailMessage(["b@x.com"], "a@x.com", attachments=[str(big_file)])
    streamed = build_message(message, stream_threshold=1000)
    assert isinstance(streamed, StreamedMessage)
    caps = b"250-PIPELINING\r\n250 CHUNKING\r\n" if chunking else b"250 PIPELINING\r\n"
    dialogue = Dialogue(policy(implicit_tls=True))
    played = Played([GREETING, b"250-mx\r\n" + caps])
    played.run(dialogue.open())
    played.writes.clear()
    chunks = len(list(streamed.chunks()))
    if chunking:
        played.chunks = [
            b"250 ok\r\n250 ok\r\n",
            b"250 ok\r\n" * chunks + b"250 done\r\n",
        ]
    else:
        played.chunks = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 done\r\n"]
    result = played.run(dialogue.send(streamed))
    assert result.reply.text == "done" and dialogue.conn.idle
    # One write per chunk, then the end of the message.
    assert len(played.writes) == 1 + chunks + 1
    body = b"".join(played.writes[1:])
    if chunking:
        assert body.endswith(b"BDAT 0 LAST\r\n")
        assert body.count(b"BDAT ") == chunks + 1
    else:
        assert body.endswith(b"\r\n.\r\n") and body.count(b"\r\n.\r\n") == 1


def test_streamed_attachment_arrives_whole(endpoint: Endpoint, big_file: Path) -> None:
    message = EmailMessage(
        ["b@example.com"], "a@example.com", subject="big", attachments=[str(big_file)]
    )
    streamed = build_message(message, stream_threshold=1000)
    assert isinstance(streamed, StreamedMessage)
    with SmtpClient(endpoint.details, **endpoint.options) as client:
        client._deliver(
            streamed, __import__("smtpcore").protocol.transaction.SendOptions()
        )
    [received] = endpoint.server.wait_for_messages(1)
    [part] = list(received.parsed().iter_attachments())
    assert part.get_payload(decode=True) == big_file.read_bytes()


def test_prepare_streams_attachments_over_the_threshold(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(STREAM_THRESHOLD + 1))
    message = EmailMessage(["b@example.com"], "a@example.com", attachments=[str(path)])
    assert isinstance(prepare(message), StreamedMessage)
    with SmtpClient(endpoint.details, **endpoint.options) as client:
        client.send(message)
    [received] = endpoint.server.wait_for_messages(1)
    [part] = list(received.parsed().iter_attachments())
    assert part.get_payload(decode=True) == path.read_bytes()


def test_file_gone_while_sending_delivers_nothing(
    endpoint: Endpoint, big_file: Path
) -> None:
    message = EmailMessage(
        ["b@example.com"], "a@example.com", attachments=[str(big_file)]
    )
    streamed = build_message(message, stream_threshold=1000)
    big_file.unlink()  # validated, built, then gone before the upload
    with SmtpClient(endpoint.details, **endpoint.options) as client:
        with pytest.raises(FileNotFoundError):
            client._deliver(streamed, SendOptions())
        assert not client.is_connected  # dropped without the final dot
    assert endpoint.server.messages == []
