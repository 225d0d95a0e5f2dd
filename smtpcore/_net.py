"""Opening a TCP connection with the whole of it bounded by the timeout.

``socket.create_connection(address, timeout)`` bounds each connect attempt
but not the name lookup before them: ``getaddrinfo`` has no timeout, and a
resolver that does not answer holds the caller for as long as the system's
resolver settings say (tens of seconds and more).  Here the lookup runs in a
daemon thread and is waited for with the timeout; the attempts then share
what is left of it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["connect_tcp", "resolve"]

# What getaddrinfo gives for one address; the sockaddr is (host, port) or
# (host, port, flowinfo, scope_id), used as it is.
_Address = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def resolve(host: str, port: int, timeout: float) -> Sequence[_Address]:
    """``getaddrinfo`` for a TCP connection, within ``timeout`` seconds.

    An address literal needs no lookup and is answered at once; a name is
    looked up in a daemon thread (a lookup cannot be cancelled: when it
    outlives the timeout it finishes, unused, in the background).

    Args:
        host: a name or an address literal.
        port: the TCP port.
        timeout: seconds the lookup may take.

    Returns:
        The addresses, in the resolver's order.

    Raises:
        socket.gaierror: the name does not resolve.
        TimeoutError: the resolver did not answer in time.
    """
    try:
        return socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        pass  # a name: look it up
    outcome: list[Sequence[_Address] | OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="smtpcore-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"looking up {host!r} took longer than {timeout:g}s")
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to ``host:port`` (each address in turn, as
    ``socket.create_connection`` does) within ``timeout`` seconds in all.

    Args:
        host: a name or an address literal.
        port: the TCP port.
        timeout: seconds for the lookup and every attempt together; the
            socket keeps it as its timeout.

    Returns:
        The connected socket.

    Raises:
        OSError: the lookup or every attempt failed (the last attempt's
            error), or ``TimeoutError`` when the time ran out.
    """
    deadline = time.monotonic() + timeout
    error: OSError | None = None
    for family, kind, proto, _, address in resolve(host, port, timeout):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = None  # the time ran out, whatever the last attempt said
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    raise error or TimeoutError(f"connecting to {host!r} took longer than {timeout:g}s")
