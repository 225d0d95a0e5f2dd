"""``python -m benchmarks``: session reuse, smtpcore against stdlib smtplib.

Sends the same prebuilt 1 KiB message to a local aiosmtpd (plain text, no
AUTH) with each client, interleaving the variants over several rounds, and
prints the median messages per second with the min-max range.  aiosmtpd is
written in Python and bounds every client here; the fuller suite with
Postfix's smtp-sink comes with the performance work.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import time
from collections.abc import Callable

from smtpcore import BasicEmailSessionDetails, ServerDetails, SmtpClient, send_email
from smtpcore.models import EmailMessage
from smtpcore.testserver import LocalSmtpServer

SENDER, RECIPIENT = "bench@example.com", "sink@example.com"
HEADER = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: benchmark\r\n\r\n".encode()
MESSAGE = HEADER + (b"y" * 78 + b"\r\n") * ((1024 - len(HEADER)) // 80)


def smtplib_reused(host: str, port: int, count: int) -> None:
    with smtplib.SMTP(host, port, local_hostname="bench.local") as client:
        for _ in range(count):
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)


def smtpcore_reused(host: str, port: int, count: int) -> None:
    details = BasicEmailSessionDetails(ServerDetails(host, port, use_ssl=False))
    with SmtpClient(details) as client:
        for _ in range(count):
            client.send_raw(SENDER, [RECIPIENT], MESSAGE)


def smtpcore_send_email_new_session(host: str, port: int, count: int) -> None:
    details = BasicEmailSessionDetails(ServerDetails(host, port, use_ssl=False))
    message = EmailMessage([RECIPIENT], SENDER, subject="benchmark", body="x" * 900)
    for _ in range(count):
        send_email(message, details, close_session=True)


VARIANTS: dict[str, Callable[[str, int, int], None]] = {
    "smtplib, reused connection": smtplib_reused,
    "smtpcore SmtpClient, reused": smtpcore_reused,
    "smtpcore send_email, close_session=True": smtpcore_send_email_new_session,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--messages", type=int, default=200, help="per round and variant"
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with LocalSmtpServer(tls="none") as server:
        for _ in range(args.rounds):
            for name, run in VARIANTS.items():
                started = time.perf_counter()
                run(server.host, server.port, args.messages)
                rates[name].append(args.messages / (time.perf_counter() - started))
        sent = len(server.messages)
    expected = args.rounds * args.messages * len(VARIANTS)
    print(
        f"aiosmtpd on loopback (it bounds every client); {args.rounds} interleaved "
        f"rounds of {args.messages} messages; {sent}/{expected} arrived"
    )
    baseline = statistics.median(rates["smtplib, reused connection"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{name:42s} {median:8.0f} msg/s  ({min(values):.0f}-{max(values):.0f})"
            f"  x{median / baseline:.2f} of smtplib reused"
        )


if __name__ == "__main__":
    main()
