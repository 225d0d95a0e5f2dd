"""The whole exception hierarchy of smtpcore.

Every failure smtpcore reports is one of the classes below; anything else
escaping the library is a bug.  The module has no I/O imports so that the
sans-IO core in :mod:`smtpcore.protocol` can raise these directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtpcore.protocol.replies import SmtpReply

__all__ = [
    "ArgumentError",
    "EmailSessionError",
    "EmailSessionReason",
    "LocalProtocolError",
    "PropertyEmptyError",
    "PropertyNullError",
    "PropertyValueOutOfRangeError",
    "SmtpCommandError",
    "SmtpCoreError",
    "SmtpErrorKind",
    "SmtpProtocolError",
]


class SmtpCoreError(Exception):
    """Base class of every error raised by smtpcore."""


# --------------------------------------------------------------------------
# Input validation: raised before any connection is opened.
# --------------------------------------------------------------------------


class _PropertyError(SmtpCoreError, ValueError):
    """An input value is unusable; ``property_name`` is its snake_case path."""

    def __init__(self, property_name: str, message: str) -> None:
        super().__init__(message)
        self.property_name = property_name


class PropertyNullError(_PropertyError):
    """A required value is ``None`` (the seed's PropertyNullException)."""

    def __init__(self, property_name: str, message: str | None = None) -> None:
        super().__init__(
            property_name, message or f"'{property_name}' must not be None."
        )


class PropertyEmptyError(_PropertyError):
    """A required value is empty (the seed's PropertyEmptyException)."""

    def __init__(self, property_name: str, message: str | None = None) -> None:
        super().__init__(
            property_name, message or f"'{property_name}' must not be empty."
        )


class PropertyValueOutOfRangeError(_PropertyError):
    """A number is outside its allowed range (PropertyValueOutOfRangeException)."""

    def __init__(self, property_name: str, message: str) -> None:
        super().__init__(property_name, message)


class ArgumentError(_PropertyError):
    """A value is of the right kind but not allowed (the seed's ArgumentException)."""

    def __init__(self, property_name: str, message: str) -> None:
        super().__init__(property_name, message)


# --------------------------------------------------------------------------
# Protocol errors.
# --------------------------------------------------------------------------


class SmtpProtocolError(SmtpCoreError):
    """The server broke the SMTP protocol.

    Examples: a malformed or oversized reply, bytes injected after the
    STARTTLS ``220``, a reply nobody asked for.  The connection cannot be
    trusted afterwards and is closed.
    """


class LocalProtocolError(SmtpCoreError):
    """The caller asked the sans-IO engine for something the protocol forbids.

    Raised before any byte for the offending command exists, e.g. ``MAIL``
    before ``EHLO`` or a command argument containing CR or LF.  Seen only by
    users of :class:`smtpcore.protocol.SmtpConnection`; the clients never let
    it escape for well-formed input.
    """


# --------------------------------------------------------------------------
# Negative replies.
# --------------------------------------------------------------------------


class SmtpErrorKind(enum.Enum):
    """Which part of a mail transaction the server refused."""

    SENDER_NOT_ACCEPTED = "SenderNotAccepted"
    RECIPIENT_NOT_ACCEPTED = "RecipientNotAccepted"
    MESSAGE_NOT_ACCEPTED = "MessageNotAccepted"
    UNEXPECTED_STATUS_CODE = "UnexpectedStatusCode"


class SmtpCommandError(SmtpCoreError):
    """The server (or our RFC 5321 check standing in for it) refused a command.

    Attributes:
        kind: which part of the transaction failed.
        reply: the server's reply (a synthetic 501 for addresses refused
            before connecting).
        command: the command verb, e.g. ``"MAIL FROM"`` or ``"RCPT TO"``.
        mailbox: the address concerned, or None.
        is_transient: True for a 4xx reply (retrying later may succeed).
        rejected: for a refused recipient, every refused address -> reply.
        accepted: recipients that did get the message although this error
            is raised (LMTP, where recipients are answered one by one after
            the content and a refusal can no longer stop the others).
    """

    def __init__(
        self,
        kind: SmtpErrorKind,
        reply: SmtpReply,
        command: str,
        mailbox: str | None = None,
        message: str | None = None,
        rejected: dict[str, SmtpReply] | None = None,
        accepted: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.rejected = dict(rejected or {})
        self.accepted = list(accepted or [])
        self.reply = reply
        self.command = command
        self.mailbox = mailbox
        if message is None:
            about = f" for {mailbox!r}" if mailbox else ""
            message = f"{command}{about} refused: {reply}"
        super().__init__(message)

    @property
    def is_transient(self) -> bool:
        """True when the reply is a 4xx: the same command may succeed later."""
        return self.reply.is_transient


# --------------------------------------------------------------------------
# Session errors: the seed's EmailSessionException and its reasons.
# --------------------------------------------------------------------------


class EmailSessionReason(enum.Enum):
    """Why a session could not be opened or used.  See docs/errors.md."""

    INVALID_PORT = "InvalidPort"
    INVALID_HOST = "InvalidHost"
    SSL_WRAPPED_CONNECTION_REQUIRED = "SslWrappedConnectionRequired"
    SSL_WRAPPED_CONNECTION_NOT_SUPPORTED = "SslWrappedConnectionNotSupported"
    EXPIRED_OR_UNTRUSTED_CERTIFICATE = "ExpiredOrUntrustedCertificate"
    CERTIFICATE_REPLACED_BY_ANTIVIRUS = "CertificateReplacedByAntiVirus"
    CRL_SERVER_DOWN = "CrlServerDown"
    INVALID_SSL_CERTIFICATE = "InvalidSslCertificate"
    INVALID_USERNAME_OR_PASSWORD = "InvalidUsernameOrPassword"
    CONNECTION_TIMEOUT = "ConnectionTimeout"
    CONNECTION_LOST = "ConnectionLost"
    STARTTLS_NOT_AVAILABLE = "StartTlsNotAvailable"
    NO_COMMON_AUTH_MECHANISM = "NoCommonAuthMechanism"
    AUTHENTICATION_TEMPORARY_FAILURE = "AuthenticationTemporaryFailure"

    @property
    def error_code(self) -> int:
        """The seed platform's numeric code for this reason."""
        return REASON_INFO[self].error_code

    @property
    def fix(self) -> str:
        """What the user should change to get past this failure."""
        return REASON_INFO[self].fix


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """The documented facts about one :class:`EmailSessionReason`."""

    error_code: int
    cause: str
    fix: str


# The single source of truth for docs/errors.md (a test keeps them in step).
REASON_INFO: dict[EmailSessionReason, ReasonInfo] = {
    EmailSessionReason.INVALID_PORT: ReasonInfo(
        100,
        "Nothing accepts connections on that port, or what answers is not SMTP.",
        "Check server_details.port: 465 is usually implicit TLS "
        "(use_ssl=True), 587 and 25 usually STARTTLS (use_ssl=False).",
    ),
    EmailSessionReason.INVALID_HOST: ReasonInfo(
        101,
        "The host name does not resolve or the host is unreachable.",
        "Check server_details.host for typos and that this machine can "
        "resolve and reach it.",
    ),
    EmailSessionReason.SSL_WRAPPED_CONNECTION_REQUIRED: ReasonInfo(
        200,
        "use_ssl=False against a port that expects TLS from the first byte.",
        "Set server_details.use_ssl=True for this port (commonly 465).",
    ),
    EmailSessionReason.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED: ReasonInfo(
        201,
        "use_ssl=True against a port that speaks plain SMTP.",
        "Set server_details.use_ssl=False for this port (commonly 587 or 25); "
        "STARTTLS is still used when the server offers it.",
    ),
    EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE: ReasonInfo(
        201,
        "The server's certificate is expired, not yet valid, or issued by a "
        "CA this machine does not trust.",
        "Ask the server's operator to renew the certificate, or pass a "
        "tls_context that trusts its CA.",
    ),
    EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS: ReasonInfo(
        201,
        "The certificate was issued by a TLS-intercepting anti-virus product "
        "on this machine, not by the mail server.",
        "Turn off the anti-virus product's mail or TLS scanning for this "
        "server, or trust its root CA explicitly in a tls_context.",
    ),
    EmailSessionReason.CRL_SERVER_DOWN: ReasonInfo(
        201,
        "Revocation checking is on and the certificate's CRL could not be fetched.",
        "Retry later, check that this machine can reach the CRL URL, or turn "
        "off check_revocation.",
    ),
    EmailSessionReason.INVALID_SSL_CERTIFICATE: ReasonInfo(
        201,
        "The certificate does not match the host name or IP address, is "
        "revoked, or failed verification for another reason.",
        "Connect using the host name the certificate was issued for.",
    ),
    EmailSessionReason.INVALID_USERNAME_OR_PASSWORD: ReasonInfo(
        300,
        "The server refused the credentials (535, 5.7.8).",
        "Check credentials.username and credentials.password; some providers "
        "require an app password.",
    ),
    EmailSessionReason.CONNECTION_TIMEOUT: ReasonInfo(
        102,
        "Connecting, the greeting or a reply took longer than the timeout.",
        "Check that the host and port are right and reachable, or raise timeout.",
    ),
    EmailSessionReason.CONNECTION_LOST: ReasonInfo(
        103,
        "The server closed or reset the connection in the middle of the session.",
        "Retry; if it persists, the server may be refusing this client "
        "(rate limits, blocklists) - check its logs.",
    ),
    EmailSessionReason.STARTTLS_NOT_AVAILABLE: ReasonInfo(
        202,
        "TLS is required (starttls='required', or credentials would go in "
        "clear) but the server did not offer or refused STARTTLS.",
        "Use use_ssl=True on the server's implicit-TLS port, or enable "
        "STARTTLS on the server; allow_insecure_auth=True only on trusted "
        "networks.",
    ),
    EmailSessionReason.NO_COMMON_AUTH_MECHANISM: ReasonInfo(
        301,
        "The server offers no authentication mechanism smtpcore can use.",
        "Check the mechanisms the server advertises (smtpcore probe) and "
        "whether it wants TLS before AUTH.",
    ),
    EmailSessionReason.AUTHENTICATION_TEMPORARY_FAILURE: ReasonInfo(
        302,
        "The server's authentication backend failed (454, 4.7.0); the "
        "password may well be right.",
        "Retry later.",
    ),
}


class EmailSessionError(SmtpCoreError):
    """A session could not be opened or broke while in use.

    Attributes:
        reason: the :class:`EmailSessionReason`.
        error_code: the seed platform's numeric code for the reason.
        host: the server's host name as given.
        port: the server's port.
        delivery_unknown: True when the message content had been sent in full
            but the server's final reply never arrived, so the message may or
            may not have been delivered.
        reply: the server's reply when one caused the error, else None.

    The low-level ``OSError``/``ssl.SSLError`` is chained as ``__cause__``.
    """

    def __init__(
        self,
        reason: EmailSessionReason,
        detail: str,
        *,
        host: str | None = None,
        port: int | None = None,
        delivery_unknown: bool = False,
        reply: SmtpReply | None = None,
    ) -> None:
        self.reason = reason
        self.error_code = reason.error_code
        self.host = host
        self.port = port
        self.delivery_unknown = delivery_unknown
        self.reply = reply
        self.detail = detail
        where = f" ({host}:{port})" if host is not None else ""
        unknown = (
            " The message content was sent but no final reply came: delivery "
            "is unknown."
            if delivery_unknown
            else ""
        )
        super().__init__(f"{reason.value}{where}: {detail}{unknown} Fix: {reason.fix}")


def reason_table() -> str:
    """The Markdown table of every :class:`EmailSessionReason`, as published
    in docs/errors.md (a test keeps that file in step with this table).

    Returns:
        The table, one row per reason: name, error code, cause, fix.
    """
    rows = ["| reason | `error_code` | cause | fix |", "|---|---|---|---|"]
    for reason, info in REASON_INFO.items():
        rows.append(
            f"| `{reason.name}` | {info.error_code} | {info.cause} | {info.fix} |"
        )
    return "\n".join(rows) + "\n"
