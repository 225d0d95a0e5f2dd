"""Tests for smtpcore.models (constructors) and smtpcore.validation.

from_json is tested in tests/test_models_json.py.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from smtpcore.errors import (
    ArgumentError,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpErrorKind,
)
from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)
from smtpcore.protocol.address import mailbox_problem
from smtpcore.validation import (
    address_refusal,
    validate_message,
    validate_session_details,
)

PASSWORD = "S3cr3t-Pa55w0rd"


@pytest.fixture
def attachment(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "attachment.txt"
    path.write_text("attached\n")
    return path


@pytest.fixture
def message(attachment: pathlib.Path) -> EmailMessage:
    return EmailMessage(
        to=[EmailAddress("to@example.com", "To Person")],
        from_=EmailAddress("from@example.com", "From Person"),
        cc=[EmailAddress("cc@example.com")],
        bcc=[EmailAddress("bcc@example.com")],
        priority=EmailMessagePriority.URGENT,
        subject="Hello",
        body_format=EmailMessageBodyFormat.HTML,
        body="<p>line one</p>\r\n<p>line two</p>\n",
        attachments=[str(attachment), attachment],
    )


def _details() -> BasicEmailSessionDetails:
    return BasicEmailSessionDetails(
        ServerDetails("smtp.example.com", 587, False),
        UserCredentials("user@example.com", PASSWORD, "DOMAIN"),
    )


# ---- constructors -----------------------------------------------------------


def test_constructor_coerces_strings_none_and_ints() -> None:
    msg = EmailMessage(
        ("a@example.com", EmailAddress("b@example.com")), "s@example.com"
    )
    assert msg.to == [EmailAddress("a@example.com"), EmailAddress("b@example.com")]
    assert msg.from_ == EmailAddress("s@example.com")
    assert (msg.cc, msg.bcc, msg.attachments) == ([], [], [])
    assert msg.priority is EmailMessagePriority.NORMAL
    assert msg.body_format is EmailMessageBodyFormat.TEXT
    assert (msg.subject, msg.body) == (None, None)

    one = EmailMessage(
        EmailAddress("a@example.com"),
        None,
        cc="c@example.com",
        priority=2,
        body_format=1,
        attachments=pathlib.Path("x.txt"),
    )
    assert one.to == [EmailAddress("a@example.com")]
    assert one.cc == [EmailAddress("c@example.com")]
    assert one.priority is EmailMessagePriority.URGENT
    assert one.body_format is EmailMessageBodyFormat.HTML
    assert one.attachments == [pathlib.Path("x.txt")]


@pytest.mark.parametrize("raw", [7, -1, "x", True, 1.0, EmailMessageBodyFormat.HTML])
def test_constructor_keeps_unknown_priority_raw(raw: object) -> None:
    msg = EmailMessage(["a@example.com"], "s@example.com", priority=raw)  # type: ignore[arg-type]
    assert msg.priority == raw and type(msg.priority) is type(raw)


@pytest.mark.parametrize(
    ("field", "raw", "path"),
    [
        ("attachments", 5, "attachments"),
        ("attachments", b"file.txt", "attachments"),
        ("to", 5, "to"),
        ("to", b"a@example.com", "to"),
        ("to", {"a@example.com": 1}, "to"),
        ("cc", {"a@example.com": 1}, "cc"),
    ],
)
def test_constructor_never_raises_and_keeps_odd_containers(
    field: str, raw: object, path: str
) -> None:
    fields: dict[str, Any] = {"to": ["a@example.com"], "from_": "s@example.com"}
    fields[field] = raw
    msg = EmailMessage(**fields)
    assert getattr(msg, field) == raw
    with pytest.raises(ArgumentError) as info:
        validate_message(msg)
    assert info.value.property_name == path


def test_server_details_and_credentials_defaults() -> None:
    server = ServerDetails("smtp.example.com")
    assert (server.port, server.use_ssl) == (465, True)
    creds = UserCredentials("u", PASSWORD)
    assert creds.domain is None
    assert BasicEmailSessionDetails(server).credentials is None


def test_password_not_in_repr_or_str() -> None:
    details = _details()
    assert details.credentials is not None
    for text in (repr(details.credentials), str(details), repr(details)):
        assert PASSWORD not in text
    assert "user@example.com" in repr(details)


class _RecordingSession:
    """A stand-in for the session object: it only counts close() calls."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_details_closes_the_session_once() -> None:
    details = _details()
    session = _RecordingSession()
    details._session = session
    with details as entered:
        assert entered is details
    assert session.closed == 1 and details._session is None
    details.close()
    assert session.closed == 1


def test_with_details_closes_on_error_and_ignores_session_in_eq() -> None:
    details = _details()
    session = _RecordingSession()
    details._session = session
    assert details == _details()
    with pytest.raises(KeyError), details:
        raise KeyError("boom")
    assert session.closed == 1


# ---- validate_session_details ------------------------------------------------

Mutator = Callable[[Any], None]


def _set(path: str, value: object) -> Mutator:
    """A mutator that assigns ``value`` at a dotted attribute path."""
    *parents, last = path.split(".")

    def apply(root: Any) -> None:
        target = root
        for name in parents:
            target = getattr(target, name)
        setattr(target, last, value)

    return apply


DETAIL_CASES: list[tuple[str, object, type[Exception], str]] = [
    ("server_details", None, PropertyNullError, "server_details"),
    ("server_details", "smtp.example.com", ArgumentError, "server_details"),
    ("server_details.host", None, PropertyNullError, "server_details.host"),
    ("server_details.host", "", PropertyEmptyError, "server_details.host"),
    ("server_details.host", " \t ", PropertyEmptyError, "server_details.host"),
    ("server_details.host", b"smtp.example.com", ArgumentError, "server_details.host"),
    ("server_details.host", "smtp .example.com", ArgumentError, "server_details.host"),
    ("server_details.host", " smtp.example.com", ArgumentError, "server_details.host"),
    ("server_details.host", "smtp\r\nRCPT", ArgumentError, "server_details.host"),
    ("server_details.host", "smtp\0", ArgumentError, "server_details.host"),
    ("server_details.host", "\0", ArgumentError, "server_details.host"),
    ("server_details.host", "smtp\x7f.com", ArgumentError, "server_details.host"),
    ("server_details.host", "smtp\x85.com", ArgumentError, "server_details.host"),
    ("server_details.port", None, ArgumentError, "server_details.port"),
    ("server_details.port", "587", ArgumentError, "server_details.port"),
    ("server_details.port", True, ArgumentError, "server_details.port"),
    ("server_details.port", 587.0, ArgumentError, "server_details.port"),
    ("server_details.port", 0, PropertyValueOutOfRangeError, "server_details.port"),
    ("server_details.port", -25, PropertyValueOutOfRangeError, "server_details.port"),
    (
        "server_details.port",
        65536,
        PropertyValueOutOfRangeError,
        "server_details.port",
    ),
    ("server_details.use_ssl", None, ArgumentError, "server_details.use_ssl"),
    ("server_details.use_ssl", 1, ArgumentError, "server_details.use_ssl"),
    ("server_details.use_ssl", "false", ArgumentError, "server_details.use_ssl"),
    ("credentials", "user", ArgumentError, "credentials"),
    ("credentials.username", None, PropertyNullError, "credentials.username"),
    ("credentials.username", "", PropertyEmptyError, "credentials.username"),
    ("credentials.username", "  ", PropertyEmptyError, "credentials.username"),
    ("credentials.username", 5, ArgumentError, "credentials.username"),
    ("credentials.username", "u\r\nMAIL", ArgumentError, "credentials.username"),
    ("credentials.username", "u\0", ArgumentError, "credentials.username"),
    ("credentials.password", None, PropertyNullError, "credentials.password"),
    ("credentials.password", b"bytes", ArgumentError, "credentials.password"),
    ("credentials.password", PASSWORD + "\r\n", ArgumentError, "credentials.password"),
    ("credentials.password", PASSWORD + "\n", ArgumentError, "credentials.password"),
    ("credentials.password", "\0" + PASSWORD, ArgumentError, "credentials.password"),
    ("credentials.domain", "D\r", ArgumentError, "credentials.domain"),
    ("credentials.domain", 5, ArgumentError, "credentials.domain"),
]


@pytest.mark.parametrize(("path", "value", "error", "prop"), DETAIL_CASES)
def test_session_details_rules(
    path: str, value: object, error: type[Exception], prop: str
) -> None:
    details = _details()
    _set(path, value)(details)
    with pytest.raises(error) as info:
        validate_session_details(details)
    assert type(info.value) is error
    assert isinstance(info.value, ValueError)
    assert getattr(info.value, "property_name", None) == prop
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("credentials", None),
        ("credentials.password", ""),
        ("credentials.domain", None),
        ("server_details.port", 1),
        ("server_details.port", 65535),
        ("server_details.host", "::1"),
        ("server_details.host", "bücher.example"),
    ],
)
def test_session_details_allowed(path: str, value: object) -> None:
    details = _details()
    _set(path, value)(details)
    validate_session_details(details)


def test_session_details_none_and_wrong_type() -> None:
    with pytest.raises(PropertyNullError) as null:
        validate_session_details(None)
    assert null.value.property_name == "session_details"
    with pytest.raises(ArgumentError) as wrong:
        validate_session_details(ServerDetails("x"))  # type: ignore[arg-type]
    assert wrong.value.property_name == "session_details"


def test_port_range_message_names_the_range() -> None:
    details = _details()
    _set("server_details.port", 70000)(details)
    with pytest.raises(PropertyValueOutOfRangeError, match="1-65535"):
        validate_session_details(details)


def test_session_details_first_problem_wins() -> None:
    details = BasicEmailSessionDetails(
        ServerDetails(None, 0, "yes"),  # type: ignore[arg-type]
        UserCredentials(None, None),
    )
    reported = []
    for fix in (
        _set("server_details.host", "h"),
        _set("server_details.port", 25),
        _set("server_details.use_ssl", False),
        _set("credentials.username", "u"),
        _set("credentials.password", "p"),
    ):
        with pytest.raises(ValueError) as info:
            validate_session_details(details)
        reported.append(getattr(info.value, "property_name", None))
        fix(details)
    validate_session_details(details)
    assert reported == [
        "server_details.host",
        "server_details.port",
        "server_details.use_ssl",
        "credentials.username",
        "credentials.password",
    ]


# ---- validate_message ---------------------------------------------------------


def _addr(address: object, name: object = None) -> EmailAddress:
    return EmailAddress(address, name)  # type: ignore[arg-type]


class _BytesPath:
    """An os.PathLike whose path is bytes: not a usable attachment name."""

    def __fspath__(self) -> bytes:
        return b"/tmp/x"


MESSAGE_CASES: list[tuple[str, object, type[Exception], str]] = [
    ("to", None, PropertyNullError, "to"),
    ("to", [], PropertyEmptyError, "to"),
    ("to", (), PropertyEmptyError, "to"),
    ("to", "to@example.com", ArgumentError, "to"),
    ("to", [None], PropertyNullError, "to[0]"),
    ("to", ["to@example.com"], ArgumentError, "to[0]"),
    ("to", [_addr(None)], PropertyNullError, "to[0].address"),
    ("to", [_addr("")], PropertyEmptyError, "to[0].address"),
    ("to", [_addr(" \t")], PropertyEmptyError, "to[0].address"),
    ("to", [_addr(5)], ArgumentError, "to[0].address"),
    ("to", [_addr("a@example.com", "A\r\nBcc: x")], ArgumentError, "to[0].name"),
    ("to", [_addr("a@example.com", "A\0")], ArgumentError, "to[0].name"),
    ("to", [_addr("a@example.com", 5)], ArgumentError, "to[0].name"),
    ("to", [_addr("a@example.com"), _addr("")], PropertyEmptyError, "to[1].address"),
    ("from_", None, PropertyNullError, "from_"),
    ("from_", "from@example.com", ArgumentError, "from_"),
    ("from_", [_addr("from@example.com")], ArgumentError, "from_"),
    ("from_", _addr(None), PropertyNullError, "from_.address"),
    ("from_", _addr(""), PropertyEmptyError, "from_.address"),
    ("from_", _addr("   "), PropertyEmptyError, "from_.address"),
    ("from_", _addr("f@example.com", "F\n"), ArgumentError, "from_.name"),
    ("cc", 5, ArgumentError, "cc"),
    ("cc", [_addr("c@example.com"), _addr(None)], PropertyNullError, "cc[1].address"),
    ("cc", [_addr("c@example.com", "C\r")], ArgumentError, "cc[0].name"),
    ("bcc", [None], PropertyNullError, "bcc[0]"),
    ("bcc", [_addr("")], PropertyEmptyError, "bcc[0].address"),
    ("bcc", [_addr("b@example.com", "B\0")], ArgumentError, "bcc[0].name"),
    ("priority", None, ArgumentError, "priority"),
    ("priority", 7, ArgumentError, "priority"),
    ("priority", "x", ArgumentError, "priority"),
    ("priority", "Urgent", ArgumentError, "priority"),
    ("priority", True, ArgumentError, "priority"),
    ("priority", EmailMessageBodyFormat.HTML, ArgumentError, "priority"),
    ("subject", "Hi\r\nBcc: evil@example.com", ArgumentError, "subject"),
    ("subject", "Hi\n", ArgumentError, "subject"),
    ("subject", "Hi\0", ArgumentError, "subject"),
    ("subject", 5, ArgumentError, "subject"),
    ("body_format", None, ArgumentError, "body_format"),
    ("body_format", 5, ArgumentError, "body_format"),
    ("body_format", "html", ArgumentError, "body_format"),
    ("body_format", EmailMessagePriority.URGENT, ArgumentError, "body_format"),
    ("body", "a\0b", ArgumentError, "body"),
    ("body", b"body", ArgumentError, "body"),
    ("attachments", "file.txt", ArgumentError, "attachments"),
    ("attachments", [None], PropertyNullError, "attachments[0]"),
    ("attachments", [5], ArgumentError, "attachments[0]"),
    ("attachments", [b"file.txt"], ArgumentError, "attachments[0]"),
    ("attachments", [_BytesPath()], ArgumentError, "attachments[0]"),
    ("attachments", [""], ArgumentError, "attachments[0]"),
    ("attachments", ["  "], ArgumentError, "attachments[0]"),
    ("attachments", ["a\0b.txt"], ArgumentError, "attachments[0]"),
]


@pytest.mark.parametrize(("field", "value", "error", "prop"), MESSAGE_CASES)
def test_message_rules(
    message: EmailMessage, field: str, value: object, error: type[Exception], prop: str
) -> None:
    setattr(message, field, copy.deepcopy(value))
    with pytest.raises(error) as info:
        validate_message(message)
    assert type(info.value) is error
    assert getattr(info.value, "property_name", None) == prop


def test_valid_message_passes(message: EmailMessage) -> None:
    validate_message(message)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cc", None),
        ("bcc", []),
        ("priority", 1),
        ("body_format", 0),
        ("subject", None),
        ("subject", ""),
        ("body", None),
        ("body", "lines\r\nand\rbare\nbreaks"),
        ("attachments", None),
        ("attachments", ()),
        ("to", [_addr("to@example.com", None)]),
        ("to", [_addr("to@example.com", "")]),
    ],
)
def test_message_allowed_values(
    message: EmailMessage, field: str, value: object
) -> None:
    setattr(message, field, value)
    validate_message(message)


def test_message_none_and_wrong_type() -> None:
    with pytest.raises(PropertyNullError) as null:
        validate_message(None)
    assert null.value.property_name == "message"
    with pytest.raises(ArgumentError) as wrong:
        validate_message({"To": []})  # type: ignore[arg-type]
    assert wrong.value.property_name == "message"


def test_enum_messages_list_allowed_values(message: EmailMessage) -> None:
    message.priority = 7  # type: ignore[assignment]
    with pytest.raises(
        ArgumentError, match=r"Normal \(0\), NonUrgent \(1\), Urgent \(2\)"
    ):
        validate_message(message)
    message.priority = EmailMessagePriority.NORMAL
    message.body_format = 9  # type: ignore[assignment]
    with pytest.raises(ArgumentError, match=r"Text \(0\), Html \(1\)"):
        validate_message(message)


@pytest.mark.parametrize(
    ("field", "bad", "kind", "command", "status"),
    [
        ("to", "no-at-sign", SmtpErrorKind.RECIPIENT_NOT_ACCEPTED, "RCPT TO", "5.1.3"),
        (
            "cc",
            "a b@example.com",
            SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            "RCPT TO",
            "5.1.3",
        ),
        (
            "bcc",
            "a@example.com> SIZE=1",
            SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            "RCPT TO",
            "5.1.3",
        ),
        ("from_", "sender@", SmtpErrorKind.SENDER_NOT_ACCEPTED, "MAIL FROM", "5.1.7"),
        (
            "from_",
            " s@example.com",
            SmtpErrorKind.SENDER_NOT_ACCEPTED,
            "MAIL FROM",
            "5.1.7",
        ),
    ],
)
def test_bad_address_syntax_is_a_synthetic_501(
    message: EmailMessage,
    field: str,
    bad: str,
    kind: SmtpErrorKind,
    command: str,
    status: str,
) -> None:
    reason = mailbox_problem(bad)
    assert reason is not None
    setattr(
        message, field, EmailAddress(bad) if field == "from_" else [EmailAddress(bad)]
    )
    with pytest.raises(SmtpCommandError) as info:
        validate_message(message)
    error = info.value
    noun = "sender" if field == "from_" else "recipient"
    assert (error.kind, error.command, error.mailbox) == (kind, command, bad)
    assert (error.reply.code, error.reply.enhanced_status) == (501, status)
    assert error.reply.lines == (
        f"{status} Bad {noun} address syntax: {reason}".encode(),
    )
    assert not error.is_transient


@pytest.mark.parametrize("sender", [True, False])
def test_address_refusal_matches_validation(sender: bool) -> None:
    bad = "a@example.com> SIZE=1"
    reason = mailbox_problem(bad)
    assert reason is not None
    field = "from_" if sender else "to"
    msg = EmailMessage(["to@example.com"], "from@example.com")
    setattr(msg, field, EmailAddress(bad) if sender else [EmailAddress(bad)])
    with pytest.raises(SmtpCommandError) as info:
        validate_message(msg)
    direct = address_refusal(bad, reason, sender=sender)
    assert (direct.kind, direct.command, direct.mailbox, direct.reply) == (
        info.value.kind,
        info.value.command,
        info.value.mailbox,
        info.value.reply,
    )
    assert str(direct) == str(info.value)


def test_message_first_problem_wins(attachment: pathlib.Path) -> None:
    msg = EmailMessage(
        None,
        None,
        cc=[_addr("bad cc")],
        bcc=[None],  # type: ignore[list-item]
        priority=9,
        subject="a\nb",
        body_format=9,
        body="\0",
        attachments=[None],  # type: ignore[list-item]
    )
    fixes: list[tuple[str, object]] = [
        ("to", [_addr("no-at")]),
        ("to", [_addr("to@example.com")]),
        ("from_", _addr("from@example.com")),
        ("cc", [_addr("cc@example.com")]),
        ("bcc", []),
        ("priority", EmailMessagePriority.NORMAL),
        ("subject", "ok"),
        ("body_format", EmailMessageBodyFormat.TEXT),
        ("body", "ok"),
        ("attachments", [attachment]),
    ]
    reported: list[str | None] = []
    for field, good in fixes:
        with pytest.raises((ValueError, SmtpCommandError)) as info:
            validate_message(msg)
        error = info.value
        reported.append(
            error.mailbox
            if isinstance(error, SmtpCommandError)
            else getattr(error, "property_name", None)
        )
        setattr(msg, field, good)
    validate_message(msg)
    assert reported == [
        "to",
        "no-at",
        "from_",
        "bad cc",
        "bcc[0]",
        "priority",
        "subject",
        "body_format",
        "body",
        "attachments[0]",
    ]


# ---- attachments on disk ------------------------------------------------------


def _with_attachment(message: EmailMessage, path: object) -> EmailMessage:
    message.attachments = [message.attachments[0], path]  # type: ignore[index,list-item]
    return message


def test_missing_attachment_is_file_not_found(
    message: EmailMessage, tmp_path: pathlib.Path
) -> None:
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError) as info:
        validate_message(_with_attachment(message, missing))
    assert (info.value.errno, info.value.filename) == (errno.ENOENT, missing)


def test_attachment_below_a_file_is_file_not_found(
    message: EmailMessage, attachment: pathlib.Path
) -> None:
    below = str(attachment / "child.txt")
    with pytest.raises(FileNotFoundError) as info:
        validate_message(_with_attachment(message, below))
    assert (info.value.errno, info.value.filename) == (errno.ENOENT, below)


def test_directory_attachment_is_a_directory_error(
    message: EmailMessage, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(IsADirectoryError) as info:
        validate_message(_with_attachment(message, tmp_path))
    assert (info.value.errno, info.value.filename) == (errno.EISDIR, str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.timeout(10)
def test_fifo_attachment_probe_does_not_block(
    message: EmailMessage, tmp_path: pathlib.Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    validate_message(_with_attachment(message, fifo))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads files whatever their mode",
)
def test_unreadable_attachment_is_permission_error(
    message: EmailMessage, tmp_path: pathlib.Path
) -> None:
    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    with pytest.raises(PermissionError) as info:
        validate_message(_with_attachment(message, locked))
    assert info.value.filename == str(locked)


# The kernel refuses reads of write-only sysctl files even to root (its
# permission check for /proc/sys ignores CAP_DAC_OVERRIDE).
_WRITE_ONLY_SYSCTL = "/proc/sys/vm/drop_caches"


def _sysctl_unreadable() -> bool:
    try:
        with open(_WRITE_ONLY_SYSCTL, "rb"):
            return False
    except PermissionError:
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _sysctl_unreadable(), reason="needs a write-only sysctl")
def test_write_only_file_is_permission_error(message: EmailMessage) -> None:
    with pytest.raises(PermissionError) as info:
        validate_message(_with_attachment(message, _WRITE_ONLY_SYSCTL))
    assert info.value.filename == _WRITE_ONLY_SYSCTL


_CHILD = """
import json, sys
from smtpcore.models import EmailMessage
from smtpcore.validation import validate_message
try:
    validate_message(EmailMessage(["a@example.com"], "s@example.com",
                                  attachments=[sys.argv[1]]))
    print(json.dumps(None))
except OSError as exc:
    print(json.dumps([type(exc).__name__, exc.errno, exc.filename]))
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to drop the file-permission override",
)
def test_mode_000_is_permission_error_without_dac_override() -> None:
    # Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH obeys mode bits like
    # any user, so the real chmod 000 case runs here in a child process.
    with tempfile.TemporaryDirectory() as folder:
        locked = pathlib.Path(folder, "locked.txt")
        locked.write_text("secret")
        locked.chmod(0)
        child = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-all",
                sys.executable,
                "-c",
                _CHILD,
                str(locked),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if child.returncode != 0 and "setpriv" in child.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {child.stderr}")
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == ["PermissionError", errno.EACCES, str(locked)]
