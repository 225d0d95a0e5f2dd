"""How a session is opened and kept, whatever the transport.

The blocking :class:`~smtpcore.client.SmtpClient` and the asyncio
:class:`~smtpcore.aio.AsyncSmtpClient` share everything here: the client
options and the policy the dialogue gets from them, the rule for retrying a
send on a fresh connection, and the two certificate checks that need a
connection of their own (the anti-virus diagnosis and the opt-in CRL
check).  Those two block; the asyncio client runs them in a worker thread,
as they happen only after a certificate failure or with
``check_revocation=True``.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    SmtpCoreError,
)
from smtpcore.models import BasicEmailSessionDetails
from smtpcore.protocol.dialogue import SessionPolicy
from smtpcore.protocol.saslbase import TokenSource
from smtpcore.protocol.transaction import SendOptions, SendResult
from smtpcore.tls import (
    CrlUnavailable,
    antivirus_product,
    fetch_crl,
    revocation_context,
    shared_default_context,
    unverified_context,
)
from smtpcore.transport import Endpoint, address_literal, peer_leaf
from smtpcore.validation import validate_session_details

__all__ = [
    "UNTRUSTED_CODES",
    "ClientOptions",
    "StartTlsPolicy",
    "diagnosed",
    "endpoint_of",
    "may_retry",
    "replaced_by_antivirus",
    "revocation_checking",
    "session_send_options",
    "settle_batch_failure",
]

StartTlsPolicy = Literal["auto", "required", "never"]

# One printable token, as commands.Ehlo accepts (non-ASCII is IDNA-encoded).
_HELLO_NAME = re.compile(r"[^\x00-\x20\x7f]{1,255}")

# OpenSSL's verify codes for a chain that does not lead to a trusted root:
# what a certificate re-signed by an intercepting product looks like.
UNTRUSTED_CODES = frozenset({18, 19, 20, 21})


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The keyword options of both clients (see :class:`SmtpClient`)."""

    timeout: float = 30.0
    data_timeout: float = 600.0
    tls_context: ssl.SSLContext | None = None
    starttls: StartTlsPolicy = "auto"
    local_hostname: str | None = None
    allow_insecure_auth: bool = False
    check_revocation: bool = False
    lmtp: bool = False
    auth_mechanism: str | None = None
    oauth_token: TokenSource | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.starttls not in ("auto", "required", "never"):
            raise ArgumentError(
                "starttls",
                f"must be 'auto', 'required' or 'never', not {self.starttls!r}",
            )
        if self.local_hostname is not None and not _HELLO_NAME.fullmatch(
            self.local_hostname
        ):
            # RFC 5321 4.1.1.1: EHLO takes a domain or an address literal;
            # refused here rather than after connecting.
            raise ArgumentError(
                "local_hostname", "must be one printable token (a domain or [address])"
            )
        for name in ("timeout", "data_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value <= 0
            ):
                raise ArgumentError(
                    name, f"must be a positive number of seconds, not {value!r}"
                )

    @property
    def context(self) -> ssl.SSLContext:
        """The TLS context: the caller's, or the shared verifying default."""
        return self.tls_context or shared_default_context()

    def policy(
        self,
        details: BasicEmailSessionDetails,
        endpoint: Endpoint,
        sockname: tuple[object, ...],
    ) -> SessionPolicy:
        """The dialogue's policy for a connection whose local address is
        ``sockname``."""
        credentials = details.credentials
        return SessionPolicy(
            host=endpoint.host,
            port=endpoint.port,
            local_hostname=self.local_hostname or address_literal(sockname),
            implicit_tls=endpoint.use_ssl,
            starttls=self.starttls,
            username=credentials.username if credentials else None,
            password=credentials.password if credentials else None,
            allow_insecure_auth=self.allow_insecure_auth,
            timeout=self.timeout,
            data_timeout=self.data_timeout,
            lmtp=self.lmtp,
            domain=credentials.domain if credentials else None,
            auth_mechanism=self.auth_mechanism,
            oauth_token=self.oauth_token,
            # MS-NLMP 2.2.2.2: FILETIME, 100 ns since 1601; for the rare
            # NTLM server that sends no timestamp of its own.
            ntlm_timestamp=time.time_ns() // 100 + 116_444_736_000_000_000,
        )


def session_send_options(
    details: BasicEmailSessionDetails, options: dict[str, Any]
) -> SendOptions:
    """What ``send_email`` and ``send_email_async`` do before anything else:
    take the per-message options out of ``options`` (what remains is for
    the client) and check the details, before any connection is opened.

    Args:
        details: the session details.
        options: the keyword options of the call; changed in place.

    Returns:
        The per-message options.

    Raises:
        PropertyNullError, PropertyEmptyError, PropertyValueOutOfRangeError:
            invalid details.
    """
    send_options = SendOptions(
        bool(options.pop("allow_partial", False)),
        options.pop("dsn", None),
        bool(options.pop("require_tls", False)),
    )
    validate_session_details(
        details, password_required=options.get("oauth_token") is None
    )
    return send_options


def endpoint_of(details: BasicEmailSessionDetails, timeout: float) -> Endpoint:
    """Where ``details`` (already validated) says to connect."""
    server = details.server_details
    assert server is not None and server.host is not None
    return Endpoint(server.host, server.port, server.use_ssl, timeout)


def may_retry(exc: EmailSessionError, reused: bool) -> bool:
    """Whether a send that failed with ``exc`` may be repeated on a fresh
    connection.

    Only on a reused session the server dropped before the message's final
    reply was due: then nothing was delivered, and one retry cannot
    duplicate the message.  Never after the content went out in full.
    """
    return (
        reused
        and exc.reason is EmailSessionReason.CONNECTION_LOST
        and not exc.delivery_unknown
    )


def settle_batch_failure(
    results: list[SendResult | Exception | None],
    exc: SmtpCoreError,
    retried: set[int],
) -> None:
    """Apply the retry rule to a batch whose connection broke.

    Results fill in order, so the first None is the message that was in
    flight.  It is retried once on a fresh connection when nothing of it can
    have been delivered; otherwise (or on a second failure) the error is its
    result.  The messages after it were never given content and simply go
    on over the next connection.
    """
    current = results.index(None)
    if (
        isinstance(exc, EmailSessionError)
        and exc.reason is EmailSessionReason.CONNECTION_LOST
        and not exc.delivery_unknown
        and current not in retried
    ):
        retried.add(current)
    else:
        results[current] = exc


def diagnosed(
    exc: EmailSessionError, endpoint: Endpoint, local_hostname: str | None
) -> EmailSessionError:
    """Tell a certificate replaced by an anti-virus product from one that is
    merely untrusted, by a second, unverified look at the server's
    certificate.

    That look is for the diagnosis only: it sends no credentials and no
    mail, and quits at once.

    Returns:
        ``exc`` itself, or a ``CERTIFICATE_REPLACED_BY_ANTIVIRUS`` error.
    """
    from smtpcore.x509 import CertificateParseError, parse_certificate

    cause = exc.__cause__
    if not (
        isinstance(cause, ssl.SSLCertVerificationError)
        and cause.verify_code in UNTRUSTED_CODES
    ):
        return exc
    try:
        der = peer_leaf(endpoint, unverified_context(), local_hostname)
        issuer = parse_certificate(der).issuer if der else None
    except (SmtpCoreError, CertificateParseError):
        return exc
    if issuer is None:
        return exc
    fields = [value for name in ("CN", "O", "OU") for value in issuer.get(name)]
    return replaced_by_antivirus(exc, str(issuer), fields)


def replaced_by_antivirus(
    exc: EmailSessionError, issuer: str, fields: Iterable[str]
) -> EmailSessionError:
    """``exc`` itself, or ``CERTIFICATE_REPLACED_BY_ANTIVIRUS`` when the
    untrusted certificate's issuer (its CN, O and OU ``fields``) names a
    TLS-intercepting product (:data:`smtpcore.tls.ANTIVIRUS_ISSUER_PATTERNS`).
    """
    product = antivirus_product(fields)
    if product is None:
        return exc
    replaced = EmailSessionError(
        EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS,
        f"the server's certificate was issued by '{issuer}', a root of "
        f"{product}, which intercepts TLS on this machine",
        host=exc.host,
        port=exc.port,
    )
    replaced.__cause__ = exc.__cause__
    return replaced


def revocation_checking(
    endpoint: Endpoint, context: ssl.SSLContext, local_hostname: str | None
) -> ssl.SSLContext:
    """A context that also refuses the server's certificate if its CRL lists
    it (RFC 5280 4.2.1.13, 5.3).

    Reads the certificate on a connection of its own (no credentials, no
    mail), fetches the CRL from the first http distribution point that
    answers, and hands it to OpenSSL (``VERIFY_CRL_CHECK_LEAF``).

    Returns:
        ``context`` itself when there is nothing to check (no TLS on this
        session, or no CRL named in the certificate).

    Raises:
        EmailSessionError: ``CRL_SERVER_DOWN`` when no CRL could be fetched
            or read; any session error of the look at the certificate.
    """
    from smtpcore.x509 import CertificateParseError, parse_certificate

    der = peer_leaf(endpoint, context, local_hostname)
    if der is None:
        return context
    try:
        points = parse_certificate(der).crl_distribution_points
    except CertificateParseError as exc:
        raise EmailSessionError(
            EmailSessionReason.CRL_SERVER_DOWN,
            f"the certificate's CRL distribution point could not be read ({exc})",
            host=endpoint.host,
            port=endpoint.port,
        ) from exc
    urls = [url for url in points if url.lower().startswith("http://")]
    if not urls:
        return context
    failures: list[CrlUnavailable] = []
    for url in urls:
        try:
            return revocation_context(context, fetch_crl(url, endpoint.timeout))
        except CrlUnavailable as exc:
            failures.append(exc)
    raise EmailSessionError(
        EmailSessionReason.CRL_SERVER_DOWN,
        "; ".join(str(failure) for failure in failures),
        host=endpoint.host,
        port=endpoint.port,
    ) from failures[-1]
