"""``python -m benchmarks``: smtpcore against smtplib, aiosmtplib and
Postfix's smtp-source, in one run, against one server on 127.0.0.1.

The default run takes a few minutes; ``--quick`` is a smoke run of seconds;
``--profile`` prints cProfile tables of smtpcore's reused and send_many
variants instead.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.profiling import profile_variants
from benchmarks.report import (
    format_report,
    machine_info,
    to_json,
    write_chart,
    write_json,
)
from benchmarks.rss import CLIENTS, RssSample, make_attachment, measure_rss
from benchmarks.servers import AiosmtpdServer, SmtpSink, plan_cores, start_server
from benchmarks.suite import Plan, WorkloadResult, evaluate_targets, run_workload
from benchmarks.variants import VARIANTS, Endpoint, make_workload

RESULTS = Path(__file__).resolve().parent / "results"
# The attachment is "100 MB"; 100 MiB is a little larger, never
# smaller, than either reading.
FULL_ATTACHMENT = 100 * 1024 * 1024
QUICK_ATTACHMENT = 8 * 1024 * 1024
# Variants per extra workload: the ones the targets compare, plus the
# natural peers.
RCPT_VARIANTS = (
    "smtplib-reused",
    "aiosmtplib-reused",
    "smtpcore-reused",
    "smtpcore-send_many",
    "smtp-source",
)
BIG_VARIANTS = (
    "smtplib-reused",
    "aiosmtplib-reused",
    "smtpcore-reused",
    "smtpcore-send_many",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The size of a run.

    Attributes:
        rounds: interleaved rounds per workload.
        messages: 1 KiB messages per round and variant.
        attachment: attachment bytes for the RSS measurement (0: skip it).
        max_seconds: the whole run's time budget.
        quick: a smoke run.
    """

    rounds: int
    messages: int
    attachment: int
    max_seconds: float
    quick: bool

    def as_json(self) -> dict[str, Any]:
        """The settings, JSON-ready.

        Returns:
            A dict.
        """
        return {
            "rounds": self.rounds,
            "messages": self.messages,
            "attachment_bytes": self.attachment,
            "max_seconds": self.max_seconds,
            "quick": self.quick,
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="SMTP client benchmarks on 127.0.0.1 (see benchmarks/README.md)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--messages", type=int, help="1 KiB messages per round and variant"
    )
    parser.add_argument(
        "--server",
        choices=("auto", "smtp-sink", "aiosmtpd"),
        default="auto",
        help="auto: smtp-sink when installed, else aiosmtpd",
    )
    parser.add_argument(
        "--no-rss", action="store_true", help="skip the attachment memory test"
    )
    parser.add_argument(
        "--max-seconds", type=float, help="time budget for the whole run"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="folder for the JSON and PNG"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print cProfile tables of smtpcore reused and send_many instead",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    quick: bool = args.quick
    rounds = args.rounds or (2 if quick else 7)
    messages = args.messages or (100 if quick else 1000)
    if rounds < 1 or messages < 10:
        raise SystemExit("--rounds must be at least 1 and --messages at least 10")
    attachment = 0 if args.no_rss else QUICK_ATTACHMENT if quick else FULL_ATTACHMENT
    budget = args.max_seconds or (120.0 if quick else 900.0)
    return Settings(rounds, messages, attachment, budget, quick)


def _plans(settings: Settings) -> list[Plan]:
    count = settings.messages
    return [
        Plan(
            make_workload("1k", "1 KiB message, 1 recipient", 1024, 1),
            tuple(VARIANTS),
            count,
            max(5, count // 5),
            settings.rounds,
        ),
        Plan(
            make_workload("10rcpt", "1 KiB message, 10 recipients", 1024, 10),
            RCPT_VARIANTS,
            max(10, count * 3 // 10),
            max(5, count // 20),
            settings.rounds,
        ),
        Plan(
            make_workload("1mib", "1 MiB message, 1 recipient", 1024 * 1024, 1),
            BIG_VARIANTS,
            max(2, count // 50),
            max(2, count // 50),
            settings.rounds,
        ),
    ]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _measure_rss(server: SmtpSink | AiosmtpdServer, size: int) -> list[RssSample]:
    endpoint = Endpoint(server.host, server.port)
    with tempfile.TemporaryDirectory(prefix="smtpcore-bench-") as folder:
        attachment = Path(folder) / "attachment.bin"
        make_attachment(attachment, size)
        samples = []
        for client in CLIENTS:
            _progress(f"  attachment: {client}")
            samples.append(measure_rss(client, endpoint, attachment, server))
        return samples


def run(args: argparse.Namespace) -> int:
    """Run the suite (or the profile) and print the report.

    Args:
        args: the parsed command line.

    Returns:
        The exit status: 0, or 1 when a variant failed or lost messages.
    """
    settings = _settings(args)
    deadline = time.perf_counter() + settings.max_seconds
    layout = plan_cores()
    plans = _plans(settings)
    with start_server(args.server, layout) as server:
        _progress(f"server: {server.description} on {server.host}:{server.port}")
        if args.profile:
            count = args.messages or 2000
            print(
                profile_variants(
                    server, plans[0].workload, count, args.output, deadline
                )
            )
            return 0
        results: list[WorkloadResult] = []
        for plan in plans:
            _progress(f"{plan.workload.label} ...")
            results.append(run_workload(plan, server, deadline, _progress))
        rss = _measure_rss(server, settings.attachment) if settings.attachment else []
        kind = server.kind
        info = machine_info(layout.describe(), server.description)
    targets = evaluate_targets(
        {result.workload.key: result for result in results},
        rss,
        kind,
        FULL_ATTACHMENT,
    )
    document = to_json(info, settings.as_json(), results, rss, targets)
    json_path = args.output / "latest.json"
    write_json(document, json_path)
    notes = [
        f"results: {json_path}",
        write_chart(results, rss, info, args.output / "latest.png"),
    ]
    if kind != "smtp-sink":
        notes.insert(
            0,
            "NOTE: aiosmtpd (Python) is the server: it bounds every client, so "
            "the ratios understate the faster ones. Install Postfix for smtp-sink "
            "(see benchmarks/README.md).",
        )
    if settings.quick:
        notes.insert(0, "NOTE: --quick: a smoke run; its numbers are indicative only.")
    print(format_report(info, results, rss, targets, notes), end="")
    broken = [
        variant
        for result in results
        for variant in result.variants
        if variant.status in ("failed", "lost messages", "out of time")
    ]
    broken_rss = [s for s in rss if s.error is not None]
    return 1 if broken or broken_rss else 0


def main(argv: list[str] | None = None) -> int:
    """The command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
