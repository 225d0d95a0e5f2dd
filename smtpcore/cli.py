"""The ``smtpcore`` command line: ``send``, ``probe`` and ``demo``.

``smtpcore send`` sends one message, or a JSON array of them over one
session (see :mod:`smtpcore._cli_send`); ``smtpcore probe`` reports what a
server offers and why a session to it fails (see :mod:`smtpcore.probe`);
``smtpcore demo`` sends the seed block's seven examples to a local server
(see :mod:`smtpcore.demo`).

Errors are one line on stderr (``smtpcore: error: ...``), never a stack
trace; the exit status says what kind of failure it was (docs/cli.md).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from smtpcore._cli_common import (
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    Console,
    add_connection_options,
    cli_hint,
    describe,
    exit_status,
    exit_status_rows,
    join,
    load_tls_context,
    one_line,
    resolve_mode,
)
from smtpcore._cli_send import check_usage, configure_parser, run_send
from smtpcore.errors import EmailSessionError, SmtpCoreError
from smtpcore.probe import ProbeReport, TlsDetails, error_details, probe

__all__ = ["main", "parse_target"]

# "--password hunter2" must fail without the password in the error (argparse
# would echo it as an unrecognised argument).
_PASSWORD_OPTION = re.compile(r"--pass(?:word|wd)?(?:=.*)?", re.DOTALL)
_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        print(
            f"smtpcore: error: {where}{one_line(message)} (see '{self.prog} --help')",
            file=sys.stderr,
        )
        sys.exit(EXIT_USAGE)


_EPILOG_HEAD = "exit status:"


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but keeps the exit-status table's lines
    as :func:`_epilog` laid them out."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(_EPILOG_HEAD):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _epilog() -> str:
    lines = [_EPILOG_HEAD]
    for status, meaning in exit_status_rows():
        lines += textwrap.wrap(
            meaning, 78, initial_indent=f"  {status:>3}  ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def parse_target(text: str) -> tuple[str, int | None]:
    """Split ``HOST[:PORT]`` (``[IPv6]:PORT`` for an IPv6 address with a port).

    Args:
        text: the target as typed.

    Returns:
        ``(host, port or None)``.

    Raises:
        argparse.ArgumentTypeError: no host, or the port is not 1..65535.
    """
    host, port_text = text, ""
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(
                f"not HOST[:PORT] or [IPv6]:PORT: {text!r}"
            )
        port_text = rest[1:]
        if rest == ":":
            raise argparse.ArgumentTypeError(f"no port after ':' in {text!r}")
    elif text.count(":") == 1:
        # One colon is host:port; more is a bare IPv6 address, no port.
        host, _, port_text = text.partition(":")
        if not port_text:
            raise argparse.ArgumentTypeError(f"no port after ':' in {text!r}")
    if not host.strip():
        raise argparse.ArgumentTypeError(f"no host in {text!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port must be 1..65535, not {port_text!r}"
        )
    return host, int(port_text)


def _parsers() -> tuple[_Parser, _Parser]:
    formatter = _Formatter
    parser = _Parser(
        prog="smtpcore",
        description="A protocol-level SMTP client: send mail, probe a server, "
        "or run the seed block's examples.",
        epilog=_epilog(),
        formatter_class=formatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send = commands.add_parser(
        "send",
        help="send a message (or a JSON array of them over one session)",
        description="Send a message given by options or by the seed's JSON "
        "files. Everything is checked before connecting; all messages go over "
        "one session. A password is never given on the command line: name an "
        "environment variable with --password-env, or use a --session file.",
        epilog=_epilog(),
        formatter_class=formatter,
        allow_abbrev=False,
    )
    configure_parser(send)
    target = commands.add_parser(
        "probe",
        help="show what a server offers and why a session to it fails",
        description="Connect the way 'send' would (no credentials, no mail) "
        "and report the greeting, the EHLO capabilities before and after "
        "STARTTLS, the TLS version, cipher and certificate chain, the AUTH "
        "mechanisms and, when something fails, the reason with its fix. After "
        "a certificate failure a second connection reads, without verifying "
        "it, the certificate the server presented (it sends nothing but EHLO, "
        "STARTTLS and QUIT).",
        epilog=_epilog(),
        formatter_class=formatter,
        allow_abbrev=False,
    )
    target.add_argument(
        "target",
        type=parse_target,
        metavar="HOST[:PORT]",
        help="the server; [IPv6]:PORT for an IPv6 address with a port; default "
        "port as for send",
    )
    add_connection_options(target)
    output = target.add_argument_group("output")
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the SMTP transcript on stderr",
    )
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    commands.add_parser(
        "demo",
        help="send the seed block's seven examples to a local server "
        "and show what arrived",
        description="Start a local aiosmtpd server (STARTTLS with a trustme "
        "certificate, AUTH required), send the seven examples of the "
        "'Send Email Using SMTP Server' block through smtpcore.send_email on "
        "one session, and print what the server received. Needs the 'test' "
        "extra: pip install 'smtpcore[test]'.",
        allow_abbrev=False,
    )
    return parser, send


# --------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------


def _mode_text(report: ProbeReport) -> str:
    if report.use_ssl:
        return "implicit TLS from the first byte"
    return {
        "auto": "plain connection, STARTTLS when offered",
        "required": "plain connection, STARTTLS required",
        "never": "plain connection, no TLS",
    }[report.starttls]


def _render_tls(tls: TlsDetails, say: Callable[[str], None], indent: str) -> None:
    checked = "verified" if tls.verified else "NOT verified"
    cipher = f"{tls.cipher} ({tls.cipher_bits} bits)" if tls.cipher else "no cipher"
    version = tls.version or "unknown version"
    say(f"{indent}TLS: {version}, {cipher}, certificate {checked}")
    if tls.chain_source == "leaf":
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        say(
            f"{indent}Certificate (leaf only: Python {python} reports only the "
            "server's own certificate; Python 3.13+ shows the whole chain):"
        )
    elif tls.chain_source == "verified":
        say(f"{indent}Certificate chain as verified, leaf first:")
    else:
        say(f"{indent}Certificate chain as the server presented it, leaf first:")
    for index, cert in enumerate(tls.chain):
        problem = cert.validity_problem()
        flag = f"  ({problem.upper()})" if problem else ""
        lead = f"{indent}  [{index}] "
        pad = " " * len(lead)
        say(f"{lead}subject: {cert.subject or '(empty)'}")
        say(f"{pad}issuer:  {cert.issuer or '(empty)'}")
        say(
            f"{pad}valid:   {cert.not_before:%Y-%m-%d %H:%M:%S} UTC to "
            f"{cert.not_after:%Y-%m-%d %H:%M:%S} UTC{flag}"
        )
        say(f"{pad}SANs:    {join(cert.subject_alt_names, 'none')}")
        say(f"{pad}SHA-256: {cert.sha256}")
    for problem in tls.problems:
        say(f"{indent}  {problem}")


def _render_probe(report: ProbeReport, status: int, say: Callable[[str], None]) -> None:
    say(f"Probe of {report.host}:{report.port} ({_mode_text(report)})")
    greeting = report.greeting
    say(f"Greeting: {one_line(str(greeting)) if greeting else 'none'}")
    before, after = report.extensions_before_tls, report.extensions_after_tls
    if before is not None:
        say("EHLO before TLS:")
        for keyword, params in before.keywords.items():
            say(f"  {keyword} {' '.join(params)}".rstrip())
    if report.tls is not None:
        _render_tls(report.tls, say, "")
    elif report.ok:
        why = (
            "--no-tls"
            if report.starttls == "never"
            else "the server does not offer STARTTLS: mail would go in clear, "
            "and a send with credentials fails with StartTlsNotAvailable"
        )
        say(f"TLS: none ({why})")
    if after is not None:
        say("EHLO over TLS:" if report.use_ssl else "EHLO after STARTTLS:")
        for keyword, params in after.keywords.items():
            say(f"  {keyword} {' '.join(params)}".rstrip())
    # Servers offer AUTH after STARTTLS: when the upgrade failed, what they
    # offered in clear says nothing about what a send would be offered.
    upgrade_failed = (
        after is None
        and before is not None
        and before.starttls
        and report.starttls != "never"
        and not report.ok
    )
    if upgrade_failed:
        say("AUTH mechanisms: not known (servers offer AUTH after STARTTLS)")
    elif after is not None or before is not None:
        used = report.auth_mechanism_used
        choice = f" (smtpcore would use {used})" if used else ""
        say(f"AUTH mechanisms: {' '.join(report.auth_mechanisms) or 'none'}{choice}")
    error = report.error
    if error is None:
        say("Result: OK (a send with these settings gets as far as AUTH)")
    else:
        say(f"Result: FAILED, exit status {status}: {type(error).__name__}")
        if isinstance(error, EmailSessionError):
            reason = error.reason
            code = reason.error_code
            say(f"  Reason: {reason.name} ({reason.value}, error_code {code})")
            say(f"  Detail: {one_line(error.detail)}")
            say(f"  Fix: {reason.fix}")
            hint = cli_hint(reason)
            if hint:
                say(f"  On the command line: {hint}")
        else:
            say(f"  {one_line(str(error))}")
    if report.presented is not None:
        say(
            "Certificate presented by the server (read on a second connection "
            "without verification, which sent nothing but EHLO, STARTTLS and QUIT):"
        )
        _render_tls(report.presented, say, "  ")


def _run_probe(args: argparse.Namespace, console: Console) -> int:
    host, given_port = args.target
    port, mode = resolve_mode(args.mode, given_port)
    try:
        context = load_tls_context(args.ca_file)
    except SmtpCoreError as exc:
        status = exit_status(exc, before_connecting=True)
        if console.json_output:
            console.emit_json(
                {"ok": False, "exit_status": status, "error": error_details(exc)}
            )
        console.error(describe(exc))
        return status
    if args.verbose:
        console.start_transcript()
    try:
        report = probe(
            host,
            port,
            use_ssl=mode.use_ssl,
            starttls=mode.starttls,
            timeout=args.timeout,
            tls_context=context,
        )
    finally:
        console.stop_transcript()
    status = EXIT_OK if report.error is None else exit_status(report.error)
    if console.json_output:
        console.emit_json({**report.to_dict(), "exit_status": status})
    else:
        _render_probe(report, status, console.say)
    if report.error is not None:
        console.error(describe(report.error, probe_hint=False))
    return status


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _run_demo() -> int:
    try:
        from smtpcore.demo import run_demo

        return run_demo(sys.stdout)
    except ImportError as exc:
        print(
            f"smtpcore demo needs the test extra ({exc.name} is missing): "
            "pip install 'smtpcore[test]'",
            file=sys.stderr,
        )
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments without the program name; default sys.argv[1:].

    Returns:
        The exit status (see ``smtpcore --help`` and docs/cli.md).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any(_PASSWORD_OPTION.fullmatch(argument) for argument in arguments):
        print(
            "smtpcore: error: a password is never given on the command line: put "
            "it in an environment variable and name that with --password-env NAME",
            file=sys.stderr,
        )
        return EXIT_USAGE
    parser, send_parser = _parsers()
    args = parser.parse_args(arguments)
    if args.command == "demo":
        return _run_demo()
    console = Console(sys.stdout, sys.stderr, json_output=args.json)
    try:
        if args.command == "send":
            check_usage(args, send_parser)
            return run_send(args, console)
        return _run_probe(args, console)
    except KeyboardInterrupt:
        console.error("interrupted")
        return _INTERRUPTED
    except Exception as exc:  # the promise: one line, never a traceback
        if console.json_output:
            console.emit_json(
                {
                    "ok": False,
                    "exit_status": EXIT_UNEXPECTED,
                    "error": error_details(exc),
                }
            )
        console.error(describe(exc))
        return EXIT_UNEXPECTED
