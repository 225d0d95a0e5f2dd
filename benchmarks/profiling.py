"""cProfile of smtpcore's own variants, for the work on its speed.

Profiling slows Python code down unevenly, so these runs are separate from
the timed suite and their numbers are never compared with it.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.servers import BenchServer
from benchmarks.variants import VARIANTS, Endpoint, Workload

__all__ = ["PROFILED", "profile_variants"]

PROFILED = ("smtpcore-reused", "smtpcore-send_many")
TOP = 15


# Wall time shows where a send waits (each recv is a round trip to the
# server); CPU time shows what the client computes, which is what the
# CPU-per-message targets are about.  Both are printed.
CLOCKS: dict[str, Callable[[], float]] = {
    "wall": time.perf_counter,
    "cpu": time.process_time,
}


def profile_variants(
    server: BenchServer,
    workload: Workload,
    count: int,
    out_dir: Path,
    deadline: float,
) -> str:
    """Profile each of :data:`PROFILED` sending ``count`` messages, once
    with a wall clock and once with a CPU clock.

    Args:
        server: the server.
        workload: the message.
        count: messages per variant and clock.
        out_dir: where ``profile-<variant>-<clock>.txt`` (top 60) is written.
        deadline: ``time.perf_counter()`` bound for the loops.

    Returns:
        The top :data:`TOP` functions by own time for each variant and clock.
    """
    endpoint = Endpoint(server.host, server.port)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for key in PROFILED:
        variant = VARIANTS[key]
        variant.run(endpoint, workload, min(count, 20), deadline)  # warm-up
        for clock, timer in CLOCKS.items():
            profiler = cProfile.Profile(timer)
            started = time.perf_counter()
            profiler.enable()
            variant.run(endpoint, workload, count, deadline)
            profiler.disable()
            seconds = time.perf_counter() - started
            header = (
                f"== {variant.label}, {clock} clock: {count} x "
                f"{len(workload.data)} octets in {seconds:.2f} s under cProfile "
                f"({count / seconds:,.0f} msg/s; not comparable with the suite)"
            )
            full = io.StringIO()
            pstats.Stats(profiler, stream=full).sort_stats("tottime").print_stats(60)
            path = out_dir / f"profile-{key}-{clock}.txt"
            path.write_text(header + "\n" + full.getvalue())
            top = io.StringIO()
            pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(TOP)
            sections.append(header + "\n" + top.getvalue().strip("\n") + "\n")
    return "\n".join(sections)
