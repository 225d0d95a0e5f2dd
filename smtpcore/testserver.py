"""A local SMTP server for tests, the conformance suite and ``demo``.

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
import re
import socket
import ssl
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from smtpcore._aiosmtpd import (
    Handler,
    ReceivedCommand,
    ReceivedMessage,
    Recorder,
    RecordingLMTP,
    RecordingSMTP,
    TlsMode,
)
from smtpcore._aiosmtpd_ext import SASL_MECHANISMS

__all__ = [
    "SASL_MECHANISMS",
    "LocalSmtpServer",
    "ReceivedCommand",
    "ReceivedMessage",
    "TlsMode",
]

# Bounds on every wait, so a broken test fails instead of hanging the suite.
START_TIMEOUT = 5.0  # server thread up and its start() probe answered
STOP_TIMEOUT = 5.0  # connections dropped and the server thread joined
PROBE_TIMEOUT = 1.0  # aiosmtpd's own value for its start() probe
# Picking a free port, closing it and binding it again races with other
# processes; a handful of fresh picks makes a collision practically impossible.
PORT_ATTEMPTS = 3
# RFC 3461 4: xtext = *( xchar / hexchar ); xchar is "!".."~" but "+", "=".
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
# RFC 3461 4.2: ORCPT=addr-type ";" xtext; addr-type is an RFC 5322 atom.
_ORCPT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+;(.+)")
_NOTIFY_ANY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """The optional ESMTP behaviour of a test server, and the checks of the
    parameters it accepts: all off but 8BITMIME, which aiosmtpd offers by
    default.  The fields are the :class:`LocalSmtpServer` options of the
    same names.
    """

    chunking: bool = False
    dsn: bool = False
    smtputf8: bool = False
    eightbitmime: bool = True
    requiretls: bool = False
    enhancedstatuscodes: bool = False
    lmtp: bool = False
    lmtp_refuse_after_data: frozenset[str] = frozenset()

    def ehlo_keywords(self, *, tls: bool) -> list[str]:
        """The keywords to add to aiosmtpd's EHLO reply on a session that
        is (``tls``) or is not on TLS."""
        keywords: list[str] = []
        if self.chunking:
            keywords += ["CHUNKING", "BINARYMIME"]
        if self.dsn:
            keywords.append("DSN")
        if self.enhancedstatuscodes:
            keywords.append("ENHANCEDSTATUSCODES")
        # RFC 8689 only means something on a TLS session; like Exim, the
        # keyword is offered once TLS is up, never in clear.
        if self.requiretls and tls:
            keywords.append("REQUIRETLS")
        return keywords

    def extension_params(self, verb: str) -> frozenset[str]:
        """The parameters of ``verb`` (MAIL or RCPT) that aiosmtpd would
        refuse with 555 and these features accept."""
        if verb == "MAIL":
            names = {"RET", "ENVID"} if self.dsn else set()
            if self.requiretls:
                names.add("REQUIRETLS")
            return frozenset(names)
        return frozenset({"NOTIFY", "ORCPT"} if self.dsn else ())

    def mail_problem(self, options: Sequence[str], *, tls: bool) -> str | None:
        """Check MAIL FROM parameters (BODY, RET, ENVID, REQUIRETLS).

        Args:
            options: the parameters, ``KEYWORD[=value]``.
            tls: the session is on TLS.

        Returns:
            The reply refusing them, or None to accept them.
        """
        for option in options:
            key, eq, value = option.partition("=")
            key = key.upper()
            if key == "BODY" and value.upper() == "8BITMIME" and not self.eightbitmime:
                return "555 5.5.4 BODY=8BITMIME, but 8BITMIME is not offered"
            if key == "RET" and value.upper() not in ("FULL", "HDRS"):
                return "501 5.5.4 RET must be FULL or HDRS (RFC 3461 4.3)"
            if key == "ENVID" and not (
                0 < len(value) <= 100 and _XTEXT.fullmatch(value)
            ):
                return "501 5.5.4 ENVID must be 1 to 100 octets of xtext"
            if key == "REQUIRETLS" and eq:
                return "501 5.5.4 REQUIRETLS takes no value"
            if key == "REQUIRETLS" and not tls:
                return "530 5.7.10 REQUIRETLS needs a TLS session"
        return None

    @staticmethod
    def rcpt_problem(options: Sequence[str]) -> str | None:
        """Check RCPT TO parameters (NOTIFY, ORCPT).

        Args:
            options: the parameters, ``KEYWORD[=value]``.

        Returns:
            The reply refusing them, or None to accept them.
        """
        for option in options:
            key, _, value = option.partition("=")
            key = key.upper()
            if key == "NOTIFY":
                # RFC 3461 4.1: NEVER alone, or a list of the other three.
                notify = value.upper().split(",")
                if notify != ["NEVER"] and not (
                    set(notify) <= _NOTIFY_ANY and len(set(notify)) == len(notify)
                ):
                    return "501 5.5.4 NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY"
            if key == "ORCPT":
                match = _ORCPT.fullmatch(value)
                if match is None or not _XTEXT.fullmatch(match[1]):
                    return "501 5.5.4 ORCPT must be addr-type;xtext (RFC 3461 4.2)"
        return None

    def lmtp_replies(self, recipients: Sequence[str]) -> list[str]:
        """RFC 2033 4.2: one reply per accepted recipient, in RCPT order."""
        return [
            f"552 5.2.2 <{rcpt}>: Mailbox full"
            if rcpt in self.lmtp_refuse_after_data
            else f"250 2.1.5 <{rcpt}>: Delivered"
            for rcpt in recipients
        ]


class LocalSmtpServer:
    """An aiosmtpd server on loopback that records what its clients did.

    Use it as a context manager, or call ``start()`` and ``stop()``.  The port
    is chosen on the first ``start()`` and kept across restarts, so a test can
    stop the server and bring it back where a client expects it.

    Args:
        tls: ``"starttls"`` (plain connect, STARTTLS offered), ``"implicit"``
            (TLS from the first byte), or ``"none"``.
        users: login -> password accepted by the password mechanisms; None
            (and no ``tokens``) offers no AUTH at all.  With
            ``tls="starttls"`` AUTH is only offered and accepted after
            STARTTLS.
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
        mechanisms: the SASL mechanisms to offer and accept, any of
            :data:`SASL_MECHANISMS`; default PLAIN and LOGIN.  SCRAM is a
            real RFC 5802 server (salted keys, the server's proof in a 334
            before 235), NTLM verifies the NTLMv2 proof, the OAuth ones
            accept ``tokens[user]`` and answer a wrong token with the JSON
            error challenge, then 535.
        tokens: login -> OAuth 2 token for XOAUTH2 and OAUTHBEARER.
        scram_bad_signature: SCRAM sends a wrong server signature (a server
            that does not know the password), to test clients.
        chunking: offer CHUNKING and BINARYMIME (RFC 3030) and take BDAT.
        dsn: offer DSN (RFC 3461) and take NOTIFY and ORCPT on RCPT, RET
            and ENVID on MAIL, checking their syntax; parameter values are
            then recorded as sent.
        smtputf8: offer SMTPUTF8 (RFC 6531): UTF-8 addresses.
        eightbitmime: offer 8BITMIME (RFC 6152); off, BODY=8BITMIME gets 555.
        requiretls: offer REQUIRETLS (RFC 8689) over TLS and take it on MAIL.
        enhancedstatuscodes: offer ENHANCEDSTATUSCODES (RFC 2034) and give
            every reply but the greeting and EHLO's an RFC 3463 status.
        lmtp: speak LMTP (RFC 2033): LHLO, one reply per recipient after
            the content.
        lmtp_refuse_after_data: with ``lmtp``, recipients accepted at RCPT
            whose reply after the content is ``552 5.2.2`` (mailbox full).

    Raises:
        ValueError: ``host`` is not a loopback address, or a mechanism is
            not one of :data:`SASL_MECHANISMS`.
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
        mechanisms: Sequence[str] | None = None,
        tokens: Mapping[str, str] | None = None,
        scram_bad_signature: bool = False,
        chunking: bool = False,
        dsn: bool = False,
        smtputf8: bool = False,
        eightbitmime: bool = True,
        requiretls: bool = False,
        enhancedstatuscodes: bool = False,
        lmtp: bool = False,
        lmtp_refuse_after_data: Collection[str] = (),
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        offered = [name.upper() for name in mechanisms or ("PLAIN", "LOGIN")]
        unknown = sorted(set(offered) - set(SASL_MECHANISMS))
        if unknown:
            raise ValueError(f"no server side for the mechanism(s) {unknown}")
        self._mechanisms = tuple(offered)
        self.tls: TlsMode = tls
        self.host = host
        self.port = 0
        self.ca = ca if ca is not None else trustme.CA()
        self._cert_names = tuple(cert_names)
        self._leaf = leaf
        self._require_starttls = require_starttls
        self._data_size_limit = data_size_limit
        self._recorder = Recorder()
        features = ServerFeatures(
            chunking=chunking,
            dsn=dsn,
            smtputf8=smtputf8,
            eightbitmime=eightbitmime,
            requiretls=requiretls,
            enhancedstatuscodes=enhancedstatuscodes,
            lmtp=lmtp,
            lmtp_refuse_after_data=frozenset(lmtp_refuse_after_data),
        )
        self._handler = Handler(
            self._recorder,
            users,
            pipelining,
            refuse_recipients,
            tokens=tokens,
            features=features,
            scram_bad_signature=scram_bad_signature,
        )
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
        handler = self._handler
        no_auth = handler.users is None and handler.tokens is None
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
            # No users or tokens: no mechanism at all, so AUTH gets 504 5.5.4.
            # Everything else is excluded, so that exactly these are offered.
            auth_exclude_mechanism=[
                name
                for name in SASL_MECHANISMS
                if no_auth or name not in self._mechanisms
            ],
            decode_data=False,
            data_size_limit=self._data_size_limit,
            enable_SMTPUTF8=handler.features.smtputf8,
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


class RecordingController(Controller):
    """aiosmtpd's threaded controller with our protocol and a known probe."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recording_handler = handler
        self.loop.set_exception_handler(quiet_client_failures)

    def factory(self) -> RecordingSMTP:
        handler = self._recording_handler
        protocol = RecordingLMTP if handler.features.lmtp else RecordingSMTP
        return protocol(handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd's start() connects once to make sure factory() works.  Bind
        # first so the probe's address is known before the server can accept
        # it: that makes excluding it from the counts exact, not timing-based.
        host = self.hostname
        with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.bind((host, 0))
            address = sock.getsockname()
            self._recording_handler.recorder.probe_address = (address[0], address[1])
            sock.connect((host, self.port))
            if self.ssl_context is None:
                sock.recv(1024)
                return
            # The probe only checks that the server answers; verifying the
            # certificate is what the tests themselves do.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with context.wrap_socket(sock) as tls_sock:
                tls_sock.recv(1024)

    def stop(self, no_assert: bool = False) -> None:
        # aiosmtpd joins its thread without a timeout.
        self.loop.call_soon_threadsafe(self.cancel_tasks)
        thread = self._thread
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError("the SMTP server thread did not stop")


def quiet_client_failures(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    # Clients under test are meant to refuse bad certificates and to hang up
    # abruptly; asyncio would log each such handshake failure as an error.
    if isinstance(context.get("exception"), OSError):
        return
    loop.default_exception_handler(context)


def address_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str) -> int:
    with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
