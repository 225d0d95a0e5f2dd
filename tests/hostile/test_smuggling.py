"""SMTP smuggling (issue 6, item 2).

A message body that holds an end-of-data lookalike (``\\n.\\n``,
``\\r.\\r``, ...) followed by SMTP commands ends early on a server that
accepts the lookalike, and the rest is read as a second, forged message.
Whatever the body, what reaches the server must hold no bare CR, no bare
LF (RFC 5321 2.3.8) and no NUL, every line starting with "." must be
stuffed (4.5.2), and the content must end at the one real ``CRLF . CRLF``
with nothing after it but the client's next command.  The message must
still arrive whole.

The server (:mod:`tests.hostile.fakeserver`) records the DATA bytes up to
the first ``CRLF . CRLF`` and every line that follows, so a smuggled second
message would show as a second content or as MAIL/RCPT/DATA lines.

NUL cannot be sent at all: a body (str or bytes) or stdlib message with
NUL is refused with ``ArgumentError`` before connecting (DESIGN.md
"Details of the contract").
"""

from __future__ import annotations

import email
import email.message
import email.policy
import itertools
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    ArgumentError,
    EmailMessage,
    SmtpClient,
    send_email,
)
from smtpcore.protocol.data import DataEncoder, encode_data
from tests.hostile.fakeserver import Behaviour, FakeServer, Session
from tests.hostile.support import RECIPIENT, SENDER, details, examples

VECTORS = {
    "lf-dot-lf": "\n.\n",
    "cr-dot-cr": "\r.\r",
    "cr-dot-lf": "\r.\n",
    "lf-dot-cr": "\n.\r",
    "lf-dot-crlf": "\n.\r\n",
    "crlf-dot-lf": "\r\n.\n",
    "cr-dot-crlf": "\r.\r\n",
    "crlf-dot-cr": "\r\n.\r",
    # The real terminator, as a control.
    "crlf-dot-crlf": "\r\n.\r\n",
}
NUL_VECTORS = {
    "crlf-nul-dot-crlf": "\r\n\x00.\r\n",
    "crlf-dot-nul-crlf": "\r\n.\x00\r\n",
}

# What a smuggling attack puts after the lookalike: a whole second
# transaction, itself ended by a real terminator.
SMUGGLED = (
    "MAIL FROM:<ceo@example.com>\r\n"
    "RCPT TO:<victim@example.com>\r\n"
    "DATA\r\n"
    "From: ceo@example.com\r\n"
    "Subject: smuggled\r\n"
    "\r\n"
    "pay the invoice\r\n"
    ".\r\n"
)

TIMEOUT = 2.0

_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LINE_END = re.compile(r"\r\n|\r|\n")


def body_with(vector: str) -> str:
    """A body that tries to end the message early with ``vector``."""
    return "Dear customer," + vector + SMUGGLED + "the rest of the real message\n"


def lf_lines(text: str) -> str:
    """``text`` with every CRLF, CR and LF as one LF (how the text must come
    back: RFC 5321 2.3.8 line ends, decoded)."""
    return _LINE_END.sub("\n", text)


def unstuffed(content: bytes) -> bytes:
    """The message as the server stores it: without the end-of-data line and
    with the dot-stuffing undone (RFC 5321 4.5.2)."""
    body = content.removesuffix(b".\r\n")
    return re.sub(rb"(?m)^\.", b"", body.replace(b"\r\n", b"\n")).replace(
        b"\n", b"\r\n"
    )


def check_wire(session: Session) -> bytes:
    """Assert that ``session`` carried exactly one clean message; return its
    content as the server stores it."""
    [content] = session.contents
    assert content.endswith(b"\r\n.\r\n")
    body = content[:-3]
    assert _BARE_CR_OR_LF.search(body) is None, "bare CR or LF on the wire"
    assert b"\0" not in body
    lines = body.split(b"\r\n")
    # Every line that starts with "." is stuffed, so "." alone (the
    # terminator) cannot occur inside.
    assert all(line.startswith(b"..") for line in lines if line.startswith(b"."))
    # After the content: only the QUIT that ends the session; a smuggled
    # MAIL/RCPT/DATA would be here.
    verbs = session.verbs()
    assert verbs[verbs.index("DATA") + 1 :] == ["QUIT"]
    assert verbs.count("MAIL") == 1
    return unstuffed(content)


def stdlib_message(body: str) -> email.message.EmailMessage:
    mail = email.message.EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = SENDER, RECIPIENT, "stdlib"
    mail.set_content(body)
    return mail


def compat32_message(body: str) -> email.message.Message:
    """A legacy message whose payload is set raw: no line-end clean-up at
    all before the client gets it."""
    mail = email.message.Message()
    mail["From"], mail["To"], mail["Subject"] = SENDER, RECIPIENT, "compat32"
    mail.set_payload(body)
    return mail


@pytest.fixture
def plain(fake: FakeServer) -> FakeServer:
    """The fake server without STARTTLS or AUTH: plain SMTP."""
    fake.reset(Behaviour(capabilities=("8BITMIME",)))
    return fake


# ------------------------------------------------------------- the vectors


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_str_body(plain: FakeServer, vector: str) -> None:
    body = body_with(vector)
    send_email(
        EmailMessage([RECIPIENT], SENDER, subject="str", body=body),
        details(plain.port),
        timeout=TIMEOUT,
    )
    [session] = plain.sessions
    stored = check_wire(session)
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert lf_lines(parsed.get_content()) == lf_lines(body)


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_bytes_via_send_raw(plain: FakeServer, vector: str) -> None:
    data = b"Subject: raw\r\n\r\n" + body_with(vector).encode()
    with SmtpClient(details(plain.port), timeout=TIMEOUT) as client:
        client.send_raw(SENDER, RECIPIENT, data)
    [session] = plain.sessions
    assert check_wire(session) == _LINE_END.sub("\r\n", data.decode()).encode()


@pytest.mark.parametrize(
    "build", [stdlib_message, compat32_message], ids=["email-policy", "compat32"]
)
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_stdlib_message_given_as_is(
    plain: FakeServer,
    vector: str,
    build: Callable[[str], email.message.Message],
) -> None:
    body = body_with(vector)
    with SmtpClient(details(plain.port), timeout=TIMEOUT) as client:
        client.send(build(body))
    [session] = plain.sessions
    parsed = email.message_from_bytes(check_wire(session), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert lf_lines(parsed.get_content()) == lf_lines(body)


@pytest.mark.parametrize("vector", NUL_VECTORS.values(), ids=NUL_VECTORS.keys())
def test_nul_is_refused_before_connecting(plain: FakeServer, vector: str) -> None:
    body = body_with(vector)
    sends: list[Callable[[SmtpClient], object]] = [
        lambda client: client.send(EmailMessage([RECIPIENT], SENDER, body=body)),
        lambda client: client.send_raw(SENDER, RECIPIENT, body.encode()),
        lambda client: client.send(stdlib_message(body)),
        lambda client: client.send(compat32_message(body)),
    ]
    client = SmtpClient(details(plain.port), timeout=TIMEOUT)
    names = []
    for send in sends:
        with pytest.raises(ArgumentError, match="NUL") as caught:
            send(client)
        names.append(caught.value.property_name)
    assert names == ["body", "data", "data", "data"]
    assert not client.is_connected
    assert plain.sessions == []


# ------------------------------------------------- random bodies, any split

_PIECES = st.sampled_from(
    ["\r", "\n", "\r\n", ".", "..", "x", "MAIL FROM:<e@example.com>", " ", "é"]
)
_bodies = st.lists(_PIECES, max_size=40).map("".join)


@settings(max_examples=examples(200))
@given(body=_bodies, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_the_encoder_is_clean_across_any_chunk_split(
    body: str, cuts: list[int]
) -> None:
    # Streaming must not weaken anything: a CR at the end of one chunk and
    # an LF or "." at the start of the next are the interesting splits.
    data = body.encode()
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    encoder = DataEncoder()
    wire = b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.finish()
    assert wire == encode_data(data)
    assert wire.endswith(b".\r\n")
    body_part = wire[:-3]
    assert _BARE_CR_OR_LF.search(body_part) is None
    assert b"\r\n.\r\n" not in b"\r\n" + body_part
    normal = _LINE_END.sub("\r\n", body).encode()
    if normal and not normal.endswith(b"\r\n"):
        normal += b"\r\n"
    assert unstuffed(wire) == normal


def test_random_bodies_arrive_whole_over_one_session(plain: FakeServer) -> None:
    with SmtpClient(details(plain.port), timeout=TIMEOUT) as client:

        @settings(max_examples=examples(60))
        @given(body=_bodies)
        def check(body: str) -> None:
            client.send(EmailMessage([RECIPIENT], SENDER, subject="r", body=body))
            stored = unstuffed(plain.sessions_now[0].contents[-1])
            parsed = email.message_from_bytes(stored, policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            expected = lf_lines(body)
            assert lf_lines(parsed.get_content()) == expected + "\n" * (
                not expected.endswith("\n")
            )

        check()
    [session] = plain.sessions
    # One connection, and as many contents as MAIL commands: nothing
    # smuggled, nothing lost.
    assert len(session.contents) == session.verbs().count("MAIL") >= 1
    for content in session.contents:
        body = content[:-3]
        assert _BARE_CR_OR_LF.search(body) is None
        assert all(
            line.startswith(b"..")
            for line in body.split(b"\r\n")
            if line.startswith(b".")
        )
