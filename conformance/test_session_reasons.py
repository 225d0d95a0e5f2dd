"""Every :class:`EmailSessionReason`, reproduced against real servers on
loopback (aiosmtpd, scripted raw servers, an HTTP server for CRLs); nothing
mocks a socket or ssl.  Each error is checked for what a caller relies on:
``reason``, ``error_code`` (the seed's numbers, written out here), ``host``,
``port``, the reason's fix in the message, and the low-level ``__cause__``.
Where a failure must not leak credentials or mail, the test reads what the
server received.
"""

from __future__ import annotations

import datetime
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    send_email,
)
from smtpcore.testserver import LocalSmtpServer, TlsMode
from tests.certs import Authority, Leaf, now
from tests.crlserver import CrlMode, CrlServer
from tests.rawserver import RawConnection, RawServer, Script, smtp_script

R = EmailSessionReason
TIMEOUT = 1.0  # every client here; the timeout tests use SHORT
SHORT = 0.5
HOST = "127.0.0.1"
PASSWORD = secrets.token_urlsafe(12)  # the servers of this module only
CREDENTIALS = UserCredentials(USER, PASSWORD)
MESSAGE = EmailMessage(
    ["recipient@example.com"], "sender@example.com", subject="conformance"
)

# The seed platform's codes (DESIGN.md), not REASON_INFO: that is under test.
CODES: dict[EmailSessionReason, int] = {
    R.INVALID_PORT: 100,
    R.INVALID_HOST: 101,
    R.CONNECTION_TIMEOUT: 102,
    R.CONNECTION_LOST: 103,
    R.SSL_WRAPPED_CONNECTION_REQUIRED: 200,
    R.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED: 201,
    R.EXPIRED_OR_UNTRUSTED_CERTIFICATE: 201,
    R.CERTIFICATE_REPLACED_BY_ANTIVIRUS: 201,
    R.CRL_SERVER_DOWN: 201,
    R.INVALID_SSL_CERTIFICATE: 201,
    R.STARTTLS_NOT_AVAILABLE: 202,
    R.INVALID_USERNAME_OR_PASSWORD: 300,
    R.NO_COMMON_AUTH_MECHANISM: 301,
    R.AUTHENTICATION_TEMPORARY_FAILURE: 302,
}


def check(
    error: EmailSessionError, reason: EmailSessionReason, host: str, port: int
) -> str:
    """Assert the fields every session error carries; return its message."""
    assert error.reason is reason
    assert type(error.error_code) is int and error.error_code == CODES[reason]
    assert (error.host, error.port) == (host, port)
    text = str(error)
    assert reason.fix in text
    return text


def session_error(
    port: int,
    use_ssl: bool,
    credentials: UserCredentials | None = None,
    *,
    host: str = HOST,
    **options: Any,
) -> EmailSessionError:
    """Send MESSAGE with a fresh client (which connects first) and return the
    session error it raised; the client must be left closed."""
    options.setdefault("timeout", TIMEOUT)
    details = BasicEmailSessionDetails(ServerDetails(host, port, use_ssl), credentials)
    client = SmtpClient(details, **options)
    with pytest.raises(EmailSessionError) as caught:
        client.send(MESSAGE)
    assert not client.is_connected
    return caught.value


def verbs(server: LocalSmtpServer) -> list[str]:
    """The command verbs the server read, over all its connections."""
    return [c.line.split(" ", 1)[0].upper() for s in server.sessions for c in s]


def raw_verbs(server: RawServer) -> list[bytes]:
    """The command verbs a raw server's scripts read."""
    return [
        line.split(b" ", 1)[0].upper() for c in server.connections for line in c.lines
    ]


def in_chain(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among the causes of ``error`` (``__cause__``,
    ``__context__``, or urllib's ``URLError.reason``)."""
    seen: BaseException | None = error.__cause__
    for _ in range(8):  # a chain is short; the bound stops a cycle
        if isinstance(seen, kind) or isinstance(getattr(seen, "reason", None), kind):
            return True
        seen = seen and (seen.__cause__ or seen.__context__)
    return False


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port  # bound, never listened on, closed: refused until reused


@pytest.fixture(scope="module")
def root() -> Authority:
    """The CA the clients here trust; certificates of other roots are refused."""
    return Authority.root("smtpcore conformance root", organization="smtpcore tests")


@pytest.fixture(scope="module")
def raw_tls(root: Authority) -> ssl.SSLContext:
    """A server context for implicit-TLS raw servers, trusted via ``root``."""
    return root.issue(HOST, "localhost").server_context()


@pytest.fixture(scope="module")
def plain() -> Iterator[LocalSmtpServer]:
    """Plain text only, AUTH offered in clear (a misconfigured port 25)."""
    with LocalSmtpServer(tls="none", users={USER: PASSWORD}) as server:
        yield server


@pytest.fixture(params=["starttls", "implicit"])
def tls(request: pytest.FixtureRequest) -> TlsMode:
    mode: TlsMode = request.param
    return mode


# ----------------------------------------------------------- INVALID_PORT


def test_invalid_port_connection_refused() -> None:
    port = unused_port()
    error = session_error(port, False)
    assert "refused" in check(error, R.INVALID_PORT, HOST, port)
    assert isinstance(error.__cause__, ConnectionRefusedError)


def _greets_with(banner: list[bytes]) -> RawServer:
    def script(conn: RawConnection) -> None:
        conn.send(banner[0])
        conn.read_line()  # records anything the client says back

    return RawServer(script)


@pytest.mark.parametrize(
    "banner",
    [
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ],
    ids=["http", "ssh"],
)
def test_invalid_port_not_smtp(banner: bytes) -> None:
    with _greets_with([banner]) as server:
        error = session_error(server.port, False)
    assert "not an SMTP server" in check(error, R.INVALID_PORT, HOST, server.port)
    assert isinstance(error.__cause__, SmtpProtocolError)
    # Nothing is said to a peer that is not an SMTP server.
    assert [c.lines for c in server.connections] == [[]]


@pytest.fixture(scope="module")
def banner_server() -> Iterator[tuple[RawServer, list[bytes]]]:
    """One raw server; each hypothesis example sets the banner it sends."""
    banner = [b""]
    with _greets_with(banner) as server:
        yield server, banner


@settings(max_examples=25)
@given(
    first=st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz<{*#"),
    rest=st.binary(max_size=120).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
    ),
)
def test_any_banner_without_a_reply_code_is_an_invalid_port(
    banner_server: tuple[RawServer, list[bytes]], first: int, rest: bytes
) -> None:
    # RFC 5321 4.2: every reply starts with a three-digit code.
    server, banner = banner_server
    banner[0] = bytes([first]) + rest + b"\r\n"
    error = session_error(server.port, False)
    check(error, R.INVALID_PORT, HOST, server.port)
    assert isinstance(error.__cause__, SmtpProtocolError)


# ----------------------------------------------------------- INVALID_HOST


def test_invalid_host() -> None:
    host = "mail.nonexistent.invalid"  # RFC 2606 2: .invalid never resolves
    error = session_error(25, False, host=host)
    assert "does not resolve" in check(error, R.INVALID_HOST, host, 25)
    assert isinstance(error.__cause__, socket.gaierror)


# ------------------------------------------- wrong use_ssl for the port


@pytest.mark.parametrize("with_credentials", [False, True], ids=["anon", "auth"])
def test_ssl_wrapped_connection_required(
    smtps: Endpoint, with_credentials: bool
) -> None:
    server = smtps.server
    credentials = UserCredentials(USER, smtps.password) if with_credentials else None
    started = time.monotonic()
    error = session_error(
        server.port, False, credentials, tls_context=smtps.context, timeout=10.0
    )
    elapsed = time.monotonic() - started
    text = check(error, R.SSL_WRAPPED_CONNECTION_REQUIRED, HOST, server.port)
    assert "TLS" in text
    # Found out by probing, not by waiting the whole timeout.
    assert elapsed < 5.0
    assert "AUTH" not in verbs(server) and server.messages == []


def test_ssl_wrapped_connection_not_supported(plain: LocalSmtpServer) -> None:
    plain.reset()
    error = session_error(plain.port, True, tls_context=plain.client_context())
    text = check(error, R.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED, HOST, plain.port)
    assert "does not speak TLS" in text
    assert isinstance(error.__cause__, ssl.SSLError)
    assert error.__cause__.reason == "WRONG_VERSION_NUMBER"
    # The server may have read our ClientHello as a garbled line; no SMTP
    # command follows it.
    assert not {"EHLO", "HELO", "AUTH", "MAIL"} & set(verbs(plain))


# ------------------------------------------ expired or untrusted certificate


def _two_days(around: int, root: Authority) -> Leaf:
    """A leaf valid for two days around ``around`` days from now."""
    middle = now() + datetime.timedelta(days=around)
    day = datetime.timedelta(days=1)
    return root.issue(HOST, not_before=middle - day, not_after=middle + day)


def _refused_certificate(
    tls: TlsMode, leaf: Leaf, root: Authority
) -> tuple[EmailSessionError, LocalSmtpServer]:
    """Send with credentials to a server presenting ``leaf``, trusting only
    ``root``; return the error and the (stopped) server."""
    context = root.client_context()
    with LocalSmtpServer(tls=tls, users={USER: PASSWORD}, leaf=leaf.leaf_cert()) as s:
        error = session_error(
            s.port, tls == "implicit", CREDENTIALS, tls_context=context
        )
    server = s
    assert server.messages == []
    # RFC 3207 / RFC 8314: credentials only over verified TLS.
    assert "AUTH" not in verbs(server)
    return error, server


@pytest.mark.parametrize(
    ("kind", "verify_code", "words"),
    [
        ("expired", 10, "expired"),
        ("not-yet-valid", 9, "not valid yet"),
        ("unknown-ca", 20, "not trusted"),
        ("unknown-ca-sent-along", 19, "not trusted"),
    ],
)
def test_expired_or_untrusted_certificate(
    tls: TlsMode, root: Authority, kind: str, verify_code: int, words: str
) -> None:
    if kind == "expired":
        leaf = _two_days(-30, root)
    elif kind == "not-yet-valid":
        leaf = _two_days(30, root)
    else:
        # An ordinary name: the client's second look finds no anti-virus.
        stranger = Authority.root("Mail Gateway Root", organization="Example Hosting")
        leaf = stranger.issue(HOST, send_root=kind.endswith("sent-along"))
    error, server = _refused_certificate(tls, leaf, root)
    text = check(error, R.EXPIRED_OR_UNTRUSTED_CERTIFICATE, HOST, server.port)
    assert words in text
    assert not any(product in text.lower() for product in PRODUCTS)
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == verify_code


# ---------------------------------------- certificate replaced by anti-virus

# (product, CN, O, OU) of each interception root, modelled on the real ones;
# the last two name the product in O only and in OU only.
ANTIVIRUS_ROOTS = [
    ("Avast", "Avast Web/Mail Shield Root", "Avast Software s.r.o.", None),
    ("AVG", "AVG Web/Mail Shield Root", "AVG Technologies CZ, s.r.o.", None),
    ("ESET", "ESET SSL Filter CA", "ESET, spol. s r.o.", None),
    ("Kaspersky", "Kaspersky Anti-Virus Personal Root", "AO Kaspersky Lab", None),
    ("Norton", "Norton Web/Mail Shield Root", "Norton Web/Mail Shield", None),
    ("Bitdefender", "Bitdefender Personal CA.Net-Defender", "Bitdefender", "IDS"),
    ("Kaspersky", "Personal Root Certificate", "AO Kaspersky Lab", None),
    ("Avast", "Web/Mail Shield Root", None, "generated by Avast Antivirus"),
]
PRODUCTS = {product.lower() for product, *_ in ANTIVIRUS_ROOTS}


@pytest.mark.parametrize(
    "issuer",
    ANTIVIRUS_ROOTS,
    ids=[f"{p}-{i}" for i, (p, *_) in enumerate(ANTIVIRUS_ROOTS)],
)
def test_certificate_replaced_by_antivirus(
    tls: TlsMode, root: Authority, issuer: tuple[str, str, str | None, str | None]
) -> None:
    product, cn, o, ou = issuer
    interceptor = Authority.root(cn, organization=o, organizational_unit=ou)
    leaf = interceptor.issue(HOST, "localhost")
    error, server = _refused_certificate(tls, leaf, root)
    text = check(error, R.CERTIFICATE_REPLACED_BY_ANTIVIRUS, HOST, server.port)
    assert product.lower() in text.lower()
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 20
    # The failed handshake, then the unverified look (no AUTH: checked above).
    assert server.connections == 2


# ------------------------------------------------- revocation (CRL) checking


def _crl_setup(root: Authority, crl: CrlServer, url: str | None, revoke: bool) -> Leaf:
    leaf = root.issue(HOST, "localhost", crl_url=url)
    # A CRL is never empty here: "not listed" must be a real lookup.
    crl.crl = root.crl([leaf.serial, 1] if revoke else [1, 2])
    return leaf


def _checked_error(
    tls: TlsMode, leaf: Leaf, root: Authority
) -> tuple[EmailSessionError, LocalSmtpServer, float]:
    """Connect with check_revocation=True to a server presenting ``leaf``;
    return the error, the (stopped) server and the seconds it took."""
    context = root.client_context()
    with LocalSmtpServer(tls=tls, leaf=leaf.leaf_cert()) as server:
        started = time.monotonic()
        use_ssl = tls == "implicit"
        error = session_error(
            server.port, use_ssl, tls_context=context, check_revocation=True
        )
        elapsed = time.monotonic() - started
    assert server.messages == []
    return error, server, elapsed


def _send_checked(tls: TlsMode, leaf: Leaf, root: Authority, **options: Any) -> None:
    """send_email to a server presenting ``leaf``; it must be delivered."""
    options.update(tls_context=root.client_context(), timeout=TIMEOUT)
    with LocalSmtpServer(tls=tls, leaf=leaf.leaf_cert()) as server:
        server_details = ServerDetails(HOST, server.port, tls == "implicit")
        details = BasicEmailSessionDetails(server_details)
        assert send_email(MESSAGE, details, **options).reply.code == 250
        server.wait_for_messages(1)


@pytest.mark.parametrize(
    "mode",
    [None, "error", "silent", "not-crl"],
    ids=["refused", "500", "silent", "html"],
)
def test_crl_server_down(tls: TlsMode, root: Authority, mode: CrlMode | None) -> None:
    # mode None: the distribution point names a port nothing listens on.
    with CrlServer(mode=mode or "ok") as crl:
        url = crl.url if mode else f"http://{HOST}:{unused_port()}/root.crl"
        leaf = _crl_setup(root, crl, url=url, revoke=False)
        error, server, elapsed = _checked_error(tls, leaf, root)
        requests = crl.requests
    text = check(error, R.CRL_SERVER_DOWN, HOST, server.port)
    assert requests == (1 if mode else 0)
    if mode is None:
        assert in_chain(error, ConnectionRefusedError)
    elif mode == "silent":
        assert in_chain(error, TimeoutError)
        # The fetch is bounded by the client's timeout.
        assert elapsed < 4 * TIMEOUT
    elif mode == "error":
        assert "500" in text


def test_revoked_certificate(tls: TlsMode, root: Authority) -> None:
    with CrlServer() as crl:
        leaf = _crl_setup(root, crl, url=crl.url, revoke=True)
        error, server, _ = _checked_error(tls, leaf, root)
        assert crl.requests == 1
    text = check(error, R.INVALID_SSL_CERTIFICATE, HOST, server.port)
    assert "revoked" in text
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 23


def test_certificate_not_revoked_is_accepted(tls: TlsMode, root: Authority) -> None:
    with CrlServer() as crl:
        leaf = _crl_setup(root, crl, url=crl.url, revoke=False)
        _send_checked(tls, leaf, root, check_revocation=True)
        assert crl.requests == 1
        assert crl.paths == ["/root.crl"]


def test_certificate_without_crl_distribution_point_has_nothing_to_check(
    tls: TlsMode, root: Authority
) -> None:
    with CrlServer() as crl:
        leaf = _crl_setup(root, crl, url=None, revoke=False)
        _send_checked(tls, leaf, root, check_revocation=True)
        assert crl.requests == 0


@pytest.mark.parametrize(
    "options", [{}, {"check_revocation": False}], ids=["default", "off"]
)
def test_revocation_is_not_checked_unless_asked(
    tls: TlsMode, root: Authority, options: dict[str, Any]
) -> None:
    # The certificate IS revoked: the send succeeding, and the CRL server
    # seeing no request, prove nothing was fetched.
    with CrlServer() as crl:
        leaf = _crl_setup(root, crl, url=crl.url, revoke=True)
        _send_checked(tls, leaf, root, **options)
        assert crl.requests == 0


# ------------------------------------------------- invalid SSL certificate


@pytest.mark.parametrize(
    ("names", "connect_to", "verify_code"),
    [(("127.0.0.1",), "localhost", 62), (("localhost",), "127.0.0.1", 64)],
    ids=["host-name-mismatch", "ip-address-mismatch"],
)
def test_invalid_ssl_certificate(
    tls: TlsMode, root: Authority, names: tuple[str], connect_to: str, verify_code: int
) -> None:
    users, ca = {USER: PASSWORD}, root.as_trustme()  # trustme issues the leaf
    with LocalSmtpServer(tls=tls, ca=ca, cert_names=names, users=users) as server:
        context, use_ssl = server.client_context(), tls == "implicit"
        error = session_error(
            server.port, use_ssl, CREDENTIALS, host=connect_to, tls_context=context
        )
    text = check(error, R.INVALID_SSL_CERTIFICATE, connect_to, server.port)
    assert "does not match" in text
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == verify_code
    assert "AUTH" not in verbs(server)


# ------------------------------------------------------------ authentication


def test_invalid_username_or_password(endpoint: Endpoint) -> None:
    server = endpoint.server
    use_ssl = server.tls == "implicit"
    wrong = UserCredentials(USER, endpoint.password + "-wrong")
    error = session_error(server.port, use_ssl, wrong, tls_context=endpoint.context)
    check(error, R.INVALID_USERNAME_OR_PASSWORD, HOST, server.port)
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_status) == (535, "5.7.8")
    assert error.__cause__ is None  # a reply, not a socket failure
    assert "MAIL" not in verbs(server) and server.messages == []


def test_no_common_auth_mechanism(root: Authority, raw_tls: ssl.SSLContext) -> None:
    trusting = root.client_context()
    # NTLM may be implemented one day; these two never will be.
    ehlo = (b"raw.test", b"AUTH GSSAPI KERBEROS_V4")
    script = smtp_script("NEVER", "close", ehlo=ehlo)
    with RawServer(script, ssl_context=raw_tls) as server:
        error = session_error(server.port, True, CREDENTIALS, tls_context=trusting)
    assert "GSSAPI" in check(error, R.NO_COMMON_AUTH_MECHANISM, HOST, server.port)
    assert error.__cause__ is None
    assert not {b"AUTH", b"MAIL"} & set(raw_verbs(server))


def _auth_fails_temporarily(conn: RawConnection) -> None:
    conn.send(b"220 raw.test ESMTP\r\n")
    while line := conn.read_line():
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            conn.send(b"250-raw.test\r\n250 AUTH PLAIN LOGIN\r\n")
        elif verb == b"AUTH":
            # RFC 4954 6: the backend (a directory, a database) is down.
            conn.send(b"454 4.7.0 Temporary authentication failure\r\n")
        elif verb == b"QUIT":
            conn.send(b"221 bye\r\n")
            return
        else:
            conn.send(b"250 OK\r\n")


def test_authentication_temporary_failure(
    root: Authority, raw_tls: ssl.SSLContext
) -> None:
    trusting = root.client_context()
    with RawServer(_auth_fails_temporarily, ssl_context=raw_tls) as server:
        error = session_error(server.port, True, CREDENTIALS, tls_context=trusting)
    check(error, R.AUTHENTICATION_TEMPORARY_FAILURE, HOST, server.port)
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_status) == (454, "4.7.0")
    assert error.__cause__ is None
    assert b"MAIL" not in raw_verbs(server)


# ---------------------------------------------------------- STARTTLS policy


def test_starttls_not_available_for_credentials(plain: LocalSmtpServer) -> None:
    plain.reset()
    error = session_error(plain.port, False, CREDENTIALS)
    check(error, R.STARTTLS_NOT_AVAILABLE, HOST, plain.port)
    assert error.__cause__ is None
    # The server offered AUTH in clear; nothing of the credentials went out.
    assert "AUTH" not in verbs(plain)
    assert PASSWORD not in "".join(c.line for s in plain.sessions for c in s)
    assert plain.messages == []


def test_starttls_required_without_credentials(plain: LocalSmtpServer) -> None:
    plain.reset()
    error = session_error(plain.port, False, starttls="required")
    check(error, R.STARTTLS_NOT_AVAILABLE, HOST, plain.port)
    assert not {"MAIL", "RCPT", "DATA"} & set(verbs(plain))
    assert plain.messages == []


# -------------------------------------------------------- CONNECTION_TIMEOUT


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: connect() there hangs (Linux drops
    the SYN of a full queue unless tcp_abort_on_overflow is set)."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind((HOST, 0))
        listener.listen(0)  # never accepted
        port: int = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect((HOST, port))
            except TimeoutError:
                break  # the queue is full
        else:
            pytest.skip("connect() to a full accept queue does not block here")
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_connection_timeout_connecting(full_backlog: int) -> None:
    error = session_error(full_backlog, False, timeout=SHORT)
    assert "connecting" in check(error, R.CONNECTION_TIMEOUT, HOST, full_backlog)
    assert isinstance(error.__cause__, TimeoutError)


@pytest.mark.parametrize(
    ("script", "what", "in_doubt"),
    [
        (lambda conn: conn.hold(), "greeting", False),
        (smtp_script("EHLO", "silence"), "EHLO", False),
        (smtp_script("CONTENT", "silence"), "final reply", True),
    ],
    ids=["greeting", "reply-to-ehlo", "final-reply"],
)
def test_connection_timeout_waiting(script: Script, what: str, in_doubt: bool) -> None:
    with RawServer(script) as server:
        error = session_error(server.port, False, timeout=SHORT, data_timeout=SHORT)
        contents = [c.contents for c in server.connections]
    assert what in check(error, R.CONNECTION_TIMEOUT, HOST, server.port)
    assert isinstance(error.__cause__, TimeoutError)
    assert error.delivery_unknown is in_doubt
    if in_doubt:  # the whole content had arrived when the server fell silent
        assert len(contents[0]) == 1 and contents[0][0].endswith(b"\r\n.\r\n")


# ----------------------------------------------------------- CONNECTION_LOST


@pytest.mark.parametrize(
    ("at", "in_doubt"), [("MAIL", False), ("CONTENT", True)], ids=["mail", "content"]
)
def test_connection_lost(at: str, in_doubt: bool) -> None:
    with RawServer(smtp_script(at, "close")) as server:
        error = session_error(server.port, False)
    check(error, R.CONNECTION_LOST, HOST, server.port)
    assert error.delivery_unknown is in_doubt
    # A clean close has no low-level error; an abortive one is a reset.
    cause = error.__cause__
    assert cause is None or isinstance(cause, ConnectionResetError)
