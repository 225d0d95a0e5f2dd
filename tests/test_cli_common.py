"""``smtpcore._cli_common``: exit statuses, terminal-safe output, the
transcript on stderr, and the --ca-file context."""

from __future__ import annotations

import argparse
import io
import logging
import ssl
import unicodedata
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._cli_common import (
    EXIT_INVALID_INPUT,
    EXIT_PROTOCOL,
    EXIT_REFUSED,
    EXIT_UNEXPECTED,
    Console,
    describe,
    exit_status,
    exit_status_rows,
    load_tls_context,
    one_line,
    positive_seconds,
    printable,
    session_exit_status,
)
from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    LocalProtocolError,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.protocol.replies import SmtpReply

_REFUSAL = SmtpCommandError(
    SmtpErrorKind.RECIPIENT_NOT_ACCEPTED, SmtpReply(550, (b"no",)), "RCPT TO", "a@b.c"
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PropertyNullError("to"), EXIT_INVALID_INPUT),
        (PropertyEmptyError("to"), EXIT_INVALID_INPUT),
        (PropertyValueOutOfRangeError("server_details.port", "0"), EXIT_INVALID_INPUT),
        (ArgumentError("priority", "bad"), EXIT_INVALID_INPUT),
        (FileNotFoundError(2, "No such file", "a.txt"), EXIT_INVALID_INPUT),
        (PermissionError(13, "Permission denied", "a.txt"), EXIT_INVALID_INPUT),
        (IsADirectoryError(21, "Is a directory", "a"), EXIT_INVALID_INPUT),
        (_REFUSAL, EXIT_REFUSED),
        (SmtpProtocolError("junk"), EXIT_PROTOCOL),
        (LocalProtocolError("bug"), EXIT_UNEXPECTED),
        (RuntimeError("bug"), EXIT_UNEXPECTED),
        (ValueError("not ours"), EXIT_UNEXPECTED),
    ],
)
def test_exit_status_by_kind(error: BaseException, status: int) -> None:
    assert exit_status(error) == status


def test_an_address_refused_before_connecting_is_invalid_input() -> None:
    assert exit_status(_REFUSAL, before_connecting=True) == EXIT_INVALID_INPUT


def test_every_reason_has_its_own_status() -> None:
    statuses = [session_exit_status(reason) for reason in EmailSessionReason]
    assert statuses == list(range(10, 10 + len(EmailSessionReason)))
    assert statuses[-1] == 23
    for reason, status in zip(EmailSessionReason, statuses, strict=True):
        assert exit_status(EmailSessionError(reason, "x")) == status


def test_exit_status_rows_are_unique_and_complete() -> None:
    rows = exit_status_rows()
    statuses = [int(status) for status, _ in rows]
    assert len(statuses) == len(set(statuses))
    assert {0, 1, 2, 3, 4, 5, 130} | set(range(10, 24)) == set(statuses)
    meanings = dict(rows)
    for reason in EmailSessionReason:
        assert reason.name in meanings[str(session_exit_status(reason))]
    # A partial delivery is a delivery; a message refused by every recipient
    # is a refusal, --allow-partial or not.
    assert "--allow-partial" in meanings["0"] and "--allow-partial" in meanings["4"]


@settings(max_examples=200)
@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(unicodedata.category(char) == "Cc" for char in shown)
    assert "\u202e" not in shown and "\u2066" not in shown
    line = one_line(text)
    assert "\n" not in line and "\r" not in line


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_printable_keeps_ordinary_text(text: str) -> None:
    if not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"):
        assert printable(text) == text


def test_escapes_are_readable() -> None:
    assert printable("a\x1b[2Jb\x07\x9b\u202e") == "a\\x1b[2Jb\\x07\\x9b\\u202e"
    assert one_line(" 550 first\r\nsecond\nthird \n") == "550 first / second / third"


def _console() -> tuple[Console, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    return Console(stdout, stderr, json_output=False), stdout, stderr


def test_console_blanks_secrets_everywhere() -> None:
    console, stdout, stderr = _console()
    console.add_secret("hunter2-long")
    console.add_secret("abc")  # too short to blank without mangling words
    console.say("the password is hunter2-long")
    console.error("failed with hunter2-long\nand more")
    console.emit_json({"x": "hunter2-long"})
    assert "hunter2-long" not in stdout.getvalue() + stderr.getvalue()
    assert stderr.getvalue() == "smtpcore: error: failed with <redacted> / and more\n"
    assert "abc" in console.scrub("abc")


def test_transcript_goes_to_stderr_scrubbed_and_escaped() -> None:
    console, _, stderr = _console()
    console.add_secret("s3cret-value")
    logger = logging.getLogger("smtpcore.transcript")
    before = (logger.level, logger.propagate, list(logger.handlers))
    console.start_transcript()
    try:
        logger.debug("C: %s", "EHLO [127.0.0.1]")
        logger.debug("S: %s", "250 host\nAUTH PLAIN\nX-\x1b[31m")
        logger.debug("C: %s", "leaked s3cret-value")
    finally:
        console.stop_transcript()
    logger.debug("C: after the handler is gone")
    # The logger is left as it was found (other tests capture it too).
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    assert stderr.getvalue().splitlines() == [
        "C: EHLO [127.0.0.1]",
        "S: 250 host",
        "   AUTH PLAIN",
        "   X-\\x1b[31m",
        "C: leaked <redacted>",
    ]


def test_ca_file(ca: trustme.CA, tmp_path: Path) -> None:
    assert load_tls_context(None) is None
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    context = load_tls_context(str(path))
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    assert der in context.get_ca_certs(binary_form=True)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    for bad in (tmp_path / "junk.pem", tmp_path / "missing.pem"):
        with pytest.raises(ArgumentError, match="--ca-file") as caught:
            load_tls_context(str(bad))
        assert caught.value.property_name == "--ca-file"


def test_describe_adds_command_line_hints() -> None:
    error = EmailSessionError(
        EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE,
        "the server's certificate has expired",
        host="::1",
        port=465,
    )
    text = describe(error)
    assert text.startswith(str(error))
    assert "--ca-file" in text and "'smtpcore probe [::1]:465'" in text
    assert "smtpcore probe" not in describe(error, probe_hint=False)
    missing = describe(FileNotFoundError(2, "No such file or directory", "/x/a.txt"))
    assert missing == "/x/a.txt: No such file or directory"
    assert describe(KeyError("k")) == "unexpected KeyError: 'k'"


def test_describe_a_timeout_after_the_content_points_to_data_timeout() -> None:
    reason = EmailSessionReason.CONNECTION_TIMEOUT
    waiting = EmailSessionError(reason, "timed out after 1s waiting for the greeting")
    assert "On the command line: --timeout SECONDS waits longer." in describe(waiting)
    assert "--data-timeout" not in describe(waiting)
    final = EmailSessionError(
        reason,
        "timed out after 1s waiting for the final reply after the message content",
        delivery_unknown=True,
    )
    text = describe(final)
    assert "delivery is unknown" in text
    assert text.endswith(
        "On the command line: --data-timeout SECONDS waits longer for the reply "
        "after the message content."
    )
    # Another reason with delivery unknown keeps its own hint.
    lost = EmailSessionError(
        EmailSessionReason.CONNECTION_LOST, "closed", delivery_unknown=True
    )
    assert "--data-timeout" not in describe(lost)


def test_starttls_not_available_hint_names_allow_insecure_auth() -> None:
    error = EmailSessionError(EmailSessionReason.STARTTLS_NOT_AVAILABLE, "no TLS")
    text = describe(error)
    assert "--ssl" in text and "'send --allow-insecure-auth'" in text
    assert "in clear" in text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1", 1.0), ("0.25", 0.25), ("600", 600.0), ("86400", 86400.0)],
)
def test_positive_seconds(text: str, seconds: float) -> None:
    assert positive_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "86400.5", "nan", "inf", "-inf", "x", ""])
def test_positive_seconds_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_seconds(text)
