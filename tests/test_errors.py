"""The error hierarchy and the reason table."""

from __future__ import annotations

import pytest

from smtpcore import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpCoreError,
    SmtpErrorKind,
    SmtpProtocolError,
    SmtpReply,
)
from smtpcore.errors import REASON_INFO

# DESIGN.md's table: the seed platform's codes and ours beyond it.
CODES = {
    "INVALID_PORT": 100,
    "INVALID_HOST": 101,
    "CONNECTION_TIMEOUT": 102,
    "CONNECTION_LOST": 103,
    "SSL_WRAPPED_CONNECTION_REQUIRED": 200,
    "SSL_WRAPPED_CONNECTION_NOT_SUPPORTED": 201,
    "EXPIRED_OR_UNTRUSTED_CERTIFICATE": 201,
    "CERTIFICATE_REPLACED_BY_ANTIVIRUS": 201,
    "CRL_SERVER_DOWN": 201,
    "INVALID_SSL_CERTIFICATE": 201,
    "STARTTLS_NOT_AVAILABLE": 202,
    "INVALID_USERNAME_OR_PASSWORD": 300,
    "NO_COMMON_AUTH_MECHANISM": 301,
    "AUTHENTICATION_TEMPORARY_FAILURE": 302,
}


def test_every_reason_has_its_documented_code_and_a_fix() -> None:
    assert {reason.name for reason in EmailSessionReason} == set(CODES)
    for reason in EmailSessionReason:
        assert reason.error_code == CODES[reason.name]
        assert isinstance(reason.error_code, int)
        assert REASON_INFO[reason].fix and REASON_INFO[reason].cause


def test_readme_table_matches_the_code() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, code in CODES.items():
        assert f"| `{name}` | {code} |" in readme


def test_session_error_fields_and_message() -> None:
    error = EmailSessionError(
        EmailSessionReason.INVALID_HOST, "does not resolve", host="mx.invalid", port=25
    )
    assert (error.reason, error.error_code, error.host, error.port) == (
        EmailSessionReason.INVALID_HOST,
        101,
        "mx.invalid",
        25,
    )
    text = str(error)
    assert "mx.invalid:25" in text and "does not resolve" in text
    assert EmailSessionReason.INVALID_HOST.fix in text
    assert not error.delivery_unknown and "unknown" not in text
    doubt = EmailSessionError(
        EmailSessionReason.CONNECTION_LOST, "x", delivery_unknown=True
    )
    assert "delivery is unknown" in str(doubt)


@pytest.mark.parametrize(
    ("code", "transient"), [(450, True), (421, True), (550, False), (554, False)]
)
def test_command_error_is_transient_by_reply(code: int, transient: bool) -> None:
    reply = SmtpReply(code, (b"x",))
    error = SmtpCommandError(
        SmtpErrorKind.RECIPIENT_NOT_ACCEPTED, reply, "RCPT TO", "a@b.c"
    )
    assert error.is_transient is transient
    assert "RCPT TO" in str(error) and "a@b.c" in str(error)


def test_hierarchy() -> None:
    for cls in (PropertyNullError, PropertyEmptyError, ArgumentError):
        error = cls("to[0].address", "bad")
        assert isinstance(error, SmtpCoreError) and isinstance(error, ValueError)
        assert error.property_name == "to[0].address"
    assert issubclass(PropertyValueOutOfRangeError, ValueError)
    for cls in (SmtpCommandError, EmailSessionError, SmtpProtocolError):
        assert issubclass(cls, SmtpCoreError)


def test_reply_classes() -> None:
    assert SmtpReply(250).is_positive and SmtpReply(354).is_intermediate
    assert SmtpReply(451).is_transient and SmtpReply(550).is_permanent
    reply = SmtpReply(250, (b"first", b"second \xff"), None)
    assert (
        reply.text == "first\nsecond \ufffd"
        and str(reply) == "250 first\nsecond \ufffd"
    )
