"""The suite's output: the text table, the JSON result file, the PNG chart.

matplotlib is imported only to draw the chart, and only if it is installed
(``pip install matplotlib``); without it the table and the JSON are still
written.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.rss import RssSample
from benchmarks.suite import TargetResult, VariantResult, WorkloadResult
from benchmarks.variants import BASELINE

__all__ = [
    "format_report",
    "machine_info",
    "to_json",
    "write_chart",
    "write_json",
]

REPO = Path(__file__).resolve().parent.parent
# The run itself keeps about one core busy; above this, something else ran.
BUSY_LOAD = 1.5


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _revision() -> str | None:
    """The repository's commit, with a mark when smtpcore/ has changes
    that are not committed (the numbers are then for the working tree)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "smtpcore"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} + uncommitted changes in smtpcore/" if dirty else head


def machine_info(pinning: str, server: str) -> dict[str, Any]:
    """Describe the machine, the software and the server of this run.

    Args:
        pinning: where client and server run.
        server: the server's description.

    Returns:
        A JSON-ready dict.
    """
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "smtpcore": _revision(),
        "aiosmtplib": _version("aiosmtplib"),
        "aiosmtpd": _version("aiosmtpd"),
        "server": server,
        "pinning": pinning,
        "load_average": _load_average(),
    }


def _load_average() -> float | None:
    """The 1-minute load average: other work on a 2-core machine shows up
    as wide min-max ranges, and the report says so."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -------------------------------------------------------------------- text


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _row(variant: VariantResult, result: WorkloadResult) -> str:
    if not variant.samples:
        return f"  {variant.label:43s} {variant.status}: {variant.detail}"
    rates = variant.rates
    spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
    ratio = result.ratio(variant.key)
    cpu_ratio = result.ratio(variant.key, cpu=True)
    line = (
        f"  {variant.label:43s} {_number(variant.median_rate):>8s} {spread:>15s} "
        f"{_number(variant.median_cpu_us):>8s} "
        f"{_number(ratio, 2):>7s}x {_number(cpu_ratio, 2):>6s}x "
        f"{variant.arrived:>6d}/{variant.expected}"
    )
    if variant.status != "ok":
        line += f"  [{variant.status}: {variant.detail}]"
    return line


def format_workload(result: WorkloadResult) -> list[str]:
    """The table of one workload.

    Args:
        result: the workload's results.

    Returns:
        The lines.
    """
    workload = result.workload
    counts = sorted({v.messages for v in result.variants}, reverse=True)
    per_round = " / ".join(f"{count:,}" for count in counts)
    if len(counts) > 1:
        per_round += " (connection-per-message variants)"
    lines = [
        f"{workload.label}: {len(workload.data):,} octets; {result.rounds} "
        f"interleaved rounds of {per_round} messages per variant",
        f"  {'variant':43s} {'msg/s':>8s} {'min-max':>15s} {'CPU us':>8s} "
        f"{'rate':>8s} {'CPU':>7s} {'arrived':>8s}",
        f"  {'':43s} {'median':>8s} {'':>15s} {'per msg':>8s} "
        f"{'vs base':>8s} {'vs base':>7s}",
    ]
    lines += [_row(variant, result) for variant in result.variants]
    if result.get(BASELINE) is not None:
        lines.append("  (base: smtplib, reused connection, same run)")
    return lines


def _format_target(target: TargetResult) -> str:
    mark = {"met": "[met]    ", "not met": "[NOT MET]", "n/a": "[n/a]    "}
    head = f"  {mark[target.status]} {target.name}: "
    bound = f"{target.op} {target.threshold:g}{target.unit}"
    if target.measured is None:
        return head + f"(needs {bound}) {target.detail}"
    text = head + f"{target.measured:.2f}{target.unit} (needs {bound})"
    return text + (f"  {target.detail}" if target.detail else "")


def _format_rss(samples: Sequence[RssSample]) -> list[str]:
    if not samples:
        return []
    size = samples[0].attachment_bytes
    lines = [
        f"Attachment of {size:,} bytes ({size / 2**20:.0f} MiB), one message, fresh "
        "process per client: peak RSS growth over the baseline before sending"
    ]
    for sample in samples:
        if sample.error is not None:
            lines.append(f"  {sample.client:9s} failed: {sample.error}")
            continue
        lines.append(
            f"  {sample.client:9s} {sample.growth_bytes / 1e6:8.1f} MB   (baseline "
            f"{sample.baseline_kib * 1024 / 1e6:.1f} MB, peak "
            f"{sample.peak_kib * 1024 / 1e6:.1f} MB, {sample.seconds:.1f} s)"
        )
    return lines


def format_report(
    info: dict[str, Any],
    workloads: Sequence[WorkloadResult],
    rss: Sequence[RssSample],
    targets: Sequence[TargetResult],
    notes: Sequence[str] = (),
) -> str:
    """The whole text report.

    Args:
        info: from :func:`machine_info`.
        workloads: the workload results.
        rss: the attachment samples.
        targets: the judged targets.
        notes: extra lines for the end (e.g. where the files went).

    Returns:
        The report, newline-terminated.
    """
    lines = [
        f"smtpcore benchmarks, {info['date']}",
        f"  machine: {info['cpu']}, {info['cores']} cores; {info['platform']}",
        f"  python: {info['python']}; smtpcore {info['smtpcore']}; "
        f"aiosmtplib {info['aiosmtplib']}",
        f"  server: {info['server']} on 127.0.0.1",
        f"  pinning: {info['pinning']}",
    ]
    load = info.get("load_average")
    if load is not None:
        busy = load > BUSY_LOAD
        lines.append(
            f"  load average (1 min) at the end: {load:.2f}"
            + ("  (other processes were busy: expect wide ranges)" if busy else "")
        )
    lines.append("")
    for result in workloads:
        lines += [*format_workload(result), ""]
    rss_lines = _format_rss(rss)
    if rss_lines:
        lines += [*rss_lines, ""]
    if targets:
        lines.append("Targets (ratios within this run, one connection unless said):")
        lines += [_format_target(target) for target in targets]
        met = sum(target.status == "met" for target in targets)
        lines += [f"  {met}/{len(targets)} met", ""]
    lines += list(notes)
    return "\n".join(lines).rstrip() + "\n"


# -------------------------------------------------------------------- JSON


def _variant_json(variant: VariantResult, result: WorkloadResult) -> dict[str, Any]:
    rates = variant.rates
    return {
        "label": variant.label,
        "status": variant.status,
        "detail": variant.detail,
        "messages_per_round": variant.messages,
        "rates": rates,
        "cpu_us_per_message": [sample.cpu_us for sample in variant.samples],
        "median_rate": variant.median_rate,
        "min_rate": min(rates) if rates else None,
        "max_rate": max(rates) if rates else None,
        "median_cpu_us": variant.median_cpu_us,
        "rate_ratio_to_smtplib_reused": result.ratio(variant.key),
        "cpu_ratio_to_smtplib_reused": result.ratio(variant.key, cpu=True),
        "arrived": variant.arrived,
        "expected": variant.expected,
    }


def to_json(
    info: dict[str, Any],
    settings: dict[str, Any],
    workloads: Sequence[WorkloadResult],
    rss: Sequence[RssSample],
    targets: Sequence[TargetResult],
) -> dict[str, Any]:
    """Everything measured, JSON-ready.

    Args:
        info: from :func:`machine_info`.
        settings: the run's settings (rounds, counts, quick).
        workloads: the workload results.
        rss: the attachment samples.
        targets: the judged targets.

    Returns:
        The document.
    """
    return {
        "schema": 1,
        "machine": info,
        "settings": settings,
        "workloads": {
            result.workload.key: {
                "label": result.workload.label,
                "message_octets": len(result.workload.data),
                "recipients": len(result.workload.recipients),
                "rounds": result.rounds,
                "variants": {v.key: _variant_json(v, result) for v in result.variants},
            }
            for result in workloads
        },
        "rss": [
            {
                "client": s.client,
                "attachment_bytes": s.attachment_bytes,
                "baseline_kib": s.baseline_kib,
                "peak_kib": s.peak_kib,
                "growth_bytes": s.growth_bytes if s.error is None else None,
                "seconds": s.seconds,
                "arrived": s.arrived,
                "error": s.error,
            }
            for s in rss
        ],
        "targets": [
            {
                "name": t.name,
                "measured": t.measured,
                "op": t.op,
                "threshold": t.threshold,
                "unit": t.unit,
                "status": t.status,
                "detail": t.detail,
            }
            for t in targets
        ],
    }


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write the document (creating the folder).

    Args:
        document: from :func:`to_json`.
        path: the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# ------------------------------------------------------------------- chart


def _panel(
    axes: Any,
    title: str,
    labels: list[str],
    values: list[float],
    spans: list[tuple[float, float]] | None,
    xlabel: str,
    colors: list[str],
) -> None:
    positions = list(range(len(labels)))
    spans = spans or [(value, value) for value in values]
    errors = [
        [value - low for value, (low, _) in zip(values, spans, strict=True)],
        [high - value for value, (_, high) in zip(values, spans, strict=True)],
    ]
    axes.barh(positions, values, xerr=errors, color=colors, capsize=3)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    axes.locator_params(axis="x", nbins=5)
    # Room on the right for the labels, which sit past the error bars.
    axes.set_xlim(0, max(high for _, high in spans) * 1.2 or 1.0)
    for position, value, (_, high) in zip(positions, values, spans, strict=True):
        axes.annotate(f"  {value:,.0f}", (high, position), va="center", fontsize=7)


def _color(key: str) -> str:
    if key.startswith("smtpcore"):
        return "#2a7ab9"
    if key == "smtp-source":
        return "#7f7f7f"
    return "#e08a2c"


def _workload_panel(
    axes: Any, result: WorkloadResult | None, title: str, cpu: bool
) -> None:
    measured = [] if result is None else [v for v in result.variants if v.samples]
    if not measured:
        axes.set_title(f"{title}: not measured", fontsize=10)
        axes.axis("off")
        return
    if cpu:
        values = [v.median_cpu_us or 0.0 for v in measured]
        spans = [
            (min(s.cpu_us for s in v.samples), max(s.cpu_us for s in v.samples))
            for v in measured
        ]
        xlabel = (
            "client CPU microseconds per message (median, min-max; lower is better)"
        )
    else:
        values = [v.median_rate or 0.0 for v in measured]
        spans = [(min(v.rates), max(v.rates)) for v in measured]
        xlabel = "messages per second (median, min-max; higher is better)"
    _panel(
        axes,
        title,
        [v.label for v in measured],
        values,
        spans,
        xlabel,
        [_color(v.key) for v in measured],
    )


def write_chart(
    workloads: Sequence[WorkloadResult],
    rss: Sequence[RssSample],
    info: dict[str, Any],
    path: Path,
) -> str:
    """Draw the results as a PNG, if matplotlib is installed.

    Args:
        workloads: the workload results.
        rss: the attachment samples.
        info: from :func:`machine_info` (for the caption).
        path: the PNG file.

    Returns:
        A line saying where the chart went, or how to get one.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG chart skipped: matplotlib is not installed (pip install matplotlib)"
    by_key = {result.workload.key: result for result in workloads}
    figure, grid = plt.subplots(2, 3, figsize=(20, 10))
    _workload_panel(grid[0][0], by_key.get("1k"), "1 KiB, 1 recipient: rate", False)
    _workload_panel(grid[0][1], by_key.get("1k"), "1 KiB, 1 recipient: CPU", True)
    _workload_panel(grid[0][2], by_key.get("10rcpt"), "10 recipients: rate", False)
    _workload_panel(grid[1][0], by_key.get("1mib"), "1 MiB message: rate", False)
    _workload_panel(grid[1][1], by_key.get("1mib"), "1 MiB message: CPU", True)
    measured = [s for s in rss if s.error is None]
    if measured:
        size = measured[0].attachment_bytes / 2**20
        _panel(
            grid[1][2],
            f"{size:.0f} MiB attachment: peak RSS growth",
            [s.client for s in measured],
            [s.growth_bytes / 1e6 for s in measured],
            None,
            "MB over the baseline (lower is better)",
            [_color(s.client) for s in measured],
        )
    else:
        grid[1][2].set_title("attachment: not measured", fontsize=10)
        grid[1][2].axis("off")
    figure.suptitle(
        f"smtpcore benchmarks {info['date']}: {info['server']}; {info['cpu']}, "
        f"{info['python']}; smtpcore {info['smtpcore']}",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return f"chart: {path}"
