"""TLS defaults and the one place where socket and ssl failures become
:class:`~smtpcore.errors.EmailSessionError`.

Classification reads structured fields only (``verify_code``,
``SSLError.reason``, ``errno``, the exception class), never message text,
which changes between OpenSSL and Python versions.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Literal

from smtpcore.errors import EmailSessionError, EmailSessionReason

__all__ = ["Phase", "classify", "default_context", "shared_default_context"]

Phase = Literal["connect", "handshake", "io"]

# X509_V_ERR_* codes (OpenSSL's x509_vfy.h), as ssl reports them in
# SSLCertVerificationError.verify_code.
_NOT_YET_VALID = 9
_EXPIRED = 10
_UNTRUSTED = frozenset({18, 19, 20, 21})  # self-signed leaf/root, unknown issuer
_REVOKED = 23
_HOSTNAME_MISMATCH = 62
_IP_MISMATCH = 64

_UNREACHABLE = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
)


def default_context() -> ssl.SSLContext:
    """A verifying client context: system CAs, host name checks, TLS 1.2+.

    Returns:
        A new ``ssl.SSLContext`` from ``ssl.create_default_context()`` with
        ``minimum_version`` raised to TLS 1.2 (RFC 8996 deprecates 1.0/1.1).
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


_shared: ssl.SSLContext | None = None


def shared_default_context() -> ssl.SSLContext:
    """The :func:`default_context` that clients without their own share.

    Loading the system CA store costs tens of milliseconds per context (it
    dominated a new session on loopback); an ``SSLContext`` is meant to be
    shared by many connections, so it is built once, on first use.
    """
    global _shared
    if _shared is None:
        _shared = default_context()
    return _shared


def _certificate_reason(
    exc: ssl.SSLCertVerificationError,
) -> tuple[EmailSessionReason, str]:
    code = exc.verify_code
    message = exc.verify_message
    if code == _NOT_YET_VALID:
        return EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE, (
            "the server's certificate is not valid yet"
        )
    if code == _EXPIRED:
        return EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE, (
            "the server's certificate has expired"
        )
    if code in _UNTRUSTED:
        return EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE, (
            f"the server's certificate is not trusted ({message})"
        )
    if code == _REVOKED:
        return EmailSessionReason.INVALID_SSL_CERTIFICATE, (
            "the server's certificate has been revoked"
        )
    if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return EmailSessionReason.INVALID_SSL_CERTIFICATE, (
            f"the server's certificate does not match the host ({message})"
        )
    return EmailSessionReason.INVALID_SSL_CERTIFICATE, (
        f"certificate verification failed ({message}, code {code})"
    )


def classify(
    exc: OSError,
    *,
    host: str,
    port: int,
    phase: Phase,
    use_ssl: bool,
    waiting_for: str = "",
    timeout: float | None = None,
    in_doubt: bool = False,
) -> EmailSessionError:
    """Turn a socket or ssl failure into an :class:`EmailSessionError`.

    Args:
        exc: the low-level error (``ssl.SSLError`` is an ``OSError``).
        host, port: the server.
        phase: ``"connect"`` (TCP), ``"handshake"`` (TLS) or ``"io"``.
        use_ssl: whether implicit TLS was asked for.
        waiting_for: what was being read, for timeouts and lost connections.
        timeout: the timeout in force, for the message.
        in_doubt: the message's final reply was outstanding.

    Returns:
        The error to raise, ``from exc``.
    """
    reason = EmailSessionReason.CONNECTION_LOST
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason, detail = _certificate_reason(exc)
    elif isinstance(exc, socket.gaierror):
        reason = EmailSessionReason.INVALID_HOST
        detail = f"the host name {host!r} does not resolve"
    elif isinstance(exc, TimeoutError):
        reason = EmailSessionReason.CONNECTION_TIMEOUT
        what = {
            "connect": "connecting",
            "handshake": "during the TLS handshake",
            "io": f"waiting for {waiting_for}" if waiting_for else "sending",
        }[phase]
        after = f" after {timeout:g}s" if timeout is not None else ""
        detail = f"timed out{after} {what}"
    elif isinstance(exc, ConnectionRefusedError):
        reason = EmailSessionReason.INVALID_PORT
        detail = f"connection refused: nothing accepts connections on port {port}"
    elif phase == "connect" and exc.errno in _UNREACHABLE:
        reason = EmailSessionReason.INVALID_HOST
        detail = f"the host is unreachable ({exc.strerror})"
    elif getattr(exc, "reason", None) == "WRONG_VERSION_NUMBER":
        # The peer's first bytes are not a TLS record: plain SMTP's "220 ".
        reason = (
            EmailSessionReason.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED
            if use_ssl
            else EmailSessionReason.CONNECTION_LOST
        )
        detail = "the server does not speak TLS on this port"
    elif isinstance(exc, ssl.SSLError) and not isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
    ):
        detail = f"TLS failed ({getattr(exc, 'reason', None) or type(exc).__name__})"
    else:
        during = (
            f"while waiting for {waiting_for}" if waiting_for else f"during {phase}"
        )
        detail = (
            f"the connection was closed or reset {during} ({exc.__class__.__name__})"
        )
    return EmailSessionError(
        reason, detail, host=host, port=port, delivery_unknown=in_doubt
    )
