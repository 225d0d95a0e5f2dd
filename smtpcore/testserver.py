"""A local SMTP server for tests, the conformance suite, benchmarks and ``demo``.

It wraps aiosmtpd (a real, independent SMTP server) with trustme certificates
and records what clients did on the wire: every command line, every accepted
message, every connection.  It listens on loopback only.

aiosmtpd and trustme come with the ``test`` extra, not with smtpcore itself:
nothing else in the package may import this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ssl
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType

import trustme

from smtpcore._aiosmtpd import (
    PORT_ATTEMPTS,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Handler,
    ReceivedCommand,
    ReceivedMessage,
    Recorder,
    RecordingController,
    TlsMode,
    free_port,
)

__all__ = ["LocalSmtpServer", "ReceivedCommand", "ReceivedMessage", "TlsMode"]


class LocalSmtpServer:
    """An aiosmtpd server on loopback that records what its clients did.

    Use it as a context manager, or call ``start()`` and ``stop()``.  The port
    is chosen on the first ``start()`` and kept across restarts, so a test can
    stop the server and bring it back where a client expects it.

    Args:
        tls: ``"starttls"`` (plain connect, STARTTLS offered), ``"implicit"``
            (TLS from the first byte), or ``"none"``.
        users: login -> password accepted by AUTH PLAIN and LOGIN; None offers
            no AUTH at all.  With ``tls="starttls"`` AUTH is only offered and
            accepted after STARTTLS.
        require_starttls: with ``tls="starttls"``, refuse everything but EHLO,
            NOOP, STARTTLS and QUIT with 530 until TLS is up (RFC 3207 4).
        pipelining: advertise PIPELINING (RFC 2920).
        refuse_recipients: RCPT TO these addresses gets
            ``550 5.1.1 <addr>: Recipient address rejected``.
        ca: the CA that issues the server certificate; share one between
            servers to trust them all with one context.  Default: a new CA.
        cert_names: the identities (host names, IP addresses) in the
            certificate.  The first is also the name in the greeting.
        host: the loopback address to listen on.
        data_size_limit: the SIZE advertised and enforced, in octets.
        leaf: a server certificate chain and key to present instead of one
            issued by ``ca`` for ``cert_names``: an expired one, one from an
            untrusted or oddly named root, one with a CRL Distribution
            Point.  ``client_context()`` still trusts ``ca`` only.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        *,
        tls: TlsMode = "starttls",
        users: Mapping[str, str] | None = None,
        require_starttls: bool = True,
        pipelining: bool = True,
        refuse_recipients: Collection[str] = (),
        ca: trustme.CA | None = None,
        cert_names: Sequence[str] = ("localhost", "127.0.0.1"),
        host: str = "127.0.0.1",
        data_size_limit: int = 33554432,
        leaf: trustme.LeafCert | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        self.tls: TlsMode = tls
        self.host = host
        self.port = 0
        self.ca = ca if ca is not None else trustme.CA()
        self._cert_names = tuple(cert_names)
        self._leaf = leaf
        self._require_starttls = require_starttls
        self._data_size_limit = data_size_limit
        self._recorder = Recorder()
        self._handler = Handler(self._recorder, users, pipelining, refuse_recipients)
        self._controller: RecordingController | None = None

    def __enter__(self) -> LocalSmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a background thread and clear earlier records.

        Raises:
            RuntimeError: the server is already running.
            OSError: the port could not be bound.
            TimeoutError: the server did not come up within 5 seconds.
        """
        if self._controller is not None:
            raise RuntimeError("the server is already running")
        self.reset()
        for attempt in range(PORT_ATTEMPTS):
            port = self.port or free_port(self.host)
            controller = self._make_controller(port)
            try:
                controller.start()
            except OSError as error:
                controller.loop.close()
                retry = not self.port and error.errno == errno.EADDRINUSE
                if not retry or attempt == PORT_ATTEMPTS - 1:
                    raise
            else:
                self.port, self._controller = port, controller
                return

    def _make_controller(self, port: int) -> RecordingController:
        no_auth = self._handler.users is None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf = self._leaf or self.ca.issue_cert(*self._cert_names)
        leaf.configure_cert(context)
        return RecordingController(
            self._handler,
            hostname=self.host,
            port=port,
            ready_timeout=START_TIMEOUT,
            ssl_context=context if self.tls == "implicit" else None,
            server_hostname=self._cert_names[0] if self._cert_names else "localhost",
            # SMTP parameters
            tls_context=context if self.tls == "starttls" else None,
            require_starttls=self._require_starttls,
            # aiosmtpd counts only STARTTLS as TLS; under implicit TLS the
            # connection is encrypted anyway, and "none" exists to test AUTH
            # in clear.
            auth_require_tls=self.tls == "starttls",
            authenticator=self._handler.authenticate,
            # users=None: no mechanism at all, so AUTH gets 504 5.5.4.
            auth_exclude_mechanism=("LOGIN", "PLAIN") if no_auth else (),
            decode_data=False,
            data_size_limit=self._data_size_limit,
        )

    def stop(self) -> None:
        """Drop open connections and stop the server; records are kept.

        Does nothing if the server is not running.

        Raises:
            TimeoutError: the server did not stop within 5 seconds.
        """
        controller = self._controller
        if controller is None:
            return
        try:
            self.drop_connections()
        finally:
            self._controller = None
            controller.stop()

    def client_context(self) -> ssl.SSLContext:
        """A client context with default verification that trusts ``ca``.

        Returns:
            A new ``ssl.create_default_context()`` that trusts this server's CA.
        """
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The messages accepted since start() or reset(), oldest first."""
        return self._recorder.messages()

    @property
    def sessions(self) -> list[list[ReceivedCommand]]:
        """The command lines of each client connection, one list per connection."""
        return self._recorder.sessions()

    @property
    def connections(self) -> int:
        """Client TCP connections accepted since start() or reset().

        aiosmtpd's own start() probe is not counted; a client that broke off
        the implicit-TLS handshake is (with an empty session).
        """
        return len(self._recorder.sessions())

    def drop_connections(self) -> None:
        """Close every open client connection from the server side.

        The close is abrupt, like a server dropping an idle session: no 421
        and no TLS close_notify.  Returns once the sockets are closed.

        Raises:
            RuntimeError: the server is not running.
            TimeoutError: the connections did not close within 5 seconds.
        """
        controller = self._controller
        if controller is None:
            raise RuntimeError("the server is not running")
        future = asyncio.run_coroutine_threadsafe(self._drop_all(), controller.loop)
        try:
            # _drop_all() bounds itself; the extra second covers a dead loop.
            future.result(STOP_TIMEOUT + 1)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError) as error:
            # Before Python 3.11 these are not the builtin TimeoutError.
            future.cancel()
            raise TimeoutError("open connections did not close in time") from error

    async def _drop_all(self) -> None:
        protocols = list(self._handler.live)
        for protocol in protocols:
            protocol.abort()
        if protocols:
            await asyncio.wait_for(
                asyncio.gather(*(p.connection_closed for p in protocols)), STOP_TIMEOUT
            )

    def wait_for_messages(
        self, count: int, timeout: float = 5.0
    ) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages have been accepted.

        Args:
            count: how many messages to wait for.
            timeout: seconds to wait at most.

        Returns:
            All messages accepted so far (possibly more than ``count``).

        Raises:
            AssertionError: fewer than ``count`` arrived within ``timeout``.
        """
        messages = self._recorder.wait_for_messages(count, timeout)
        if len(messages) < count:
            raise AssertionError(
                f"expected {count} message(s) within {timeout} s, got {len(messages)}"
            )
        return messages

    def reset(self) -> None:
        """Forget recorded messages, sessions and connections.

        A connection open during reset() is not counted again, and its later
        commands are not recorded.
        """
        self._recorder.clear()
