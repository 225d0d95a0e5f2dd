"""The servers the benchmarks send to, and where each process runs.

Postfix's ``smtp-sink`` (C, discards every message) is the server whenever it
is installed: it answers far faster than any Python client can send, so the
numbers measure the clients.  Without it, aiosmtpd runs in a separate process
(its CPU must not count as the client's), but it is written in Python and
then bounds every client: the output says so.

Everything listens on 127.0.0.1 only, and every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, TypeVar

__all__ = [
    "HOST",
    "SINK",
    "SOURCE",
    "AiosmtpdServer",
    "BenchServer",
    "CoreLayout",
    "ServerKind",
    "SmtpSink",
    "free_port",
    "plan_cores",
    "postfix_version",
    "start_server",
]

HOST = "127.0.0.1"
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
ServerKind = Literal["auto", "smtp-sink", "aiosmtpd"]

# A server that is not up within this many seconds is broken, not slow.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# The aiosmtpd process serves at most this long, whatever its parent does.
AIOSMTPD_LIFETIME = 3600.0
# smtp-sink's -c counter line, e.g. "sess=3 quit=3 mesg=1200\r": written and
# flushed on every final dot, so its last complete record is the live count.
_COUNTER = re.compile(rb"mesg=(\d+)\r")
_COUNTER_TAIL = 256


@dataclass(frozen=True, slots=True)
class CoreLayout:
    """Which core the client and the server are pinned to.

    Attributes:
        client: the client's core, or None when not pinned.
        server: the server's core, or None when not pinned.
    """

    client: int | None
    server: int | None

    def describe(self) -> str:
        """A short human description of the layout.

        Returns:
            e.g. ``"client on core 0, server on core 1"``.
        """
        if self.client is None or self.server is None:
            return "not pinned (fewer than 2 usable cores or no taskset)"
        return f"client on core {self.client}, server on core {self.server}"


def plan_cores() -> CoreLayout:
    """Pin this (client) process to one core and keep another for the server.

    On a 2-core machine a client and a server that share a core swing with
    the scheduler; separate cores give stable, comparable numbers.

    Returns:
        The layout; this process is already pinned when it names a core.
    """
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2 or shutil.which("taskset") is None:
        return CoreLayout(None, None)
    client, server = usable[0], usable[1]
    os.sched_setaffinity(0, {client})
    return CoreLayout(client, server)


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago on ``host``.

    Args:
        host: the loopback address to probe.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(host: str, port: int, alive: object) -> None:
    """Wait until something accepts connections on ``host:port``."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
            return
        if callable(alive) and not alive():
            raise RuntimeError(f"the server on port {port} exited while starting")
        time.sleep(0.05)
    raise TimeoutError(f"no server listening on {host}:{port} after {START_TIMEOUT}s")


def postfix_version() -> str | None:
    """Postfix's version, from ``postconf -d`` (no main.cf needed).

    Returns:
        e.g. ``"3.7.11"``, or None when Postfix is not installed.
    """
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    if not Path(postconf).exists():
        return None
    try:
        done = subprocess.run(
            [postconf, "-d", "-h", "mail_version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


class BenchServer(Protocol):
    """What the suite needs from a server."""

    host: str
    port: int
    kind: str
    description: str

    def messages(self) -> int:
        """Messages accepted so far (final dots answered)."""

    def wait_for(self, count: int, timeout: float = 5.0) -> int:
        """Wait until ``count`` messages arrived; return the count seen."""

    def close(self) -> None:
        """Stop the server."""


_S = TypeVar("_S", bound="_Base")


class _Base:
    host: str
    port: int

    def messages(self) -> int:
        raise NotImplementedError

    def wait_for(self, count: int, timeout: float = 5.0) -> int:
        """Wait until at least ``count`` messages arrived, or ``timeout``.

        Args:
            count: the total expected.
            timeout: seconds to wait at most.

        Returns:
            The count last seen (less than ``count`` on a timeout).
        """
        deadline = time.monotonic() + timeout
        seen = self.messages()
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.01)
            seen = self.messages()
        return seen

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SmtpSink(_Base):
    """Postfix's ``smtp-sink`` on 127.0.0.1, its counter read from a file.

    The counter goes to a file rather than a pipe: a reader thread in this
    process would wake on every message and count as client CPU.

    Args:
        core: the core to run it on (``taskset -c``), or None.

    Raises:
        FileNotFoundError: smtp-sink is not installed.
        TimeoutError, RuntimeError: it did not come up.
    """

    kind = "smtp-sink"

    def __init__(self, core: int | None) -> None:
        if not Path(SINK).exists():
            raise FileNotFoundError(SINK)
        self.host, self.port = HOST, free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="smtpcore-bench-")
        self._counter_path = Path(self._dir.name) / "counter"
        command = [SINK, "-c"]
        if os.geteuid() == 0:
            # smtp-sink refuses to run as root without a user to switch to.
            command += ["-u", "nobody"]
        # 1000: the listen backlog; 8 connections at once never come near it.
        command += [f"{self.host}:{self.port}", "1000"]
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        self._counter = self._counter_path.open("wb")
        self._process = subprocess.Popen(
            command, stdout=self._counter, stderr=subprocess.DEVNULL
        )
        try:
            _wait_listening(self.host, self.port, lambda: self._process.poll() is None)
        except BaseException:
            self.close()
            raise
        version = postfix_version() or "unknown version"
        where = f", core {core}" if core is not None else ""
        self.description = f"Postfix smtp-sink {version} (C, discards mail{where})"

    def messages(self) -> int:
        """Messages accepted so far, from the last complete counter record.

        Returns:
            The count (0 before the first message).
        """
        with self._counter_path.open("rb") as counter:
            counter.seek(0, os.SEEK_END)
            counter.seek(max(0, counter.tell() - _COUNTER_TAIL))
            found = _COUNTER.findall(counter.read())
        return int(found[-1]) if found else 0

    def close(self) -> None:
        """Stop smtp-sink and remove its counter file; safe to repeat."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
        self._counter.close()
        self._dir.cleanup()


def _serve_aiosmtpd(
    host: str, port: int, count: Synchronized[int], ready: Event, stop: Event
) -> None:
    """The aiosmtpd process: count messages, discard them, stop on ``stop``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class CountingHandler:
        async def handle_EHLO(
            self,
            server: SMTP,
            session: Session,
            envelope: Envelope,
            hostname: str,
            responses: list[str],
        ) -> list[str]:
            session.host_name = hostname
            *head, last = responses
            # RFC 2920: aiosmtpd handles pipelined input but never says so;
            # smtp-sink does, so both servers get the same client behaviour.
            return [*head, "250-PIPELINING", last]

        async def handle_DATA(
            self, server: SMTP, session: Session, envelope: Envelope
        ) -> str:
            with count.get_lock():
                count.value += 1
            return "250 2.0.0 Ok: queued"

    controller = Controller(
        CountingHandler(),
        hostname=host,
        port=port,
        server_hostname="bench-sink",
        # No SIZE limit: the 100 MB attachment must go through.
        data_size_limit=None,
        decode_data=False,
    )
    controller.start()
    ready.set()
    try:
        stop.wait(AIOSMTPD_LIFETIME)
    finally:
        controller.stop()


class AiosmtpdServer(_Base):
    """aiosmtpd in a separate process, so its CPU is not the client's.

    Args:
        core: the core to pin the server process to, or None.

    Raises:
        TimeoutError, RuntimeError: it did not come up.
    """

    kind = "aiosmtpd"

    def __init__(self, core: int | None) -> None:
        import aiosmtpd

        context = multiprocessing.get_context("spawn")
        self.host, self.port = HOST, free_port()
        self._count: Synchronized[int] = context.Value("q", 0)
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(
            target=_serve_aiosmtpd,
            args=(self.host, self.port, self._count, self._ready, self._stop),
            daemon=True,
        )
        self._process.start()
        if core is not None and self._process.pid is not None:
            os.sched_setaffinity(self._process.pid, {core})
        if not self._ready.wait(START_TIMEOUT):
            self.close()
            raise TimeoutError("aiosmtpd did not start")
        _wait_listening(self.host, self.port, self._process.is_alive)
        where = f", core {core}" if core is not None else ""
        self.description = (
            f"aiosmtpd {aiosmtpd.__version__} in a separate process{where} "
            "(Python: it bounds every client, so ratios understate the "
            "faster clients)"
        )

    def messages(self) -> int:
        """Messages accepted so far.

        Returns:
            The count.
        """
        return int(self._count.value)

    def close(self) -> None:
        """Stop the server process; safe to repeat."""
        self._stop.set()
        self._process.join(STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(STOP_TIMEOUT)


def start_server(kind: ServerKind, layout: CoreLayout) -> SmtpSink | AiosmtpdServer:
    """Start the requested server (``auto``: smtp-sink when installed).

    Args:
        kind: ``"auto"``, ``"smtp-sink"`` or ``"aiosmtpd"``.
        layout: where to pin it.

    Returns:
        The running server.

    Raises:
        FileNotFoundError: ``smtp-sink`` was asked for and is not installed.
    """
    if kind == "smtp-sink" or (kind == "auto" and Path(SINK).exists()):
        return SmtpSink(layout.server)
    return AiosmtpdServer(layout.server)
