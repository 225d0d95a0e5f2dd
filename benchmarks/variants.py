"""The messages the suite sends and the clients that send them.

Every variant sends ``count`` copies of one prebuilt message (``send_email``
gets the model twin of it and builds it each time, as a user of the block
would), and returns only when the server has answered the last one.  Each
loop is bounded by its count and by the run's deadline; every client has a
socket timeout.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiosmtplib

from benchmarks.servers import SOURCE
from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    ServerDetails,
    SmtpClient,
    send_email,
)

__all__ = [
    "BASELINE",
    "HELO",
    "SENDER",
    "VARIANTS",
    "BenchmarkTimeout",
    "Endpoint",
    "Variant",
    "Workload",
    "make_workload",
    "smtpcore_async_missing",
]

SENDER = "bench@example.com"
HELO = "bench.example.com"
# Seconds for connecting and every reply, in every client.
TIMEOUT = 30.0
POOL = 8
BASELINE = "smtplib-reused"
_LINE = 78  # body line length before CRLF, under RFC 5322's 78 recommendation


class BenchmarkTimeout(Exception):
    """The run's time budget ran out in the middle of a variant."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the server listens.

    Attributes:
        host: a loopback address.
        port: the TCP port.
    """

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Workload:
    """One message, sent the same way by every variant.

    Attributes:
        key: a short name (``"1k"``, ``"10rcpt"``, ``"1mib"``).
        label: what the table calls it.
        sender: the envelope sender.
        recipients: the envelope recipients.
        data: the prebuilt RFC 5322 message (CRLF line ends).
        body_size: octets of body text (what ``smtp-source -l`` is given).
        message: our model twin of ``data``, for ``send_email``.
    """

    key: str
    label: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    body_size: int
    message: EmailMessage


def make_workload(key: str, label: str, body_size: int, recipients: int) -> Workload:
    """Build a message with ``body_size`` octets of body in 78-octet lines.

    Args:
        key: the workload's short name.
        label: its label in the table.
        body_size: octets of body text (CRLFs excluded), at least 1.
        recipients: how many envelope recipients (all in ``To``).

    Returns:
        The workload.

    Raises:
        ValueError: ``body_size`` or ``recipients`` is below 1.
    """
    if body_size < 1 or recipients < 1:
        raise ValueError("body_size and recipients must be at least 1")
    to = tuple(f"sink{index}@example.net" for index in range(recipients))
    full, rest = divmod(body_size, _LINE)
    lines = [("y" * _LINE)] * full + (["y" * rest] if rest else [])
    header = (
        f"From: {SENDER}\r\nTo: {', '.join(to)}\r\nSubject: benchmark\r\n"
        f"Date: {formatdate(localtime=False)}\r\n"
        f"Message-ID: <bench.{key}@example.com>\r\n\r\n"
    )
    data = header.encode() + "\r\n".join(lines).encode() + b"\r\n"
    message = EmailMessage(
        list(to), SENDER, subject="benchmark", body="\n".join(lines) + "\n"
    )
    return Workload(key, label, SENDER, to, data, body_size, message)


def _check(deadline: float) -> None:
    if time.perf_counter() > deadline:
        raise BenchmarkTimeout("the run's time budget ran out")


def _shares(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` near-equal whole shares."""
    share, extra = divmod(count, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


def _raise_failures(results: Sequence[object]) -> None:
    """send_many reports failures per item instead of raising: do raise,
    so a variant that lost messages cannot pass as fast."""
    for result in results:
        if isinstance(result, BaseException):
            raise result


# ------------------------------------------------------------------ smtplib


def smtplib_per_message(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """A new smtplib connection (EHLO, send, QUIT) per message."""
    for _ in range(count):
        _check(deadline)
        with smtplib.SMTP(ep.host, ep.port, HELO, TIMEOUT) as client:
            client.sendmail(w.sender, list(w.recipients), w.data)


def smtplib_reused(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """One smtplib connection, ``sendmail`` per message."""
    with smtplib.SMTP(ep.host, ep.port, HELO, TIMEOUT) as client:
        for _ in range(count):
            _check(deadline)
            client.sendmail(w.sender, list(w.recipients), w.data)


# --------------------------------------------------------------- aiosmtplib


def _aiosmtplib_client(ep: Endpoint) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=ep.host,
        port=ep.port,
        local_hostname=HELO,
        timeout=TIMEOUT,
        use_tls=False,
        start_tls=False,
    )


async def _aiosmtplib_worker(
    client: aiosmtplib.SMTP, w: Workload, count: int, deadline: float
) -> None:
    for _ in range(count):
        _check(deadline)
        await client.sendmail(w.sender, list(w.recipients), w.data)


async def _aiosmtplib_pool(
    ep: Endpoint, w: Workload, count: int, deadline: float, size: int
) -> None:
    clients = [_aiosmtplib_client(ep) for _ in range(size)]
    await asyncio.gather(*(client.connect() for client in clients))
    try:
        await asyncio.gather(
            *(
                _aiosmtplib_worker(client, w, share, deadline)
                for client, share in zip(clients, _shares(count, size), strict=True)
            )
        )
    finally:
        await asyncio.gather(
            *(client.quit() for client in clients), return_exceptions=True
        )


def aiosmtplib_reused(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """One aiosmtplib connection, ``sendmail`` awaited per message."""
    asyncio.run(_aiosmtplib_pool(ep, w, count, deadline, 1))


def aiosmtplib_pool(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """Eight aiosmtplib connections sending concurrently."""
    asyncio.run(_aiosmtplib_pool(ep, w, count, deadline, POOL))


# ------------------------------------------------------------ smtpcore sync


def _details(ep: Endpoint) -> BasicEmailSessionDetails:
    return BasicEmailSessionDetails(ServerDetails(ep.host, ep.port, use_ssl=False))


def _smtpcore_client(ep: Endpoint) -> SmtpClient:
    return SmtpClient(
        _details(ep), timeout=TIMEOUT, starttls="never", local_hostname=HELO
    )


def smtpcore_send_email(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """``send_email(message, details, close_session=True)`` per message:
    the block's default, which builds the MIME message each time."""
    details = _details(ep)
    for _ in range(count):
        _check(deadline)
        send_email(
            w.message,
            details,
            close_session=True,
            timeout=TIMEOUT,
            starttls="never",
            local_hostname=HELO,
        )


def smtpcore_per_message(
    ep: Endpoint, w: Workload, count: int, deadline: float
) -> None:
    """A new SmtpClient session per prebuilt message (like for like with
    smtplib's connection per message)."""
    for _ in range(count):
        _check(deadline)
        with _smtpcore_client(ep) as client:
            client.send_raw(w.sender, w.recipients, w.data)


def smtpcore_reused(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """One SmtpClient session, ``send_raw`` one message at a time."""
    with _smtpcore_client(ep) as client:
        for _ in range(count):
            _check(deadline)
            client.send_raw(w.sender, w.recipients, w.data)


def smtpcore_send_many(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """One SmtpClient session, every message in one ``send_many`` call
    (pipelined where the server allows)."""
    _check(deadline)
    items = [(w.sender, w.recipients, w.data)] * count
    with _smtpcore_client(ep) as client:
        _raise_failures(client.send_many(items))


# ----------------------------------------------------------- smtpcore async


def _smtpcore_aio() -> Any:
    return importlib.import_module("smtpcore.aio")


def smtpcore_async_missing() -> str | None:
    """Why the async smtpcore variants cannot run, or None when they can.

    Returns:
        The reason (e.g. the import error), or None.
    """
    try:
        module = _smtpcore_aio()
    except ImportError as exc:
        return f"smtpcore.aio cannot be imported ({exc})"
    if not hasattr(module, "AsyncSmtpClient"):
        return "smtpcore.aio has no AsyncSmtpClient"
    return None


def _accepts(function: Callable[..., object], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


async def _smtpcore_async(
    ep: Endpoint, w: Workload, count: int, deadline: float, pool: int
) -> None:
    cls = _smtpcore_aio().AsyncSmtpClient
    options: dict[str, Any] = {
        "timeout": TIMEOUT,
        "starttls": "never",
        "local_hostname": HELO,
    }
    # The lead decides where max_connections lives (constructor or
    # send_many); either is measured the same way.
    in_constructor = pool > 1 and _accepts(cls, "max_connections")
    if in_constructor:
        options["max_connections"] = pool
    client = cls(_details(ep), **options)
    has_context = hasattr(client, "__aenter__")
    if has_context:
        await client.__aenter__()
    try:
        _check(deadline)
        if pool == 1:
            for _ in range(count):
                _check(deadline)
                await client.send_raw(w.sender, w.recipients, w.data)
        else:
            items = [(w.sender, w.recipients, w.data)] * count
            extra = {} if in_constructor else {"max_connections": pool}
            _raise_failures(await client.send_many(items, **extra))
    finally:
        if has_context:
            await client.__aexit__(None, None, None)
        else:
            await _maybe_await(client.close())


def smtpcore_async_reused(
    ep: Endpoint, w: Workload, count: int, deadline: float
) -> None:
    """One AsyncSmtpClient session, ``send_raw`` awaited per message."""
    asyncio.run(_smtpcore_async(ep, w, count, deadline, 1))


def smtpcore_async_pool(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """AsyncSmtpClient ``send_many`` over eight connections."""
    asyncio.run(_smtpcore_async(ep, w, count, deadline, POOL))


# --------------------------------------------------------------- the floor


def _read_lines(sock: socket.socket, lines: int) -> None:
    """Read ``lines`` single-line replies; refuse anything but 2yz / 3yz."""
    buffer = b""
    while buffer.count(b"\n") < lines:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    if any(line[:1] not in (b"2", b"3") for line in buffer.splitlines()):
        raise RuntimeError(f"refused: {buffer!r}")


def raw_two_round_trips(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """The least a DATA client can do per message on a reused connection
    with PIPELINING: MAIL, RCPT and DATA in one write, the content in a
    second, a bare recv for the replies, no checks.  Not a usable client: a
    lower bound for the reused variants (two waits per message)."""
    group = b"MAIL FROM:<%s>\r\n" % w.sender.encode()
    group += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in w.recipients)
    group += b"DATA\r\n"
    content = w.data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    with socket.create_connection((ep.host, ep.port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _read_lines(sock, 1)
        sock.sendall(b"EHLO " + HELO.encode() + b"\r\n")
        reply = b""
        while not reply.endswith(b"\n") or b"\n250 " not in b"\n" + reply:
            reply += sock.recv(65536)
        for _ in range(count):
            _check(deadline)
            sock.sendall(group)
            _read_lines(sock, len(w.recipients) + 2)
            sock.sendall(content)
            _read_lines(sock, 1)
        sock.sendall(b"QUIT\r\n")


# -------------------------------------------------------------- smtp-source


def smtp_source_missing() -> str | None:
    """Why smtp-source cannot run, or None when it can.

    Returns:
        The reason, or None.
    """
    return None if Path(SOURCE).exists() else f"{SOURCE} is not installed"


def smtp_source(ep: Endpoint, w: Workload, count: int, deadline: float) -> None:
    """Postfix's C load generator over one connection (``-d -s 1``): no
    pipelining, so it waits for every reply.  Its CPU is counted from
    RUSAGE_CHILDREN; it inherits this process's core."""
    _check(deadline)
    command = [SOURCE, "-d", "-s", "1", "-l", str(w.body_size), "-m", str(count)]
    command += ["-M", HELO, "-f", w.sender, "-t", w.recipients[0]]
    command += ["-r", str(len(w.recipients)), f"{ep.host}:{ep.port}"]
    remaining = max(1.0, deadline - time.perf_counter())
    try:
        subprocess.run(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=remaining,
            check=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkTimeout("smtp-source ran out of time") from exc


# ----------------------------------------------------------------- registry

Run = Callable[[Endpoint, Workload, int, float], None]


def _available() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of sending.

    Attributes:
        key: a stable short name (JSON key).
        label: what the table calls it.
        run: ``run(endpoint, workload, count, deadline)``.
        per_message_connection: opens a connection per message (it gets
            fewer messages per round: its rate is per message all the same).
        missing: returns why the variant cannot run here, or None.
    """

    key: str
    label: str
    run: Run
    per_message_connection: bool = False
    missing: Callable[[], str | None] = _available


VARIANTS: dict[str, Variant] = {
    variant.key: variant
    for variant in (
        Variant(
            "smtplib-per-message",
            "smtplib, connection per message",
            smtplib_per_message,
            per_message_connection=True,
        ),
        Variant(BASELINE, "smtplib, reused connection", smtplib_reused),
        Variant(
            "aiosmtplib-reused", "aiosmtplib, reused connection", aiosmtplib_reused
        ),
        Variant("aiosmtplib-8conn", "aiosmtplib, 8 connections", aiosmtplib_pool),
        Variant(
            "smtpcore-send_email",
            "smtpcore send_email(close_session=True)",
            smtpcore_send_email,
            per_message_connection=True,
        ),
        Variant(
            "smtpcore-per-message",
            "smtpcore SmtpClient, session per message",
            smtpcore_per_message,
            per_message_connection=True,
        ),
        Variant(
            "smtpcore-reused", "smtpcore SmtpClient, reused session", smtpcore_reused
        ),
        Variant(
            "smtpcore-send_many", "smtpcore send_many, pipelined", smtpcore_send_many
        ),
        Variant(
            "smtpcore-async-reused",
            "smtpcore AsyncSmtpClient, reused session",
            smtpcore_async_reused,
            missing=smtpcore_async_missing,
        ),
        Variant(
            "smtpcore-async-8conn",
            "smtpcore AsyncSmtpClient, 8 connections",
            smtpcore_async_pool,
            missing=smtpcore_async_missing,
        ),
        Variant(
            "smtp-source",
            "Postfix smtp-source -d -s 1 (C)",
            smtp_source,
            missing=smtp_source_missing,
        ),
        Variant(
            "raw-2rt",
            "floor: raw socket, 2 round trips, no checks",
            raw_two_round_trips,
        ),
    )
}
