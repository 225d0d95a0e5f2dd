"""A tiny threaded raw-socket server on loopback, for misbehaving servers.

aiosmtpd is a well-behaved server; the cases here need one that is not:
one that never greets, greets with HTTP, stops answering after the message
content, or hangs up at a chosen command.  Each accepted connection runs a
*script* (a function of :class:`RawConnection`) in its own thread.

Every wait is bounded (accept, each read, holding a connection silent,
stopping), so a broken test fails instead of hanging the suite, and
``stop()`` returns only once every thread has finished.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Literal

__all__ = ["Action", "RawConnection", "RawServer", "Script", "smtp_script"]

# A client under test answers within its own (short) timeout; five seconds
# is only reached when the test itself is broken.
_IO_TIMEOUT = 5.0
# How long hold() keeps a connection silent at most.  Longer than any client
# timeout used in the tests, shorter than the suite's per-test timeout.
_HOLD_LIMIT = 10.0
# The polling step of the accept loop and of hold(): how quickly stop() is
# noticed.
_POLL = 0.05
_STOP_TIMEOUT = 5.0
# Bounds what one connection may buffer, so a runaway client cannot eat memory.
_MAX_BUFFER = 1 << 20

Script = Callable[["RawConnection"], None]
Action = Literal["close", "silence"]


class RawConnection:
    """One accepted client connection, as seen by a script.

    Attributes:
        lines: every line read with :meth:`read_line`, without its CRLF.
        contents: every block read with :meth:`read_until`, marker included.
    """

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self._sock = sock
        self._stopping = stopping
        self._buffer = b""
        self.lines: list[bytes] = []
        self.contents: list[bytes] = []
        sock.settimeout(_IO_TIMEOUT)

    def send(self, data: bytes) -> None:
        """Send all of ``data``.

        Args:
            data: the bytes to send.

        Raises:
            OSError: the client is gone.
        """
        self._sock.sendall(data)

    def _fill(self) -> bool:
        """Read one more chunk; False at EOF."""
        if len(self._buffer) > _MAX_BUFFER:
            raise ValueError("the client sent more than the raw server buffers")
        chunk = self._sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def read_until(self, marker: bytes) -> bytes:
        """Read up to and including ``marker``.

        Args:
            marker: the bytes that end the block, e.g. ``b"\\r\\n.\\r\\n"``.

        Returns:
            The block with the marker, or ``b""`` if the client closed first.

        Raises:
            TimeoutError: nothing arrived for 5 seconds.
        """
        while marker not in self._buffer:
            if not self._fill():
                return b""
        end = self._buffer.index(marker) + len(marker)
        block, self._buffer = self._buffer[:end], self._buffer[end:]
        return block

    def read_line(self) -> bytes:
        """Read one CRLF-terminated line and record it in :attr:`lines`.

        Returns:
            The line without CRLF, or ``b""`` if the client closed first.

        Raises:
            TimeoutError: nothing arrived for 5 seconds.
        """
        block = self.read_until(b"\r\n")
        if not block:
            return b""
        line = block[:-2]
        self.lines.append(line)
        return line

    def hold(self) -> None:
        """Stay silent until the client hangs up, the server stops, or 10 s
        pass, discarding whatever the client sends meanwhile."""
        self._sock.settimeout(_POLL)
        waited = 0.0
        try:
            while waited < _HOLD_LIMIT and not self._stopping.is_set():
                try:
                    if not self._sock.recv(65536):
                        return
                except TimeoutError:
                    waited += _POLL
        finally:
            self._sock.settimeout(_IO_TIMEOUT)


class RawServer:
    """A TCP server on loopback that runs ``script`` for every connection.

    Args:
        script: called with each :class:`RawConnection` in its own thread;
            the connection is closed when it returns.
        host: the loopback address to listen on.

    Attributes:
        connections: every connection accepted so far, in order.
        errors: exceptions the script raised (other than the client going
            away); ``__exit__`` re-raises the first one.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(self, script: Script, *, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        self.host = host
        self.port = 0
        self.connections: list[RawConnection] = []
        self.errors: list[BaseException] = []
        self._script = script
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> RawServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        # A failing script explains a failing test; do not mask the test's
        # own exception with it.
        if exc_type is None and self.errors:
            raise self.errors[0]

    def start(self) -> None:
        """Bind a free port and start accepting in a background thread.

        Raises:
            RuntimeError: the server is already running.
            OSError: the port could not be bound.
        """
        if self._listener is not None:
            raise RuntimeError("the raw server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        listener.listen()
        listener.settimeout(_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._accept_loop, listener)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            connection = RawConnection(sock, self._stopping)
            with self._lock:
                self.connections.append(connection)
            self._spawn(self._serve, sock, connection)

    def _serve(self, sock: socket.socket, connection: RawConnection) -> None:
        try:
            self._script(connection)
        except OSError:
            pass  # the client hung up or timed out: what these tests provoke
        except BaseException as error:
            self.errors.append(error)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def stop(self) -> None:
        """Stop accepting, end every script, and join every thread.

        Raises:
            TimeoutError: a thread did not finish within 5 seconds.
        """
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        listener.close()
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
        for thread in threads:
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError("a raw server thread did not stop")


def _verb(line: bytes) -> str:
    # "MAIL FROM:<a@b>" -> "MAIL"; the colon form has no space before it.
    head = line.split(b" ", 1)[0].split(b":", 1)[0]
    return head.decode("ascii", "replace").upper()


def smtp_script(
    at: str, action: Action, *, ehlo: tuple[bytes, ...] = (b"raw.test",)
) -> Script:
    """A minimal SMTP server that misbehaves at a chosen point.

    It greets, answers EHLO with ``ehlo`` (one line per item, no STARTTLS,
    no AUTH, no PIPELINING unless listed), 354 to DATA and 250 to everything
    else, until it reads the command ``at`` (a verb such as ``"MAIL"``) or,
    for ``at="CONTENT"``, the message content after DATA.  There it either
    closes the connection without a reply or stays silent.

    Args:
        at: the verb, or ``"CONTENT"``, at which to misbehave.
        action: ``"close"`` or ``"silence"``.
        ehlo: the EHLO reply's lines after the 250 code.

    Returns:
        The script for :class:`RawServer`.
    """

    def misbehave(conn: RawConnection) -> None:
        if action == "silence":
            conn.hold()

    def script(conn: RawConnection) -> None:
        conn.send(b"220 raw.test ESMTP\r\n")
        while True:
            line = conn.read_line()
            if not line:
                return
            verb = _verb(line)
            if verb == at:
                misbehave(conn)
                return
            if verb == "EHLO":
                *head, last = ehlo
                conn.send(b"".join(b"250-" + item + b"\r\n" for item in head))
                conn.send(b"250 " + last + b"\r\n")
            elif verb == "DATA":
                conn.send(b"354 go ahead\r\n")
                content = conn.read_until(b"\r\n.\r\n")
                conn.contents.append(content)
                if at == "CONTENT":
                    misbehave(conn)
                    return
                conn.send(b"250 2.0.0 queued\r\n")
            elif verb == "QUIT":
                conn.send(b"221 bye\r\n")
                return
            else:
                conn.send(b"250 OK\r\n")

    return script
