"""TLS and connection failures, provoked for real on loopback, and how
:mod:`smtpcore.tls` classifies them into :class:`EmailSessionReason`; and
the STARTTLS policy, checked against what the server read in clear.

Each failure test checks the reason, the seed platform's ``error_code`` and
the low-level cause chained as ``__cause__``, which is what a caller logs.
"""

from __future__ import annotations

import datetime
import errno
import socket
import ssl
from collections.abc import Iterator
from typing import Any

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
    SmtpProtocolError,
    UserCredentials,
)
from smtpcore.testserver import LocalSmtpServer, TlsMode
from smtpcore.tls import Phase, classify, default_context
from tests.rawserver import RawConnection, RawServer

TIMEOUT = 2.0


def connect_error(
    host: str,
    port: int,
    use_ssl: bool,
    context: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT,
) -> EmailSessionError:
    """Connect with a fresh client and return the session error it raised."""
    client = SmtpClient(
        BasicEmailSessionDetails(ServerDetails(host, port, use_ssl)),
        tls_context=context,
        timeout=timeout,
    )
    with pytest.raises(EmailSessionError) as caught:
        client.connect()
    assert not client.is_connected
    return caught.value


def message(subject: str) -> EmailMessage:
    """A small text message."""
    return EmailMessage(
        ["recipient@example.com"], "sender@example.com", subject=subject
    )


def verbs(server: LocalSmtpServer) -> list[str]:
    """The command verbs of the server's only recorded session."""
    [session] = server.sessions
    return [c.line.split(" ", 1)[0].upper() for c in session]


# ------------------------------------------------------- verification


def test_default_context_verifies() -> None:
    context = default_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_certificate_of_an_unknown_ca_is_refused_by_default(
    endpoint: Endpoint,
) -> None:
    server = endpoint.server
    use_ssl = server.tls == "implicit"
    # No tls_context: the system CAs, which do not include the test CA.
    error = connect_error(server.host, server.port, use_ssl)
    assert error.reason is EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE
    assert error.error_code == 201
    cause = error.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert cause.verify_code == 20  # unable to get local issuer certificate
    # The second connection is the unverified look at the certificate that
    # tells an anti-virus product's root from any other untrusted one.
    assert server.connections == 2
    session, diagnosis = server.sessions
    # Over STARTTLS nothing but the upgrade was said in clear, and nothing
    # at all after the refused handshake; the diagnosis sends no AUTH or MAIL.
    assert [c.line.split(" ", 1)[0].upper() for c in session] == (
        [] if use_ssl else ["EHLO", "STARTTLS"]
    )
    assert not {c.line.split(" ", 1)[0].upper() for c in diagnosis} & {"AUTH", "MAIL"}


@pytest.fixture(scope="module", params=["starttls", "implicit"])
def localhost_only(
    request: pytest.FixtureRequest, ca: trustme.CA
) -> Iterator[LocalSmtpServer]:
    """A server whose certificate names "localhost" but not 127.0.0.1."""
    tls: TlsMode = request.param
    with LocalSmtpServer(tls=tls, ca=ca, cert_names=("localhost",)) as server:
        yield server


def test_ip_address_missing_from_the_certificate(
    localhost_only: LocalSmtpServer,
) -> None:
    server = localhost_only
    server.reset()
    error = connect_error(
        "127.0.0.1", server.port, server.tls == "implicit", server.client_context()
    )
    assert error.reason is EmailSessionReason.INVALID_SSL_CERTIFICATE
    assert error.error_code == 201
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 64  # IP address mismatch


def test_the_name_in_the_certificate_is_accepted(
    localhost_only: LocalSmtpServer,
) -> None:
    # The control for the test above: same server, same CA, right name.
    server = localhost_only
    server.reset()
    details = BasicEmailSessionDetails(
        ServerDetails("localhost", server.port, server.tls == "implicit")
    )
    context = server.client_context()
    with SmtpClient(details, tls_context=context, timeout=TIMEOUT) as client:
        assert client.noop().code == 250


def test_host_name_missing_from_the_certificate(ca: trustme.CA) -> None:
    with LocalSmtpServer(tls="implicit", ca=ca, cert_names=("127.0.0.1",)) as server:
        error = connect_error("localhost", server.port, True, server.client_context())
    assert error.reason is EmailSessionReason.INVALID_SSL_CERTIFICATE
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 62  # host name mismatch


def _greet(conn: RawConnection) -> None:
    conn.send(b"220 raw.test ESMTP\r\n")
    conn.hold()


@pytest.mark.parametrize(
    ("shift", "verify_code", "words"),
    [
        (datetime.timedelta(days=-30), 10, "expired"),
        (datetime.timedelta(days=30), 9, "not valid yet"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_certificate_outside_its_validity_period(
    ca: trustme.CA, shift: datetime.timedelta, verify_code: int, words: str
) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = ca.issue_cert(
        "127.0.0.1",
        not_before=now + shift - datetime.timedelta(days=1),
        not_after=now + shift + datetime.timedelta(days=1),
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with RawServer(_greet, ssl_context=server_context) as server:
        error = connect_error("127.0.0.1", server.port, True, client_context)
        # The handshake failed, so the script never ran.
        assert server.accepted == 1 and server.connections == []
    assert error.reason is EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE
    assert error.error_code == 201
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == verify_code
    assert words in str(error)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_ipv6_loopback(tls: TlsMode, ca: trustme.CA, password: str) -> None:
    with LocalSmtpServer(
        tls=tls,
        host="::1",
        cert_names=("localhost", "::1"),
        users={USER: password},
        ca=ca,
    ) as server:
        details = BasicEmailSessionDetails(
            ServerDetails("::1", server.port, tls == "implicit"),
            UserCredentials(USER, password),
        )
        context = server.client_context()
        with SmtpClient(details, tls_context=context, timeout=TIMEOUT) as client:
            client.send(message("over IPv6"))
        [received] = server.messages
        [session] = server.sessions
    assert received.tls and received.auth_user == USER
    # RFC 5321 4.1.3: an IPv6 address literal carries the "IPv6:" tag.
    assert session[0].line == "EHLO [IPv6:::1]"


# ------------------------------------------------- wrong port, wrong mode


def test_implicit_tls_against_a_plain_port(ca: trustme.CA) -> None:
    with LocalSmtpServer(tls="none", ca=ca) as server:
        error = connect_error(server.host, server.port, True, server.client_context())
        assert server.messages == []
    assert error.reason is EmailSessionReason.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED
    assert error.error_code == 201
    assert isinstance(error.__cause__, ssl.SSLError)
    assert error.__cause__.reason == "WRONG_VERSION_NUMBER"


def test_plain_connect_to_an_implicit_tls_port(smtps: Endpoint) -> None:
    server = smtps.server
    error = connect_error(server.host, server.port, False, smtps.context, 0.5)
    assert error.reason is EmailSessionReason.SSL_WRAPPED_CONNECTION_REQUIRED
    assert error.error_code == 200 and "TLS handshake" in str(error)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    # Closed without listen(): nothing accepts on it until someone binds it.
    return port


def test_connection_refused_is_an_invalid_port() -> None:
    port = _unused_port()
    error = connect_error("127.0.0.1", port, False)
    assert error.reason is EmailSessionReason.INVALID_PORT
    assert error.error_code == 100
    assert (error.host, error.port) == ("127.0.0.1", port)
    assert isinstance(error.__cause__, ConnectionRefusedError)


def test_unresolvable_host_is_an_invalid_host() -> None:
    # RFC 2606 reserves .invalid: it never resolves.
    error = connect_error("nonexistent.invalid", 25, False)
    assert error.reason is EmailSessionReason.INVALID_HOST
    assert error.error_code == 101
    assert isinstance(error.__cause__, socket.gaierror)


def test_http_server_is_an_invalid_port() -> None:
    def http(conn: RawConnection) -> None:
        conn.send(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n"
        )

    with RawServer(http) as server:
        error = connect_error("127.0.0.1", server.port, False)
    assert error.reason is EmailSessionReason.INVALID_PORT
    assert error.error_code == 100
    assert isinstance(error.__cause__, SmtpProtocolError)


# ---------------------------------------- classification of rarer failures


def _eof_error() -> ssl.SSLEOFError:
    error = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    # The attributes _ssl.c always sets (ssl.py does the same by hand).
    error.reason, error.library = "UNEXPECTED_EOF_WHILE_READING", "SSL"
    return error


def _verification_error(code: int) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.reason, error.library = "CERTIFICATE_VERIFY_FAILED", "SSL"
    error.verify_code = code
    error.verify_message = f"code {code}"
    return error


@pytest.mark.parametrize(
    ("exc", "phase", "reason"),
    [
        (_verification_error(18), "handshake", "EXPIRED_OR_UNTRUSTED_CERTIFICATE"),
        (_verification_error(19), "handshake", "EXPIRED_OR_UNTRUSTED_CERTIFICATE"),
        (_verification_error(21), "handshake", "EXPIRED_OR_UNTRUSTED_CERTIFICATE"),
        (_verification_error(23), "handshake", "INVALID_SSL_CERTIFICATE"),
        (_verification_error(26), "handshake", "INVALID_SSL_CERTIFICATE"),
        (OSError(errno.EHOSTUNREACH, "unreachable"), "connect", "INVALID_HOST"),
        (OSError(errno.ENETUNREACH, "unreachable"), "connect", "INVALID_HOST"),
        (TimeoutError(), "connect", "CONNECTION_TIMEOUT"),
        (TimeoutError(), "handshake", "CONNECTION_TIMEOUT"),
        (ConnectionResetError(), "io", "CONNECTION_LOST"),
        (_eof_error(), "handshake", "CONNECTION_LOST"),
        (BrokenPipeError(), "io", "CONNECTION_LOST"),
    ],
    ids=lambda value: str(getattr(value, "verify_code", "")) or None,
)
def test_classify(exc: OSError, phase: Phase, reason: str) -> None:
    error = classify(exc, host="mail.example", port=587, phase=phase, use_ssl=False)
    assert error.reason is EmailSessionReason[reason]
    assert (error.host, error.port) == ("mail.example", 587)
    assert error.reason.fix in str(error)


# ------------------------------------------------------- STARTTLS on the wire


def starttls_server(answer: bytes) -> RawServer:
    """A plain server that offers STARTTLS and answers it with ``answer``;
    after a 220 it stays silent (it never does the handshake)."""

    def script(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")
        while line := conn.read_line():
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb == b"EHLO":
                conn.send(b"250-raw.test\r\n250 STARTTLS\r\n")
            elif verb == b"STARTTLS":
                conn.send(answer)
                if answer.startswith(b"220"):
                    conn.hold()
                    return
            elif verb == b"DATA":
                conn.send(b"354 go ahead\r\n")
                conn.contents.append(conn.read_until(b"\r\n.\r\n"))
                conn.send(b"250 queued\r\n")
            elif verb == b"QUIT":
                conn.send(b"221 bye\r\n")
                return
            else:
                conn.send(b"250 OK\r\n")

    return RawServer(script)


def _client(
    port: int, credentials: UserCredentials | None = None, **options: Any
) -> SmtpClient:
    """A client for a plain-text (``use_ssl=False``) server on 127.0.0.1."""
    details = BasicEmailSessionDetails(
        ServerDetails("127.0.0.1", port, False), credentials
    )
    return SmtpClient(details, timeout=options.pop("timeout", TIMEOUT), **options)


def test_bytes_injected_after_the_starttls_220_are_refused() -> None:
    # RFC 3207 4.2 / the STARTTLS command injection attacks: anything that
    # arrives with the 220 was sent in clear by someone, not by the server
    # we are about to authenticate.
    with starttls_server(b"220 ready\r\n250 injected\r\n") as server:
        client = _client(server.port)
        with pytest.raises(SmtpProtocolError):
            client.send(EmailMessage(["r@example.com"], "s@example.com"))
        assert not client.is_connected
        [conn] = server.connections
        assert conn.lines[-1] == b"STARTTLS" and conn.contents == []


def test_starttls_handshake_that_never_comes_times_out() -> None:
    with (
        starttls_server(b"220 ready\r\n") as server,
        pytest.raises(EmailSessionError) as caught,
    ):
        _client(server.port, timeout=0.5).connect()
    assert caught.value.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "TLS handshake" in str(caught.value)


def test_implicit_tls_handshake_that_never_comes_times_out() -> None:
    with RawServer(lambda conn: conn.hold()) as server:
        error = connect_error("127.0.0.1", server.port, True, timeout=0.5)
    assert error.reason is EmailSessionReason.CONNECTION_TIMEOUT
    assert "TLS handshake" in str(error)


def test_refused_starttls_without_credentials_continues_in_clear() -> None:
    with starttls_server(b"454 4.7.0 TLS not available\r\n") as server:
        with _client(server.port) as client:
            client.send(EmailMessage(["r@example.com"], "s@example.com"))
        [conn] = server.connections
    assert len(conn.contents) == 1
    assert [line.split(b" ")[0] for line in conn.lines][:3] == [
        b"EHLO",
        b"STARTTLS",
        b"MAIL",
    ]


def test_refused_starttls_under_required_policy_sends_no_mail() -> None:
    with starttls_server(b"454 4.7.0 TLS not available\r\n") as server:
        client = _client(server.port, starttls="required")
        with pytest.raises(EmailSessionError) as caught:
            client.send(EmailMessage(["r@example.com"], "s@example.com"))
        [conn] = server.connections
    assert caught.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert caught.value.reply is not None and caught.value.reply.code == 454
    assert not any(line.startswith((b"MAIL", b"AUTH")) for line in conn.lines)


# ------------------------------------------- STARTTLS policy against aiosmtpd


@pytest.fixture(scope="module")
def _clear_server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none") as server:
        yield server


@pytest.fixture
def clear(_clear_server: LocalSmtpServer) -> LocalSmtpServer:
    """A server without STARTTLS and without AUTH."""
    _clear_server.reset()
    return _clear_server


@pytest.fixture(scope="module")
def _clear_auth_server(password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", users={USER: password}) as server:
        yield server


@pytest.fixture
def clear_auth(_clear_auth_server: LocalSmtpServer) -> LocalSmtpServer:
    """A server without STARTTLS that offers AUTH PLAIN/LOGIN in clear."""
    _clear_auth_server.reset()
    return _clear_auth_server


def test_starttls_required_without_starttls_sends_nothing_in_clear(
    clear: LocalSmtpServer,
) -> None:
    client = _client(clear.port, starttls="required")
    with pytest.raises(EmailSessionError) as caught:
        client.send(message("never sent"))
    assert caught.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert caught.value.error_code == 202
    assert not client.is_connected
    assert not {"MAIL", "AUTH"} & set(verbs(clear))
    assert clear.messages == []


def test_no_credentials_without_starttls_sends_in_clear(
    clear: LocalSmtpServer,
) -> None:
    with _client(clear.port) as client:
        client.send(message("clear"))
    [received] = clear.messages
    assert not received.tls and received.auth_user is None
    assert "AUTH" not in verbs(clear)


def test_credentials_are_not_sent_in_clear_by_default(
    clear_auth: LocalSmtpServer, password: str
) -> None:
    client = _client(clear_auth.port, UserCredentials(USER, password))
    with pytest.raises(EmailSessionError) as caught:
        client.send(message("no"))
    assert caught.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert not {"MAIL", "AUTH"} & set(verbs(clear_auth))
    assert clear_auth.messages == []


def test_allow_insecure_auth_authenticates_in_clear(
    clear_auth: LocalSmtpServer, password: str
) -> None:
    credentials = UserCredentials(USER, password)
    with _client(clear_auth.port, credentials, allow_insecure_auth=True) as client:
        client.send(message("insecure"))
    [received] = clear_auth.messages
    assert received.auth_user == USER and not received.tls
    assert "AUTH" in verbs(clear_auth)


def test_starttls_upgrades_before_auth_and_mail(submission: Endpoint) -> None:
    client = SmtpClient(
        submission.details, tls_context=submission.context, timeout=TIMEOUT
    )
    with client:
        client.send(message("secure"))
    [session] = submission.server.sessions
    got = [
        (verb, c.tls) for verb, c in zip(verbs(submission.server), session, strict=True)
    ]
    assert got[:5] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
        ("AUTH", True),
        ("MAIL", True),
    ]
    [received] = submission.server.messages
    assert received.tls and received.auth_user == USER


def test_starttls_never_with_credentials_refuses(submission: Endpoint) -> None:
    client = SmtpClient(
        submission.details,
        tls_context=submission.context,
        timeout=TIMEOUT,
        starttls="never",
    )
    with pytest.raises(EmailSessionError) as caught:
        client.connect()
    assert caught.value.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    assert not {"STARTTLS", "AUTH"} & set(verbs(submission.server))
