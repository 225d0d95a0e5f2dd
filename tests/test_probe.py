"""``smtpcore.probe``: what a real server offers, and what a failing one
presented, read from real connections on loopback.

Every probe is also checked against what the server recorded: a probe sends
no credentials and no mail, and the unverified second look after a
certificate failure sends nothing but EHLO, STARTTLS and QUIT.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import sys
from collections.abc import Iterator

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import USER
from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    PropertyNullError,
    SmtpCommandError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.probe import CertificateSummary, ProbeReport, error_details, probe
from smtpcore.protocol.replies import SmtpReply
from smtpcore.testserver import LocalSmtpServer, ReceivedCommand
from tests.rawserver import RawConnection, RawServer, smtp_script

TIMEOUT = 5.0
UTC = datetime.timezone.utc
# What a probe may say on the wire, and what the unverified look may say.
PROBE_VERBS = {"EHLO", "HELO", "STARTTLS", "QUIT"}
LOOK_VERBS = {"EHLO", "STARTTLS", "QUIT"}
# Python 3.13 reports the whole chain; older versions the leaf only.
CHAIN = sys.version_info >= (3, 13)


def verbs(session: list[ReceivedCommand]) -> set[str]:
    """The command verbs of one recorded session."""
    return {command.line.split(" ", 1)[0].upper() for command in session}


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


@pytest.fixture(scope="module")
def starttls_server(ca: trustme.CA, password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="starttls", users={USER: password}, ca=ca) as server:
        yield server


@pytest.fixture
def submission(starttls_server: LocalSmtpServer) -> LocalSmtpServer:
    starttls_server.reset()
    return starttls_server


def test_starttls_server_before_and_after_tls(
    submission: LocalSmtpServer, ca: trustme.CA
) -> None:
    server = submission
    report = probe(
        server.host,
        server.port,
        use_ssl=False,
        tls_context=client_context(ca),
        timeout=TIMEOUT,
    )
    assert report.ok and report.error is None and report.reason is None
    assert report.greeting is not None and report.greeting.code == 220
    before, after = report.extensions_before_tls, report.extensions_after_tls
    assert before is not None and after is not None
    # aiosmtpd offers AUTH only after STARTTLS, and STARTTLS only before.
    assert before.starttls and not before.auth_mechanisms
    assert not after.starttls and after.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert report.auth_mechanisms == ("LOGIN", "PLAIN")
    assert report.auth_mechanism_used == "PLAIN"
    tls = report.tls
    assert tls is not None and tls.verified
    assert tls.version in ("TLSv1.2", "TLSv1.3") and tls.cipher and tls.cipher_bits
    assert tls.chain_source == ("verified" if CHAIN else "leaf")
    leaf = tls.chain[0]
    assert set(leaf.subject_alt_names) == {"DNS:localhost", "IP:127.0.0.1"}
    assert leaf.validity_problem() is None
    assert report.presented is None
    [session] = server.sessions
    assert verbs(session) <= PROBE_VERBS
    assert [c.line.split(" ")[0].upper() for c in session] == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "QUIT",
    ]


def test_implicit_tls_has_no_plain_phase(ca: trustme.CA, password: str) -> None:
    with LocalSmtpServer(tls="implicit", users={USER: password}, ca=ca) as server:
        report = probe(
            server.host, server.port, tls_context=client_context(ca), timeout=TIMEOUT
        )
        assert [verbs(s) for s in server.sessions] == [{"EHLO", "QUIT"}]
    assert report.ok and report.use_ssl
    assert report.extensions_before_tls is None
    assert report.extensions_after_tls is not None
    assert report.tls is not None and report.tls.verified


def test_starttls_never_stays_plain(submission: LocalSmtpServer) -> None:
    report = probe(
        submission.host,
        submission.port,
        use_ssl=False,
        starttls="never",
        timeout=TIMEOUT,
    )
    assert report.ok
    assert report.tls is None and report.extensions_after_tls is None
    assert report.extensions_before_tls is not None
    assert report.extensions_before_tls.starttls
    assert verbs(submission.sessions[0]) == {"EHLO", "QUIT"}


def test_starttls_required_without_starttls(ca: trustme.CA) -> None:
    with LocalSmtpServer(tls="none", ca=ca) as server:
        report = probe(
            server.host,
            server.port,
            use_ssl=False,
            starttls="required",
            timeout=TIMEOUT,
        )
    assert report.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE
    # What the server offered in clear is still reported.
    assert report.extensions_before_tls is not None
    assert not report.extensions_before_tls.starttls
    assert report.extensions_after_tls is None and report.tls is None


def test_untrusted_certificate_shows_what_was_presented(
    submission: LocalSmtpServer,
) -> None:
    server = submission
    # No tls_context: the system CAs, which do not include the test CA.
    report = probe(server.host, server.port, use_ssl=False, timeout=TIMEOUT)
    assert report.reason is EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE
    error = report.error
    assert isinstance(error, EmailSessionError)
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 20
    assert report.tls is None  # the verified handshake never completed
    # The plain phase was seen; TLS was not, so AUTH is unknown.
    assert report.extensions_before_tls is not None
    assert report.extensions_after_tls is None
    presented = report.presented
    assert presented is not None and not presented.verified
    assert presented.chain_source == ("presented" if CHAIN else "leaf")
    assert "IP:127.0.0.1" in presented.chain[0].subject_alt_names
    first, second = server.sessions
    assert verbs(first) == {"EHLO", "STARTTLS"}
    assert verbs(second) <= LOOK_VERBS


def test_antivirus_root_is_diagnosed(password: str) -> None:
    intercepting = trustme.CA(organization_name="AVAST Software s.r.o.")
    with LocalSmtpServer(tls="implicit", ca=intercepting) as server:
        report = probe(server.host, server.port, timeout=TIMEOUT)
        assert server.connections == 2
    assert report.reason is EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS
    assert isinstance(report.error, EmailSessionError)
    assert "Avast" in str(report.error)
    assert isinstance(report.error.__cause__, ssl.SSLCertVerificationError)
    assert report.presented is not None
    assert "O=AVAST Software s.r.o." in report.presented.chain[0].issuer


@pytest.fixture
def expired_server(ca: trustme.CA) -> Iterator[RawServer]:
    """Implicit TLS with a certificate that expired 30 days ago."""
    now = datetime.datetime.now(UTC)
    leaf = ca.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=60),
        not_after=now - datetime.timedelta(days=30),
    )
    script = smtp_script("MAIL", "close")
    with RawServer(script, ssl_context=server_context(leaf)) as server:
        yield server


def test_expired_certificate(expired_server: RawServer, ca: trustme.CA) -> None:
    report = probe(
        "127.0.0.1",
        expired_server.port,
        tls_context=client_context(ca),
        timeout=TIMEOUT,
    )
    assert report.reason is EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE
    assert isinstance(report.error, EmailSessionError)
    assert "expired" in report.error.detail
    assert report.greeting is None  # the handshake failed before any byte
    presented = report.presented
    assert presented is not None
    leaf = presented.chain[0]
    assert leaf.not_after < datetime.datetime.now(UTC)
    problem = leaf.validity_problem()
    assert problem is not None and problem.startswith("expired 30 days")
    # The first connection failed in the handshake; the look went through.
    assert expired_server.accepted == 2
    [look] = expired_server.connections
    assert {line.split(b" ")[0].upper() for line in look.lines} <= {b"EHLO", b"QUIT"}


def test_connection_refused_is_invalid_port() -> None:
    # Bound but not listening: the kernel refuses connections to it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        report = probe("127.0.0.1", port, use_ssl=False, timeout=TIMEOUT)
    assert report.reason is EmailSessionReason.INVALID_PORT
    assert report.greeting is None and report.tls is None
    assert report.presented is None
    assert report.to_dict()["error"]["error_code"] == 100


def _refuse(conn: RawConnection) -> None:
    conn.send(b"554 5.7.1 go away\r\n")
    conn.read_line()  # QUIT
    conn.send(b"221 bye\r\n")


def test_refused_greeting_is_a_command_error() -> None:
    with RawServer(_refuse) as server:
        report = probe("127.0.0.1", server.port, use_ssl=False, timeout=TIMEOUT)
        assert [c.lines for c in server.connections] == [[b"QUIT"]]
    assert isinstance(report.error, SmtpCommandError)
    assert report.reason is None
    assert report.greeting == SmtpReply(554, (b"5.7.1 go away",), "5.7.1")
    assert report.extensions_before_tls is None


def test_report_to_dict_is_json(submission: LocalSmtpServer, ca: trustme.CA) -> None:
    report = probe(
        submission.host,
        submission.port,
        use_ssl=False,
        tls_context=client_context(ca),
        timeout=TIMEOUT,
    )
    document = json.loads(json.dumps(report.to_dict()))
    assert document["ok"] is True and document["error"] is None
    assert "STARTTLS" in document["extensions_before_tls"]["keywords"]
    assert document["extensions_after_tls"]["auth_mechanisms"] == ["LOGIN", "PLAIN"]
    leaf = document["tls"]["chain"][0]
    assert datetime.datetime.fromisoformat(leaf["not_after"]).year == 3000
    assert len(leaf["sha256"].split(":")) == 32


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="starttls"):
        probe("127.0.0.1", 25, starttls="sometimes")  # type: ignore[arg-type]


def test_error_details_classify_each_kind() -> None:
    session = EmailSessionError(
        EmailSessionReason.CONNECTION_TIMEOUT, "slow", host="h", port=25
    )
    assert error_details(session) | {"message": ""} == {
        "type": "EmailSessionError",
        "message": "",
        "reason": "CONNECTION_TIMEOUT",
        "reason_value": "ConnectionTimeout",
        "error_code": 102,
        "fix": EmailSessionReason.CONNECTION_TIMEOUT.fix,
        "host": "h",
        "port": 25,
        "delivery_unknown": False,
        "reply": None,
    }
    refused = SmtpReply(550, (b"5.1.1 no such user",), "5.1.1")
    command = SmtpCommandError(
        SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
        refused,
        "RCPT TO",
        "a@b.example",
        rejected={"a@b.example": refused},
    )
    details = error_details(command)
    assert (
        details["kind"] == "RECIPIENT_NOT_ACCEPTED"
        and details["mailbox"] == "a@b.example"
    )
    assert details["reply"] == {
        "code": 550,
        "enhanced_status": "5.1.1",
        "text": "5.1.1 no such user",
    }
    assert details["rejected"]["a@b.example"]["code"] == 550
    assert error_details(PropertyNullError("to[0].address"))["property_name"] == (
        "to[0].address"
    )
    assert error_details(ArgumentError("priority", "bad"))["type"] == "ArgumentError"
    missing = error_details(FileNotFoundError(2, "No such file", "/x/a.txt"))
    assert missing["filename"] == "/x/a.txt" and missing["type"] == "FileNotFoundError"
    assert error_details(SmtpProtocolError("junk")) == {
        "type": "SmtpProtocolError",
        "message": "junk",
    }


_moments = st.datetimes(
    min_value=datetime.datetime(1990, 1, 1),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(UTC),
)


@settings(max_examples=150)
@given(_moments, _moments, _moments)
def test_validity_problem_matches_the_dates(
    first: datetime.datetime, second: datetime.datetime, now: datetime.datetime
) -> None:
    start, end = min(first, second), max(first, second)
    summary = CertificateSummary("CN=s", "CN=i", 1, start, end, (), "00")
    problem = summary.validity_problem(now)
    if now > end:
        assert problem is not None and problem.startswith("expired ")
        assert f" {int((now - end).total_seconds() // 86400)} day" in problem
    elif now < start:
        assert problem is not None and problem.startswith("not valid for another ")
    else:
        assert problem is None


def test_report_properties_without_a_connection() -> None:
    report = ProbeReport(
        host="h",
        port=25,
        use_ssl=False,
        starttls="auto",
        greeting=None,
        extensions_before_tls=None,
        extensions_after_tls=None,
        tls=None,
        error=None,
        presented=None,
    )
    assert report.ok and report.extensions is None
    assert report.auth_mechanisms == () and report.auth_mechanism_used is None
