"""The I/O requests a conversation yields to its transport.

A transport answers a :class:`Read` by sending the received bytes back into
the generator (``b""`` at EOF) and every other request with ``None``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["UPGRADE_TLS", "Conversation", "Read", "Request", "UpgradeTls", "Write"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Write:
    """Write all of ``data`` to the connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Read:
    """Read what is available (at least one byte, or ``b""`` at EOF).

    Attributes:
        timeout: seconds to wait before giving up.
        waiting_for: what the reply is for, for error messages.
        in_doubt: the whole message was sent and this is its final reply:
            losing the connection now leaves delivery unknown.
        tls_probe_after: if nothing at all arrives within this many seconds,
            the transport should find out whether the port expects TLS from
            the first byte (a plain client there waits for a greeting that
            never comes) instead of waiting out the whole timeout.
        continues: more of a reply whose first read came earlier: the
            timeout bounds the whole reply (a server that sends one octet
            just inside the timeout must not hold us for ever), so the
            transport goes on with what is left of the first read's.
    """

    timeout: float
    waiting_for: str
    in_doubt: bool = False
    tls_probe_after: float | None = None
    continues: bool = False


@dataclass(frozen=True, slots=True)
class UpgradeTls:
    """Run the TLS handshake on the connection now (after STARTTLS 220)."""


UPGRADE_TLS = UpgradeTls()

Request = Write | Read | UpgradeTls
Conversation = Generator[Request, bytes | None, T]
