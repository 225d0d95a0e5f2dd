"""The server's end of one connection of :mod:`tests.hostile.fakeserver`:
buffered line reads, whole or dribbled writes, and the STARTTLS upgrade."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time

from tests.rawserver import RawConnection

__all__ = ["Peer"]

# Same bounds as tests.rawserver: a broken test fails instead of hanging.
_IO_TIMEOUT = 5.0
_HOLD_LIMIT = 10.0
_POLL = 0.05
_RECV_SIZE = 1 << 16
_MAX_BUFFER = 64 << 20


class Peer:
    """The server's end of one connection: buffered line reads, whole or
    dribbled writes, and the STARTTLS upgrade.

    Args:
        conn: the connection :class:`tests.rawserver.RawServer` accepted;
            its socket is taken over.
    """

    def __init__(self, conn: RawConnection) -> None:
        # RawConnection offers neither a STARTTLS upgrade nor a look at what
        # is already buffered, both of which this server needs, so it takes
        # over the connection's socket (RawConnection is not used again).
        self._sock: socket.socket = conn._sock
        self._sock.settimeout(_IO_TIMEOUT)
        # Dribbled octets must leave one per segment.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Octets received but not yet read."""
        return len(self._buf)

    def send(self, data: bytes, interval: float | None = None) -> None:
        """Send ``data`` at once, or one octet every ``interval`` seconds.

        Args:
            data: the bytes.
            interval: seconds between two octets, or None for one write.

        Raises:
            OSError: the client is gone (ConnectionAbortedError when it
                hung up during a dribbled reply).
        """
        if interval is None:
            self._sock.sendall(data)
            return
        for index in range(len(data)):
            # A client waiting for this reply sends nothing: if the socket
            # turns readable during the pause, it has given up and gone.
            if index and select.select([self._sock], [], [], interval)[0]:
                raise ConnectionAbortedError("the client left during a reply")
            self._sock.sendall(data[index : index + 1])

    def _fill(self) -> bool:
        if len(self._buf) > _MAX_BUFFER:
            raise ValueError("the client sent more than the fake server buffers")
        chunk = self._sock.recv(_RECV_SIZE)
        self._buf += chunk
        return bool(chunk)

    def wait_for_data(self) -> bool:
        """Wait until the client sent something.

        Returns:
            False if the client hung up first.
        """
        return bool(self._buf) or self._fill()

    def read_line(self) -> bytes | None:
        """Read one CRLF-terminated line.

        Returns:
            The line without its CRLF, or None if the client hung up first.
        """
        while (end := self._buf.find(b"\r\n")) < 0:
            if not self._fill():
                return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def read_content(self, limit: int | None = None) -> bytes | None:
        """Read message content.

        RFC 5321 4.1.1.4: the content ends at CRLF "." CRLF; empty content
        is the lone line "." right after the 354.

        Args:
            limit: stop after this many octets if the end comes later.

        Returns:
            The content through its end-of-data line (or its first
            ``limit`` octets), or None if the client hung up first.
        """
        while True:
            if self._buf.startswith(b".\r\n"):
                end = 3
                break
            found = self._buf.find(b"\r\n.\r\n")
            if found >= 0:
                end = found + 5
                break
            if limit is not None and len(self._buf) >= limit:
                end = limit
                break
            if not self._fill():
                return None
        content = bytes(self._buf[:end])
        del self._buf[:end]
        return content

    def take_buffered(self) -> bytes:
        """Take everything received and not yet read.

        Returns:
            The bytes (the buffer is empty afterwards).
        """
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Run the server side of the TLS handshake.

        Args:
            context: the server-side context.

        Raises:
            OSError: the handshake failed (e.g. the client refused the
                certificate).
        """
        self._sock = context.wrap_socket(self._sock, server_side=True)

    def hold(self) -> None:
        """Stay silent until the client hangs up or 10 s pass."""
        self._sock.settimeout(_POLL)
        deadline = time.monotonic() + _HOLD_LIMIT
        while time.monotonic() < deadline:
            try:
                if not self._sock.recv(_RECV_SIZE):
                    return
            except TimeoutError:
                continue

    def close(self) -> None:
        """Close the connection (after a TLS upgrade, the TLS socket)."""
        with contextlib.suppress(OSError):
            self._sock.close()
