"""Header and command injection (issue 6, item 3).

CR, LF or NUL in an address, a display name, the subject, an attachment's
file name, a credential or a header value, and ESMTP parameters smuggled
through an address (``a@b.example> SIZE=1``), are refused with a clear
error before any connection is opened: the server must never see a
connection.  Hypothesis generates the values.

Documented errors (DESIGN.md): an address that breaks RFC 5321 syntax is a
``SmtpCommandError`` with a synthetic 501 (5.1.7 sender, 5.1.3 recipient);
everything else is an ``ArgumentError`` naming the value.
"""

from __future__ import annotations

import email.message
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    ArgumentError,
    EmailAddress,
    EmailMessage,
    SmtpClient,
    SmtpCommandError,
    SmtpCoreError,
    SmtpErrorKind,
    UserCredentials,
    send_email,
)
from tests.hostile.fakeserver import Behaviour, FakeServer
from tests.hostile.support import RECIPIENT, SENDER, USER, details, examples

TIMEOUT = 2.0

# What an attacker appends: a line break alone, or one that starts a header
# or command of its own.
BREAKERS = [
    "\r",
    "\n",
    "\r\n",
    "\0",
    "\r\nBcc: spy@attacker.example",
    "\nX-Injected: 1",
    "\r\n.\r\nMAIL FROM:<ceo@attacker.example>",
    "\r\n\r\nforged body",
]

FIELDS = [
    "to.address",
    "to.name",
    "cc.address",
    "cc.name",
    "bcc.address",
    "bcc.name",
    "from_.address",
    "from_.name",
    "subject",
    "attachment",
]

_local = st.from_regex(r"[a-z0-9][a-z0-9.+-]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda local: ".." not in local
)
_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/"),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def plain(fake: FakeServer) -> FakeServer:
    """The fake server without STARTTLS or AUTH."""
    fake.reset(Behaviour(capabilities=()))
    return fake


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A directory for attachments with hostile names."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def attachment(folder: Path, name: str) -> str:
    """A readable file called ``name`` (NUL cannot be in a file name: the
    path is returned as is and refused by validation)."""
    path = folder / name
    if "\0" not in name:
        path.write_bytes(b"attached")
    return os.fspath(path)


def hostile_message(
    field: str, value: str, folder: Path
) -> tuple[EmailMessage, str | None]:
    """A message whose ``field`` is ``value``; returns the message and the
    address the value went into (None when it is not an address)."""
    to = EmailAddress(RECIPIENT, "Recipient")
    sender = EmailAddress(SENDER, "Sender")
    cc: list[EmailAddress] = []
    bcc: list[EmailAddress] = []
    subject, attachments = "subject", []
    where, _, part = field.partition(".")
    address: str | None = None
    if where in ("to", "cc", "bcc", "from_"):
        hostile = (
            EmailAddress(value, "Name")
            if part == "address"
            else EmailAddress(f"{where}@example.com", value)
        )
        address = value if part == "address" else None
        if where == "to":
            to = hostile
        elif where == "from_":
            sender = hostile
        else:
            (cc if where == "cc" else bcc).append(hostile)
    elif where == "subject":
        subject = value
    else:
        attachments.append(attachment(folder, f"{value}.txt"))
    return (
        EmailMessage(
            [to], sender, cc, bcc, subject=subject, body="b", attachments=attachments
        ),
        address,
    )


def expected_property(field: str) -> str:
    """The ``property_name`` a refused non-address ``field`` reports."""
    where, _, _part = field.partition(".")
    if where == "subject":
        return "subject"
    if where == "attachment":
        return "attachments[0]"
    return f"{where}.name" if where == "from_" else f"{where}[0].name"


def check_refusal(error: SmtpCoreError, field: str, address: str | None) -> None:
    """The error is the documented one for ``field`` and says what is wrong."""
    if address is not None:
        assert isinstance(error, SmtpCommandError), error
        sender = field.startswith("from_")
        assert error.kind is (
            SmtpErrorKind.SENDER_NOT_ACCEPTED
            if sender
            else SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
        )
        assert error.mailbox == address
        assert error.reply.code == 501
        assert error.reply.enhanced_status == ("5.1.7" if sender else "5.1.3")
        assert "line break" in str(error) or "NUL" in str(error)
    else:
        assert isinstance(error, ArgumentError), error
        assert error.property_name == expected_property(field)
        assert any(word in str(error) for word in ("CR", "LF", "NUL", "\\r", "\\n"))


# ------------------------------------------------------------ the model


def test_line_breaks_and_nul_in_any_field_are_refused_before_connecting(
    plain: FakeServer, folder: Path
) -> None:
    @settings(max_examples=examples(200))
    @given(
        field=st.sampled_from(FIELDS),
        breaker=st.sampled_from(BREAKERS),
        head=_text,
        tail=_text,
        local=_local,
        in_domain=st.booleans(),
    )
    def check(
        field: str, breaker: str, head: str, tail: str, local: str, in_domain: bool
    ) -> None:
        if field.endswith(".address"):
            # A valid address but for the breaker, in the local part or in
            # the domain.
            value = (
                f"{local}@exa{breaker}mple.com"
                if in_domain
                else f"{local}{breaker}@example.com"
            )
        else:
            value = head + breaker + tail
        message, address = hostile_message(field, value, folder)
        with pytest.raises(SmtpCoreError) as caught:
            send_email(message, details(plain.port), timeout=TIMEOUT)
        check_refusal(caught.value, field, address)

    check()
    assert plain.sessions_now == []


# ESMTP parameters smuggled through an address: a lenient server that ends
# the path at ">" or at white space reads the rest as MAIL/RCPT parameters.
SMUGGLED_PARAMETERS = [
    "a@example.com> SIZE=1",
    "a@example.com> NOTIFY=NEVER ORCPT=rfc822;spy@attacker.example",
    "a@example.com>AUTH=<>",
    "<a@example.com> RET=FULL",
    "a@example.com SIZE=1",
    "a@example.com\tBODY=8BITMIME",
    "a@example.com\u00a0SMTPUTF8",
    "a@example.com>\r\nRCPT TO:<spy@attacker.example>",
    "a@example.com> \x00",
]


def raw_sender(address: str) -> Callable[[SmtpClient], object]:
    return lambda client: client.send_raw(address, RECIPIENT, b"Subject: x\r\n\r\nx")


def raw_recipient(address: str) -> Callable[[SmtpClient], object]:
    return lambda client: client.send_raw(SENDER, [address], b"Subject: x\r\n\r\nx")


def model(field: str) -> Callable[[str], Callable[[SmtpClient], object]]:
    def make(address: str) -> Callable[[SmtpClient], object]:
        message, _ = hostile_message(f"{field}.address", address, Path("."))
        return lambda client: client.send(message)

    return make


ROUTES = {
    "to": (model("to"), False),
    "cc": (model("cc"), False),
    "bcc": (model("bcc"), False),
    "from": (model("from_"), True),
    "send_raw-from": (raw_sender, True),
    "send_raw-to": (raw_recipient, False),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("address", SMUGGLED_PARAMETERS)
def test_esmtp_parameters_smuggled_through_an_address_are_refused(
    plain: FakeServer, address: str, route: str
) -> None:
    make, sender = ROUTES[route]
    client = SmtpClient(details(plain.port), timeout=TIMEOUT)
    with pytest.raises(SmtpCommandError) as caught:
        make(address)(client)
    error = caught.value
    assert error.kind is (
        SmtpErrorKind.SENDER_NOT_ACCEPTED
        if sender
        else SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
    )
    assert error.mailbox == address
    assert (error.reply.code, error.reply.enhanced_status) == (
        501,
        "5.1.7" if sender else "5.1.3",
    )
    assert not client.is_connected
    assert plain.sessions_now == []


def test_generated_parameter_smuggling_is_refused(plain: FakeServer) -> None:
    keywords = st.sampled_from(["SIZE", "NOTIFY", "ORCPT", "RET", "ENVID", "AUTH"])

    @settings(max_examples=examples(200))
    @given(
        local=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
        separator=st.sampled_from(["> ", ">", " ", "\t", "\r\n", "\n", ">\r\n"]),
        keyword=keywords,
        value=st.from_regex(r"[!-~]{0,8}", fullmatch=True),
        role=st.sampled_from(["from", "to"]),
    )
    def check(local: str, separator: str, keyword: str, value: str, role: str) -> None:
        address = f"{local}@example.com{separator}{keyword}={value}"
        make, _ = ROUTES["send_raw-from" if role == "from" else "send_raw-to"]
        with pytest.raises(SmtpCommandError) as caught:
            make(address)(SmtpClient(details(plain.port), timeout=TIMEOUT))
        assert caught.value.reply.code == 501

    check()
    assert plain.sessions_now == []


# -------------------------------------------------- credentials and EHLO


@pytest.mark.parametrize("breaker", ["\r", "\n", "\0"], ids=["CR", "LF", "NUL"])
@pytest.mark.parametrize("field", ["username", "password", "domain"])
def test_line_breaks_in_credentials_are_refused_without_quoting_them(
    plain: FakeServer, field: str, breaker: str
) -> None:
    secret = "s3cret-" + breaker + "AUTH LOGIN"
    values: dict[str, str | None] = {"username": USER, "password": "pw"}
    values[field] = secret
    credentials = UserCredentials(
        values["username"], values["password"], values.get("domain")
    )
    with pytest.raises(ArgumentError) as caught:
        send_email(
            EmailMessage([RECIPIENT], SENDER, body="b"),
            details(plain.port, credentials),
            timeout=TIMEOUT,
        )
    assert caught.value.property_name == f"credentials.{field}"
    assert "s3cret" not in str(caught.value)
    assert plain.sessions_now == []


@pytest.mark.parametrize(
    "hostname", ["client\r\nMAIL FROM:<a@attacker.example>", "client\n", "a b"]
)
def test_a_broken_local_hostname_is_refused_before_connecting(
    plain: FakeServer, hostname: str
) -> None:
    with (
        pytest.raises(ArgumentError) as caught,
        SmtpClient(
            details(plain.port), timeout=TIMEOUT, local_hostname=hostname
        ) as client,
    ):
        client.send(EmailMessage([RECIPIENT], SENDER, body="b"))
    assert caught.value.property_name == "local_hostname"
    assert plain.sessions == []


# ------------------------------------------------- stdlib message headers


def stdlib_with(header: str, value: str, *, legacy: bool) -> email.message.Message:
    """A message with ``header`` set to ``value`` as is: ``set_raw`` on an
    EmailPolicy message (whose ``[]=`` refuses line breaks itself), or
    ``[]=`` on a compat32 one (which does not)."""
    mail = email.message.Message() if legacy else email.message.EmailMessage()
    mail["From"], mail["To"] = SENDER, RECIPIENT
    if legacy:
        mail[header] = value
        mail.set_payload("body\n")
    else:
        assert isinstance(mail, email.message.EmailMessage)
        mail.set_raw(header, value)
        mail.set_content("body\n")
    return mail


STDLIB_HEADERS = [
    pytest.param(
        "Subject",
        "x\r\nBcc: spy@attacker.example",
        True,
        id="compat32-embedded",
    ),
    pytest.param(
        "Subject",
        "x\rY",
        True,
        id="compat32-bare-cr",
    ),
    pytest.param(
        "X-Note",
        "x\r\n.\r\nMAIL FROM:<ceo@attacker.example>",
        True,
        id="compat32-dot-line",
    ),
    pytest.param(
        "X-A\r\nBcc",
        "spy@attacker.example",
        True,
        id="compat32-in-the-name",
    ),
    pytest.param(
        "Subject",
        "x\r\nBcc: spy@attacker.example",
        False,
        id="policy-set_raw",
    ),
    pytest.param(
        "Subject",
        "x\nX-Injected: 1",
        False,
        id="policy-set_raw-lf",
    ),
]


@pytest.mark.parametrize(("header", "value", "legacy"), STDLIB_HEADERS)
def test_header_injection_in_a_stdlib_message_is_refused_before_connecting(
    plain: FakeServer, header: str, value: str, legacy: bool
) -> None:
    client = SmtpClient(details(plain.port), timeout=TIMEOUT)
    try:
        with pytest.raises(ArgumentError):
            client.send(stdlib_with(header, value, legacy=legacy))
    finally:
        client.close()
    assert plain.sessions == []


def test_a_folded_header_in_a_stdlib_message_still_goes_out(
    plain: FakeServer,
) -> None:
    # The control for the cases above: CRLF followed by white space is a
    # fold (RFC 5322 2.2.3), not an injection, and must be sent.
    with SmtpClient(details(plain.port), timeout=TIMEOUT) as client:
        client.send(stdlib_with("X-Long", "first\r\n\tsecond", legacy=True))
    [session] = plain.sessions
    [content] = session.contents
    assert b"\r\nX-Long: first\r\n\tsecond\r\n" in content
