"""The blocking transport: executes the I/O a dialogue asks for, over one
socket, with :mod:`ssl` for implicit TLS and STARTTLS.

No SMTP decision is made here (they live in :mod:`smtpcore.protocol.dialogue`);
this module moves bytes, bounds every wait, and turns socket and ssl
failures into :class:`~smtpcore.errors.EmailSessionError` through
:func:`smtpcore.tls.classify`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass
from typing import TypeVar

from smtpcore._net import connect_tcp
from smtpcore.errors import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCoreError,
    SmtpProtocolError,
)
from smtpcore.protocol.dialogue import (
    Conversation,
    Dialogue,
    Read,
    SessionPolicy,
    Write,
)
from smtpcore.tls import Phase, classify, speaks_tls

__all__ = [
    "Endpoint",
    "Transport",
    "address_literal",
    "implicit_tls_required",
    "peer_leaf",
    "request_failure",
]

T = TypeVar("T")

# One recv() per Read request: 64 KiB holds any normal reply group whole and
# bounds what a single call can hand the parser (which bounds lines itself).
_READ_SIZE = 65536
# Writes go out in pieces of this size, each bounded by the timeout: since
# Python 3.5 sendall()'s timeout bounds the whole transfer, and ssl bounds a
# whole write() the same way, so one call for a large message would time out
# on a slow link while the upload was still progressing.  RFC 5321
# 4.5.3.2.5 times each data block ("3 minutes"), not the message.
_WRITE_SIZE = 65536


# SO_RCVTIMEO and SO_SNDTIMEO take a struct timeval; its layout (two native
# longs) and the EAGAIN on expiry are what Linux documents in socket(7).
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")


def _set_kernel_timeout(
    sock: socket.socket, option: int, seconds: float | None
) -> None:
    """Bound every blocking ``recv`` or ``send`` on ``sock`` (None: no bound)."""
    if seconds is None:
        whole, micro = 0, 0  # a zero timeval means "wait for ever"
    else:
        whole = int(seconds)
        # At least a microsecond: zero would mean no bound at all.
        micro = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("@ll", whole, micro))


def _kernel_timeout() -> TimeoutError:
    # A blocking call that SO_RCVTIMEO or SO_SNDTIMEO cut short fails with
    # EAGAIN, which Python reports as BlockingIOError.
    return TimeoutError("timed out")


def address_literal(sockname: tuple[object, ...]) -> str:
    """The EHLO argument for our end of the socket, as an address literal.

    RFC 5321 4.1.4 allows an address literal when the client has no
    meaningful name; using it avoids ``getfqdn()``, a DNS lookup that smtplib
    makes on every connection.
    """
    host = str(sockname[0])
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a session connects and how long any single wait may take."""

    host: str
    port: int
    use_ssl: bool
    timeout: float


class Transport:
    """One connection executing a dialogue's requests.

    It closes itself on any socket, TLS or protocol failure: after one of
    those the byte stream cannot be trusted.
    """

    def __init__(
        self, sock: socket.socket, endpoint: Endpoint, context: ssl.SSLContext
    ):
        self.sock = sock
        self.endpoint = endpoint
        self.context = context
        self.closed = False
        # The wait timeout last set: setting one costs a system call every
        # time, even for the same value.
        self._timeout: float | None = None
        self._deadline = 0.0  # when the reply being read is overdue
        self._poller: select.poll | None = None
        # Python bounds a socket with a timeout by calling poll() before
        # every send and recv.  A plain socket can instead block in the
        # kernel with SO_RCVTIMEO / SO_SNDTIMEO as the bound: half the
        # system calls per round trip.  TLS keeps Python's timeouts (the ssl
        # module needs them to tell a timeout from a handshake that wants
        # more data).
        self._kernel_timeouts = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        if self._kernel_timeouts:
            sock.settimeout(None)
            _set_kernel_timeout(sock, socket.SO_SNDTIMEO, endpoint.timeout)

    @classmethod
    def connect(cls, endpoint: Endpoint, context: ssl.SSLContext) -> Transport:
        """Open the TCP connection, and TLS for implicit TLS.

        Raises:
            EmailSessionError: classified by :func:`smtpcore.tls.classify`.
        """
        phase: Phase = "connect"
        sock: socket.socket | None = None
        try:
            sock = connect_tcp(endpoint.host, endpoint.port, endpoint.timeout)
            # A pipelined group goes out in one write; Nagle's algorithm
            # would hold the next small write back for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.use_ssl:
                phase = "handshake"
                sock = context.wrap_socket(sock, server_hostname=endpoint.host)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise classify(
                exc,
                host=endpoint.host,
                port=endpoint.port,
                phase=phase,
                use_ssl=endpoint.use_ssl,
                timeout=endpoint.timeout,
            ) from exc
        return cls(sock, endpoint, context)

    def run(self, conversation: Conversation[T]) -> T:
        """Execute the conversation's I/O requests until it returns.

        Raises:
            EmailSessionError: an I/O failure (the transport closes), or what
                the conversation raises.
            SmtpProtocolError: the server broke the protocol (closes).
            SmtpCommandError: a refusal the conversation reports.
        """
        value: bytes | None = None
        while True:
            try:
                request = conversation.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except SmtpProtocolError:
                self.close()
                raise
            try:
                value = self._execute(request)
            except OSError as exc:
                self.close()
                raise request_failure(exc, request, self.endpoint) from exc
            except EmailSessionError:
                self.close()
                raise

    def _execute(self, request: object) -> bytes | None:
        if type(request) is Read:
            return self._read(request)
        sock = self.sock
        if not self._kernel_timeouts:
            self._set_timeout(self.endpoint.timeout)
        if type(request) is Write:
            data = request.data
            try:
                if len(data) <= _WRITE_SIZE:
                    sock.sendall(data)
                    return None
                view = memoryview(data)
                for start in range(0, len(view), _WRITE_SIZE):
                    sock.sendall(view[start : start + _WRITE_SIZE])
            except BlockingIOError:
                raise _kernel_timeout() from None
            return None
        self._upgrade()
        return None

    def _upgrade(self) -> None:
        """STARTTLS: the handshake, then TLS with Python's own timeouts."""
        sock = self.sock
        if self._kernel_timeouts:
            _set_kernel_timeout(sock, socket.SO_SNDTIMEO, None)
            _set_kernel_timeout(sock, socket.SO_RCVTIMEO, None)
            self._kernel_timeouts = False
            self._timeout = None
            self._set_timeout(self.endpoint.timeout)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.endpoint.host)

    def _read(self, request: Read) -> bytes:
        now = time.monotonic()
        if request.continues:
            timeout = self._deadline - now
            if timeout <= 0:
                raise TimeoutError
        else:
            timeout = request.timeout
            self._deadline = now + timeout
        if request.tls_probe_after is None or self.endpoint.use_ssl:
            return self._recv(timeout, self._deadline)
        # Leave the probe at least half the timeout, however short it is.
        window = min(request.tls_probe_after, timeout / 2)
        try:
            return self._recv(window, now + window)
        except TimeoutError:
            pass
        started = time.monotonic()
        remaining = timeout - window
        endpoint = self.endpoint
        if speaks_tls(endpoint.host, endpoint.port, remaining):
            raise implicit_tls_required(endpoint, window)
        remaining -= time.monotonic() - started
        if remaining <= 0:
            raise TimeoutError
        return self._recv(remaining, time.monotonic() + remaining)

    def _recv(self, timeout: float, deadline: float) -> bytes:
        """One ``recv`` within ``timeout`` seconds, which end at ``deadline``."""
        if not self._kernel_timeouts:
            self._set_timeout(timeout)
            return self.sock.recv(_READ_SIZE)
        # The kernel bound stays at the session timeout, so that the final
        # reply's longer wait (RFC 5321 4.5.3.2.6) costs no setsockopt() per
        # message: a longer wait is served in several bounded pieces.
        while True:
            wait = min(timeout, self.endpoint.timeout)
            if wait != self._timeout:
                _set_kernel_timeout(self.sock, socket.SO_RCVTIMEO, wait)
                self._timeout = wait
            try:
                return self.sock.recv(_READ_SIZE)
            except BlockingIOError:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise _kernel_timeout() from None

    def _set_timeout(self, seconds: float) -> None:
        if seconds != self._timeout:
            self.sock.settimeout(seconds)
            self._timeout = seconds

    def close(self) -> None:
        """Close the socket.  Never raises."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def hung_up(self) -> bool:
        """Zero-round-trip liveness check of an idle session.

        An idle server has nothing to say; if the socket is readable it has
        closed the connection or sent a 421 before closing (RFC 5321 3.8),
        and either way the session is gone.
        """
        if self.closed:
            return True
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            poller = self._poller
            if poller is not None:
                return bool(poller.poll(0))
            if hasattr(select, "poll"):
                self._poller = select.poll()
                self._poller.register(sock, select.POLLIN)
                return bool(self._poller.poll(0))
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True

    def peer_certificate(self) -> bytes | None:
        """The server's leaf certificate (DER), if TLS is up."""
        if isinstance(self.sock, ssl.SSLSocket):
            return self.sock.getpeercert(binary_form=True)
        return None


def request_failure(
    exc: OSError, request: object, endpoint: Endpoint
) -> EmailSessionError:
    """Classify a socket or ssl failure while executing ``request``."""
    if isinstance(request, Read):
        phase: Phase = "io"
        waiting_for, timeout, in_doubt = (
            request.waiting_for,
            request.timeout,
            request.in_doubt,
        )
    else:
        phase = "io" if isinstance(request, Write) else "handshake"
        waiting_for, timeout, in_doubt = "", endpoint.timeout, False
    return classify(
        exc,
        host=endpoint.host,
        port=endpoint.port,
        phase=phase,
        use_ssl=endpoint.use_ssl,
        waiting_for=waiting_for,
        timeout=timeout,
        in_doubt=in_doubt,
    )


def implicit_tls_required(endpoint: Endpoint, window: float) -> EmailSessionError:
    """The error for a plain connection to a port whose silence turned out
    to be a TLS server waiting for our ClientHello."""
    return EmailSessionError(
        EmailSessionReason.SSL_WRAPPED_CONNECTION_REQUIRED,
        f"no greeting came within {window:g}s, and a TLS handshake on a "
        "second connection succeeded: this port expects TLS from the first "
        "byte (implicit TLS)",
        host=endpoint.host,
        port=endpoint.port,
    )


def peer_leaf(
    endpoint: Endpoint, context: ssl.SSLContext, local_hostname: str | None
) -> bytes | None:
    """Connect the way a session would, as far as the TLS handshake, and
    return the server's leaf certificate (DER).

    Used for diagnosis and revocation checks only: no credentials and no
    mail are ever sent on this connection, and it quits at once.

    Args:
        endpoint: the server.
        context: verifying, or :func:`smtpcore.tls.unverified_context`.
        local_hostname: the EHLO argument, default our address literal.

    Returns:
        The DER certificate, or None if the server offers no STARTTLS.

    Raises:
        EmailSessionError, SmtpCommandError, SmtpProtocolError: as for a
            session.
    """
    transport = Transport.connect(endpoint, context)
    try:
        if not endpoint.use_ssl:
            dialogue = Dialogue(
                SessionPolicy(
                    host=endpoint.host,
                    port=endpoint.port,
                    local_hostname=local_hostname
                    or address_literal(transport.sock.getsockname()),
                    starttls="required",
                    timeout=endpoint.timeout,
                )
            )
            try:
                transport.run(dialogue.open())
            except EmailSessionError as exc:
                if exc.reason is EmailSessionReason.STARTTLS_NOT_AVAILABLE:
                    return None
                raise
            with contextlib.suppress(SmtpCoreError):
                transport.run(dialogue.quit())
        return transport.peer_certificate()
    finally:
        transport.close()
