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
import ssl
import threading
import time
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
# Bounds what one connection may buffer, so a runaway client cannot eat
# memory; large enough for the multi-megabyte messages of the write tests.
_MAX_BUFFER = 64 << 20
_RECV_SIZE = 1 << 20

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
        self._buffer = bytearray()
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

    def dribble(self, data: bytes) -> None:
        """Send ``data`` one octet per write, with Nagle's algorithm off, so
        the client receives it in many small pieces.

        Args:
            data: the bytes to send.

        Raises:
            OSError: the client is gone.
        """
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(data)):
            self._sock.sendall(data[index : index + 1])

    def _read_block(self, marker: bytes, pause: Callable[[], None]) -> bytes:
        """Read up to and including ``marker``, calling ``pause`` before
        each recv(); ``b""`` if the client closed first."""
        searched = 0
        while (found := self._buffer.find(marker, searched)) < 0:
            # Only the tail can hold a marker split across two reads.
            searched = max(0, len(self._buffer) - len(marker) + 1)
            if len(self._buffer) > _MAX_BUFFER:
                raise ValueError("the client sent more than the raw server buffers")
            pause()
            chunk = self._sock.recv(_RECV_SIZE)
            if not chunk:
                return b""
            self._buffer += chunk
        end = found + len(marker)
        block = bytes(self._buffer[:end])
        del self._buffer[:end]
        return block

    def read_until(self, marker: bytes) -> bytes:
        """Read up to and including ``marker``.

        Args:
            marker: the bytes that end the block, e.g. ``b"\\r\\n.\\r\\n"``.

        Returns:
            The block with the marker, or ``b""`` if the client closed first.

        Raises:
            TimeoutError: nothing arrived for 5 seconds.
        """
        return self._read_block(marker, lambda: None)

    def read_slowly(self, marker: bytes, *, seconds: float, pause: float) -> bytes:
        """Like :meth:`read_until`, but over a slow link: for the first
        ``seconds``, wait ``pause`` seconds before each read.

        Args:
            marker: the bytes that end the block.
            seconds: how long the link stays slow (at most 10 s).
            pause: the wait before each read while it is slow.

        Returns:
            The block with the marker, or ``b""`` if the client closed first.

        Raises:
            TimeoutError: nothing arrived for 5 seconds.
        """
        slow_until = time.monotonic() + min(seconds, _HOLD_LIMIT)

        def wait() -> None:
            if time.monotonic() < slow_until:
                self._stopping.wait(pause)

        return self._read_block(marker, wait)

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

    def stall(self) -> None:
        """Neither read nor write until the client hangs up, the server
        stops, or 10 s pass: the client's writes back up in the socket
        buffers (a server that stopped reading)."""
        waited = 0.0
        while waited < _HOLD_LIMIT and not self._stopping.wait(_POLL):
            waited += _POLL

    def hold(self) -> None:
        """Stay silent until the client hangs up, the server stops, or 10 s
        pass, discarding whatever the client sends meanwhile."""
        self._sock.settimeout(_POLL)
        waited = 0.0
        try:
            while waited < _HOLD_LIMIT and not self._stopping.is_set():
                try:
                    if not self._sock.recv(_RECV_SIZE):
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
        ssl_context: a server-side context to run TLS from the first byte
            (implicit TLS), e.g. with a deliberately bad certificate.
        receive_buffer: SO_RCVBUF for accepted connections, in octets; a
            small one makes a stalled server push back on the client soon.

    Attributes:
        accepted: how many TCP connections were accepted.
        connections: the connections handed to the script (after the TLS
            handshake, if any), in the order they got there.
        errors: exceptions the script raised (other than the client going
            away or the server stopping); ``__exit__`` re-raises the first.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        script: Script,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        self.host = host
        self.port = 0
        self.accepted = 0
        self.connections: list[RawConnection] = []
        self.errors: list[BaseException] = []
        self._script = script
        self._ssl_context = ssl_context
        self._receive_buffer = receive_buffer
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        # The socket each running script uses, so stop() can cut it.
        self._live: dict[object, socket.socket] = {}
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
        if self._receive_buffer is not None:
            # Set before listen(): accepted sockets inherit it, and the TCP
            # window is negotiated from it during the handshake.
            listener.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer
            )
        listener.bind((self.host, 0))
        listener.listen()
        listener.settimeout(_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener,), daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self.accepted += 1
                self._threads.append(thread)
            thread.start()

    def _track(self, token: object, sock: socket.socket | None) -> None:
        with self._lock:
            if sock is None:
                self._live.pop(token, None)
            else:
                self._live[token] = sock

    def _serve(self, sock: socket.socket) -> None:
        token = object()
        self._track(token, sock)
        try:
            if self._ssl_context is not None:
                # The handshake runs here, not in the accept loop, so that
                # a client stalling in it cannot block other connections.
                sock.settimeout(_IO_TIMEOUT)
                sock = self._ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
                # Tracked before the handshake, so stop() can cut it short.
                self._track(token, sock)
                sock.do_handshake()
            connection = RawConnection(sock, self._stopping)
            with self._lock:
                self.connections.append(connection)
            self._script(connection)
        except OSError:
            pass  # the client hung up or timed out: what these tests provoke
        except Exception as error:
            with self._lock:
                self.errors.append(error)
        finally:
            self._track(token, None)
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
        # The acceptor first: once it is gone, no script thread can start.
        if self._acceptor is not None:
            self._acceptor.join(_STOP_TIMEOUT)
        with self._lock:
            threads = [self._acceptor, *self._threads]
            self._acceptor = None
            self._threads.clear()
            live = list(self._live.values())
        # A script blocked in a read returns at once when its socket is cut;
        # hold() and stall() notice the stop event within _POLL.
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            if thread is None:
                continue
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError("a raw server thread did not stop")


def _verb(line: bytes) -> str:
    # "MAIL FROM:<a@b>" -> "MAIL"; the colon form has no space before it.
    head = line.split(b" ", 1)[0].split(b":", 1)[0]
    return head.decode("ascii", "replace").upper()


def smtp_script(
    at: str,
    action: Action,
    *,
    ehlo: tuple[bytes, ...] = (b"raw.test",),
    dribble: bool = False,
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
        dribble: send every reply one octet at a time
            (:meth:`RawConnection.dribble`).

    Returns:
        The script for :class:`RawServer`.
    """

    def misbehave(conn: RawConnection) -> None:
        if action == "silence":
            conn.hold()

    def script(conn: RawConnection) -> None:
        send = conn.dribble if dribble else conn.send
        send(b"220 raw.test ESMTP\r\n")
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
                lines = [b"250-" + item + b"\r\n" for item in head]
                send(b"".join([*lines, b"250 " + last + b"\r\n"]))
            elif verb == "DATA":
                send(b"354 go ahead\r\n")
                content = conn.read_until(b"\r\n.\r\n")
                conn.contents.append(content)
                if at == "CONTENT":
                    misbehave(conn)
                    return
                send(b"250 2.0.0 queued\r\n")
            elif verb == "QUIT":
                send(b"221 bye\r\n")
                return
            else:
                send(b"250 OK\r\n")

    return script
