"""The command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtpcore", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
