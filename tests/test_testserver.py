"""Tests for smtpcore.testserver, driven by the stdlib smtplib and raw sockets.

smtplib is an independent client: if the server misrecorded or misbehaved,
these tests would disagree with what smtplib saw on the wire.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from collections.abc import Iterator

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.testserver import LocalSmtpServer, ReceivedCommand, TlsMode

USERS = {"alice": "s3cret-pw"}
SENDER = "sender@example.com"
RECIPIENTS = ["one@example.net", "two@example.org"]
# Bytes that must survive exactly: a line starting with a dot (smtplib
# dot-stuffs it, aiosmtpd removes the stuffing), 8-bit text, an empty line.
MESSAGE = (
    b"From: sender@example.com\r\n"
    b"To: one@example.net, two@example.org\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b".leading dot\r\n"
    b"gr\xc3\xbc\xc3\x9fe\r\n"
    b"\r\n"
    b"end\r\n"
)
TLS_MODES: tuple[TlsMode, ...] = ("starttls", "implicit", "none")


def _connect(server: LocalSmtpServer) -> smtplib.SMTP:
    """An smtplib client past EHLO (and STARTTLS where the server has it)."""
    client: smtplib.SMTP
    if server.tls == "implicit":
        client = smtplib.SMTP_SSL(
            server.host, server.port, context=server.client_context(), timeout=5
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
    client.ehlo()
    if server.tls == "starttls":
        client.starttls(context=server.client_context())
        client.ehlo()
    return client


class _RawClient:
    """A plain-socket client that reads whole replies: for exact byte tests."""

    def __init__(self, server: LocalSmtpServer) -> None:
        self.server = server
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.buffer = b""

    def reply(self) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                assert chunk, "server closed the connection"
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def command(self, line: bytes) -> list[bytes]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def session(self) -> list[ReceivedCommand]:
        """The commands the server recorded: this must be its only session."""
        [session] = self.server.sessions
        return session

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def plain_server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", users=USERS) as server:
        yield server


@pytest.fixture
def raw(plain_server: LocalSmtpServer) -> Iterator[_RawClient]:
    plain_server.reset()
    client = _RawClient(plain_server)
    assert client.reply()[0].startswith(b"220 ")
    yield client
    client.close()


@pytest.mark.parametrize("tls", TLS_MODES)
def test_transaction_is_recorded(tls: TlsMode) -> None:
    with LocalSmtpServer(tls=tls, users=USERS) as server:
        assert (server.connections, server.sessions) == (0, [])
        with _connect(server) as client:
            client.login("alice", USERS["alice"])
            refused = client.sendmail(SENDER, RECIPIENTS, MESSAGE)
            assert refused == {}

        [message] = server.messages
        assert message.mail_from == SENDER
        assert message.rcpt_tos == tuple(RECIPIENTS)
        assert message.data == MESSAGE
        assert message.mail_options == (f"SIZE={len(MESSAGE)}",)
        assert message.rcpt_options == ((), ())
        assert message.tls is (tls != "none")
        assert message.auth_user == "alice"
        assert message.parsed()["Subject"] == "hello"
        assert server.connections == 1

        [session] = server.sessions
        verbs = [command.line.split()[0].upper() for command in session]
        flags = [command.tls for command in session]
        if tls == "starttls":
            assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
            assert flags[:3] == [False, False, True]
            verbs, flags = verbs[3:], flags[3:]
        else:
            assert verbs[0] == "EHLO"
            verbs, flags = verbs[1:], flags[1:]
        assert verbs == ["AUTH", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
        assert flags == [tls != "none"] * len(verbs)


def test_probe_of_start_is_not_counted() -> None:
    for tls in TLS_MODES:
        with LocalSmtpServer(tls=tls) as server:
            assert server.connections == 0
            assert server.sessions == []


def test_sequential_connections_are_counted() -> None:
    with LocalSmtpServer(users=USERS) as server:
        for _ in range(2):
            with _connect(server) as client:
                client.noop()
        assert server.connections == 2
        sessions = server.sessions
        assert len(sessions) == 2
        assert all(s[-2].line.upper() == "NOOP" for s in sessions)


@pytest.mark.parametrize(("login", "password"), [("alice", "wrong"), ("bob", "x")])
def test_bad_credentials_get_535(login: str, password: str) -> None:
    with LocalSmtpServer(tls="implicit", users=USERS) as server:
        with _connect(server) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                client.login(login, password)
            assert info.value.smtp_code == 535
            error = info.value.smtp_error
            assert isinstance(error, bytes)
            assert error.startswith(b"5.7.8")
        assert server.messages == []


def test_empty_users_offer_auth_that_always_fails() -> None:
    with (
        LocalSmtpServer(tls="implicit", users={}) as server,
        _connect(server) as client,
    ):
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", USERS["alice"])


def test_without_users_no_auth_is_offered() -> None:
    with LocalSmtpServer(tls="implicit") as server, _connect(server) as client:
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGEAYg==")
        assert code == 504


def test_auth_is_offered_only_after_starttls() -> None:
    server = LocalSmtpServer(users=USERS, require_starttls=False)
    with server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=server.client_context())
        client.ehlo()
        assert client.has_extn("auth")


def test_refused_recipient_gets_550() -> None:
    refused = RECIPIENTS[1]
    with LocalSmtpServer(users=USERS, refuse_recipients=[refused]) as server:
        with _connect(server) as client:
            client.login("alice", USERS["alice"])
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt(RECIPIENTS[0])[0] == 250
            assert client.rcpt(refused) == (
                550,
                f"5.1.1 <{refused}>: Recipient address rejected".encode(),
            )
            assert client.data(MESSAGE)[0] == 250
        [message] = server.messages
        assert message.rcpt_tos == (RECIPIENTS[0],)


def test_require_starttls_refuses_mail_in_clear() -> None:
    with LocalSmtpServer(users=USERS) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.mail(SENDER)[0] == 530
        # The refused line is recorded: a test can prove what went in clear.
        [session] = server.sessions
        # (smtplib spells the verb "mail" up to 3.12 and "MAIL" from 3.13.)
        expected = ["EHLO [127.0.0.1]", f"MAIL FROM:<{SENDER}>", "QUIT"]
        assert [c.line.upper() for c in session] == [e.upper() for e in expected]
        assert not any(c.tls for c in session)


def test_without_require_starttls_mail_in_clear_works() -> None:
    with LocalSmtpServer(require_starttls=False) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        [message] = server.messages
        assert message.tls is False
        assert message.auth_user is None


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_advertisement(pipelining: bool) -> None:
    server = LocalSmtpServer(tls="implicit", pipelining=pipelining)
    with server, _connect(server) as client:
        assert client.has_extn("pipelining") is pipelining
        assert client.has_extn("size")


@pytest.mark.parametrize("tls", TLS_MODES)
def test_drop_connections_then_reconnect(tls: TlsMode) -> None:
    with LocalSmtpServer(tls=tls, users=USERS) as server:
        client = _connect(server)
        try:
            client.login("alice", USERS["alice"])
            server.drop_connections()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        finally:
            client.close()
        with _connect(server) as client:
            client.login("alice", USERS["alice"])
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        assert server.connections == 2
        assert len(server.wait_for_messages(1)) == 1


def test_drop_connections_without_clients_returns() -> None:
    with LocalSmtpServer() as server:
        server.drop_connections()
        assert server.connections == 0


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_certificate_verifies_with_client_context(name: str) -> None:
    with LocalSmtpServer(tls="implicit") as server:
        raw = socket.create_connection((server.host, server.port), timeout=5)
        with server.client_context().wrap_socket(raw, server_hostname=name) as tls:
            assert tls.recv(1024).startswith(b"220 ")


@pytest.mark.parametrize(
    ("trust_ca", "name", "verify_code"),
    [
        # 20: unable to get local issuer: the default store lacks our CA.
        (False, "localhost", 20),
        # 62: hostname mismatch: the CA is trusted, the name is not in the cert.
        (True, "mail.example.com", 62),
    ],
)
def test_certificate_verification_can_fail(
    trust_ca: bool, name: str, verify_code: int
) -> None:
    with LocalSmtpServer(tls="implicit") as server:
        context = server.client_context() if trust_ca else ssl.create_default_context()
        raw = socket.create_connection((server.host, server.port), timeout=5)
        with raw, pytest.raises(ssl.SSLCertVerificationError) as info:
            context.wrap_socket(raw, server_hostname=name)
        assert info.value.verify_code == verify_code
    # The refused handshake is a connection of its own, with no command.
    assert (server.connections, server.sessions) == (1, [[]])


def test_starttls_with_untrusted_default_context_fails() -> None:
    server = LocalSmtpServer()
    with server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            client.starttls(context=ssl.create_default_context())
        assert info.value.verify_code == 20
        client.close()  # the handshake broke off: no QUIT on this socket


def test_shared_ca_is_trusted_by_one_context() -> None:
    ca = trustme.CA()
    with (
        LocalSmtpServer(tls="implicit", ca=ca) as first,
        LocalSmtpServer(tls="implicit", ca=ca) as second,
    ):
        assert first.port != second.port
        for server in (first, second):
            with smtplib.SMTP_SSL(
                server.host, server.port, context=first.client_context(), timeout=5
            ) as client:
                assert client.noop()[0] == 250


def test_size_limit_is_advertised_and_enforced() -> None:
    server = LocalSmtpServer(tls="none", data_size_limit=1000)
    with server, _connect(server) as client:
        assert client.esmtp_features["size"] == "1000"
        code, _ = client.mail(SENDER, ["SIZE=1001"])
        assert code == 552


def test_wait_for_messages() -> None:
    with LocalSmtpServer(tls="none") as server:
        with pytest.raises(AssertionError, match="expected 1 message"):
            server.wait_for_messages(1, timeout=0.05)
        with _connect(server) as client:
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
            client.sendmail(SENDER, RECIPIENTS[:1], MESSAGE)
        messages = server.wait_for_messages(2, timeout=1)
        assert [m.rcpt_tos for m in messages] == [tuple(RECIPIENTS), (RECIPIENTS[0],)]


def test_reset_and_restart() -> None:
    server = LocalSmtpServer(tls="none")
    with server:
        with _connect(server) as client:
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        port = server.port
        server.reset()
        assert (server.messages, server.sessions, server.connections) == ([], [], 0)
        with _connect(server) as client:
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
    # Records survive stop(); the port survives a restart.
    assert len(server.messages) == 1
    with server:
        assert server.port == port
        assert (server.messages, server.connections) == ([], 0)
        with _connect(server) as client:
            assert client.noop()[0] == 250


def test_start_twice_and_drop_when_stopped_are_errors() -> None:
    server = LocalSmtpServer(tls="none")
    with pytest.raises(RuntimeError):
        server.drop_connections()
    with server, pytest.raises(RuntimeError):
        server.start()
    server.stop()  # a second stop is harmless


def test_only_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalSmtpServer(host="0.0.0.0")


def test_ipv6_loopback() -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with LocalSmtpServer(tls="implicit", host="::1", cert_names=("::1",)) as server:
        with _connect(server) as client:
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        assert server.connections == 1
        assert server.messages[0].data == MESSAGE


def test_pipelined_group_and_content_are_told_apart(raw: _RawClient) -> None:
    raw.command(b"EHLO client.test")
    # RFC 2920: one write carries the whole group; DATA comes last.
    raw.sock.sendall(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
    )
    assert [raw.reply()[0][:3] for _ in range(3)] == [b"250", b"250", b"354"]
    # Content lines that look like commands are content, not commands.
    assert raw.command(b"RSET\r\n..dot\r\nQUIT\r\n.")[0].startswith(b"250")
    assert raw.command(b"NOOP")[0].startswith(b"250")
    lines = [c.line for c in raw.session()]
    assert lines == [
        "EHLO client.test",
        "MAIL FROM:<a@example.com>",
        "RCPT TO:<b@example.com>",
        "DATA",
        "NOOP",
    ]
    [message] = raw.server.messages
    assert message.data == b"RSET\r\n.dot\r\nQUIT\r\n"


def test_command_lines_are_kept_as_sent(raw: _RawClient) -> None:
    plain = base64.b64encode(b"\0alice\0" + USERS["alice"].encode()).decode()
    # Odd case and spacing: the record must not normalise what it saw.
    lines = [
        "eHlo client.test",
        f"AUTH PLAIN {plain}",
        f"MaIl FROM:<{SENDER}>  SIZE=12 ",
        f"rcpt to:<{RECIPIENTS[0]}>",
        "DATA",
    ]
    for line in lines:
        assert raw.command(line.encode())[0][:1] in (b"2", b"3")
    assert raw.command(b"hi\r\n.")[0].startswith(b"250")
    assert [c.line for c in raw.session()] == lines
    [message] = raw.server.messages
    assert (message.mail_options, message.auth_user) == (("SIZE=12",), "alice")


def test_sasl_responses_are_not_commands(raw: _RawClient) -> None:
    raw.command(b"EHLO client.test")
    user = base64.b64encode(b"alice")
    assert raw.command(b"AUTH LOGIN " + user)[0].startswith(b"334 ")
    password = base64.b64encode(USERS["alice"].encode())
    assert raw.command(password)[0].startswith(b"235 ")
    lines = [c.line for c in raw.session()]
    assert lines == ["EHLO client.test", "AUTH LOGIN " + user.decode()]


def test_overlong_line_is_not_split_into_commands(raw: _RawClient) -> None:
    assert raw.command(b"NOOP " + b"x" * 3000)[0].startswith(b"500")
    assert raw.command(b"NOOP tail")[0].startswith(b"250")
    assert [c.line for c in raw.session()] == ["NOOP tail"]


# printable ASCII, including spaces and leading/trailing whitespace
_ARGUMENT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=400)


@settings(max_examples=60, deadline=None)
@given(verb=st.sampled_from(["NOOP", "noop", "NoOp"]), argument=_ARGUMENT)
def test_noop_lines_are_recorded_byte_exact(
    plain_server: LocalSmtpServer, verb: str, argument: str
) -> None:
    plain_server.reset()
    client = _RawClient(plain_server)
    try:
        client.reply()
        line = f"{verb} {argument}"
        assert client.command(line.encode())[0].startswith(b"250")
    finally:
        client.close()
    assert plain_server.sessions == [[ReceivedCommand(line, tls=False)]]
