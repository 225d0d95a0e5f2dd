"""Tests for EmailMessage.from_json and BasicEmailSessionDetails.from_json.

They live beside tests/test_models.py (constructors and validation) and cover
smtpcore/_json.py, which implements both.
"""

from __future__ import annotations

import json
import pathlib
import string
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import ArgumentError, PropertyNullError
from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)
from smtpcore.validation import validate_message, validate_session_details

PASSWORD = "S3cr3t-Pa55w0rd"

# The seed's seven EmailMessage examples and its two session details, copied
# verbatim (spacing and the bare C# tokens included), hence the long lines.
SEED_MESSAGES = [
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], "Bcc": [],"Priority": null, "Subject": "Example email subject", "BodyFormat":null, "Body": "Example email body", "Attachments": []}',  # noqa: E501
    '{"To":  [{"Name":  null,  "Address":  "recipient1@outlook.com"},  {"Name":  null,  "Address":  "recipient2@outlook.com"}, {"Name": null, "Address": "recipient3@outlook.com"}], "From": {"Name": null, "Address": "sender@gmail.com"}, "Cc": [], "Bcc": [], "Priority": null, "Subject": "Example email subject", "BodyFormat": null, "Body": "Example email body", "Attachments": []}',  # noqa: E501
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [{"Name": null, "Address": "cc1@outlook.com"}, {"Name": null, "Address": "cc2@outlook.com"}], "Bcc": [], "Priority": null, "Subject": "Example email subject", "BodyFormat": null, "Body": "Example email body", "Attachments": []}',  # noqa: E501
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], "Bcc": [], "Priority": EmailMessagePriority.Urgent, "Subject": "Example email subject", "BodyFormat": null, "Body": "Example email body", "Attachments": []}',  # noqa: E501
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], "Bcc": [], "Priority": null, "Subject": "Example email subject", "BodyFormat": EmailMessageBodyFormat.Html, "Body": "<h1>Example email body</h1>", "Attachments": []}',  # noqa: E501
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], "Bcc": [], "Priority": null, "Subject": "Example email subject", "BodyFormat": null, "Body": "Example email body", "Attachments": ["C:/attachment.txt"]}',  # noqa: E501
    '{"To": [{"Name": null, "Address": "recipient@outlook.com"}], "From": {"Name": null, "Address": "sender@outlook.com"}, "Cc": [], "Bcc": [], "Priority": null, "Subject": "Example email subject", "BodyFormat": null, "Body": "Example email body", "Attachments": ["C:/attachment1.txt", "C:/attachment2.txt"]}',  # noqa: E501
]
SEED_DETAILS = [
    '{"ServerDetails": {"Host": "smtp-mail.outlook.com", "Port": 587, "UseSsl": false}, "Credentials": {"Domain": null, "Username": "sender@outlook.com", "Password": "encryptedPassword"}}',  # noqa: E501
    '{"ServerDetails": {"Host": "smtp.gmail.com", "Port": 465, "UseSsl": true}, "Credentials": {"Domain": null, "Username": "sender@gmail.com", "Password": "encryptedPassword"}}',  # noqa: E501
]


def _seed_message(
    to: list[str],
    sender: str = "sender@outlook.com",
    **kwargs: Any,
) -> EmailMessage:
    """The seed's expression ``new EmailMessage(...)`` for one example."""
    return EmailMessage(
        [EmailAddress(a) for a in to],
        EmailAddress(sender),
        subject="Example email subject",
        body=kwargs.pop("body", "Example email body"),
        **kwargs,
    )


SEED_EXPECTED = [
    _seed_message(["recipient@outlook.com"]),
    _seed_message(
        [f"recipient{i}@outlook.com" for i in (1, 2, 3)], sender="sender@gmail.com"
    ),
    _seed_message(
        ["recipient@outlook.com"],
        cc=[EmailAddress("cc1@outlook.com"), EmailAddress("cc2@outlook.com")],
    ),
    _seed_message(["recipient@outlook.com"], priority=EmailMessagePriority.URGENT),
    _seed_message(
        ["recipient@outlook.com"],
        body_format=EmailMessageBodyFormat.HTML,
        body="<h1>Example email body</h1>",
    ),
    _seed_message(["recipient@outlook.com"], attachments=["C:/attachment.txt"]),
    _seed_message(
        ["recipient@outlook.com"],
        attachments=["C:/attachment1.txt", "C:/attachment2.txt"],
    ),
]


# ---- from_json: the seed's documents ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), list(zip(SEED_MESSAGES, SEED_EXPECTED, strict=True))
)
def test_seed_messages_parse(text: str, expected: EmailMessage) -> None:
    parsed = EmailMessage.from_json(text)
    assert parsed == expected
    assert type(parsed.priority) is EmailMessagePriority
    assert type(parsed.body_format) is EmailMessageBodyFormat
    assert EmailMessage.from_json(text.encode("utf-8")) == expected
    assert EmailMessage.from_json(b"\xef\xbb\xbf" + text.encode()) == expected


@pytest.mark.parametrize(
    ("text", "host", "port", "use_ssl", "username"),
    [
        (SEED_DETAILS[0], "smtp-mail.outlook.com", 587, False, "sender@outlook.com"),
        (SEED_DETAILS[1], "smtp.gmail.com", 465, True, "sender@gmail.com"),
    ],
)
def test_seed_details_parse(
    text: str, host: str, port: int, use_ssl: bool, username: str
) -> None:
    details = BasicEmailSessionDetails.from_json(text)
    assert details == BasicEmailSessionDetails(
        ServerDetails(host, port, use_ssl),
        UserCredentials(username, "encryptedPassword"),
    )
    validate_session_details(details)


# ---- from_json: values and spellings --------------------------------------------


def _doc(**fields: str) -> str:
    """A message document with the given members written as raw JSON text."""
    base = {"To": '[{"Address": "to@example.com"}]', "From": '"from@example.com"'}
    base.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("null", EmailMessagePriority.NORMAL),
        ("0", EmailMessagePriority.NORMAL),
        ("1", EmailMessagePriority.NON_URGENT),
        ("2", EmailMessagePriority.URGENT),
        ("EmailMessagePriority.Urgent", EmailMessagePriority.URGENT),
        ("EmailMessagePriority.NonUrgent", EmailMessagePriority.NON_URGENT),
        ('"EmailMessagePriority.Urgent"', EmailMessagePriority.URGENT),
        ('"emailmessagepriority.nonurgent"', EmailMessagePriority.NON_URGENT),
        ('"Urgent"', EmailMessagePriority.URGENT),
        ('"URGENT"', EmailMessagePriority.URGENT),
        ('"NonUrgent"', EmailMessagePriority.NON_URGENT),
        ('"non_urgent"', EmailMessagePriority.NON_URGENT),
        ('"Normal"', EmailMessagePriority.NORMAL),
    ],
)
def test_priority_spellings(raw: str, expected: EmailMessagePriority) -> None:
    parsed = EmailMessage.from_json(_doc(Priority=raw))
    assert parsed.priority is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("null", EmailMessageBodyFormat.TEXT),
        ("1", EmailMessageBodyFormat.HTML),
        ("EmailMessageBodyFormat.Html", EmailMessageBodyFormat.HTML),
        ("EmailMessageBodyFormat.Text", EmailMessageBodyFormat.TEXT),
        ('"EmailMessageBodyFormat.Html"', EmailMessageBodyFormat.HTML),
        ('"html"', EmailMessageBodyFormat.HTML),
        ('"Text"', EmailMessageBodyFormat.TEXT),
    ],
)
def test_body_format_spellings(raw: str, expected: EmailMessageBodyFormat) -> None:
    parsed = EmailMessage.from_json(_doc(BodyFormat=raw))
    assert parsed.body_format is expected


@pytest.mark.parametrize(
    ("key", "raw", "kept"),
    [
        ("Priority", "7", 7),
        ("Priority", '"Highest"', "Highest"),
        ("Priority", "EmailMessagePriority.Highest", "EmailMessagePriority.Highest"),
        ("Priority", '"EmailMessageBodyFormat.Html"', "EmailMessageBodyFormat.Html"),
        ("BodyFormat", "2", 2),
        ("BodyFormat", '"Markdown"', "Markdown"),
    ],
)
def test_unknown_enum_values_are_kept_for_validation(
    key: str, raw: str, kept: object
) -> None:
    parsed = EmailMessage.from_json(_doc(**{key: raw}))
    field = "priority" if key == "Priority" else "body_format"
    assert getattr(parsed, field) == kept
    with pytest.raises(ArgumentError) as info:
        validate_message(parsed)
    assert info.value.property_name == field


def test_bare_tokens_inside_strings_are_left_alone() -> None:
    tricky = 'say \\"EmailMessagePriority.Urgent\\" EmailMessageBodyFormat.Html'
    parsed = EmailMessage.from_json(
        _doc(
            Subject=f'"{tricky}"',
            Body='"EmailMessagePriority.Urgent"',
            Priority="EmailMessagePriority.NonUrgent",
        )
    )
    assert (
        parsed.subject
        == 'say "EmailMessagePriority.Urgent" EmailMessageBodyFormat.Html'
    )
    assert parsed.body == "EmailMessagePriority.Urgent"
    assert parsed.priority is EmailMessagePriority.NON_URGENT


def test_keys_match_case_insensitively_and_in_python_spelling() -> None:
    text = (
        '{"to": [{"address": "to@example.com", "NAME": "T"}],'
        ' "FROM": {"Address": "from@example.com"}, "body_format": 1,'
        ' "bcc": [], "PRIORITY": "urgent", "subject": "s", "BODY": "b",'
        ' "attachments": null, "cc": null}'
    )
    assert EmailMessage.from_json(text) == EmailMessage(
        [EmailAddress("to@example.com", "T")],
        EmailAddress("from@example.com"),
        priority=EmailMessagePriority.URGENT,
        subject="s",
        body_format=EmailMessageBodyFormat.HTML,
        body="b",
    )
    assert EmailMessage.from_json('{"from_": "f@example.com"}').from_ == EmailAddress(
        "f@example.com"
    )


def test_missing_keys_mean_none() -> None:
    parsed = EmailMessage.from_json("{}")
    assert (parsed.to, parsed.from_, parsed.subject, parsed.body) == (
        None,
        None,
        None,
        None,
    )
    assert (parsed.cc, parsed.bcc, parsed.attachments) == ([], [], [])
    with pytest.raises(PropertyNullError) as info:
        validate_message(parsed)
    assert info.value.property_name == "to"
    no_from = EmailMessage.from_json('{"To": [{"Address": "a@example.com"}]}')
    with pytest.raises(PropertyNullError) as info:
        validate_message(no_from)
    assert info.value.property_name == "from_"
    no_address = EmailMessage.from_json('{"To": [{"Name": "A"}]}')
    assert no_address.to == [EmailAddress(None, "A")]


def test_from_json_never_touches_attachment_files(tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "missing.bin")
    parsed = EmailMessage.from_json(
        {"To": ["a@example.com"], "From": "s@example.com", "Attachments": [missing]}
    )
    assert parsed.attachments == [missing]
    with pytest.raises(FileNotFoundError):
        validate_message(parsed)


def test_mapping_input_and_python_values() -> None:
    mapping = types.MappingProxyType(
        {
            "To": [EmailAddress("a@example.com"), {"Address": "b@example.com"}],
            "From": EmailAddress("s@example.com"),
            "Priority": EmailMessagePriority.URGENT,
            "Attachments": [pathlib.Path("x.txt")],
        }
    )
    parsed = EmailMessage.from_json(mapping)
    assert parsed.to == [EmailAddress("a@example.com"), EmailAddress("b@example.com")]
    assert parsed.priority is EmailMessagePriority.URGENT
    assert parsed.attachments == [pathlib.Path("x.txt")]


MESSAGE_JSON_ERRORS: list[Any] = [
    ("not json", "message"),
    ("{", "message"),
    ('{"To": []} trailing', "message"),
    ('{"To": [], }', "message"),
    ('{"Priority": Priority.Urgent}', "message"),
    ('{"Priority": EmailMessagePriority.Urgent', "message"),
    ("[]", "message"),
    ("null", "message"),
    ('"text"', "message"),
    ("5", "message"),
    ("", "message"),
    pytest.param("[" * 200_000, "message", id="deeply-nested"),
    (b"\xff\xfe{}", "message"),
    (5, "message"),
    (["To"], "message"),
    ('{"Bbc": []}', "bbc"),
    ('{"BodyFormatt": null}', "body_formatt"),
    ('{"To": [], "to": []}', "to"),
    ('{"Body": "a", "Body": "b"}', "body"),
    ('{"To": "a@example.com"}', "to"),
    ('{"To": 5}', "to"),
    ('{"To": {"Address": "a@example.com"}}', "to"),
    ('{"To": [5]}', "to[0]"),
    ('{"To": [[]]}', "to[0]"),
    ('{"To": [{"Adress": "a@example.com"}]}', "to[0].adress"),
    ('{"To": [{"Address": 5}]}', "to[0].address"),
    ('{"To": [{"Name": ["N"]}]}', "to[0].name"),
    ('{"To": [{"Name": "A", "name": "B"}]}', "to[0].name"),
    ('{"From": 5}', "from_"),
    ('{"From": []}', "from_"),
    ('{"From": {"Address": true}}', "from_.address"),
    ('{"Cc": "c@example.com"}', "cc"),
    ('{"Bcc": [true]}', "bcc[0]"),
    ('{"Priority": true}', "priority"),
    ('{"Priority": 1.5}', "priority"),
    ('{"Priority": []}', "priority"),
    ('{"Subject": 5}', "subject"),
    ('{"BodyFormat": {}}', "body_format"),
    ('{"Body": false}', "body"),
    ('{"Attachments": "C:/a.txt"}', "attachments"),
    ('{"Attachments": [5]}', "attachments[0]"),
    ({1: "x"}, "message"),
]


@pytest.mark.parametrize(("doc", "prop"), MESSAGE_JSON_ERRORS)
def test_message_json_structure_errors(doc: object, prop: str) -> None:
    with pytest.raises(ArgumentError) as info:
        EmailMessage.from_json(doc)  # type: ignore[arg-type]
    assert info.value.property_name == prop


DETAILS_JSON_ERRORS: list[tuple[str, str]] = [
    ("nope", "session_details"),
    ("[]", "session_details"),
    ('{"Server": {}}', "server"),
    ('{"ServerDetails": "smtp.example.com"}', "server_details"),
    ('{"ServerDetails": {"Hots": "h"}}', "server_details.hots"),
    ('{"ServerDetails": {"Host": 5}}', "server_details.host"),
    ('{"ServerDetails": {"Port": "587"}}', "server_details.port"),
    ('{"ServerDetails": {"Port": true}}', "server_details.port"),
    ('{"ServerDetails": {"Port": 587.0}}', "server_details.port"),
    ('{"ServerDetails": {"UseSsl": "false"}}', "server_details.use_ssl"),
    ('{"ServerDetails": {"UseSsl": 0}}', "server_details.use_ssl"),
    ('{"Credentials": []}', "credentials"),
    ('{"Credentials": {"Username": 5}}', "credentials.username"),
    ('{"Credentials": {"Domain": {}}}', "credentials.domain"),
    ('{"Credentials": {"Password": 12345}}', "credentials.password"),
    (f'{{"Credentials": {{"Pasword": "{PASSWORD}"}}}}', "credentials.pasword"),
    (f'{{"Credentials": {{"Password": ["{PASSWORD}"]}}}}', "credentials.password"),
    (
        f'{{"Credentials": {{"Password": "{PASSWORD}", "password": "x"}}}}',
        "credentials.password",
    ),
    (f'{{"Credentials": {{"Password": "{PASSWORD}" "x"}}}}', "session_details"),
    (f'{{"Credentials": {{"Password": "{PASSWORD}"}}, "X": 1}}', "x"),
]


@pytest.mark.parametrize(("doc", "prop"), DETAILS_JSON_ERRORS)
def test_details_json_structure_errors_never_show_the_password(
    doc: str, prop: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        BasicEmailSessionDetails.from_json(doc)
    assert info.value.property_name == prop
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)


def test_details_missing_and_null_members() -> None:
    defaults = BasicEmailSessionDetails.from_json(
        '{"serverdetails": {"host": "smtp.example.com"}}'
    )
    assert defaults == BasicEmailSessionDetails(ServerDetails("smtp.example.com"))
    validate_session_details(defaults)

    nulls = BasicEmailSessionDetails.from_json(
        '{"ServerDetails": {"Host": "h", "Port": null, "UseSsl": null},'
        ' "Credentials": null}'
    )
    assert nulls.server_details == ServerDetails("h", None, None)  # type: ignore[arg-type]
    assert nulls.credentials is None
    with pytest.raises(ArgumentError) as info:
        validate_session_details(nulls)
    assert info.value.property_name == "server_details.port"

    empty = BasicEmailSessionDetails.from_json(b"{}")
    assert empty == BasicEmailSessionDetails(None)
    with pytest.raises(PropertyNullError) as null:
        validate_session_details(empty)
    assert null.value.property_name == "server_details"

    no_password = BasicEmailSessionDetails.from_json(
        {"ServerDetails": {"Host": "h"}, "Credentials": {"Username": "u"}}
    )
    with pytest.raises(PropertyNullError) as null:
        validate_session_details(no_password)
    assert null.value.property_name == "credentials.password"


def test_details_from_json_keeps_password_out_of_repr() -> None:
    details = BasicEmailSessionDetails.from_json(
        {
            "ServerDetails": {"Host": "h", "Port": 25, "UseSsl": False},
            "Credentials": {"Username": "u", "Password": PASSWORD},
        }
    )
    assert details.credentials is not None
    assert details.credentials.password == PASSWORD
    assert PASSWORD not in repr(details)


# ---- round trip (hypothesis) ---------------------------------------------------

_atom = st.text(
    alphabet=string.ascii_lowercase + string.digits + "+_-", min_size=1, max_size=8
)
# A dot-string local part (RFC 5321 4.1.2): atoms joined by single dots.
_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_domain = st.builds(
    "{}.{}".format,
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    st.sampled_from(["com", "org", "example"]),
)
_mailbox = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
# Text that is awkward for the bare-token rewrite and for JSON escaping.
_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda a, b: f'{a}EmailMessagePriority.Urgent"{b}',
        st.text(max_size=10),
        st.text(max_size=10),
    ),
)
_address = st.builds(EmailAddress, _mailbox, st.none() | _text)
_addresses = st.lists(_address, max_size=3)


@st.composite
def _messages(draw: st.DrawFn) -> EmailMessage:
    return EmailMessage(
        draw(st.lists(_address, min_size=1, max_size=3)),
        draw(_address),
        cc=draw(_addresses),
        bcc=draw(_addresses),
        priority=draw(st.sampled_from(EmailMessagePriority)),
        subject=draw(st.none() | _text),
        body_format=draw(st.sampled_from(EmailMessageBodyFormat)),
        body=draw(st.none() | _text),
        attachments=draw(st.lists(st.text(min_size=1, max_size=20), max_size=2)),
    )


def _enum_json(
    member: EmailMessagePriority | EmailMessageBodyFormat, style: int
) -> Any:
    """One of the spellings the seed's documents use for an enum value."""
    seed_name = "".join(part.capitalize() for part in member.name.split("_"))
    return [
        int(member),
        f"{type(member).__name__}.{seed_name}",
        seed_name,
        member.name.lower(),
    ][style]


def _to_seed_dict(msg: EmailMessage, style: int) -> dict[str, Any]:
    def address(a: EmailAddress) -> dict[str, Any]:
        return {"Name": a.name, "Address": a.address}

    assert msg.to is not None and msg.from_ is not None
    assert msg.cc is not None and msg.bcc is not None
    assert msg.priority is not None and msg.body_format is not None
    return {
        "To": [address(a) for a in msg.to],
        "From": address(msg.from_),
        "Cc": [address(a) for a in msg.cc],
        "Bcc": [address(a) for a in msg.bcc],
        "Priority": _enum_json(msg.priority, style),
        "Subject": msg.subject,
        "BodyFormat": _enum_json(msg.body_format, style),
        "Body": msg.body,
        "Attachments": list(msg.attachments or []),
    }


@settings(max_examples=100, deadline=None)
@given(_messages(), st.integers(0, 3))
def test_round_trip_through_seed_json(msg: EmailMessage, style: int) -> None:
    doc = _to_seed_dict(msg, style)
    assert EmailMessage.from_json(doc) == msg
    text = json.dumps(doc, ensure_ascii=style % 2 == 0)
    assert EmailMessage.from_json(text) == msg
    assert EmailMessage.from_json(text.encode("utf-8")) == msg
    if style == 1:
        # The seed's own form: the enum values as bare tokens, not strings.
        for key in ("Priority", "BodyFormat"):
            quoted = f'"{key}": {json.dumps(doc[key])}'
            assert quoted in text
            text = text.replace(quoted, f'"{key}": {doc[key]}', 1)
        assert EmailMessage.from_json(text) == msg


def _has_any(text: str | None, chars: str) -> bool:
    return any(ch in (text or "") for ch in chars)


@settings(max_examples=60, deadline=None)
@given(_messages())
def test_generated_messages_validate(msg: EmailMessage) -> None:
    # The generated addresses are valid mailboxes and there are no
    # attachment files, so only a control character in a display name, the
    # subject or the body can make validation fail, and then it must.
    msg.attachments = []
    assert msg.to is not None and msg.cc is not None and msg.bcc is not None
    names = [a.name for a in [*msg.to, msg.from_, *msg.cc, *msg.bcc] if a is not None]
    if (
        any(_has_any(name, "\r\n\0") for name in names)
        or _has_any(msg.subject, "\r\n\0")
        or _has_any(msg.body, "\0")
    ):
        with pytest.raises(ArgumentError):
            validate_message(msg)
    else:
        validate_message(msg)
