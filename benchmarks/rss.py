"""Peak memory for one message with a large attachment, one fresh process
per client.

``python -m benchmarks.rss CLIENT HOST PORT FILE`` imports what the client
needs, resets the high-water RSS mark (VmHWM, what ``ru_maxrss`` reads) to
the current RSS (the baseline), then builds and sends one
message with FILE attached and prints one JSON line: the baseline, the peak
and the seconds taken.  The parent (:func:`measure_rss`) turns that into the
growth and checks with the server that the message arrived.

smtpcore sends our ``EmailMessage`` with ``send_email``; smtplib sends a
stdlib ``email.message.EmailMessage`` with ``send_message``: each client's
ordinary way of sending a file.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.servers import BenchServer
from benchmarks.variants import HELO, SENDER, TIMEOUT, Endpoint

__all__ = [
    "CLIENTS",
    "RssClient",
    "RssSample",
    "main",
    "make_attachment",
    "measure_rss",
]

RssClient = Literal["smtpcore", "smtplib"]
CLIENTS: tuple[RssClient, ...] = ("smtpcore", "smtplib")
RECIPIENT = "sink@example.net"
# One send of ~140 MB (base64) through Python takes seconds; this bounds a
# hung one.
RUN_TIMEOUT = 300.0
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class RssSample:
    """One client's memory for the large attachment.

    Attributes:
        client: ``"smtpcore"`` or ``"smtplib"``.
        attachment_bytes: the attachment's size.
        baseline_kib: the RSS after imports, before building (the
            high-water mark VmHWM, reset to the current RSS).
        peak_kib: VmHWM after sending.
        seconds: wall time of building and sending.
        arrived: the server counted the message.
        error: why the run failed, or None.
    """

    client: str
    attachment_bytes: int
    baseline_kib: int
    peak_kib: int
    seconds: float
    arrived: bool
    error: str | None

    @property
    def growth_bytes(self) -> int:
        """Peak RSS growth over the baseline, in bytes."""
        return (self.peak_kib - self.baseline_kib) * 1024


def make_attachment(path: Path, size: int) -> None:
    """Write ``size`` bytes of incompressible data, 1 MiB at a time, so the
    parent never holds the file in memory.

    Args:
        path: the file to write.
        size: its size in bytes.
    """
    with path.open("wb") as out:
        written = 0
        block = bytes(range(256)) * (_CHUNK // 256)
        counter = 0
        while written < size:
            # Vary every block a little: identical blocks would let a clever
            # transport (or the kernel) share pages and flatter the numbers.
            counter += 1
            piece = counter.to_bytes(8, "big") + block[8:]
            piece = piece[: size - written]
            out.write(piece)
            written += len(piece)


def measure_rss(
    client: RssClient, endpoint: Endpoint, attachment: Path, server: BenchServer
) -> RssSample:
    """Run one client in a fresh interpreter and report its peak RSS.

    Args:
        client: which client.
        endpoint: the server.
        attachment: the file to attach.
        server: the server, to confirm the message arrived.

    Returns:
        The sample (with ``error`` set when the child failed).
    """
    size = attachment.stat().st_size
    before = server.messages()
    command = [sys.executable, "-m", "benchmarks.rss", client]
    command += [endpoint.host, str(endpoint.port), str(attachment)]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except subprocess.TimeoutExpired:
        return RssSample(client, size, 0, 0, RUN_TIMEOUT, False, "timed out")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return RssSample(client, size, 0, 0, 0.0, False, last)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    arrived = server.wait_for(before + 1, timeout=10.0) > before
    return RssSample(
        client,
        size,
        int(report["baseline_kib"]),
        int(report["peak_kib"]),
        float(report["seconds"]),
        arrived,
        None if arrived else "the server did not count the message",
    )


def _send_smtpcore(host: str, port: int, path: Path) -> None:
    from smtpcore import (
        BasicEmailSessionDetails,
        EmailMessage,
        ServerDetails,
        send_email,
    )

    details = BasicEmailSessionDetails(ServerDetails(host, port, use_ssl=False))
    message = EmailMessage(
        [RECIPIENT],
        SENDER,
        subject="attachment",
        body="see attachment\n",
        attachments=[str(path)],
    )
    baseline = _baseline()
    started = time.perf_counter()
    send_email(
        message,
        details,
        close_session=True,
        timeout=TIMEOUT,
        starttls="never",
        local_hostname=HELO,
    )
    _report(baseline, time.perf_counter() - started)


def _send_smtplib(host: str, port: int, path: Path) -> None:
    import email.message
    import smtplib

    baseline = _baseline()
    started = time.perf_counter()
    message = email.message.EmailMessage()
    message["From"] = SENDER
    message["To"] = RECIPIENT
    message["Subject"] = "attachment"
    message.set_content("see attachment\n")
    message.add_attachment(
        path.read_bytes(),
        maintype="application",
        subtype="octet-stream",
        filename=path.name,
    )
    with smtplib.SMTP(host, port, HELO, TIMEOUT) as client:
        client.send_message(message)
    _report(baseline, time.perf_counter() - started)


def _baseline() -> int:
    """The RSS to measure growth from, in KiB.

    ``ru_maxrss`` is a high-water mark, and a poor baseline here: the
    kernel carries the parent's RSS at fork into the child's ``ru_maxrss``
    across exec, and the imports alone may push it above anything a
    streaming send needs; either would show as no growth at all.  So the
    peak is the memory map's own high-water mark (VmHWM, which
    ``ru_maxrss`` reports when nothing else is higher), reset to the
    current RSS first: Linux 4.0+ does that when "5" is written to
    /proc/self/clear_refs.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _maxrss()


def _maxrss() -> int:
    """The high-water RSS in KiB: VmHWM, or ``ru_maxrss`` without /proc."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _report(baseline: int, seconds: float) -> None:
    peak = _maxrss()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "seconds": seconds}))


def main(argv: list[str] | None = None) -> int:
    """The child process: ``CLIENT HOST PORT FILE``.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[0] not in CLIENTS:
        print("usage: python -m benchmarks.rss smtpcore|smtplib HOST PORT FILE")
        return 2
    client, host, port, path = args[0], args[1], int(args[2]), Path(args[3])
    if host not in ("127.0.0.1", "::1"):
        print("the benchmarks send to loopback only")
        return 2
    if client == "smtpcore":
        _send_smtpcore(host, port, path)
    else:
        _send_smtplib(host, port, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
