"""``smtpcore send``: build the session and the message(s) from options or
the seed's JSON files, check everything before connecting, send over one
session, and report each message.

Private to :mod:`smtpcore.cli`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, TextIO

from smtpcore import SendResult
from smtpcore._cli_common import (
    EXIT_OK,
    Console,
    add_connection_options,
    describe,
    exit_status,
    join,
    load_tls_context,
    one_line,
    positive_seconds,
)
from smtpcore._cli_input import (
    PRIORITIES,
    MessageProblem,
    load_messages,
    session_details,
)
from smtpcore.envelope import prepare
from smtpcore.errors import (
    EmailSessionError,
    SmtpCommandError,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.models import BasicEmailSessionDetails, EmailMessage
from smtpcore.probe import error_details, reply_details
from smtpcore.session import send_email
from smtpcore.validation import validate_session_details

__all__ = [
    "Outcome",
    "check_usage",
    "configure_parser",
    "progress_bar",
    "refused_text",
    "run_send",
]

# The options that describe the message; --message FILE replaces them all.
_MESSAGE_OPTIONS = (
    ("from_", "--from"),
    ("to", "--to"),
    ("cc", "--cc"),
    ("bcc", "--bcc"),
    ("subject", "--subject"),
    ("body", "--body"),
    ("body_file", "--body-file"),
    ("attach", "--attach"),
    ("priority", "--priority"),
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``smtpcore send`` to its parser.

    Args:
        parser: the ``send`` subcommand's parser.
    """
    server = parser.add_argument_group("server and credentials")
    server.add_argument("--host", help="the SMTP server's host name or IP address")
    server.add_argument(
        "--port",
        type=int,
        help="default: 465 with --ssl or no mode option, 587 with --starttls, "
        "25 with --no-tls",
    )
    server.add_argument("--user", metavar="NAME", help="the AUTH user name")
    server.add_argument(
        "--password-env",
        metavar="NAME",
        help="the NAME of the environment variable holding the password "
        "(a password is never given on the command line)",
    )
    server.add_argument(
        "--session",
        metavar="FILE.json",
        help="server details and credentials in the seed's JSON shape "
        '({"ServerDetails": {"Host": ..., "Port": ..., "UseSsl": ...}, '
        '"Credentials": {"Username": ..., "Password": ...}}); replaces --host, '
        "--port and --user; --password-env still overrides its password, and "
        "a mode option overrides its UseSsl",
    )
    server.add_argument(
        "--allow-insecure-auth",
        action="store_true",
        help="send the credentials even when the connection is not encrypted "
        "(--no-tls, or a server that offers no STARTTLS), which is otherwise "
        "refused before they are sent: the password then crosses the network "
        "in clear, readable by anyone on the path; for a trusted network or a "
        "local test server only",
    )
    connection = add_connection_options(parser)
    connection.add_argument(
        "--check-revocation",
        action="store_true",
        help="fetch the certificate's CRL and refuse a revoked certificate",
    )
    connection.add_argument(
        "--data-timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="for the server's final reply after the message content, which "
        "--timeout does not bound (default 600, the 10 minutes of RFC 5321 "
        "4.5.3.2.6)",
    )
    message = parser.add_argument_group("message")
    message.add_argument("--from", dest="from_", metavar="ADDRESS", help="the sender")
    for flag, what in (("--to", "recipients"), ("--cc", "Cc recipients")):
        message.add_argument(
            flag,
            action="extend",
            nargs="+",
            metavar="ADDRESS",
            help=f"{what}; repeatable; 'Name <a@example.com>' gives a display name",
        )
    message.add_argument(
        "--bcc",
        action="extend",
        nargs="+",
        metavar="ADDRESS",
        help="recipients that get the message but appear in no header",
    )
    message.add_argument("--subject", help="the subject")
    body = message.add_mutually_exclusive_group()
    body.add_argument("--body", metavar="TEXT", help="the body text")
    body.add_argument(
        "--body-file",
        metavar="FILE",
        help="read the body (UTF-8) from FILE; - is stdin",
    )
    message.add_argument("--html", action="store_true", help="the body is HTML")
    message.add_argument(
        "--attach", action="extend", nargs="+", metavar="FILE", help="files to attach"
    )
    message.add_argument(
        "--priority",
        choices=tuple(PRIORITIES),
        help="urgent or non-urgent write Priority, X-Priority and Importance "
        "headers (default: normal, none of them)",
    )
    message.add_argument(
        "--message",
        metavar="FILE.json",
        help="the message in the seed's JSON shape (bare tokens such as "
        "EmailMessagePriority.Urgent included), or a JSON array of them, all "
        "sent over one session; replaces the options above",
    )
    message.add_argument(
        "--allow-partial",
        action="store_true",
        help="when the server refuses some of a message's recipients, deliver "
        "it to the accepted ones and report each refused one with the "
        "server's reply (on stdout, in --json, and as a warning on stderr); "
        "the exit status is 0 when at least one recipient accepted it. "
        "Without it, one refused recipient means the message is not sent "
        "(exit status 4)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the SMTP transcript on stderr (AUTH payloads redacted)",
    )
    output.add_argument(
        "--json", action="store_true", help="print the result or the error as JSON"
    )


def check_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse option combinations that make no sense (exit status 2).

    Args:
        args: the parsed options.
        parser: the ``send`` parser, whose ``error()`` exits.
    """
    if args.message is not None:
        given = [flag for attr, flag in _MESSAGE_OPTIONS if getattr(args, attr)]
        if args.html:
            given.append("--html")
        if given:
            parser.error(f"--message replaces {', '.join(given)}")
    else:
        required = (("from_", "--from"), ("to", "--to"))
        missing = [flag for attr, flag in required if not getattr(args, attr)]
        if missing:
            parser.error(f"{' and '.join(missing)} required (or --message FILE.json)")
    if args.session is not None:
        given = [f for f in ("host", "port", "user") if getattr(args, f) is not None]
        if given:
            parser.error(f"--session replaces --{', --'.join(given)}")
    else:
        if args.host is None:
            parser.error("--host is required (or --session FILE.json)")
        if (args.user is None) != (args.password_env is None):
            parser.error("--user and --password-env go together")


# --------------------------------------------------------------------------
# Progress and results.
# --------------------------------------------------------------------------


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """The progress bar's text, e.g. ``[########------------] 2/5``.

    Args:
        done: messages finished.
        total: messages in all (at least 1).
        width: the bar's width in characters.

    Returns:
        The bar.
    """
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


class _Progress:
    """A bar redrawn in place on a terminal's stderr."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self._total = total
        self._stream = stream
        self._enabled = enabled
        self._shown = ""

    def draw(self, done: int) -> None:
        if self._enabled:
            self._shown = progress_bar(done, self._total)
            self._stream.write("\r" + self._shown)
            self._stream.flush()

    def clear(self) -> None:
        if self._enabled and self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._stream.flush()
            self._shown = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: sent (``result``), failed (``error``),
    or not attempted (neither: an earlier failure ended the session)."""

    index: int
    result: SendResult | None = None
    error: BaseException | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        if self.result is not None:
            result = self.result
            return {
                "index": self.index,
                "status": "sent",
                "message_id": result.message_id,
                "accepted": result.accepted,
                "rejected": {a: reply_details(r) for a, r in result.rejected.items()},
                "reply": reply_details(result.reply),
            }
        if self.error is not None:
            return {
                "index": self.index,
                "status": "failed",
                "exit_status": exit_status(self.error),
                "error": error_details(self.error),
            }
        return {"index": self.index, "status": "not_sent"}


def refused_text(result: SendResult) -> str:
    """The recipients ``--allow-partial`` let the server refuse, each with
    its reply on one line, e.g. ``a@example.com (550 5.1.1 No such user)``.

    Args:
        result: a delivered message's result.

    Returns:
        The refused recipients, comma-separated; "" when there are none.
    """
    return ", ".join(
        f"{address} ({one_line(str(reply))})"
        for address, reply in result.rejected.items()
    )


def _report_line(outcome: Outcome, total: int) -> str:
    where = f"message {outcome.index + 1}/{total} " if total > 1 else ""
    result = outcome.result
    if result is not None:
        refused = refused_text(result)
        return (
            f"{where}sent: {result.reply}; Message-ID {result.message_id or '-'}; "
            f"recipients {join(result.accepted)}"
            + (f"; refused {refused}" if refused else "")
        )
    if outcome.error is not None:
        return f"{where}not sent: {describe(outcome.error)}"
    return f"{where}not sent: skipped, the session had failed"


def _partial_warning(result: SendResult, index: int, total: int) -> str:
    where = f"message {index + 1}/{total} " if total > 1 else "the message "
    count = len(result.accepted) + len(result.rejected)
    return (
        f"{where}was not delivered to {len(result.rejected)} of {count} "
        f"recipients (--allow-partial): refused {refused_text(result)}"
    )


# --------------------------------------------------------------------------
# The command.
# --------------------------------------------------------------------------


def _input_failure(console: Console, problem: BaseException) -> int:
    error = problem.error if isinstance(problem, MessageProblem) else problem
    status = exit_status(error, before_connecting=True)
    if console.json_output:
        details = error_details(error)
        if isinstance(problem, MessageProblem):
            details["message_index"] = problem.index
        console.emit_json(
            {"ok": False, "exit_status": status, "error": details, "messages": []}
        )
    console.error(
        str(problem) if isinstance(problem, MessageProblem) else describe(error)
    )
    return status


def _check_messages(messages: list[EmailMessage]) -> None:
    """Validate and build every message, so nothing is sent if any is bad."""
    for index, message in enumerate(messages):
        try:
            prepare(message)
        except (SmtpCoreError, OSError) as exc:
            if len(messages) == 1:
                raise
            raise MessageProblem(index, len(messages), exc) from exc


def _send_one(
    index: int,
    message: EmailMessage,
    details: BasicEmailSessionDetails,
    options: dict[str, Any],
) -> tuple[Outcome, bool]:
    """Send one message on the session; the flag says whether the session
    can carry the next one."""
    try:
        result = send_email(message, details, close_session=False, **options)
    except SmtpCommandError as exc:
        return Outcome(index, error=exc), True  # a refusal ends no session
    except (EmailSessionError, SmtpProtocolError) as exc:
        return Outcome(index, error=exc), False
    except OSError as exc:  # an attachment changed since it was checked
        return Outcome(index, error=exc), True
    return Outcome(index, result=result), True


def run_send(args: argparse.Namespace, console: Console) -> int:
    """Run ``smtpcore send``.

    Everything is checked before connecting (session details, every
    message, every attachment); then all messages go over one session.  A
    refused message does not stop the others; a session or protocol failure
    does (the rest are reported as not sent).

    Args:
        args: the parsed and usage-checked options.
        console: where output goes.

    Returns:
        0 when every message was sent (with ``--allow-partial``, to at least
        one recipient; the refused ones are reported and warned about), else
        the exit status of the first failure.
    """
    try:
        details, starttls = session_details(args, console)
        messages = load_messages(args)
        context = load_tls_context(args.ca_file)
        validate_session_details(details)
        _check_messages(messages)
    except (SmtpCoreError, OSError, MessageProblem) as exc:
        return _input_failure(console, exc)

    options: dict[str, Any] = {
        "timeout": args.timeout,
        "data_timeout": args.data_timeout,
        "tls_context": context,
        "starttls": starttls,
        "allow_insecure_auth": args.allow_insecure_auth,
        "check_revocation": args.check_revocation,
        "allow_partial": args.allow_partial,
    }
    total = len(messages)
    progress = _Progress(
        total,
        console.stderr,
        total > 1 and not args.verbose and console.stderr.isatty(),
    )
    outcomes: list[Outcome] = []
    if args.verbose:
        console.start_transcript()
    try:
        with details:
            usable = True
            for index, message in enumerate(messages):
                outcome = Outcome(index)
                if usable:
                    outcome, usable = _send_one(index, message, details, options)
                outcomes.append(outcome)
                progress.clear()
                if not console.json_output and (total > 1 or outcome.result):
                    console.say(_report_line(outcome, total))
                if outcome.result is not None and outcome.result.rejected:
                    console.warn(_partial_warning(outcome.result, index, total))
                progress.draw(index + 1)
    finally:
        progress.clear()
        console.stop_transcript()
    return _finish(console, outcomes, total)


def _finish(console: Console, outcomes: list[Outcome], total: int) -> int:
    failed = [o for o in outcomes if o.result is None]
    first = next((o for o in failed if o.error is not None), None)
    status = exit_status(first.error) if first and first.error else EXIT_OK
    if console.json_output:
        console.emit_json(
            {
                "ok": not failed,
                "exit_status": status,
                "messages": [o.to_dict() for o in outcomes],
                "error": error_details(first.error) if first and first.error else None,
            }
        )
    if first is not None and first.error is not None:
        if total == 1:
            console.error(describe(first.error))
        else:
            console.error(
                f"{len(failed)} of {total} messages not sent; the first failure, "
                f"message {first.index + 1}: {describe(first.error)}"
            )
    return status
