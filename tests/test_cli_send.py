"""``smtpcore send``, run as a user runs it: a subprocess against a real
STARTTLS + AUTH server on loopback (aiosmtpd with a trustme certificate).

Every run also checks that the password appears nowhere in the output, not
even in the transcript of ``-v``, and that errors are one line on stderr.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import SendResult
from smtpcore._cli_common import session_exit_status
from smtpcore._cli_send import progress_bar, refused_text
from smtpcore.demo import SEED_EXAMPLES
from smtpcore.errors import EmailSessionReason
from smtpcore.protocol.replies import SmtpReply
from smtpcore.testserver import LocalSmtpServer
from tests.clirun import TIMEOUT, USER, assert_never_shown, error_line, run, wire_forms
from tests.rawserver import RawServer, smtp_script

REFUSED = "refused@example.com"


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def _server(ca: trustme.CA, password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(
        tls="starttls", users={USER: password}, ca=ca, refuse_recipients={REFUSED}
    ) as server:
        yield server


@pytest.fixture
def server(_server: LocalSmtpServer) -> LocalSmtpServer:
    _server.reset()
    return _server


@pytest.fixture
def env(password: str) -> dict[str, str]:
    return {**os.environ, "SMTP_PASSWORD": password}


@pytest.fixture
def send_args(server: LocalSmtpServer, ca_file: str) -> list[str]:
    """``smtpcore send`` to the STARTTLS server, with AUTH."""
    return [
        "send",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--starttls",
        "--ca-file",
        ca_file,
        "--user",
        USER,
        "--password-env",
        "SMTP_PASSWORD",
        "--timeout",
        TIMEOUT,
    ]


def test_send_over_starttls_with_auth_never_shows_the_password(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], password: str
) -> None:
    done = run(
        *send_args,
        "--from",
        USER,
        "--to",
        "Bob Example <bob@example.com>",
        "--subject",
        "Hello",
        "--body",
        "Hi Bob",
        "-v",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [message] = server.wait_for_messages(1)
    assert message.tls and message.auth_user == USER
    assert message.rcpt_tos == ("bob@example.com",)
    parsed = message.parsed()
    assert parsed["To"] == "Bob Example <bob@example.com>"
    assert parsed.get_content().strip() == "Hi Bob"
    assert done.stdout.startswith("sent: 250 ")
    assert parsed["Message-ID"] in done.stdout
    # The transcript is there, with the AUTH payload redacted...
    assert "C: STARTTLS" in done.stderr
    assert "C: AUTH PLAIN <redacted>" in done.stderr
    # ...while the password went over the wire (so the check below means
    # something) and appears in no form in the output.
    secrets = wire_forms(USER, password)
    [session] = server.sessions
    assert any(secrets[1] in command.line for command in session)
    assert_never_shown(done, secrets)


def test_send_attachments_urgent_html(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    first, second = tmp_path / "report.txt", tmp_path / "data.csv"
    first.write_text("first attachment\n")
    second.write_bytes(b"a,b\r\n1,2\r\n")
    done = run(
        *send_args,
        "--from",
        USER,
        "--to",
        "one@example.com",
        "--bcc",
        "hidden@example.com",
        "--subject",
        "Report",
        "--body",
        "<h1>Report</h1>",
        "--html",
        "--priority",
        "urgent",
        "--attach",
        str(first),
        str(second),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [message] = server.wait_for_messages(1)
    assert set(message.rcpt_tos) == {"one@example.com", "hidden@example.com"}
    parsed = message.parsed()
    assert parsed["X-Priority"] == "1 (Highest)" and parsed["Importance"] == "high"
    assert parsed["Bcc"] is None
    body = parsed.get_body(("html",))
    assert body is not None and body.get_content().strip() == "<h1>Report</h1>"
    files = {
        part.get_filename(): part.get_content() for part in parsed.iter_attachments()
    }
    assert files == {"report.txt": "first attachment\n", "data.csv": "a,b\r\n1,2\r\n"}


def test_send_json_output(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str]
) -> None:
    done = run(
        *send_args,
        "--from",
        USER,
        "--to",
        "a@example.com",
        "--cc",
        "c@example.com",
        "--body-file",
        "-",
        "--check-revocation",
        "--json",
        env=env,
        stdin="read from stdin\n",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    [message] = server.wait_for_messages(1)
    assert message.parsed().get_content().strip() == "read from stdin"
    # --check-revocation read the certificate on a connection of its own
    # (trustme's names no CRL, so there was nothing more to check).
    assert server.connections == 2
    assert document["ok"] is True and document["exit_status"] == 0
    assert document["error"] is None
    [sent] = document["messages"]
    assert sent["status"] == "sent"
    assert sent["message_id"] == message.parsed()["Message-ID"]
    assert sent["accepted"] == ["a@example.com", "c@example.com"]
    assert sent["reply"]["code"] == 250


def _seed_session(server: LocalSmtpServer, password: str) -> str:
    # The seed's shape exactly: ServerDetails, Credentials with Domain null.
    return json.dumps(
        {
            "ServerDetails": {
                "Host": server.host,
                "Port": server.port,
                "UseSsl": False,
            },
            "Credentials": {"Domain": None, "Username": USER, "Password": password},
        }
    )


def test_seed_json_files_one_session(
    server: LocalSmtpServer, ca_file: str, password: str, tmp_path: Path
) -> None:
    session = tmp_path / "session.json"
    session.write_text(_seed_session(server, password))
    session.chmod(0o644)
    messages = tmp_path / "messages.json"
    # Examples 1-5 verbatim, bare EmailMessagePriority.Urgent and
    # EmailMessageBodyFormat.Html tokens included.
    messages.write_text(
        "[\n" + ",\n".join(e.message_json for e in SEED_EXAMPLES[:5]) + "\n]"
    )
    done = run(
        "send",
        "--session",
        str(session),
        "--message",
        str(messages),
        "--ca-file",
        ca_file,
        "--timeout",
        TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    received = server.wait_for_messages(5)
    assert len(received) == 5 and server.connections == 1
    assert all(m.tls and m.auth_user == USER for m in received)
    assert received[3].parsed()["X-Priority"] == "1 (Highest)"
    assert received[4].parsed().get_content_type() == "text/html"
    assert received[1].rcpt_tos == tuple(f"recipient{i}@outlook.com" for i in (1, 2, 3))
    lines = done.stdout.splitlines()
    assert [line.split(" sent: ")[0] for line in lines] == [
        f"message {i}/5" for i in range(1, 6)
    ]
    # The password from the file is used as is, with a warning: the file is
    # world-readable.  No progress bar: stderr is not a terminal.
    [warning] = done.stderr.splitlines()
    assert warning.startswith("smtpcore: warning: ") and "chmod 600" in warning
    assert_never_shown(done, wire_forms(USER, password))

    session.chmod(0o600)
    messages.write_text(SEED_EXAMPLES[0].message_json)  # one message, no array
    again = run("send", "--session", str(session), "--message", str(messages),
                "--ca-file", ca_file, "--timeout", TIMEOUT)  # fmt: skip
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout.startswith("sent: 250 ")


def test_one_bad_message_sends_none(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    messages = tmp_path / "messages.json"
    # Example 6 names C:/attachment.txt, which does not exist here.
    messages.write_text(
        f"[{SEED_EXAMPLES[0].message_json}, {SEED_EXAMPLES[5].message_json}]"
    )
    args = [a for a in send_args if a != "--starttls"]
    done = run(*args, "--message", str(messages), "--json", env=env)
    assert done.returncode == 3
    line = error_line(done)
    assert "message 2 of 2" in line and "C:/attachment.txt" in line
    document = json.loads(done.stdout)
    assert document["error"]["type"] == "FileNotFoundError"
    assert document["error"]["message_index"] == 1
    assert server.connections == 0


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--to", "not an address", "RCPT TO"),
        ("--from", "a@b.example> SIZE=1", "MAIL FROM"),
        ("--port", "0", "server_details.port"),
        ("--subject", "Hi\r\nBcc: x@example.com", "subject"),
        ("--attach", "/nonexistent/file.txt", "/nonexistent/file.txt"),
        ("--ca-file", "/nonexistent/ca.pem", "--ca-file"),
        ("--password-env", "NO_SUCH_VARIABLE_HERE", "NO_SUCH_VARIABLE_HERE is not set"),
        ("--password-env", "not a name!", "NAME of an environment variable"),
    ],
)
def test_invalid_input_exits_3_before_connecting(
    server: LocalSmtpServer,
    send_args: list[str],
    env: dict[str, str],
    option: str,
    value: str,
    words: str,
) -> None:
    args = list(send_args)
    if option in args:
        args[args.index(option) + 1] = value
        value_args: list[str] = []
    else:
        value_args = [option, value]
    message = {"--from": USER, "--to": "to@example.com"}
    for flag, default in message.items():
        if flag != option:
            value_args += [flag, default]
    done = run(*args, *value_args, env=env)
    assert done.returncode == 3, done.stderr
    assert words in error_line(done)
    assert done.stdout == ""
    assert server.connections == 0


def test_wrong_password(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str]
) -> None:
    wrong = "not-the-password-" + "x" * 8
    done = run(
        *send_args,
        "--from",
        USER,
        "--to",
        "a@example.com",
        "-v",
        env={**env, "SMTP_PASSWORD": wrong},
    )
    status = session_exit_status(EmailSessionReason.INVALID_USERNAME_OR_PASSWORD)
    assert done.returncode == status == 18
    assert "smtpcore: error: InvalidUsernameOrPassword" in done.stderr
    assert server.messages == []
    assert_never_shown(done, wire_forms(USER, wrong))


def test_partial_failure_reports_each_message(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    def message(to: str) -> str:
        return json.dumps({"To": [{"Address": to}], "From": {"Address": USER}})

    messages = tmp_path / "three.json"
    messages.write_text(
        f"[{message('a@example.com')}, {message(REFUSED)}, {message('c@example.com')}]"
    )
    done = run(*send_args, "--message", str(messages), env=env)
    assert done.returncode == 4  # the first failure: a refused recipient
    lines = done.stdout.splitlines()
    assert lines[0].startswith("message 1/3 sent: 250")
    assert lines[1].startswith("message 2/3 not sent: RCPT TO")
    assert REFUSED in lines[1] and "550" in lines[1]
    assert lines[2].startswith("message 3/3 sent: 250")
    assert "1 of 3 messages not sent" in error_line(done)
    received = server.wait_for_messages(2)
    assert [m.rcpt_tos for m in received] == [("a@example.com",), ("c@example.com",)]
    assert server.connections == 1

    server.reset()
    as_json = run(*send_args, "--message", str(messages), "--json", env=env)
    document = json.loads(as_json.stdout)
    assert as_json.returncode == document["exit_status"] == 4
    assert [m["status"] for m in document["messages"]] == ["sent", "failed", "sent"]
    failed = document["messages"][1]
    assert failed["exit_status"] == 4
    assert failed["error"]["kind"] == "RECIPIENT_NOT_ACCEPTED"
    assert failed["error"]["reply"]["enhanced_status"] == "5.1.1"


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of the pty is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_progress_bar_when_stderr_is_a_terminal(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    one = json.dumps({"To": ["a@example.com"], "From": USER, "Subject": "n"})
    messages = tmp_path / "three.json"
    messages.write_text(f"[{one}, {one}, {one}]")
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "smtpcore", *send_args, "--message", str(messages)],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env,
        )
        os.close(follower)
        stdout, _ = process.communicate(timeout=60)
        terminal = _read_all(leader).decode()
    finally:
        os.close(leader)
    assert process.returncode == 0, terminal
    assert len(server.wait_for_messages(3)) == 3
    for done in (1, 2, 3):
        assert progress_bar(done, 3) in terminal
    assert stdout.decode().count(" sent: 250") == 3


@settings(max_examples=100)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_progress_bar_text(done_total: tuple[int, int]) -> None:
    done, total = done_total
    bar = progress_bar(done, total)
    match = re.fullmatch(r"\[(#*)(-*)\] (\d+)/(\d+)", bar)
    assert match is not None
    filled, empty = match.group(1), match.group(2)
    assert len(filled) + len(empty) == 20
    assert (len(filled) == 20) == (done == total)
    assert (match.group(3), match.group(4)) == (str(done), str(total))


# --------------------------------------------------------- --allow-partial


def test_allow_partial_delivers_to_the_accepted_and_reports_the_refused(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str]
) -> None:
    message = ["--from", USER, "--to", "a@example.com", REFUSED, "--subject", "P"]
    done = run(*send_args, *message, "--allow-partial", env=env)
    assert done.returncode == 0, done.stderr
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("a@example.com",)
    [line] = done.stdout.splitlines()
    assert line.startswith("sent: 250 ")
    refusal = f"{REFUSED} (550 5.1.1 <{REFUSED}>: Recipient address rejected)"
    assert line.endswith(f"; recipients a@example.com; refused {refusal}")
    [warning] = done.stderr.splitlines()
    assert warning == (
        "smtpcore: warning: the message was not delivered to 1 of 2 recipients "
        f"(--allow-partial): refused {refusal}"
    )

    server.reset()
    as_json = run(*send_args, *message, "--allow-partial", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["ok"] is True and document["exit_status"] == 0
    assert document["error"] is None
    [sent] = document["messages"]
    assert sent["status"] == "sent" and sent["accepted"] == ["a@example.com"]
    assert sent["rejected"] == {
        REFUSED: {
            "code": 550,
            "enhanced_status": "5.1.1",
            "text": f"5.1.1 <{REFUSED}>: Recipient address rejected",
        }
    }
    assert REFUSED in as_json.stderr and "warning" in as_json.stderr
    assert len(server.wait_for_messages(1)) == 1


def test_without_allow_partial_one_refused_recipient_sends_nothing(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str]
) -> None:
    done = run(*send_args, "--from", USER, "--to", "a@example.com", REFUSED, env=env)
    assert done.returncode == 4
    line = error_line(done)
    assert f"RCPT TO for '{REFUSED}' refused: 550 5.1.1" in line
    assert done.stdout == ""
    assert server.messages == []
    [session] = server.sessions
    assert "RSET" in [command.line.split(" ")[0].upper() for command in session]


def test_allow_partial_applies_to_every_message_of_an_array(
    server: LocalSmtpServer, send_args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    def message(*to: str) -> str:
        return json.dumps({"To": list(to), "From": USER, "Subject": "array"})

    messages = tmp_path / "two.json"
    # The first is delivered to one of two; the second's only recipient is
    # refused, which --allow-partial does not make a delivery.
    messages.write_text(f"[{message('a@example.com', REFUSED)}, {message(REFUSED)}]")
    done = run(*send_args, "--message", str(messages), "--allow-partial", env=env)
    assert done.returncode == 4
    first, second = done.stdout.splitlines()
    assert first.startswith("message 1/2 sent: 250 ")
    assert first.endswith(f"; refused {REFUSED} (550 5.1.1 <{REFUSED}>: "
                          "Recipient address rejected)")  # fmt: skip
    assert second.startswith(f"message 2/2 not sent: RCPT TO for '{REFUSED}'")
    warning, error = done.stderr.splitlines()
    assert warning.startswith("smtpcore: warning: message 1/2 was not delivered")
    assert error.startswith("smtpcore: error: 1 of 2 messages not sent")
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("a@example.com",)


def test_refused_text_is_one_printable_line() -> None:
    reply = SmtpReply(550, (b"5.1.1 no such user", b"\x1b[2Jsee you"))
    result = SendResult("<id@x>", ["a@example.com"], {"b@example.com": reply}, reply)
    assert refused_text(result) == (
        "b@example.com (550 5.1.1 no such user / \\x1b[2Jsee you)"
    )
    assert refused_text(SendResult(None, ["a@example.com"], {}, reply)) == ""


# ---------------------------------------------------- --allow-insecure-auth


@pytest.fixture(scope="module")
def _clear_auth_server(password: str) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(tls="none", users={USER: password}) as server:
        yield server


@pytest.fixture
def clear_auth(_clear_auth_server: LocalSmtpServer) -> LocalSmtpServer:
    """No STARTTLS; AUTH PLAIN and LOGIN offered in clear."""
    _clear_auth_server.reset()
    return _clear_auth_server


def _verbs(server: LocalSmtpServer) -> list[str]:
    return [c.line.split(" ")[0].upper() for s in server.sessions for c in s]


@pytest.mark.parametrize("mode", [[], ["--no-tls"]], ids=["auto", "no-tls"])
def test_allow_insecure_auth_sends_the_credentials_in_clear(
    clear_auth: LocalSmtpServer, env: dict[str, str], password: str, mode: list[str]
) -> None:
    args = [
        "send", "--host", clear_auth.host, "--port", str(clear_auth.port), *mode,
        "--user", USER, "--password-env", "SMTP_PASSWORD", "--from", USER,
        "--to", "a@example.com", "--timeout", TIMEOUT,
    ]  # fmt: skip
    refused = run(*args, env=env)
    status = session_exit_status(EmailSessionReason.STARTTLS_NOT_AVAILABLE)
    assert refused.returncode == status == 21
    line = error_line(refused)
    assert "StartTlsNotAvailable" in line and "nothing was sent in clear" in line
    assert "--allow-insecure-auth" in line
    # Refused before any credentials went out: the server saw no AUTH.
    assert clear_auth.connections == 1 and "AUTH" not in _verbs(clear_auth)
    assert clear_auth.messages == []

    clear_auth.reset()
    done = run(*args, "--allow-insecure-auth", "-v", env=env)
    assert done.returncode == 0, done.stderr
    [message] = clear_auth.wait_for_messages(1)
    assert message.auth_user == USER and not message.tls
    assert "AUTH" in _verbs(clear_auth) and "STARTTLS" not in _verbs(clear_auth)
    assert done.stdout.startswith("sent: 250 ")
    assert "C: AUTH PLAIN <redacted>" in done.stderr
    assert_never_shown(done, wire_forms(USER, password))


# ----------------------------------------------------------- --data-timeout


def test_data_timeout_bounds_the_wait_for_the_final_reply() -> None:
    with RawServer(smtp_script("CONTENT", "silence")) as raw:
        started = time.monotonic()
        # --timeout is long: only --data-timeout can end this early (the raw
        # server holds the connection silent for 10 seconds).
        done = run(
            "send", "--host", raw.host, "--port", str(raw.port), "--no-tls",
            "--from", USER, "--to", "a@example.com", "--timeout", "30",
            "--data-timeout", "1", "--json",
        )  # fmt: skip
        elapsed = time.monotonic() - started
        [conn] = raw.connections
        assert len(conn.contents) == 1  # the content went out in full
    status = session_exit_status(EmailSessionReason.CONNECTION_TIMEOUT)
    assert done.returncode == status == 19
    assert 1.0 <= elapsed < 6.0
    line = error_line(done)
    assert "final reply" in line and "delivery is unknown" in line
    assert "On the command line: --data-timeout SECONDS waits longer" in line
    document = json.loads(done.stdout)
    assert document["exit_status"] == 19
    [failed] = document["messages"]
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "CONNECTION_TIMEOUT"
    assert failed["error"]["delivery_unknown"] is True
