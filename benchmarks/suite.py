"""Running the variants: interleaved rounds, CPU accounting, the targets.

Every variant runs in this process (pinned to its own core), so
``resource.getrusage`` deltas are the client's CPU: RUSAGE_SELF for the
Python clients plus RUSAGE_CHILDREN for smtp-source, which is reaped inside
its own measurement.  The servers run in other processes that are never
reaped during a measurement, so they never count.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.rss import RssSample
from benchmarks.servers import BenchServer
from benchmarks.variants import (
    BASELINE,
    VARIANTS,
    BenchmarkTimeout,
    Endpoint,
    Variant,
    Workload,
)

__all__ = [
    "Plan",
    "Sample",
    "TargetResult",
    "VariantResult",
    "WorkloadResult",
    "cpu_seconds",
    "evaluate_targets",
    "run_workload",
]

# Messages of the untimed warm-up run of each variant (imports, first
# connection, caches).
WARMUP = 20
# How long to wait for the server's counter to catch up after a run.
ARRIVAL_TIMEOUT = 5.0
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run for one workload.

    Attributes:
        workload: the message.
        variants: the variant keys, in their first-round order.
        messages: messages per round for each variant.
        per_connection_messages: the same for connection-per-message
            variants (they are slower per message, not different per
            message).
        rounds: interleaved rounds.
    """

    workload: Workload
    variants: tuple[str, ...]
    messages: int
    per_connection_messages: int
    rounds: int

    def count(self, variant: Variant) -> int:
        """Messages per round for ``variant``.

        Args:
            variant: the variant.

        Returns:
            The count.
        """
        if variant.per_message_connection:
            return self.per_connection_messages
        return self.messages


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run of one variant.

    Attributes:
        messages: messages sent.
        seconds: wall time.
        cpu_seconds: client CPU (user + system).
        arrived: messages the server counted during the run.
    """

    messages: int
    seconds: float
    cpu_seconds: float
    arrived: int

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per message."""
        return self.cpu_seconds / self.messages * 1e6


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant's samples in one workload, and their summary.

    Attributes:
        key: the variant key.
        label: its label.
        status: ``"ok"``, ``"lost messages"``, ``"failed"``,
            ``"not available"`` or ``"out of time"``.
        detail: why, when the status is not ok.
        messages: messages per round.
        samples: the timed runs.
    """

    key: str
    label: str
    status: str
    detail: str | None
    messages: int
    samples: tuple[Sample, ...]

    @property
    def rates(self) -> list[float]:
        """Messages per second of each sample."""
        return [sample.rate for sample in self.samples]

    @property
    def median_rate(self) -> float | None:
        """The median messages per second, or None without samples."""
        return statistics.median(self.rates) if self.samples else None

    @property
    def median_cpu_us(self) -> float | None:
        """The median client CPU microseconds per message, or None."""
        if not self.samples:
            return None
        return statistics.median(sample.cpu_us for sample in self.samples)

    @property
    def arrived(self) -> int:
        """Messages the server counted over all samples."""
        return sum(sample.arrived for sample in self.samples)

    @property
    def expected(self) -> int:
        """Messages sent over all samples."""
        return sum(sample.messages for sample in self.samples)


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """Every variant's result for one workload.

    Attributes:
        workload: the message.
        rounds: the rounds completed.
        variants: the results, in plan order.
    """

    workload: Workload
    rounds: int
    variants: tuple[VariantResult, ...]

    def get(self, key: str) -> VariantResult | None:
        """The result of variant ``key``, if it was in the plan.

        Args:
            key: the variant key.

        Returns:
            The result or None.
        """
        return next((v for v in self.variants if v.key == key), None)

    def ratio(self, key: str, *, cpu: bool = False) -> float | None:
        """``key``'s median rate (or CPU per message) over smtplib reused.

        Args:
            key: the variant key.
            cpu: compare CPU per message instead of messages per second.

        Returns:
            The ratio, or None when either side has no samples.
        """
        return self.compare(key, BASELINE, cpu=cpu)

    def compare(self, key: str, other: str, *, cpu: bool = False) -> float | None:
        """``key``'s median rate (or CPU per message) over ``other``'s.

        Args:
            key: the variant measured.
            other: the variant it is compared with.
            cpu: compare CPU per message instead of messages per second.

        Returns:
            The ratio, or None when either side has no samples.
        """
        mine, theirs = self.get(key), self.get(other)
        if mine is None or theirs is None:
            return None
        a, b = (
            (mine.median_cpu_us, theirs.median_cpu_us)
            if cpu
            else (mine.median_rate, theirs.median_rate)
        )
        if a is None or b is None or b == 0:
            return None
        return a / b


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children.

    Returns:
        Seconds.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _measure(
    variant: Variant,
    endpoint: Endpoint,
    workload: Workload,
    count: int,
    server: BenchServer,
    deadline: float,
) -> Sample:
    # Garbage from the previous variant must not be collected on this
    # one's account.
    gc.collect()
    before = server.messages()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    variant.run(endpoint, workload, count, deadline)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    arrived = server.wait_for(before + count, ARRIVAL_TIMEOUT) - before
    return Sample(count, seconds, cpu, arrived)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def run_workload(
    plan: Plan, server: BenchServer, deadline: float, progress: Progress
) -> WorkloadResult:
    """Run a plan: a warm-up, then rounds with the variants interleaved.

    The order rotates by one variant each round, so no variant always runs
    first after the warm-up or right after the heaviest one.  A variant
    that fails is reported and dropped from later rounds; the others go on.

    Args:
        plan: what to run.
        server: the server (its counter confirms arrivals).
        deadline: ``time.perf_counter()`` value after which nothing starts.
        progress: called with one line of progress at a time.

    Returns:
        The result.
    """
    endpoint = Endpoint(server.host, server.port)
    workload = plan.workload
    variants = [VARIANTS[key] for key in plan.variants]
    samples: dict[str, list[Sample]] = {v.key: [] for v in variants}
    status: dict[str, tuple[str, str | None]] = {}
    for variant in variants:
        reason = variant.missing()
        if reason is not None:
            status[variant.key] = ("not available", reason)
            continue
        try:
            _measure(
                variant,
                endpoint,
                workload,
                min(WARMUP, plan.count(variant)),
                server,
                deadline,
            )
        except BenchmarkTimeout as exc:
            status[variant.key] = ("out of time", str(exc))
        except Exception as exc:
            status[variant.key] = ("failed", _describe(exc))
    running = [v for v in variants if v.key not in status]
    rounds = 0
    for round_index in range(plan.rounds):
        if not running or time.perf_counter() > deadline:
            break
        shift = round_index % len(running)
        for variant in running[shift:] + running[:shift]:
            if variant.key in status:
                continue
            try:
                sample = _measure(
                    variant, endpoint, workload, plan.count(variant), server, deadline
                )
            except BenchmarkTimeout as exc:
                status[variant.key] = ("out of time", str(exc))
                continue
            except Exception as exc:
                status[variant.key] = ("failed", _describe(exc))
                continue
            samples[variant.key].append(sample)
        rounds += 1
        progress(f"  {workload.label}: round {rounds}/{plan.rounds} done")
    results = []
    for variant in variants:
        state, detail = status.get(variant.key, ("ok", None))
        taken = tuple(samples[variant.key])
        lost = sum(s.messages - s.arrived for s in taken)
        if state == "ok" and lost:
            state, detail = "lost messages", f"{lost} not counted by the server"
        results.append(
            VariantResult(
                variant.key, variant.label, state, detail, plan.count(variant), taken
            )
        )
    return WorkloadResult(workload, rounds, tuple(results))


# ------------------------------------------------------------------ targets


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One target of the issue, judged on this run.

    Attributes:
        name: what is compared.
        measured: the measured value (a ratio or MB), or None.
        threshold: the bound.
        op: how ``measured`` must relate to ``threshold`` (``">="``,
            ``"<="``, ``">"``, ``"<"``).
        unit: ``"x"`` for ratios, ``"MB"`` for memory.
        status: ``"met"``, ``"not met"`` or ``"n/a"``.
        detail: why it is n/a, or a note.
    """

    name: str
    measured: float | None
    threshold: float
    op: str
    unit: str
    status: str
    detail: str | None


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def _judge(
    name: str,
    measured: float | None,
    op: str,
    threshold: float,
    unit: str,
    blocker: str | None,
    missing: str = "not measured in this run",
) -> TargetResult:
    if blocker is not None:
        return TargetResult(name, measured, threshold, op, unit, "n/a", blocker)
    if measured is None:
        return TargetResult(name, None, threshold, op, unit, "n/a", missing)
    met = _OPS[op](measured, threshold)
    return TargetResult(
        name, measured, threshold, op, unit, "met" if met else "not met", None
    )


@dataclass(frozen=True, slots=True)
class _RatioTarget:
    """A ratio target: ``variant`` over ``other`` in ``workload``."""

    name: str
    workload: str
    variant: str
    other: str
    cpu: bool  # CPU per message instead of messages per second
    op: str
    threshold: float


# The ratio targets, in its order.
_RATIO_TARGETS = (
    _RatioTarget(
        "send_many, 1 KiB, 1 rcpt: rate vs smtplib reused",
        "1k",
        "smtpcore-send_many",
        BASELINE,
        False,
        ">=",
        2.5,
    ),
    _RatioTarget(
        "send_many, 1 KiB, 1 rcpt: rate vs smtp-source -d -s 1",
        "1k",
        "smtpcore-send_many",
        "smtp-source",
        False,
        ">",
        1.0,
    ),
    _RatioTarget(
        "reused send one at a time: rate vs smtplib reused",
        "1k",
        "smtpcore-reused",
        BASELINE,
        False,
        ">=",
        1.6,
    ),
    _RatioTarget(
        "reused: client CPU per message vs smtplib reused",
        "1k",
        "smtpcore-reused",
        BASELINE,
        True,
        "<=",
        0.6,
    ),
    _RatioTarget(
        "async, 8 connections: rate vs aiosmtplib, 8 connections",
        "1k",
        "smtpcore-async-8conn",
        "aiosmtplib-8conn",
        False,
        ">=",
        3.0,
    ),
    _RatioTarget(
        "10 recipients, reused: rate vs smtplib reused",
        "10rcpt",
        "smtpcore-reused",
        BASELINE,
        False,
        ">=",
        3.0,
    ),
    _RatioTarget(
        "1 MiB message, reused: CPU per message vs smtplib reused",
        "1mib",
        "smtpcore-reused",
        BASELINE,
        True,
        "<=",
        0.5,
    ),
)
# RSS growth bound for the large attachment, in MB (10**6 bytes).
RSS_TARGET_MB = 32.0


def evaluate_targets(
    workloads: dict[str, WorkloadResult],
    rss: Sequence[RssSample],
    server_kind: str,
    minimum_attachment: int,
) -> list[TargetResult]:
    """Judge the issue's targets (ratios in the same run, on smtp-sink).

    Args:
        workloads: results by workload key (``"1k"``, ``"10rcpt"``,
            ``"1mib"``).
        rss: the attachment samples.
        server_kind: ``"smtp-sink"`` or ``"aiosmtpd"``.
        minimum_attachment: the attachment size the RSS target is set for;
            a smaller one (``--quick``) is not judged.

    Returns:
        One result per target, in the issue's order.
    """
    blocker = None
    if server_kind != "smtp-sink":
        blocker = f"targets are set on smtp-sink; this run used {server_kind}"
    targets = []
    for t in _RATIO_TARGETS:
        targets.append(
            _judge(
                t.name,
                _ratio(workloads.get(t.workload), t.variant, t.other, cpu=t.cpu),
                t.op,
                t.threshold,
                "x",
                blocker,
                f"{t.variant} or {t.other} has no samples in this run",
            )
        )
    core = next((s for s in rss if s.client == "smtpcore" and s.error is None), None)
    rss_blocker = blocker
    if core is not None and core.attachment_bytes < minimum_attachment:
        rss_blocker = (
            f"the attachment was {core.attachment_bytes / 2**20:.0f} MiB "
            f"(--quick); the target is set for {minimum_attachment / 2**20:.0f} MiB"
        )
    targets.append(
        _judge(
            "100 MiB attachment: smtpcore peak RSS growth",
            core.growth_bytes / 1e6 if core is not None else None,
            "<",
            RSS_TARGET_MB,
            "MB",
            rss_blocker,
        )
    )
    return targets


def _ratio(
    result: WorkloadResult | None,
    key: str,
    other: str = BASELINE,
    *,
    cpu: bool = False,
) -> float | None:
    return None if result is None else result.compare(key, other, cpu=cpu)
