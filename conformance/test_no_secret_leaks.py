"""Errors never leak credentials (DESIGN.md: "Passwords and tokens never
appear in logs, transcripts, repr() or exception messages").

Every failure path that involves credentials is provoked with a password
made for the test, with the ``smtpcore.transcript`` logger and the root
logger captured at DEBUG.  Then the password, and every base64 form it takes
on the wire (PLAIN's ``\\0user\\0password``, LOGIN's password line), must be
absent from the exception (``str``, ``repr``, its attributes, its whole
``__cause__``/``__context__`` chain and traceback), from every log record,
and from ``repr`` of the session details, the credentials and the client.

Each check is only worth something if the secret was there to leak: where
the password went on the wire, the test first finds it in what the server
received, with the same detector.
"""

from __future__ import annotations

import base64
import logging
import secrets
import ssl
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import trustme

from conftest import USER, Endpoint
from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    EmailSessionError,
    EmailSessionReason,
    ServerDetails,
    SmtpClient,
    SmtpCoreError,
    SmtpProtocolError,
    UserCredentials,
    send_email,
)
from smtpcore.testserver import LocalSmtpServer
from tests.rawserver import RawConnection, RawServer, Script

RECIPIENT = "recipient@outlook.com"
# Generous: only the timeout cases wait for a reply that never comes.
TIMEOUT = 5.0
# The timeout cases wait this long for the server's AUTH reply.
AUTH_TIMEOUT = 0.5
TRANSCRIPT = "smtpcore.transcript"

Route = Literal["send_email", "SmtpClient"]
ROUTES: list[Route] = ["send_email", "SmtpClient"]
Mechanism = Literal["PLAIN", "LOGIN"]
MECHANISMS: list[Mechanism] = ["PLAIN", "LOGIN"]


def new_password() -> str:
    """A password nobody else uses, so finding it anywhere means a leak."""
    return "pw-" + secrets.token_urlsafe(24)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_forms(password: str, user: str = USER) -> list[str]:
    """The password in clear and every base64 form it takes on the wire.

    PLAIN sends ``base64(authzid \\0 user \\0 password)`` (RFC 4616), LOGIN
    sends ``base64(password)`` on a line of its own.  Since base64 encodes
    3-octet groups, the password shows inside any longer payload as the
    encoding of its whole groups from one of three alignments: those three
    forms catch it whatever precedes it.
    """
    raw = password.encode("utf-8")
    forms = [
        password,
        b64(raw),
        b64(b"\0" + user.encode("utf-8") + b"\0" + raw),
        b64(user.encode("utf-8") + b"\0" + user.encode("utf-8") + b"\0" + raw),
    ]
    for skip in range(3):
        whole = raw[skip:]
        forms.append(b64(whole[: len(whole) - len(whole) % 3]))
    return forms


def found(password: str, texts: list[str]) -> list[str]:
    """The forms of ``password`` that occur in ``texts``."""
    return [form for form in secret_forms(password) if any(form in t for t in texts)]


def test_detector_finds_every_payload_the_wire_can_carry() -> None:
    # The detector must be able to fail: whatever the user name and authzid
    # (which shift the password's alignment), it finds the payloads.
    password = new_password()
    for prefix in ("", "u", "us", USER, "authz\0" + USER):
        plain = b64(f"{prefix}\0{password}".encode())
        assert found(password, [f"AUTH PLAIN {plain}"])
    assert found(password, [b64(password.encode())])
    assert found(password, [repr(password.encode())])
    assert found(new_password(), [b64(password.encode())]) == []


# --------------------------------------------------------------- the checks


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and everything reachable through __cause__/__context__."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__]
    return chain


def exception_texts(error: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(error))]
    for exc in exception_chain(error):
        texts += [str(exc), repr(exc), repr(exc.args)]
        # Structured fields (reply, detail, host...) are shown by loggers and
        # error reporters that serialise exceptions.
        texts.append(repr(getattr(exc, "__dict__", {})))
    return texts


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [caplog.text]
    for record in caplog.records:
        # A structured handler (JSON logs) may serialise the arguments
        # rather than the formatted message.
        texts += [record.getMessage(), repr(record.msg), repr(record.args)]
    return texts


def assert_never_shown(
    password: str,
    caplog: pytest.LogCaptureFixture,
    details: BasicEmailSessionDetails,
    *shown: object,
    error: BaseException | None = None,
) -> None:
    """Assert that no form of ``password`` is in the error, the logs, or the
    ``repr``/``str`` of ``details``, its credentials and ``shown``."""
    # Proof that logging was captured at all: an empty log leaks nothing.
    assert any(r.name == TRANSCRIPT for r in caplog.records), "no transcript"
    texts = log_texts(caplog)
    texts += [repr(details), str(details), repr(details.credentials)]
    texts += [text for item in shown for text in (repr(item), str(item))]
    if error is not None:
        texts += exception_texts(error)
    assert found(password, texts) == []


def transcript(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TRANSCRIPT]


def assert_auth_redacted(
    lines: list[str], mechanism: Mechanism, responses: int
) -> None:
    """Every AUTH in the transcript reads ``AUTH PLAIN <redacted>``, or
    ``AUTH LOGIN`` followed by ``responses`` lines of ``<redacted>``."""
    sent = [line for line in lines if line.startswith("C: ")]
    starts = [i for i, line in enumerate(sent) if line.startswith("C: AUTH")]
    assert starts, "no AUTH in the transcript"
    expected = "C: AUTH PLAIN <redacted>" if mechanism == "PLAIN" else "C: AUTH LOGIN"
    for start in starts:
        assert sent[start] == expected
        answers = sent[start + 1 : start + 1 + responses]
        assert answers == ["C: <redacted>"] * responses


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Both the root logger and the transcript captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT)
    return caplog


def message() -> EmailMessage:
    return EmailMessage([RECIPIENT], USER, subject="secrets", body="no secrets here")


def provoke(
    route: Route, details: BasicEmailSessionDetails, **options: Any
) -> tuple[SmtpCoreError, SmtpClient | None]:
    """Send through ``route`` and return the error, with the client used
    (None for send_email, which keeps its client out of sight)."""
    client = SmtpClient(details, **options) if route == "SmtpClient" else None
    with pytest.raises(SmtpCoreError) as caught:
        if client is None:
            send_email(message(), details, **options)
        else:
            client.send(message())
    return caught.value, client


# ------------------------------------------------ aiosmtpd: real AUTH paths


def test_successful_session(
    endpoint: Endpoint, capture: pytest.LogCaptureFixture
) -> None:
    details = endpoint.details
    options: dict[str, Any] = dict(endpoint.options)
    first = send_email(message(), details, close_session=False, **options)
    # Shown while the session is open and holds the credentials.
    open_details = repr(details)
    details.close()
    with SmtpClient(details, **options) as client:
        second = client.send(message())
        open_client = repr(client)
    auths = [c.line for session in endpoint.server.sessions for c in session]
    auths = [line for line in auths if line.upper().startswith("AUTH")]
    assert len(auths) == 2, auths
    for auth in auths:
        assert found(endpoint.password, [auth]), "the server got no password"
    assert_auth_redacted(transcript(capture), "PLAIN", 0)
    assert_never_shown(
        endpoint.password,
        capture,
        details,
        client,
        open_details,
        open_client,
        first,
        second,
    )


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_password(
    submission: Endpoint, capture: pytest.LogCaptureFixture, route: Route
) -> None:
    wrong = new_password()
    details = BasicEmailSessionDetails(
        submission.details.server_details, UserCredentials(USER, wrong)
    )
    error, client = provoke(route, details, **dict(submission.options))
    assert isinstance(error, EmailSessionError)
    assert error.reason is EmailSessionReason.INVALID_USERNAME_OR_PASSWORD
    assert error.reply is not None and error.reply.code == 535
    lines = [c.line for c in submission.server.sessions[0]]
    assert found(wrong, lines), "the server got no password to leak"
    assert_auth_redacted(transcript(capture), "PLAIN", 0)
    assert_never_shown(wrong, capture, details, client, error=error)
    # Nor the right one, which the test server holds.
    assert_never_shown(submission.password, capture, details, client, error=error)


@pytest.fixture(scope="module")
def _clear_server(password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", users={USER: password}) as server:
        yield server


@pytest.mark.parametrize("route", ROUTES)
def test_starttls_not_available_with_credentials(
    _clear_server: LocalSmtpServer,
    capture: pytest.LogCaptureFixture,
    route: Route,
    password: str,
) -> None:
    server = _clear_server
    server.reset()
    details = BasicEmailSessionDetails(
        ServerDetails(server.host, server.port, False), UserCredentials(USER, password)
    )
    error, client = provoke(route, details, timeout=TIMEOUT)
    assert isinstance(error, EmailSessionError)
    assert error.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    # The server offered AUTH in clear; nothing of it was taken up.
    [session] = server.sessions
    assert not any(c.line.upper().startswith("AUTH") for c in session)
    assert_never_shown(password, capture, details, client, error=error)


@pytest.mark.parametrize("route", ROUTES)
def test_insecure_auth_when_allowed_is_still_redacted(
    _clear_server: LocalSmtpServer,
    capture: pytest.LogCaptureFixture,
    route: Route,
    password: str,
) -> None:
    # allow_insecure_auth=True puts the password on the wire in clear; it
    # must still stay out of everything the user sees.
    server = _clear_server
    server.reset()
    details = BasicEmailSessionDetails(
        ServerDetails(server.host, server.port, False), UserCredentials(USER, password)
    )
    options: dict[str, Any] = {"timeout": TIMEOUT, "allow_insecure_auth": True}
    client: SmtpClient | None = None
    if route == "send_email":
        result = send_email(message(), details, **options)
    else:
        with SmtpClient(details, **options) as client:
            result = client.send(message())
    [session] = server.sessions
    assert found(password, [c.line for c in session])
    assert_auth_redacted(transcript(capture), "PLAIN", 0)
    assert_never_shown(password, capture, details, client, result)


# ------------------------------------------------ raw servers: the odd paths


@dataclass(frozen=True, slots=True)
class RawTls:
    """Contexts for a raw server that runs implicit TLS (so the client sends
    credentials without being told it may do so in clear)."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def raw_tls(ca: trustme.CA) -> RawTls:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return RawTls(server, client)


# What the raw server does once the password has reached it; True to go on
# serving the session.
Finish = Callable[[RawConnection], bool]


def reply(line: bytes) -> Finish:
    def finish(conn: RawConnection) -> bool:
        conn.send(line + b"\r\n")
        return True

    return finish


def hang_up(conn: RawConnection) -> bool:
    return False


def fall_silent(conn: RawConnection) -> bool:
    conn.hold()
    return False


def challenge(text: bytes) -> Finish:
    """Send one more 334 challenge; the client must cancel with ``*``
    (RFC 4954 4), which is answered with 501."""

    def finish(conn: RawConnection) -> bool:
        conn.send(b"334 " + text + b"\r\n")
        if conn.read_line() != b"*":
            return False
        conn.send(b"501 5.7.0 Authentication cancelled\r\n")
        return True

    return finish


def auth_script(offer: bytes, finish: Finish) -> Script:
    """A minimal SMTP server that offers ``AUTH <offer>``, takes PLAIN's
    initial response or LOGIN's two answers, then runs ``finish``."""

    def script(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")
        while line := conn.read_line():
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb == b"EHLO":
                conn.send(b"250-raw.test\r\n250 AUTH " + offer + b"\r\n")
            elif verb == b"AUTH":
                if line.upper() == b"AUTH LOGIN":
                    # draft-murchison-sasl-login: "Username:", "Password:".
                    for prompt in (b"Username:", b"Password:"):
                        conn.send(b"334 " + base64.b64encode(prompt) + b"\r\n")
                        if not conn.read_line():
                            return
                if not finish(conn):
                    return
            elif verb == b"DATA":
                conn.send(b"354 go ahead\r\n")
                conn.read_until(b"\r\n.\r\n")
                conn.send(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.send(b"221 bye\r\n")
                return
            else:
                conn.send(b"250 OK\r\n")

    return script


def raw_details(server: RawServer, password: str) -> BasicEmailSessionDetails:
    return BasicEmailSessionDetails(
        ServerDetails(server.host, server.port, True), UserCredentials(USER, password)
    )


def received(server: RawServer) -> list[str]:
    return [
        line.decode("ascii", "replace") for c in server.connections for line in c.lines
    ]


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure path inside the AUTH exchange, after the password was sent."""

    finish: Finish
    error: type[SmtpCoreError]
    reason: EmailSessionReason | None
    timeout: float = TIMEOUT


FAILURES = {
    "535": Failure(
        reply(b"535 5.7.8 Authentication credentials invalid"),
        EmailSessionError,
        EmailSessionReason.INVALID_USERNAME_OR_PASSWORD,
    ),
    "454": Failure(
        reply(b"454 4.7.0 Temporary authentication failure"),
        EmailSessionError,
        EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE,
    ),
    "connection-lost": Failure(
        hang_up, EmailSessionError, EmailSessionReason.CONNECTION_LOST
    ),
    "timeout": Failure(
        fall_silent,
        EmailSessionError,
        EmailSessionReason.CONNECTION_TIMEOUT,
        AUTH_TIMEOUT,
    ),
    "garbage-challenge": Failure(
        challenge(b"%%% not base64 %%%"), SmtpProtocolError, None
    ),
    # Well-formed base64, but PLAIN expects no challenge after its initial
    # response and LOGIN none after the password.
    "extra-challenge": Failure(
        challenge(base64.b64encode(b"and again?")), SmtpProtocolError, None
    ),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_inside_auth(
    raw_tls: RawTls,
    capture: pytest.LogCaptureFixture,
    case: str,
    mechanism: Mechanism,
    route: Route,
) -> None:
    failure = FAILURES[case]
    password = new_password()
    with RawServer(
        auth_script(mechanism.encode(), failure.finish), ssl_context=raw_tls.server
    ) as server:
        details = raw_details(server, password)
        error, client = provoke(
            route, details, tls_context=raw_tls.client, timeout=failure.timeout
        )
    assert type(error) is failure.error
    if failure.reason is not None:
        assert isinstance(error, EmailSessionError)
        assert error.reason is failure.reason
    assert found(password, received(server)), "the server got no password to leak"
    # PLAIN sends the password with AUTH; LOGIN answers two prompts.
    responses = 2 if mechanism == "LOGIN" else 0
    assert_auth_redacted(transcript(capture), mechanism, responses)
    assert_never_shown(password, capture, details, client, error=error)


@pytest.mark.parametrize("route", ROUTES)
def test_no_common_mechanism(
    raw_tls: RawTls, capture: pytest.LogCaptureFixture, route: Route
) -> None:
    password = new_password()
    script = auth_script(b"GSSAPI KERBEROS_V4", reply(b"535 5.7.8 unexpected"))
    with RawServer(script, ssl_context=raw_tls.server) as server:
        details = raw_details(server, password)
        error, client = provoke(
            route, details, tls_context=raw_tls.client, timeout=TIMEOUT
        )
    assert isinstance(error, EmailSessionError)
    assert error.reason is EmailSessionReason.NO_COMMON_AUTH_MECHANISM
    assert not any(line.upper().startswith("AUTH") for line in received(server))
    assert_never_shown(password, capture, details, client, error=error)


@pytest.mark.parametrize("route", ROUTES)
def test_successful_login_session(
    raw_tls: RawTls, capture: pytest.LogCaptureFixture, route: Route
) -> None:
    password = new_password()
    script = auth_script(b"LOGIN", reply(b"235 2.7.0 Authentication successful"))
    client: SmtpClient | None = None
    options: dict[str, Any] = {"tls_context": raw_tls.client, "timeout": TIMEOUT}
    with RawServer(script, ssl_context=raw_tls.server) as server:
        details = raw_details(server, password)
        if route == "send_email":
            result = send_email(message(), details, **options)
        else:
            with SmtpClient(details, **options) as client:
                result = client.send(message())
    assert result.reply.code == 250
    assert b64(password.encode()) in received(server)
    assert_auth_redacted(transcript(capture), "LOGIN", 2)
    assert_never_shown(password, capture, details, client, result)
