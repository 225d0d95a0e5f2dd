"""The command line, run as a user runs it: a subprocess, against real
servers on loopback (aiosmtpd, or a raw TLS server for the broken cases):
``probe``, ``demo``, usage errors, ``--help`` and the documented exit
statuses.  ``send`` has its own file, tests/test_cli_send.py.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._cli_common import exit_status_table, session_exit_status
from smtpcore.cli import parse_target
from smtpcore.errors import EmailSessionReason
from smtpcore.testserver import LocalSmtpServer
from tests.clirun import TIMEOUT, USER, error_line, run
from tests.rawserver import RawConnection, RawServer, smtp_script

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def _server(ca: trustme.CA, password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="starttls", users={USER: password}, ca=ca) as server:
        yield server


@pytest.fixture
def server(_server: LocalSmtpServer) -> LocalSmtpServer:
    _server.reset()
    return _server


def test_demo_sends_the_seven_seed_examples_over_one_session() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    assert "The server received 7 messages over 1 connection(s)" in done.stdout
    assert done.stdout.count(": 250 ") == 7
    assert "X-Priority: 1 (Highest)" in done.stdout
    assert "Body (text/html): '<h1>Example email body</h1>'" in done.stdout
    assert "['attachment1.txt', 'attachment2.txt']" in done.stdout
    assert "Traceback" not in done.stderr


def test_help_and_usage_errors() -> None:
    helped = run("demo", "--help")
    assert helped.returncode == 0 and "seven examples" in helped.stdout
    wrong = run("nonsense")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "form", [["--password", "hunter2-secret"], ["--password=hunter2-secret"]]
)
def test_a_password_is_never_an_option(form: list[str]) -> None:
    done = run("send", "--host", "127.0.0.1", *form, "--to", "a@example.com")
    assert done.returncode == 2
    assert "--password-env" in error_line(done)
    assert "hunter2" not in done.stderr


_MESSAGE = ["--from", USER, "--to", "a@example.com"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["send", *_MESSAGE], "--host is required"),
        (["send", "--host", "h", "--to", "a@example.com"], "--from"),
        (
            ["send", "--host", "h", "--message", "m.json", *_MESSAGE],
            "--message replaces",
        ),
        (
            ["send", "--host", "h", "--user", "u", *_MESSAGE],
            "--password-env go together",
        ),
        (
            ["send", "--session", "s.json", "--port", "25", *_MESSAGE],
            "--session replaces",
        ),
        (["send", "--ssl", "--starttls"], "not allowed with"),
        (["probe", "127.0.0.1:99999"], "1..65535"),
        (["probe", "127.0.0.1", "--timeout", "-1"], "above 0"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], words: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert words in error_line(done)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "above 0"),
        ("-5", "above 0"),
        ("86401", "at most 86400"),
        ("nan", "above 0"),
        ("ten", "not a number of seconds: 'ten'"),
        ("", "not a number of seconds"),
    ],
)
def test_bad_data_timeout_is_a_usage_error_before_connecting(
    server: LocalSmtpServer, value: str, words: str
) -> None:
    done = run("send", "--host", server.host, "--port", str(server.port),
               *_MESSAGE, "--data-timeout", value)  # fmt: skip
    assert done.returncode == 2
    line = error_line(done)
    assert "--data-timeout" in line and words in line
    assert done.stdout == "" and server.connections == 0


# ----------------------------------------------------------------- probe


def test_probe_a_good_starttls_server(server: LocalSmtpServer, ca_file: str) -> None:
    done = run(
        "probe", f"127.0.0.1:{server.port}", "--ca-file", ca_file, "--timeout", TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    before = out.index("EHLO before TLS:")
    tls = out.index("TLS: TLSv1.")
    after = out.index("EHLO after STARTTLS:")
    assert before < tls < after
    assert "  STARTTLS\n" in out[before:tls] and "AUTH" not in out[before:tls]
    assert "  AUTH LOGIN PLAIN\n" in out[after:]
    assert "certificate verified" in out
    assert "SANs:    DNS:localhost, IP:127.0.0.1" in out
    assert ("leaf only" in out) == (sys.version_info < (3, 13))
    assert "AUTH mechanisms: LOGIN PLAIN (smtpcore would use PLAIN)" in out
    assert "Result: OK" in out and done.stderr == ""
    assert {c.line.split(" ")[0] for c in server.sessions[0]} <= {
        "EHLO",
        "STARTTLS",
        "QUIT",
    }


@pytest.fixture
def expired_server(ca: trustme.CA) -> Iterator[RawServer]:
    """Implicit TLS with a certificate that expired 30 days ago."""
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = ca.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=60),
        not_after=now - datetime.timedelta(days=30),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    with RawServer(smtp_script("MAIL", "close"), ssl_context=context) as server:
        yield server


def test_probe_an_expired_certificate(expired_server: RawServer, ca_file: str) -> None:
    target = f"127.0.0.1:{expired_server.port}"
    done = run("probe", target, "--ssl", "--ca-file", ca_file, "--timeout", TIMEOUT)
    reason = EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE
    assert done.returncode == session_exit_status(reason) == 14
    out = done.stdout
    assert f"Reason: {reason.name} ({reason.value}, error_code 201)" in out
    assert "Detail: the server's certificate has expired" in out
    assert f"Fix: {reason.fix}" in out
    presented = out.index("Certificate presented by the server")
    expired_on = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        days=30
    )
    assert f"to {expired_on:%Y-%m-%d}" in out[presented:]
    assert "(EXPIRED 30 DAYS AGO)" in out[presented:]
    assert "certificate NOT verified" in out[presented:]
    assert error_line(done).startswith("smtpcore: error: ExpiredOrUntrustedCertificate")


def test_probe_a_port_where_nothing_listens() -> None:
    with socket.socket() as holder:  # bound, not listening: refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        done = run("probe", f"127.0.0.1:{port}", "--timeout", TIMEOUT)
    reason = EmailSessionReason.INVALID_PORT
    assert done.returncode == session_exit_status(reason) == 10
    assert f"Reason: {reason.name}" in done.stdout
    assert f"Fix: {reason.fix}" in done.stdout
    assert "connection refused" in error_line(done)


def test_probe_json(server: LocalSmtpServer, ca_file: str) -> None:
    done = run(
        "probe",
        f"127.0.0.1:{server.port}",
        "--ca-file",
        ca_file,
        "--json",
        "--timeout",
        TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["exit_status"] == 0
    assert report["port"] == server.port and report["starttls"] == "auto"
    assert "STARTTLS" in report["extensions_before_tls"]["keywords"]
    assert report["extensions_after_tls"]["auth_mechanisms"] == ["LOGIN", "PLAIN"]
    assert report["tls"]["version"].startswith("TLSv1.")
    assert "IP:127.0.0.1" in report["tls"]["chain"][0]["subject_alt_names"]
    assert report["error"] is None and report["presented"] is None


def _hostile(conn: RawConnection) -> None:
    # Terminal escapes: clear the screen, set the window title, bidi override.
    conn.send("220 evil\x1b[2J\x1b]0;pwned\x07 \u202eESMTP\r\n".encode())
    while line := conn.read_line():
        if line.upper().startswith(b"QUIT"):
            conn.send(b"221 bye\r\n")
            return
        conn.send(b"250-evil\r\n250 X-\x1b[31mRED\r\n")


def test_probe_output_cannot_drive_the_terminal() -> None:
    with RawServer(_hostile) as server:
        done = run(
            "probe", f"127.0.0.1:{server.port}", "--no-tls", "--timeout", TIMEOUT
        )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\u202e" not in done.stdout
    assert "Greeting: 220 evil\\x1b[2J\\x1b]0;pwned\\x07 \\u202eESMTP" in done.stdout


# ------------------------------------------------------------ help, docs


def test_help_is_complete() -> None:
    send = run("send", "--help").stdout
    for option in (
        "--host", "--port", "--ssl", "--starttls", "--no-tls", "--user",
        "--password-env", "--from", "--to", "--cc", "--bcc", "--subject",
        "--body", "--body-file", "--html", "--attach", "--priority",
        "--message", "--session", "-v", "--json", "--timeout", "--ca-file",
        "--check-revocation", "--allow-insecure-auth", "--allow-partial",
        "--data-timeout",
    ):  # fmt: skip
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", send), option
    probe = run("probe", "--help").stdout
    for option in (
        "HOST[:PORT]",
        "--ssl",
        "--starttls",
        "--no-tls",
        "--timeout",
        "--ca-file",
        "--json",
    ):
        assert option in probe
    top = run("--help").stdout
    assert all(command in top for command in ("send", "probe", "demo"))
    for text in (send, probe, top):
        assert "exit status:" in text
        assert "   18  EmailSessionError INVALID_USERNAME_OR_PASSWORD" in text


def _option_help(text: str, option: str) -> str:
    """An option's help text from --help output, on one line."""
    start = text.index(f"\n  {option}")
    end = text.index("\n  -", start + 1)
    return " ".join(text[start:end].split())


def test_new_send_options_say_what_they_do() -> None:
    send = run("send", "--help").stdout
    insecure = _option_help(send, "--allow-insecure-auth")
    assert "the password then crosses the network in clear" in insecure
    assert "trusted network" in insecure
    partial = _option_help(send, "--allow-partial")
    assert "refused" in partial and "exit status is 0" in partial
    data = _option_help(send, "--data-timeout SECONDS")
    assert "final reply after the message content" in data
    assert "default 600" in data and "4.5.3.2.6" in data
    # probe sends no credentials and no message: none of them is its option.
    probe = run("probe", "--help").stdout
    for option in ("--allow-insecure-auth", "--allow-partial", "--data-timeout"):
        assert f"\n  {option}" not in probe


def test_docs_list_the_send_options() -> None:
    doc = DOCS.read_text()
    for option in ("--allow-insecure-auth", "--allow-partial", "--data-timeout"):
        assert f"[{option}" in doc, option  # in the synopsis
        assert f"`{option}" in doc, option  # and explained
    assert "the password crosses the network in clear" in doc


def test_docs_exit_status_table_is_the_codes_own() -> None:
    doc = DOCS.read_text()
    header = "<!-- generated: smtpcore._cli_common.exit_status_table() -->\n"
    start = doc.index(header) + len(header)
    assert (
        doc[start : doc.index("<!-- end generated -->", start)] == exit_status_table()
    )


@settings(max_examples=200)
@given(
    st.one_of(
        st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True),
        st.ip_addresses(v=4).map(str),
    ),
    st.integers(1, 65535),
)
def test_parse_target_host_and_port(host: str, port: int) -> None:
    assert parse_target(f"{host}:{port}") == (host, port)
    assert parse_target(host) == (host, None)


@settings(max_examples=100)
@given(st.ip_addresses(v=6).map(str), st.integers(1, 65535))
def test_parse_target_ipv6(host: str, port: int) -> None:
    assert parse_target(f"[{host}]:{port}") == (host, port)
    assert parse_target(f"[{host}]") == (host, None)
    assert parse_target(host) == (host, None)  # bare: every colon is the address's
