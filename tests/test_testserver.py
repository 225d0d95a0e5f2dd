"""Tests for smtpcore.testserver, driven by the stdlib smtplib and raw sockets.

smtplib is an independent client: if the server misrecorded or misbehaved,
these tests would disagree with what smtplib saw on the wire.  The SASL
server sides are checked against the RFC test vectors first, then driven
over raw sockets with smtpcore's own (vector-tested) SCRAM and NTLM objects.
"""

from __future__ import annotations

import base64
import itertools
import json
import smtplib
import socket
import ssl
import struct
from collections.abc import Iterator

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._aiosmtpd import options_as_sent, with_enhanced_status
from smtpcore._aiosmtpd_ext import (
    NtlmServerExchange,
    ScramCredentials,
    ScramServerExchange,
    parse_oauthbearer,
    parse_xoauth2,
)
from smtpcore.protocol.ntlm import (
    NEGOTIATE_UNICODE,
    NtlmClient,
    negotiate_message,
    parse_challenge,
)
from smtpcore.protocol.scram import ScramClient
from smtpcore.testserver import (
    SASL_MECHANISMS,
    LocalSmtpServer,
    ReceivedCommand,
    TlsMode,
)

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


# ===================================================== mechanisms (RFC 4954)

TOKENS = {"alice": "ya29.token-for-alice"}


class _EsmtpClient(_RawClient):
    """A raw client past the greeting and EHLO (or ``hello``), over
    implicit TLS if ``tls``; a context manager."""

    def __init__(
        self, server: LocalSmtpServer, *, tls: bool = False, hello: bytes = b"EHLO c"
    ) -> None:
        super().__init__(server)
        if tls:
            self.sock = server.client_context().wrap_socket(
                self.sock, server_hostname="localhost"
            )
        assert self.reply()[0].startswith(b"220 ")
        self.hello = self.command(hello)

    def keywords(self) -> dict[str, str]:
        """EHLO keyword -> its parameters."""
        pairs = (line[4:].decode().partition(" ") for line in self.hello[1:])
        return {keyword.upper(): params for keyword, _, params in pairs}

    def __enter__(self) -> _EsmtpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _challenge(reply: list[bytes]) -> bytes:
    [line] = reply
    assert line.startswith(b"334 ")
    return base64.b64decode(line[4:])


@pytest.mark.parametrize(
    ("mechanisms", "advertised"),
    [
        (None, "LOGIN PLAIN"),
        (["cram-md5"], "CRAM-MD5"),
        (list(SASL_MECHANISMS), " ".join(sorted(SASL_MECHANISMS))),
    ],
)
def test_mechanisms_are_advertised_as_given(
    mechanisms: list[str] | None, advertised: str
) -> None:
    server = LocalSmtpServer(tls="implicit", users=USERS, mechanisms=mechanisms)
    with server, _connect(server) as client:
        assert client.esmtp_features["auth"].strip() == advertised
        # A mechanism that is not offered is not accepted either.
        if "PLAIN" not in advertised:
            assert client.docmd("AUTH", "PLAIN AGEAYg==")[0] == 504


def test_unknown_mechanism_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="GSSAPI"):
        LocalSmtpServer(mechanisms=["PLAIN", "GSSAPI"])


def test_tokens_alone_offer_auth() -> None:
    server = LocalSmtpServer(tls="implicit", tokens=TOKENS, mechanisms=["XOAUTH2"])
    with server, _connect(server) as client:
        assert client.esmtp_features["auth"].strip() == "XOAUTH2"


@pytest.mark.parametrize(("password", "code"), [(USERS["alice"], 235), ("x", 535)])
def test_cram_md5_with_smtplib(password: str, code: int) -> None:
    # smtplib's own CRAM-MD5 (RFC 2195): an independent client.
    server = LocalSmtpServer(tls="implicit", users=USERS, mechanisms=["CRAM-MD5"])
    with server, _connect(server) as client:
        reply: tuple[int, bytes | str]
        try:
            reply = client.login("alice", password)
        except smtplib.SMTPAuthenticationError as error:
            reply = (error.smtp_code, error.smtp_error)
        assert reply[0] == code
    [session] = server.sessions
    assert [c.line for c in session if c.line.startswith("AUTH")] == ["AUTH CRAM-MD5"]


# RFC 5802 5 (SCRAM-SHA-1) and RFC 7677 3 (SCRAM-SHA-256): user "user",
# password "pencil"; (salt, server nonce part, client-first, server-first,
# client-final, server-final).
SCRAM_VECTORS = {
    "SCRAM-SHA-1": (
        "QSXCR+Q6sek8bf92",
        "3rfcNHYJY1ZVvWVs7j",
        b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    "SCRAM-SHA-256": (
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
}


def _vector_exchange(mechanism: str, **options: bool) -> ScramServerExchange:
    salt, nonce = SCRAM_VECTORS[mechanism][:2]
    stored = ScramCredentials.derive(mechanism, "pencil", base64.b64decode(salt), 4096)
    users = {"user": stored}
    return ScramServerExchange(mechanism, users.get, nonce=nonce, **options)


@pytest.mark.parametrize("mechanism", sorted(SCRAM_VECTORS))
def test_scram_server_reproduces_the_rfc_exchange(mechanism: str) -> None:
    _, _, client_first, server_first, client_final, server_final = SCRAM_VECTORS[
        mechanism
    ]
    exchange = _vector_exchange(mechanism)
    assert exchange.server_first(client_first) == server_first
    assert exchange.server_final(client_final) == server_final
    assert exchange.user == "user"


@pytest.mark.parametrize("mechanism", sorted(SCRAM_VECTORS))
def test_scram_server_refuses_a_wrong_proof_and_can_lie(mechanism: str) -> None:
    _, _, client_first, _, client_final, server_final = SCRAM_VECTORS[mechanism]
    head, _, proof = client_final.rpartition(b",p=")
    forged = bytearray(base64.b64decode(proof))
    forged[0] ^= 1
    exchange = _vector_exchange(mechanism)
    exchange.server_first(client_first)
    assert exchange.server_final(head + b",p=" + _b64(bytes(forged))) is None
    liar = _vector_exchange(mechanism, bad_signature=True)
    liar.server_first(client_first)
    lie = liar.server_final(client_final)
    assert lie is not None and lie != server_final and lie.startswith(b"v=")


@pytest.mark.parametrize(
    "client_first",
    [b"p=tls-unique,,n=user,r=abc", b"n,,r=abc", b"n,,n=us=er,r=abc", b"x"],
)
def test_scram_server_refuses_malformed_client_first(client_first: bytes) -> None:
    with pytest.raises(ValueError):
        _vector_exchange("SCRAM-SHA-1").server_first(client_first)


def test_scram_server_refuses_a_changed_nonce() -> None:
    _, _, client_first, _, client_final, _ = SCRAM_VECTORS["SCRAM-SHA-1"]
    exchange = _vector_exchange("SCRAM-SHA-1")
    exchange.server_first(client_first)
    with pytest.raises(ValueError):
        exchange.server_final(client_final.replace(b"r=fyko", b"r=fykO"))


@pytest.mark.parametrize("bad_signature", [False, True])
def test_scram_over_the_wire(bad_signature: bool) -> None:
    server = LocalSmtpServer(
        tls="none",
        users=USERS,
        mechanisms=["SCRAM-SHA-256"],
        scram_bad_signature=bad_signature,
    )
    with server, _EsmtpClient(server) as client:
        scram = ScramClient("SCRAM-SHA-256", "alice", USERS["alice"])
        first = _b64(scram.client_first())
        server_first = _challenge(client.command(b"AUTH SCRAM-SHA-256 " + first))
        # RFC 7677 4: at least 4096 iterations.
        assert int(server_first.rsplit(b",i=", 1)[1]) >= 4096
        final = _b64(scram.client_final(server_first))
        server_final = _challenge(client.command(final))
        if bad_signature:
            with pytest.raises(ValueError, match="signature"):
                scram.verify_server_final(server_final)
            assert client.command(b"*")[0].startswith(b"501 ")
        else:
            scram.verify_server_final(server_final)
            assert client.command(b"")[0].startswith(b"235 ")


def test_ntlm_server_exchange() -> None:
    known = {("alice", "CORP"): "correct horse"}
    exchange = NtlmServerExchange(
        lambda user, domain: known.get((user, domain)), timestamp=1234
    )
    challenge = exchange.challenge(negotiate_message())
    parsed = parse_challenge(challenge)
    assert parsed.timestamp == 1234 and parsed.flags & NEGOTIATE_UNICODE
    good = NtlmClient("alice", "correct horse", "CORP").authenticate(challenge)
    assert exchange.verify(good) and exchange.user == "alice"
    for wrong in (
        NtlmClient("alice", "wrong horse", "CORP").authenticate(challenge),
        NtlmClient("alice", "correct horse", "OTHER").authenticate(challenge),
        # A blob computed for another server time: MS-NLMP 3.1.5.1.2.
        good.replace(struct.pack("<Q", 1234), struct.pack("<Q", 1235)),
    ):
        assert not exchange.verify(wrong)
    with pytest.raises(ValueError):
        exchange.verify(good[:40])
    with pytest.raises(ValueError):
        exchange.challenge(b"NTLMSSP\0\x03\0\0\0" + b"\0" * 24)


@pytest.mark.parametrize(("password", "code"), [("s3cret-pw", b"235"), ("x", b"535")])
def test_ntlm_over_the_wire(password: str, code: bytes) -> None:
    server = LocalSmtpServer(tls="none", users=USERS, mechanisms=["NTLM"])
    with server, _EsmtpClient(server) as client:
        ntlm = NtlmClient("alice", password, "EXAMPLE")
        challenge = _challenge(client.command(b"AUTH NTLM " + _b64(ntlm.negotiate())))
        reply = client.command(_b64(ntlm.authenticate(challenge)))
        assert reply[0][:3] == code


@pytest.mark.parametrize(
    ("mechanism", "message", "error_reply", "status"),
    [
        (
            "XOAUTH2",
            b"user=alice\x01auth=Bearer %s\x01\x01",
            b"",
            "401",
        ),
        (
            "OAUTHBEARER",
            b"n,a=alice,\x01host=localhost\x01port=25\x01auth=Bearer %s\x01\x01",
            b"\x01",
            "invalid_token",
        ),
    ],
)
def test_oauth_over_the_wire(
    mechanism: str, message: bytes, error_reply: bytes, status: str
) -> None:
    server = LocalSmtpServer(tls="none", tokens=TOKENS, mechanisms=[mechanism])
    with server, _EsmtpClient(server) as client:
        verb = b"AUTH " + mechanism.encode() + b" "
        # RFC 7628 3.2.2: a wrong token gets a JSON error in a 334 ...
        error = _challenge(client.command(verb + _b64(message % b"stale")))
        assert json.loads(error)["status"] == status
        # ... and fails once the client has answered it.
        assert client.command(_b64(error_reply))[0].startswith(b"535 5.7.8")
        token = TOKENS["alice"].encode()
        # RFC 4954 4: without an initial response, an empty challenge.
        assert _challenge(client.command(b"AUTH " + mechanism.encode())) == b""
        assert client.command(_b64(message % token))[0].startswith(b"235 ")


@pytest.mark.parametrize(
    "message",
    [
        b"user=alice\x01auth=Bearer t\x01",
        b"user=alice\x01auth=Basic t\x01\x01",
        b"auth=Bearer t\x01\x01\x01",
    ],
)
def test_xoauth2_parser_refuses(message: bytes) -> None:
    with pytest.raises(ValueError):
        parse_xoauth2(message)


@pytest.mark.parametrize(
    "message",
    [
        b"n,,\x01auth=Bearer t\x01\x01",
        b"y,a=alice,\x01auth=Bearer t\x01\x01",
        b"n,a=alice,\x01auth=Bearer t\x01",
        b"n,a=alice,\x01host=h\x01\x01",
    ],
)
def test_oauthbearer_parser_refuses(message: bytes) -> None:
    with pytest.raises(ValueError):
        parse_oauthbearer(message)


def test_oauthbearer_parser_unescapes_the_user() -> None:
    assert parse_oauthbearer(b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01") == (
        "a,b=c",
        "t",
    )


def test_cancelled_exchange_gets_501() -> None:
    server = LocalSmtpServer(tls="none", users=USERS, mechanisms=["CRAM-MD5"])
    with server, _EsmtpClient(server) as client:
        challenge = _challenge(client.command(b"AUTH CRAM-MD5"))
        assert challenge.startswith(b"<") and challenge.endswith(b"@localhost>")
        assert client.command(b"*")[0].startswith(b"501 ")
        assert client.command(b"NOOP")[0].startswith(b"250")


# ========================================================= ESMTP extensions


def _group(client: _RawClient, data: bytes, replies: int) -> list[bytes]:
    """Write ``data`` in one go (a pipelined group); read ``replies`` replies
    and return their first lines."""
    client.sock.sendall(data)
    return [client.reply()[0] for _ in range(replies)]


MAIL_RCPT = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


def test_bdat_is_refused_without_chunking(raw: _RawClient) -> None:
    raw.command(b"EHLO client.test")
    assert raw.command(b"BDAT 0 LAST")[0].startswith(b"500 ")


def test_bdat_chunks_make_one_message() -> None:
    server = LocalSmtpServer(tls="none", chunking=True)
    with server, _EsmtpClient(server) as client:
        assert {"CHUNKING", "BINARYMIME"} <= set(client.keywords())
        # RFC 3030 2: the octets follow the command line at once, unstuffed,
        # and may look like commands or like DATA's end marker.
        first = b"line one\r\n.\r\nQUIT\r\n"
        codes = _group(client, MAIL_RCPT + b"BDAT %d\r\n" % len(first) + first, 3)
        assert codes == [b"250 OK", b"250 OK", b"250 2.0.0 19 octets received"]
        assert _group(client, b"BDAT 7 last\r\nthe end", 1) == [b"250 OK"]
        assert client.command(b"NOOP")[0] == b"250 OK"
    [message] = server.messages
    assert message.data == first + b"the end"
    assert [c.line for c in server.sessions[0]] == [
        "EHLO c",
        "MAIL FROM:<a@example.com>",
        "RCPT TO:<b@example.com>",
        "BDAT 19",
        "BDAT 7 last",
        "NOOP",
    ]


def test_bdat_out_of_order_is_refused_and_its_octets_skipped() -> None:
    server = LocalSmtpServer(tls="none", chunking=True)
    with server, _EsmtpClient(server) as client:
        assert _group(client, b"BDAT 4 LAST\r\nNOOP", 1)[0].startswith(b"503 ")
        assert client.command(b"BDAT x")[0].startswith(b"501 ")
        _group(client, MAIL_RCPT, 2)
        assert _group(client, b"BDAT 2\r\nhi", 1)[0].startswith(b"250 ")
        # RFC 3030 2: DATA and BDAT do not mix in one transaction.
        assert client.command(b"DATA")[0].startswith(b"503 ")
        assert client.command(b"RSET")[0] == b"250 OK"
    assert server.messages == []
    assert "NOOP" not in [c.line for c in server.sessions[0]]


def test_bdat_over_the_size_limit_fails_until_rset() -> None:
    server = LocalSmtpServer(tls="none", chunking=True, data_size_limit=10)
    with server, _EsmtpClient(server) as client:
        _group(client, MAIL_RCPT, 2)
        assert _group(client, b"BDAT 6\r\n123456", 1)[0].startswith(b"250 ")
        assert _group(client, b"BDAT 5\r\n12345", 1)[0].startswith(b"552 5.3.4")
        assert client.command(b"BDAT 0 LAST")[0].startswith(b"503 ")
        assert client.command(b"RSET")[0] == b"250 OK"
        _group(client, MAIL_RCPT, 2)
        assert _group(client, b"BDAT 10 LAST\r\n1234567890", 1) == [b"250 OK"]
    assert [m.data for m in server.messages] == [b"1234567890"]


def test_binarymime_needs_bdat() -> None:
    server = LocalSmtpServer(tls="none", chunking=True)
    with server, _EsmtpClient(server) as client:
        mail = b"MAIL FROM:<a@example.com> BODY=BINARYMIME"
        assert client.command(mail)[0] == b"250 OK"
        assert client.command(b"RCPT TO:<b@example.com>")[0] == b"250 OK"
        assert client.command(b"DATA")[0].startswith(b"503 ")
        assert _group(client, b"BDAT 3 LAST\r\n\0\xff\n", 1) == [b"250 OK"]
    [message] = server.messages
    assert message.data == b"\0\xff\n"
    assert message.mail_options == ("BODY=BINARYMIME",)


@pytest.fixture(scope="module")
def chunking_server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", chunking=True) as server:
        yield server


@settings(max_examples=50, deadline=None)
@given(
    content=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4),
)
def test_any_chunking_of_any_octets_is_received_whole(
    chunking_server: LocalSmtpServer, content: bytes, cuts: list[int]
) -> None:
    chunking_server.reset()
    bounds = sorted({0, len(content), *(c for c in cuts if c < len(content))})
    pieces = [content[a:b] for a, b in itertools.pairwise(bounds)]
    wire = b"".join(b"BDAT %d\r\n" % len(p) + p for p in pieces) + b"BDAT 0 LAST\r\n"
    client = _EsmtpClient(chunking_server)
    try:
        # The whole transaction in one write: BDAT may sit anywhere in a
        # pipelined group (RFC 3030 4.2).
        codes = _group(client, MAIL_RCPT + wire, 3 + len(pieces))
    finally:
        client.close()
    assert all(code.startswith(b"250") for code in codes)
    [message] = chunking_server.wait_for_messages(1)
    assert message.data == content
    verbs = [c.line.split()[0] for c in chunking_server.sessions[0]]
    assert verbs == ["EHLO", "MAIL", "RCPT", *["BDAT"] * (len(pieces) + 1)]


@pytest.mark.parametrize("dsn", [True, False])
def test_dsn_parameters(dsn: bool) -> None:
    server = LocalSmtpServer(tls="none", dsn=dsn)
    with server, _EsmtpClient(server) as client:
        assert ("DSN" in client.keywords()) is dsn
        mail = client.command(b"MAIL FROM:<a@example.com> RET=hdrs ENVID=Q+2Bx")
        rcpt = client.command(
            b"RCPT TO:<b@example.com> NOTIFY=success,delay ORCPT=rfc822;B+2Bc@x"
        )
        if dsn:
            assert (mail[0], rcpt[0]) == (b"250 OK", b"250 OK")
            assert client.command(b"DATA")[0].startswith(b"354")
            assert client.command(b"x\r\n.")[0] == b"250 OK"
        else:
            # aiosmtpd's own answer to unknown parameters; RCPT then has
            # no transaction to join.
            assert (mail[0][:3], rcpt[0][:3]) == (b"555", b"503")
    if dsn:
        # Keywords upper-cased, xtext values as sent (RFC 3461 4).
        [message] = server.messages
        assert message.mail_options == ("RET=hdrs", "ENVID=Q+2Bx")
        assert message.rcpt_options == (
            ("NOTIFY=success,delay", "ORCPT=rfc822;B+2Bc@x"),
        )


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (b"MAIL FROM:<a@example.com> RET=ALL", b"501"),
        (b"MAIL FROM:<a@example.com> ENVID=a+b", b"501"),
        (b"MAIL FROM:<a@example.com> ENVID=" + b"x" * 101, b"501"),
        (b"RCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS", b"501"),
        (b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,SUCCESS", b"501"),
        (b"RCPT TO:<b@example.com> ORCPT=b@example.com", b"501"),
        (b"RCPT TO:<b@example.com> ORCPT=rfc822;b=c", b"501"),
        (b"RCPT TO:<b@example.com> NOTIFY=NEVER ORCPT=rfc822;b+3Dc", b"250"),
    ],
)
def test_dsn_parameter_syntax_is_checked(command: bytes, code: bytes) -> None:
    server = LocalSmtpServer(tls="none", dsn=True)
    with server, _EsmtpClient(server) as client:
        if command.startswith(b"RCPT"):
            client.command(b"MAIL FROM:<a@example.com>")
        assert client.command(command)[0][:3] == code


@pytest.mark.parametrize("tls", [False, True])
def test_requiretls_only_over_tls(tls: bool) -> None:
    server = LocalSmtpServer(tls="implicit" if tls else "none", requiretls=True)
    with server, _EsmtpClient(server, tls=tls) as client:
        assert ("REQUIRETLS" in client.keywords()) is tls
        reply = client.command(b"MAIL FROM:<a@example.com> REQUIRETLS")
        assert reply[0] == (
            b"250 OK" if tls else b"530 5.7.10 REQUIRETLS needs a TLS session"
        )


def test_enhanced_status_codes() -> None:
    server = LocalSmtpServer(
        tls="none", enhancedstatuscodes=True, refuse_recipients=["no@example.com"]
    )
    with server, _EsmtpClient(server) as client:
        # RFC 2034 4: not in the greeting nor in the EHLO reply.
        assert client.hello[0] == b"250-localhost"
        assert "ENHANCEDSTATUSCODES" in client.keywords()
        replies = [
            client.command(line)[0]
            for line in (
                b"MAIL FROM:<a@example.com>",
                b"RCPT TO:<no@example.com>",
                b"RCPT TO:<b@example.com>",
                b"DATA",
                b"hi\r\n.",
                b"NOOP",
                b"FROB",
            )
        ]
    assert replies == [
        b"250 2.1.0 OK",
        b"550 5.1.1 <no@example.com>: Recipient address rejected",
        b"250 2.1.5 OK",
        b"354 End data with <CR><LF>.<CR><LF>",
        b"250 2.6.0 OK",
        b"250 2.0.0 OK",
        b'500 5.5.2 Error: command "FROB" not recognized',
    ]


def test_eightbitmime_can_be_withdrawn() -> None:
    server = LocalSmtpServer(tls="none", eightbitmime=False)
    with server, _EsmtpClient(server) as client:
        assert "8BITMIME" not in client.keywords()
        reply = client.command(b"MAIL FROM:<a@example.com> BODY=8BITMIME")
        assert reply[0].startswith(b"555 ")
        assert client.command(b"MAIL FROM:<a@example.com> BODY=7BIT")[0] == b"250 OK"


def test_smtputf8_with_smtplib() -> None:
    sender, recipient = "j\u00f6s\u00e9@example.com", "\u00fc@example.org"
    with LocalSmtpServer(tls="none", smtputf8=True) as server:
        with _connect(server) as client:
            assert client.has_extn("smtputf8")
            client.sendmail(sender, [recipient], MESSAGE, mail_options=["SMTPUTF8"])
        [message] = server.messages
    assert (message.mail_from, message.rcpt_tos) == (sender, (recipient,))
    assert "SMTPUTF8" in message.mail_options


def test_lmtp_replies_per_recipient() -> None:
    server = LocalSmtpServer(
        tls="none", lmtp=True, lmtp_refuse_after_data=["b@example.com"]
    )
    with server, _EsmtpClient(server, hello=b"LHLO c") as client:
        assert client.hello[0] == b"250-localhost"
        assert client.command(b"EHLO c")[0].startswith(b"500 ")
        assert client.command(b"HELO c")[0].startswith(b"500 ")
        for address in (b"a", b"b", b"c"):
            client.command(b"RCPT TO:<%s@example.com>" % address)  # 503: no MAIL
        client.command(b"MAIL FROM:<x@example.com>")
        for address in (b"a", b"b", b"c"):
            assert client.command(b"RCPT TO:<%s@example.com>" % address)[0] == (
                b"250 OK"
            )
        assert client.command(b"DATA")[0].startswith(b"354")
        # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
        client.sock.sendall(b"x\r\n.\r\n")
        finals = [client.reply()[0] for _ in range(3)]
    assert [f[:9] for f in finals] == [b"250 2.1.5", b"552 5.2.2", b"250 2.1.5"]
    [message] = server.messages
    assert message.rcpt_tos == ("a@example.com", "c@example.com")


@pytest.mark.parametrize(
    ("options", "raw_arg", "kept"),
    [
        (["RET=HDRS"], "FROM:<a@b> ret=hdrs", ["RET=hdrs"]),
        (
            ["SIZE=1", "ENVID=AB"],
            "FROM:<a@b>  size=1\tENVID=ab",
            ["SIZE=1", "ENVID=ab"],
        ),
        (["X=1"], "FROM:<a@b>X=1", ["X=1"]),
        ([], "FROM:<a@b>", []),
    ],
)
def test_options_as_sent(options: list[str], raw_arg: str, kept: list[str]) -> None:
    assert options_as_sent(options, raw_arg) == kept


@pytest.mark.parametrize(
    ("text", "verb", "decorated"),
    [
        ("250 OK", "MAIL", "250 2.1.0 OK"),
        ("250 OK", "EHLO", "250 OK"),
        ("220 host ready", "", "220 host ready"),
        ("550 5.1.1 no", "RCPT", "550 5.1.1 no"),
        ("503 Error: need MAIL", "RCPT", "503 5.5.1 Error: need MAIL"),
        ("451 later", "DATA", "451 4.0.0 later"),
        ("250 a\r\n552 b", "DATA", "250 2.6.0 a\r\n552 5.3.4 b"),
        ("250", "NOOP", "250 2.0.0"),
        ("334 ", "AUTH", "334 "),
    ],
)
def test_with_enhanced_status(text: str, verb: str, decorated: str) -> None:
    assert with_enhanced_status(text, verb) == decorated
