"""``smtpcore probe`` as a library: what a server offers, and why a session
to it fails.

:func:`probe` connects the way a session would (same TLS context, same
implicit-TLS or STARTTLS policy) but sends no credentials and no mail: the
greeting, EHLO, STARTTLS, EHLO again, QUIT.  It reports what it saw in a
frozen :class:`ProbeReport`, including the failure, classified into the same
exceptions a session raises.

When the failure is a certificate the verifying context refused, a second,
separate connection reads the certificate *without* verification
(:func:`smtpcore.tls.unverified_context`), so the user sees what the server
actually presented: its validity, names and issuer.  That connection sends
nothing but EHLO, STARTTLS and QUIT.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from smtpcore.errors import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpCoreError,
)
from smtpcore.opening import UNTRUSTED_CODES, replaced_by_antivirus
from smtpcore.protocol.dialogue import Dialogue, SessionPolicy
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.requests import Conversation
from smtpcore.protocol.sasl import choose_mechanism
from smtpcore.protocol.state import State
from smtpcore.tls import shared_default_context, unverified_context
from smtpcore.transport import Endpoint, Transport, address_literal
from smtpcore.x509 import CertificateParseError, parse_certificate

__all__ = [
    "CertificateSummary",
    "ChainSource",
    "ProbeReport",
    "TlsDetails",
    "error_details",
    "probe",
    "reply_details",
]

T = TypeVar("T")
StartTlsPolicy = Literal["auto", "required", "never"]
ChainSource = Literal["verified", "presented", "leaf"]

# States in which the last EHLO (or HELO) was answered positively and the
# capabilities on the connection are the server's current ones.
_GREETED = frozenset({State.READY, State.STARTTLS, State.TLS_UPGRADE, State.AUTH})


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """The fields of one certificate a user needs to judge it.

    Attributes:
        subject: the subject's RFC 4514 string.
        issuer: the issuer's RFC 4514 string.
        serial_number: the serial number.
        not_before: start of validity (UTC).
        not_after: end of validity (UTC).
        subject_alt_names: ``"DNS:..."``, ``"IP:..."`` ... entries.
        sha256: the SHA-256 fingerprint of the DER, colon-separated hex.
        issuer_identity: the issuer's CN, O and OU values, which name the
            product behind a TLS-intercepting root.
        der: the certificate itself (DER).
    """

    subject: str
    issuer: str
    serial_number: int
    not_before: datetime
    not_after: datetime
    subject_alt_names: tuple[str, ...]
    sha256: str
    issuer_identity: tuple[str, ...] = ()
    der: bytes = field(default=b"", repr=False)

    @classmethod
    def from_der(cls, der: bytes) -> CertificateSummary:
        """Read a DER certificate.

        Args:
            der: the certificate, e.g. from ``getpeercert(binary_form=True)``.

        Returns:
            The summary.

        Raises:
            CertificateParseError: the bytes are not a well-formed certificate.
        """
        cert = parse_certificate(der)
        digest = hashlib.sha256(der).hexdigest().upper()
        return cls(
            subject=str(cert.subject),
            issuer=str(cert.issuer),
            serial_number=cert.serial_number,
            not_before=cert.not_before,
            not_after=cert.not_after,
            subject_alt_names=cert.subject_alt_names,
            sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
            issuer_identity=tuple(
                value for kind in ("CN", "O", "OU") for value in cert.issuer.get(kind)
            ),
            der=bytes(der),
        )

    def validity_problem(self, now: datetime | None = None) -> str | None:
        """Say whether the certificate is outside its validity period.

        Args:
            now: the moment to judge at (timezone-aware); default: now.

        Returns:
            ``"expired N days ago"``, ``"not valid for another N days"``, or
            None while the certificate is valid.
        """
        moment = now or datetime.now(timezone.utc)
        if moment > self.not_after:
            return f"expired {_days(moment - self.not_after)} ago"
        if moment < self.not_before:
            return f"not valid for another {_days(self.not_before - moment)}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (dates in ISO 8601, serial in hex)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial_number": f"{self.serial_number:X}",
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "subject_alt_names": list(self.subject_alt_names),
            "sha256": self.sha256,
            "validity_problem": self.validity_problem(),
        }


def _days(delta: timedelta) -> str:
    days = int(delta.total_seconds() // 86400)
    return "1 day" if days == 1 else f"{days} days"


@dataclass(frozen=True, slots=True)
class TlsDetails:
    """The TLS session of one connection.

    Attributes:
        version: the protocol version, e.g. ``"TLSv1.3"``.
        cipher: the cipher suite's OpenSSL name.
        cipher_bits: the secret bits of the cipher.
        verified: the certificate was verified (False for the unverified
            look after a certificate failure).
        chain: the certificates, leaf first.
        chain_source: ``"verified"`` (the chain OpenSSL built, leaf to
            trusted root), ``"presented"`` (the certificates as the server
            sent them), or ``"leaf"``: only the server's own certificate,
            because ``get_verified_chain()``/``get_unverified_chain()``
            need Python 3.13.
        problems: certificates that could not be read, and why.
    """

    version: str | None
    cipher: str | None
    cipher_bits: int | None
    verified: bool
    chain: tuple[CertificateSummary, ...]
    chain_source: ChainSource
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "version": self.version,
            "cipher": self.cipher,
            "cipher_bits": self.cipher_bits,
            "verified": self.verified,
            "chain_source": self.chain_source,
            "chain": [cert.to_dict() for cert in self.chain],
            "problems": list(self.problems),
        }


def _tls_details(sock: ssl.SSLSocket, verified: bool) -> TlsDetails:
    cipher = sock.cipher()
    # get_verified_chain()/get_unverified_chain() are public from Python
    # 3.13 on (list of DER bytes); before that only the leaf is available.
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter = getattr(sock, name, None)
    source: ChainSource
    if callable(getter):
        ders = [bytes(item) for item in getter()]
        source = "verified" if verified else "presented"
    else:
        leaf = sock.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
        source = "leaf"
    chain: list[CertificateSummary] = []
    problems: list[str] = []
    for index, der in enumerate(ders):
        try:
            chain.append(CertificateSummary.from_der(der))
        except CertificateParseError as exc:
            problems.append(f"certificate {index} could not be read: {exc}")
    return TlsDetails(
        version=sock.version(),
        cipher=cipher[0] if cipher else None,
        cipher_bits=cipher[2] if cipher else None,
        verified=verified,
        chain=tuple(chain),
        chain_source=source,
        problems=tuple(problems),
    )


def reply_details(reply: SmtpReply) -> dict[str, Any]:
    """A JSON-ready form of a reply: ``code``, ``enhanced_status``, ``text``."""
    return {
        "code": reply.code,
        "enhanced_status": reply.enhanced_status,
        "text": reply.text,
    }


def _extensions_dict(extensions: Extensions) -> dict[str, Any]:
    return {
        "keywords": {key: list(params) for key, params in extensions.keywords.items()},
        "auth_mechanisms": sorted(extensions.auth_mechanisms),
        "size": extensions.size,
    }


def error_details(error: BaseException) -> dict[str, Any]:
    """A JSON-ready description of a failure, with its classification.

    Args:
        error: an smtpcore exception, or an ``OSError`` such as an
            attachment's ``FileNotFoundError``.

    Returns:
        ``type`` and ``message`` always; ``reason`` (the member name),
        ``reason_value``, ``error_code``, ``fix``, ``host``, ``port`` and
        ``delivery_unknown`` for an ``EmailSessionError``; ``kind``,
        ``command``, ``mailbox``, ``reply`` and ``rejected`` for a
        ``SmtpCommandError``; ``property_name`` for input errors;
        ``filename`` for an ``OSError``.
    """
    result: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, EmailSessionError):
        result.update(
            reason=error.reason.name,
            reason_value=error.reason.value,
            error_code=error.error_code,
            fix=error.reason.fix,
            host=error.host,
            port=error.port,
            delivery_unknown=error.delivery_unknown,
            reply=reply_details(error.reply) if error.reply else None,
        )
    elif isinstance(error, SmtpCommandError):
        result.update(
            kind=error.kind.name,
            command=error.command,
            mailbox=error.mailbox,
            is_transient=error.is_transient,
            reply=reply_details(error.reply),
            rejected={addr: reply_details(r) for addr, r in error.rejected.items()},
        )
    elif isinstance(error, OSError):
        result.update(filename=error.filename, strerror=error.strerror)
    property_name = getattr(error, "property_name", None)
    if isinstance(property_name, str):
        result["property_name"] = property_name
    return result


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What :func:`probe` saw.

    Attributes:
        host, port: the server.
        use_ssl: implicit TLS was used.
        starttls: the STARTTLS policy (``"auto"``, ``"required"``, ``"never"``).
        greeting: the server's greeting, if one arrived.
        extensions_before_tls: the EHLO capabilities on the plain connection
            (None under implicit TLS, or if EHLO was never answered).
        extensions_after_tls: the EHLO capabilities over TLS, implicit or
            after STARTTLS (None if the session never got there).
        tls: the verified TLS session, if it was established.
        error: the failure, classified as a session would raise it; None
            when the probe got through.
        presented: after a certificate failure, the TLS session of a second,
            unverified connection: what the server presented.
    """

    host: str
    port: int
    use_ssl: bool
    starttls: StartTlsPolicy
    greeting: SmtpReply | None
    extensions_before_tls: Extensions | None
    extensions_after_tls: Extensions | None
    tls: TlsDetails | None
    error: SmtpCoreError | None
    presented: TlsDetails | None

    @property
    def ok(self) -> bool:
        """True when the session opened as a send would open it."""
        return self.error is None

    @property
    def reason(self) -> EmailSessionReason | None:
        """The failure's :class:`EmailSessionReason`, if it is a session error."""
        error = self.error
        return error.reason if isinstance(error, EmailSessionError) else None

    @property
    def extensions(self) -> Extensions | None:
        """The capabilities a send would work with: after TLS if it was up."""
        if self.extensions_after_tls is not None:
            return self.extensions_after_tls
        return self.extensions_before_tls

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """The SASL mechanisms offered where a send would authenticate."""
        extensions = self.extensions
        return tuple(sorted(extensions.auth_mechanisms)) if extensions else ()

    @property
    def auth_mechanism_used(self) -> str | None:
        """The mechanism smtpcore would choose among those offered, if any."""
        # Only the name matters: the credentials here are placeholders and
        # no mechanism object ever produces a response.
        mechanism = choose_mechanism(self.auth_mechanisms, "user", "password")
        return mechanism.name.decode("ascii") if mechanism is not None else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the whole report."""
        before, after = self.extensions_before_tls, self.extensions_after_tls
        reason = self.reason
        return {
            "host": self.host,
            "port": self.port,
            "use_ssl": self.use_ssl,
            "starttls": self.starttls,
            "ok": self.ok,
            "greeting": reply_details(self.greeting) if self.greeting else None,
            "extensions_before_tls": _extensions_dict(before) if before else None,
            "extensions_after_tls": _extensions_dict(after) if after else None,
            "auth_mechanisms": list(self.auth_mechanisms),
            "auth_mechanism_used": self.auth_mechanism_used,
            "tls": self.tls.to_dict() if self.tls else None,
            "error": error_details(self.error) if self.error else None,
            "reason": reason.name if reason else None,
            "fix": reason.fix if reason else None,
            "presented": self.presented.to_dict() if self.presented else None,
        }


class _Look:
    """One connection of a probe and what it saw (mutable while it runs)."""

    def __init__(
        self,
        endpoint: Endpoint,
        context: ssl.SSLContext,
        starttls: StartTlsPolicy,
        local_hostname: str | None,
        verified: bool,
    ) -> None:
        self.endpoint = endpoint
        self.context = context
        self.starttls: StartTlsPolicy = starttls
        self.local_hostname = local_hostname
        self.verified = verified
        self.dialogue: Dialogue | None = None
        self.before: Extensions | None = None
        self.after: Extensions | None = None
        self.tls: TlsDetails | None = None

    def run(self) -> SmtpCoreError | None:
        """Greeting, EHLO, STARTTLS per policy, EHLO, QUIT; the failure."""
        endpoint = self.endpoint
        try:
            transport = Transport.connect(endpoint, self.context)
        except EmailSessionError as exc:
            return exc
        try:
            self._snapshot(transport)
            self.dialogue = Dialogue(
                SessionPolicy(
                    host=endpoint.host,
                    port=endpoint.port,
                    local_hostname=self.local_hostname
                    or address_literal(transport.sock.getsockname()),
                    implicit_tls=endpoint.use_ssl,
                    starttls=self.starttls,
                    timeout=endpoint.timeout,
                )
            )
            transport.run(self._observed(self.dialogue.open(), transport))
            # The probe got what it came for; a failed QUIT changes nothing.
            with contextlib.suppress(SmtpCoreError):
                transport.run(self.dialogue.quit())
        except SmtpCoreError as exc:
            return exc
        finally:
            transport.close()
        return None

    def _observed(
        self, conversation: Conversation[T], transport: Transport
    ) -> Conversation[T]:
        """Pass the conversation's requests through, noting after each step
        what the connection has learned: the transport closes itself on a
        failure, taking the TLS session with it."""
        value: bytes | None = None
        while True:
            try:
                request = conversation.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                self._snapshot(transport)
            value = yield request

    def _snapshot(self, transport: Transport) -> None:
        sock = transport.sock
        if (
            self.tls is None
            and isinstance(sock, ssl.SSLSocket)
            and not transport.closed
        ):
            self.tls = _tls_details(sock, self.verified)
        if self.dialogue is None:
            return
        conn = self.dialogue.conn
        if conn.state in _GREETED:
            if conn.tls_active:
                self.after = conn.extensions
            else:
                self.before = conn.extensions


def _certificate_failure(
    error: SmtpCoreError | None,
) -> ssl.SSLCertVerificationError | None:
    if isinstance(error, EmailSessionError):
        cause = error.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _antivirus_diagnosis(
    error: EmailSessionError,
    cause: ssl.SSLCertVerificationError,
    presented: TlsDetails | None,
) -> EmailSessionError:
    """The same diagnosis a session makes: an untrusted chain whose issuer
    names a TLS-intercepting product was replaced on this machine."""
    if cause.verify_code not in UNTRUSTED_CODES or not presented:
        return error
    if not presented.chain:
        return error
    leaf = presented.chain[0]
    return replaced_by_antivirus(error, leaf.issuer, leaf.issuer_identity)


def probe(
    host: str,
    port: int = 465,
    *,
    use_ssl: bool = True,
    starttls: StartTlsPolicy = "auto",
    timeout: float = 30.0,
    tls_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
) -> ProbeReport:
    """Connect the way a session would and report what the server offers.

    Sends no credentials and no mail: greeting, EHLO (HELO if refused),
    STARTTLS per ``starttls`` unless ``use_ssl``, EHLO again, QUIT.  After a
    certificate failure, a second connection with verification off reads
    the certificate the server presented (it sends nothing but EHLO,
    STARTTLS and QUIT).

    Args:
        host: the server's host name or IP address.
        port: the TCP port.
        use_ssl: TLS from the first byte (implicit TLS), as
            ``ServerDetails.use_ssl``.
        starttls: ``"auto"``, ``"required"`` or ``"never"``, as for
            :class:`~smtpcore.client.SmtpClient`.
        timeout: seconds for connecting, the handshake and every reply.
        tls_context: the context a session would use; default: the shared
            verifying context with the system CAs.
        local_hostname: the EHLO argument; default: our address literal.

    Returns:
        The :class:`ProbeReport`; a failure is reported in it, never raised.

    Raises:
        ValueError: ``starttls`` is not one of the three policies.
    """
    if starttls not in ("auto", "required", "never"):
        raise ValueError(
            f"starttls must be 'auto', 'required' or 'never', not {starttls!r}"
        )
    endpoint = Endpoint(host, port, use_ssl, timeout)
    context = tls_context or shared_default_context()
    look = _Look(endpoint, context, starttls, local_hostname, verified=True)
    error = look.run()
    presented: TlsDetails | None = None
    cause = _certificate_failure(error)
    if cause is not None and isinstance(error, EmailSessionError):
        # STARTTLS is required on the second look: its only purpose is the
        # certificate, and without TLS there is none to read.
        second = _Look(
            endpoint, unverified_context(), "required", local_hostname, False
        )
        second.run()
        presented = second.tls
        error = _antivirus_diagnosis(error, cause, presented)
    return ProbeReport(
        host=host,
        port=port,
        use_ssl=use_ssl,
        starttls=starttls,
        greeting=look.dialogue.greeting if look.dialogue else None,
        extensions_before_tls=look.before,
        extensions_after_tls=look.after,
        tls=look.tls,
        error=error,
        presented=presented,
    )
