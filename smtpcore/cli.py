"""The ``smtpcore`` command line.

``smtpcore demo`` sends the seed block's seven examples to a local server
(see :mod:`smtpcore.demo`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtpcore", description="A protocol-level SMTP client."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="send the seed block's seven examples to a local server and show "
        "what arrived",
        description="Start a local aiosmtpd server (STARTTLS with a trustme "
        "certificate, AUTH required), send the seven examples of the "
        "'Send Email Using SMTP Server' block through smtpcore.send_email on "
        "one session, and print what the server received. Needs the 'test' "
        "extra: pip install 'smtpcore[test]'.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments without the program name; default sys.argv[1:].

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    if args.command == "demo":
        try:
            from smtpcore.demo import run_demo

            return run_demo(sys.stdout)
        except ImportError as exc:
            print(
                f"smtpcore demo needs the test extra ({exc.name} is missing): "
                "pip install 'smtpcore[test]'",
                file=sys.stderr,
            )
            return 2
    return 2  # pragma: no cover - argparse rejects unknown commands
