"""Running the ``smtpcore`` command line as a user does: a subprocess.

Shared by the CLI tests; every run checks the promise that holds for all of
them: whatever happens, no stack trace reaches stderr.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Mapping

from conftest import USER

__all__ = ["TIMEOUT", "USER", "assert_never_shown", "error_line", "run", "wire_forms"]

# Generous for loopback, short enough that a hang fails fast.
TIMEOUT = "5"


def run(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smtpcore ARGS`` and return what it did.

    Args:
        args: the command line after ``smtpcore``.
        env: the environment, default this process's.
        stdin: text for standard input.

    Returns:
        The finished process, text output captured.
    """
    done = subprocess.run(
        [sys.executable, "-m", "smtpcore", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(env) if env is not None else None,
        input=stdin,
    )
    # Whatever happened, it never ends in a stack trace.
    assert "Traceback" not in done.stderr, done.stderr
    return done


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The run's stderr, asserted to be exactly one error line."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("smtpcore: error: "), done.stderr
    return lines[0]


def wire_forms(user: str, password: str) -> list[str]:
    """The password as given and as AUTH PLAIN and LOGIN put it on the wire."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    return [password, plain, login]


def assert_never_shown(
    done: subprocess.CompletedProcess[str], secrets: list[str]
) -> None:
    """Assert that no secret appears in the run's stdout or stderr."""
    for secret in secrets:
        assert secret not in done.stdout and secret not in done.stderr
