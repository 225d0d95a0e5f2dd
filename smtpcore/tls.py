"""TLS defaults and the one place where socket and ssl failures become
:class:`~smtpcore.errors.EmailSessionError`.

Classification reads structured fields only (``verify_code``,
``SSLError.reason``, ``errno``, the exception class), never message text,
which changes between OpenSSL and Python versions.
"""

from __future__ import annotations

import base64
import errno
import http.client
import os
import re
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterable
from typing import Literal

from smtpcore._net import connect_tcp
from smtpcore.errors import EmailSessionError, EmailSessionReason

__all__ = [
    "ANTIVIRUS_ISSUER_PATTERNS",
    "CrlUnavailable",
    "Phase",
    "antivirus_product",
    "classify",
    "default_context",
    "fetch_crl",
    "revocation_context",
    "shared_default_context",
    "speaks_tls",
    "unverified_context",
]

Phase = Literal["connect", "handshake", "io"]

# X509_V_ERR_* codes (OpenSSL's x509_vfy.h), as ssl reports them in
# SSLCertVerificationError.verify_code.
_NOT_YET_VALID = 9
_EXPIRED = 10
_UNTRUSTED = frozenset({18, 19, 20, 21})  # self-signed leaf/root, unknown issuer
_REVOKED = 23
# The CRL itself could not be used: none for the issuer (3), bad signature
# (8), not yet valid / expired (11, 12), malformed dates (15, 16).  With
# revocation checking on, that means the revocation status is unknown.
_CRL_UNUSABLE = frozenset({3, 8, 11, 12, 15, 16})
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
    if code in _CRL_UNUSABLE:
        return EmailSessionReason.CRL_SERVER_DOWN, (
            f"the certificate's CRL could not be used ({message})"
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


# --------------------------------------------------------------------------
# Diagnosis: TLS-intercepting anti-virus products.
# --------------------------------------------------------------------------

# Products that scan mail by putting their own root CA into the system store
# and re-signing every server certificate.  A certificate whose issuer's CN,
# O or OU matches one of these, refused as untrusted, was almost certainly
# replaced on this machine.  Sources: the issuer names these products use,
# e.g. "Avast Web/Mail Shield Root", "AVG Web/Mail Shield Root", "ESET SSL
# Filter CA", "Kaspersky Anti-Virus Personal Root Certificate", "Norton
# Web/Mail Shield Root", "Bitdefender Personal CA.Net-Defender".
ANTIVIRUS_ISSUER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (product, re.compile(pattern, re.IGNORECASE))
    for product, pattern in (
        ("Avast", r"\bavast\b"),
        ("AVG", r"\bavg\b"),
        ("Avira", r"\bavira\b"),
        ("Bitdefender", r"\bbitdefender\b"),
        ("Dr.Web", r"\bdr\.?\s?web\b"),
        ("ESET", r"\beset\b"),
        ("F-Secure", r"\bf-secure\b"),
        ("Kaspersky", r"\bkaspersky\b"),
        ("McAfee", r"\bmcafee\b"),
        ("Norton", r"\bnorton\b"),
        ("Sophos", r"\bsophos\b"),
        ("Trend Micro", r"\btrend\s?micro\b"),
    )
)


def antivirus_product(issuer_fields: Iterable[str]) -> str | None:
    """The anti-virus product named in an issuer's CN/O/OU values, if any.

    Args:
        issuer_fields: the issuer's attribute values.

    Returns:
        The product's name, or None.
    """
    text = " / ".join(issuer_fields)
    for product, pattern in ANTIVIRUS_ISSUER_PATTERNS:
        if pattern.search(text):
            return product
    return None


_unverified: ssl.SSLContext | None = None


def unverified_context() -> ssl.SSLContext:
    """A context that verifies nothing, for diagnosis only.

    It is used to read a certificate that failed verification, or to see
    whether a port speaks TLS at all; a connection made with it never
    carries credentials or mail.
    """
    global _unverified
    if _unverified is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _unverified = context
    return _unverified


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake with ``host:port`` gets a TLS answer.

    Runs on a connection of its own, which it closes.

    Args:
        host, port: the server.
        timeout: seconds for connecting and for the handshake.

    Returns:
        True if the handshake completed or failed with a TLS alert (the
        peer spoke TLS); False otherwise.
    """
    try:
        with (
            connect_tcp(host, port, timeout) as raw,
            unverified_context().wrap_socket(raw, server_hostname=host),
        ):
            return True
    except ssl.SSLError as exc:
        # An alert is TLS talking; plain text, EOF or a reset is not.
        return not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) and (
            getattr(exc, "reason", None) not in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST")
        )
    except OSError:
        return False


# --------------------------------------------------------------------------
# Revocation (opt-in): fetch the CRL, let OpenSSL check the leaf against it.
# --------------------------------------------------------------------------

# A CRL of a large public CA runs to a few MiB; a server that sends more is
# not sending a CRL, and we must not buffer without end.
MAX_CRL_BYTES = 16 * 1024 * 1024
_MAX_REDIRECTS = 3


class CrlUnavailable(Exception):
    """The CRL could not be fetched; the message says why."""


def fetch_crl(url: str, timeout: float) -> bytes:
    """Download a CRL over HTTP (RFC 5280 4.2.1.13 distribution point).

    Args:
        url: an ``http://`` URL (CRLs are signed, so TLS adds nothing and
            RFC 5280 discourages https here).
        timeout: seconds for connecting and for each read.

    Returns:
        The CRL, DER or PEM as served.

    Raises:
        CrlUnavailable: not http, unreachable, an HTTP error status, too
            many redirects, empty or too large.
    """
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise CrlUnavailable(f"cannot fetch {url!r}: only http:// CRLs are fetched")
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=timeout
        )
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target)
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader(
                "Location"
            ):
                url = urllib.parse.urljoin(url, response.getheader("Location", ""))
                continue
            if response.status != 200:
                raise CrlUnavailable(f"{url} answered HTTP {response.status}")
            body = response.read(MAX_CRL_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise CrlUnavailable(
                f"{url} is unreachable ({type(exc).__name__})"
            ) from exc
        finally:
            connection.close()
        if not body or len(body) > MAX_CRL_BYTES:
            raise CrlUnavailable(f"{url} sent {'nothing' if not body else 'too much'}")
        return body
    raise CrlUnavailable(f"{url}: more than {_MAX_REDIRECTS} redirects")


def revocation_context(base: ssl.SSLContext, crl: bytes) -> ssl.SSLContext:
    """A copy of ``base``'s trust that also checks the leaf against ``crl``.

    An ``SSLContext`` cannot be copied, so the new one takes ``base``'s
    loaded CA certificates (or the system store when ``base`` is the shared
    default), its host name check and verify flags, and adds the CRL with
    ``VERIFY_CRL_CHECK_LEAF``.

    Args:
        base: the context the session would use.
        crl: the CRL, DER or PEM.

    Returns:
        The context for the session's handshake.

    Raises:
        CrlUnavailable: the data is not a CRL OpenSSL can load.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = base.minimum_version
    context.check_hostname = base.check_hostname
    context.verify_mode = base.verify_mode
    if base is shared_default_context():
        context.load_default_certs()
    else:
        cas = base.get_ca_certs(binary_form=True)
        if cas:
            context.load_verify_locations(cadata=b"".join(cas))
    if not crl.lstrip().startswith(b"-----BEGIN"):
        encoded = base64.encodebytes(crl).decode("ascii")
        crl = f"-----BEGIN X509 CRL-----\n{encoded}-----END X509 CRL-----\n".encode()
    # OpenSSL loads CRLs from a file only (cadata takes certificates).
    handle, path = tempfile.mkstemp(suffix=".pem", prefix="smtpcore-crl-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(crl)
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise CrlUnavailable("the data served is not a CRL") from exc
    finally:
        os.unlink(path)
    context.verify_flags = base.verify_flags | ssl.VERIFY_CRL_CHECK_LEAF
    return context
