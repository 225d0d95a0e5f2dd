"""What the ``smtpcore`` commands share: exit statuses, safe terminal output,
the transcript on stderr, and the connection options every command takes.

Private to :mod:`smtpcore.cli`; the exit statuses are documented in
docs/cli.md and in ``smtpcore --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import ssl
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.tls import default_context

__all__ = [
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_REFUSED",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "SESSION_EXIT_BASE",
    "Console",
    "Mode",
    "StartTlsPolicy",
    "add_connection_options",
    "cli_hint",
    "describe",
    "exit_status",
    "exit_status_rows",
    "exit_status_table",
    "join",
    "load_tls_context",
    "one_line",
    "positive_seconds",
    "printable",
    "resolve_mode",
    "session_exit_status",
]

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2  # argparse's own status for a usage error
EXIT_INVALID_INPUT = 3
EXIT_REFUSED = 4
EXIT_PROTOCOL = 5
# Session errors exit with 10 + the reason's position in EmailSessionReason,
# so a script can tell every documented reason apart (10..23).
SESSION_EXIT_BASE = 10

StartTlsPolicy = Literal["auto", "required", "never"]


def session_exit_status(reason: EmailSessionReason) -> int:
    """The exit status of a session error with ``reason``.

    Args:
        reason: the session error's reason.

    Returns:
        ``10`` plus the reason's position in :class:`EmailSessionReason`.
    """
    return SESSION_EXIT_BASE + list(EmailSessionReason).index(reason)


def exit_status(error: BaseException, *, before_connecting: bool = False) -> int:
    """The documented exit status for a failure.

    Args:
        error: what went wrong.
        before_connecting: the error came from checking the input, before
            any connection was opened (an address refused by our RFC 5321
            check is then invalid input, not a server refusal).

    Returns:
        3 invalid input, 4 server refusal, 5 protocol violation, 10..23
        session errors by reason, 1 anything else.
    """
    if isinstance(error, EmailSessionError):
        return session_exit_status(error.reason)
    if isinstance(error, SmtpCommandError):
        return EXIT_INVALID_INPUT if before_connecting else EXIT_REFUSED
    if isinstance(error, SmtpProtocolError):
        return EXIT_PROTOCOL
    # The Property*/ArgumentError family is SmtpCoreError and ValueError; an
    # attachment's FileNotFoundError, PermissionError... are OSError.
    if isinstance(error, SmtpCoreError) and isinstance(error, ValueError):
        return EXIT_INVALID_INPUT
    if isinstance(error, OSError):
        return EXIT_INVALID_INPUT
    return EXIT_UNEXPECTED


def exit_status_rows() -> list[tuple[str, str]]:
    """Every exit status and its meaning, in order; the one source for
    docs/cli.md and the ``--help`` epilog (a test keeps them in step).

    Returns:
        ``(status, meaning)`` pairs; session errors name their reason.
    """
    rows = [
        (
            str(EXIT_OK),
            "sent (send; with --allow-partial, to at least one recipient, the "
            "refused ones reported); the session opened as a send would (probe)",
        ),
        (str(EXIT_UNEXPECTED), "an unexpected failure (a bug: please report it)"),
        (str(EXIT_USAGE), "usage error: a wrong or missing option"),
        (
            str(EXIT_INVALID_INPUT),
            "invalid input, found before connecting: PropertyNullError, "
            "PropertyEmptyError, PropertyValueOutOfRangeError, ArgumentError, "
            "an unreadable file (attachment, --message, --session, --ca-file), "
            "an address that breaks RFC 5321",
        ),
        (
            str(EXIT_REFUSED),
            "the server refused a command (SmtpCommandError); with "
            "--allow-partial, a recipient refusal only when it refused them all",
        ),
        (str(EXIT_PROTOCOL), "the server broke the protocol (SmtpProtocolError)"),
    ]
    for reason in EmailSessionReason:
        rows.append(
            (
                str(session_exit_status(reason)),
                f"EmailSessionError {reason.name} ({reason.value}, "
                f"error_code {reason.error_code})",
            )
        )
    rows.append(("130", "interrupted (Ctrl-C)"))
    return rows


def exit_status_table() -> str:
    """The Markdown table of :func:`exit_status_rows`, as published in
    docs/cli.md (a test keeps that file in step with the code).

    Returns:
        The table, one row per exit status.
    """
    rows = ["| exit status | meaning |", "|---|---|"]
    rows += [f"| {status} | {meaning} |" for status, meaning in exit_status_rows()]
    return "\n".join(rows) + "\n"


# What the fix of a reason means on the command line, where there is no
# tls_context or use_ssl to set.
_CLI_HINTS: dict[EmailSessionReason, str] = {
    EmailSessionReason.INVALID_PORT: (
        "check --port; --ssl goes with port 465, --starttls with 587 or 25"
    ),
    EmailSessionReason.INVALID_HOST: "check --host",
    EmailSessionReason.INVALID_USERNAME_OR_PASSWORD: (
        "check --user and the password in the variable --password-env names "
        "(or the session file's Credentials)"
    ),
    EmailSessionReason.SSL_WRAPPED_CONNECTION_REQUIRED: "use --ssl for this port",
    EmailSessionReason.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED: (
        "use --starttls (or --no-tls) for this port"
    ),
    EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE: (
        "--ca-file FILE trusts the CA of a private or self-signed server"
    ),
    EmailSessionReason.CRL_SERVER_DOWN: "leave out --check-revocation to skip it",
    EmailSessionReason.CONNECTION_TIMEOUT: "--timeout SECONDS waits longer",
    EmailSessionReason.STARTTLS_NOT_AVAILABLE: (
        "--ssl with the server's implicit-TLS port (usually 465); on a trusted "
        "network only, 'send --allow-insecure-auth' sends the credentials in clear"
    ),
}
# A timeout waiting for the final reply is data_timeout's, not timeout's.
_DATA_TIMEOUT_HINT = (
    "--data-timeout SECONDS waits longer for the reply after the message content"
)

# Reasons that 'smtpcore probe' explains further: the certificate the server
# presented, or the mechanisms it offers.
_PROBE_SHOWS: dict[EmailSessionReason, str] = {
    EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE: "the certificate presented",
    EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS: "the certificate presented",
    EmailSessionReason.INVALID_SSL_CERTIFICATE: "the names the certificate holds",
    EmailSessionReason.NO_COMMON_AUTH_MECHANISM: "the mechanisms offered",
    EmailSessionReason.STARTTLS_NOT_AVAILABLE: "what the server offers",
}


def cli_hint(reason: EmailSessionReason) -> str | None:
    """The fix of ``reason`` in command-line terms, if it has one.

    Args:
        reason: the session error's reason.

    Returns:
        A short hint naming options, or None.
    """
    return _CLI_HINTS.get(reason)


# --------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------

# Bidirectional overrides and isolates reorder what a terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def printable(text: str) -> str:
    """``text`` safe for a terminal: every control character (C0, DEL, C1)
    and bidirectional override shown as an escape.

    Server replies and certificate names are the server's text: an escape
    sequence in them must not reach the terminal (it can rewrite what the
    user sees, or worse).  Newlines are escaped too; split lines first.

    Args:
        text: any text.

    Returns:
        The text with ``\\xNN``/``\\uNNNN`` escapes for the unsafe characters.
    """
    out: list[str] = []
    for char in text:
        if unicodedata.category(char) == "Cc" or char in _BIDI:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks become `` / ``."""
    return printable(_LINE_BREAK.sub(" / ", text.strip()))


class _Scrub(logging.Filter):
    """Blanks the secrets in every transcript record (defence in depth: the
    transcript already redacts AUTH payloads)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._console.scrub(record.getMessage())
        record.args = None
        return True


class _TranscriptFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # A multi-line reply is logged as one record; indent its lines
        # under the "S: " of the first.
        lines = _LINE_BREAK.split(record.getMessage())
        return "\n".join(
            [printable(lines[0]), *("   " + printable(line) for line in lines[1:])]
        )


class Console:
    """Where a command's output goes, with secrets blanked and the server's
    text made safe for a terminal.

    Args:
        stdout: results.
        stderr: errors, warnings, the transcript and the progress bar.
        json_output: results go out as one JSON document.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO, json_output: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_output = json_output
        self._secrets: list[str] = []
        self._handler: logging.Handler | None = None
        self._saved: tuple[int, bool] = (logging.NOTSET, True)

    def add_secret(self, secret: str | None) -> None:
        """Blank ``secret`` wherever it would be printed.

        Args:
            secret: a password; very short ones are not blanked (they would
                mangle ordinary words and hide nothing).
        """
        if secret is not None and len(secret) >= 4:
            self._secrets.append(secret)

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``<redacted>``."""
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def say(self, text: str = "") -> None:
        """Print result lines on stdout (each line made printable)."""
        lines = _LINE_BREAK.split(self.scrub(text))
        print("\n".join(printable(line) for line in lines), file=self.stdout)

    def error(self, text: str) -> None:
        """Print ``smtpcore: error: ...`` as one line on stderr."""
        print(f"smtpcore: error: {one_line(self.scrub(text))}", file=self.stderr)

    def warn(self, text: str) -> None:
        """Print ``smtpcore: warning: ...`` as one line on stderr."""
        print(f"smtpcore: warning: {one_line(self.scrub(text))}", file=self.stderr)

    def emit_json(self, document: Any) -> None:
        """Print ``document`` as JSON on stdout (ASCII only, so no byte of
        the server's text can act on the terminal)."""
        text = json.dumps(document, indent=2, ensure_ascii=True, sort_keys=False)
        print(self.scrub(text), file=self.stdout)

    def start_transcript(self) -> None:
        """Show the ``smtpcore.transcript`` logger's records on stderr."""
        logger = logging.getLogger("smtpcore.transcript")
        handler = logging.StreamHandler(self.stderr)
        handler.setFormatter(_TranscriptFormatter())
        handler.addFilter(_Scrub(self))
        self._saved = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        # Our handler prints it; the root logger's handlers must not again.
        logger.propagate = False
        self._handler = handler

    def stop_transcript(self) -> None:
        """Detach the transcript handler and restore the logger's level and
        propagation (safe to call when none is attached)."""
        if self._handler is None:
            return
        logger = logging.getLogger("smtpcore.transcript")
        logger.removeHandler(self._handler)
        logger.setLevel(self._saved[0])
        logger.propagate = self._saved[1]
        self._handler = None


# --------------------------------------------------------------------------
# Connection options shared by send and probe.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mode:
    """How to connect: ``ServerDetails.use_ssl`` and the STARTTLS policy."""

    use_ssl: bool
    starttls: StartTlsPolicy


# RFC 8314 3.3: 465 is implicit TLS; RFC 6409 3.1: 587 is submission with
# STARTTLS; 25 is relay, where TLS is opportunistic at best.
_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "no-tls": 25}


def add_connection_options(
    parser: argparse.ArgumentParser,
) -> argparse._ArgumentGroup:
    """Add --ssl/--starttls/--no-tls, --timeout and --ca-file.

    Args:
        parser: a subcommand's parser.

    Returns:
        The "connection" option group, for a command's own options.
    """
    group = parser.add_argument_group("connection")
    modes = group.add_mutually_exclusive_group()
    modes.add_argument(
        "--ssl",
        dest="mode",
        action="store_const",
        const="ssl",
        help="TLS from the first byte (implicit TLS, use_ssl=True); default port 465",
    )
    modes.add_argument(
        "--starttls",
        dest="mode",
        action="store_const",
        const="starttls",
        help="plain connect, then STARTTLS, which must succeed: nothing is "
        "sent in clear but EHLO and STARTTLS; default port 587",
    )
    modes.add_argument(
        "--no-tls",
        dest="mode",
        action="store_const",
        const="no-tls",
        help="plain connect and no TLS at all (credentials are then refused "
        "unless 'send --allow-insecure-auth' is given); default port 25",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="for connecting, the TLS handshake and every reply (default 30)",
    )
    group.add_argument(
        "--ca-file",
        metavar="FILE",
        help="also trust the CA certificate(s) in this PEM file, e.g. for a "
        "self-signed test server; the system CAs stay trusted",
    )
    return group


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("must be above 0 and at most 86400 seconds")
    return value


def resolve_mode(
    mode: str | None, port: int | None, use_ssl: bool | None = None
) -> tuple[int, Mode]:
    """The port and connection mode from the options.

    Without an option the seed's semantics hold: implicit TLS on port 465
    (its default), plain with STARTTLS when offered on any other port.

    Args:
        mode: ``"ssl"``, ``"starttls"``, ``"no-tls"`` or None.
        port: the port given, or None.
        use_ssl: ``UseSsl`` from a session file, used when no mode is given.

    Returns:
        ``(port, mode)``.
    """
    if port is None:
        port = _DEFAULT_PORTS[mode] if mode else 465
    if mode == "ssl":
        return port, Mode(True, "auto")
    if mode == "starttls":
        return port, Mode(False, "required")
    if mode == "no-tls":
        return port, Mode(False, "never")
    return port, Mode(port == 465 if use_ssl is None else use_ssl, "auto")


def load_tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """The verifying context for --ca-file, or None for the default one.

    Args:
        ca_file: a PEM file of CA certificates to trust besides the system's.

    Returns:
        A context from :func:`smtpcore.tls.default_context` that also trusts
        ``ca_file``; None when no file is given.

    Raises:
        ArgumentError: the file cannot be read or holds no certificate
            (``property_name`` ``"--ca-file"``).
    """
    if ca_file is None:
        return None
    context = default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ArgumentError(
            "--ca-file",
            f"--ca-file {ca_file}: no usable PEM certificate ({exc.reason})",
        ) from exc
    except OSError as exc:
        raise ArgumentError(
            "--ca-file", f"--ca-file {ca_file}: {exc.strerror or exc}"
        ) from exc
    return context


def describe(error: BaseException, *, probe_hint: bool = True) -> str:
    """The one-line text of a failure, for stderr.

    Args:
        error: what went wrong.
        probe_hint: for a session error ``smtpcore probe`` explains further,
            say so (not in the probe's own output).

    Returns:
        The exception's message, with a command-line hint for session errors
        and the file name for an ``OSError``.
    """
    if isinstance(error, EmailSessionError):
        text = str(error)
        hint = cli_hint(error.reason)
        timeout = error.reason is EmailSessionReason.CONNECTION_TIMEOUT
        if timeout and error.delivery_unknown:
            hint = _DATA_TIMEOUT_HINT
        if hint:
            text += f" On the command line: {hint}."
        shows = _PROBE_SHOWS.get(error.reason)
        if probe_hint and shows and error.host is not None:
            target = f"[{error.host}]" if ":" in error.host else error.host
            text += (
                f" 'smtpcore probe {target}:{error.port}' with the same connection "
                f"options shows {shows}."
            )
        return text
    if isinstance(error, OSError) and not isinstance(error, ssl.SSLError):
        name = f"{error.filename}: " if error.filename is not None else ""
        return f"{name}{error.strerror or error}"
    if isinstance(error, SmtpCoreError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def join(values: Iterable[str], empty: str = "-") -> str:
    """``values`` joined by ", ", or ``empty``."""
    items: Sequence[str] = list(values)
    return ", ".join(items) if items else empty
