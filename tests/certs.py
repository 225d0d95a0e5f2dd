"""A certificate factory on ``cryptography`` for tests that need more than
trustme gives: roots with a chosen subject (an anti-virus product's name),
leaves with chosen validity and a CRL Distribution Point, and CRLs.

Everything comes out as PEM (certificates, keys) or DER (CRLs, as served
over HTTP, RFC 5280 4.2.1.13), plus the ``ssl`` contexts and trustme
wrappers the servers and clients of a test need.

Every certificate carries a Subject Key Identifier and an Authority Key
Identifier: Python 3.13's ``create_default_context()`` turns on OpenSSL's
strict X.509 checks, which refuse a leaf without an AKI (verify code 85).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Authority", "Leaf", "now"]

# A leaf is valid from a day ago for a month unless a test says otherwise: a
# day of slack keeps a machine whose clock is a little behind out of
# "not valid yet".
_BACKDATE = datetime.timedelta(days=1)
_LEAF_LIFETIME = datetime.timedelta(days=30)
_ROOT_LIFETIME = datetime.timedelta(days=365)
# A CRL whose nextUpdate has passed fails verification with code 12 ("CRL
# has expired"), which would hide the outcome a test is about.
_CRL_LIFETIME = datetime.timedelta(days=7)


def now() -> datetime.datetime:
    """The current time, timezone-aware (UTC), as certificates want it.

    Returns:
        ``datetime.datetime.now(datetime.timezone.utc)``.
    """
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys are generated in microseconds; RSA-2048 takes tens of ms
    # each, which adds up over a matrix of servers.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(
    common_name: str | None,
    organization: str | None = None,
    organizational_unit: str | None = None,
) -> x509.Name:
    attributes = [
        x509.NameAttribute(oid, value)
        for oid, value in (
            (NameOID.ORGANIZATION_NAME, organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, organizational_unit),
            (NameOID.COMMON_NAME, common_name),
        )
        if value is not None
    ]
    return x509.Name(attributes)


def _general_name(identity: str) -> x509.GeneralName:
    # An IP address must be an iPAddress SAN: OpenSSL never matches an IP
    # against a dNSName (RFC 6125 1.7.2), which is what the 64 tests need.
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        return x509.DNSName(identity)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,  # an EC key does not encipher (RFC 5480 3)
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class Leaf:
    """A server certificate with its key.

    Attributes:
        cert_pem: the certificate, PEM.
        key_pem: its private key, PEM (PKCS#8, unencrypted).
        serial: the serial number, as a CRL lists it.
        chain_pems: certificates the server sends after the leaf.
    """

    cert_pem: bytes
    key_pem: bytes
    serial: int
    chain_pems: tuple[bytes, ...] = ()

    def leaf_cert(self) -> trustme.LeafCert:
        """The leaf as trustme's ``LeafCert``, e.g. for ``LocalSmtpServer``.

        Returns:
            ``trustme.LeafCert(key_pem, cert_pem, list(chain_pems))``.
        """
        return trustme.LeafCert(self.key_pem, self.cert_pem, list(self.chain_pems))

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting this leaf (and its chain).

        Returns:
            A new ``ssl.create_default_context(Purpose.CLIENT_AUTH)``.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf_cert().configure_cert(context)
        return context


@dataclass(frozen=True, slots=True)
class Authority:
    """A self-signed root CA that issues leaves and CRLs.

    Build one with :meth:`root`.

    Attributes:
        cert_pem: the root certificate, PEM.
        key_pem: its private key, PEM.
    """

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def root(
        cls,
        common_name: str,
        *,
        organization: str | None = None,
        organizational_unit: str | None = None,
    ) -> Authority:
        """Make a root CA with the given subject (which is also its issuer).

        Args:
            common_name: the subject CN, e.g. ``"Avast Web/Mail Shield Root"``.
            organization: the subject O, e.g. ``"Avast Software s.r.o."``.
            organizational_unit: the subject OU.

        Returns:
            The new :class:`Authority`, valid from a day ago for a year.
        """
        key = _new_key()
        name = _name(common_name, organization, organizational_unit)
        public = key.public_key()
        start = now() - _BACKDATE
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(_key_usage(ca=True), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def issue(
        self,
        *names: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        crl_url: str | None = None,
        send_root: bool = False,
    ) -> Leaf:
        """Issue a server certificate for ``names``.

        Args:
            names: the identities, as Subject Alternative Names: IP
                addresses become iPAddress entries, anything else dNSName.
            not_before: start of validity; default a day ago.
            not_after: end of validity; default 30 days after ``not_before``.
            crl_url: the URI of a CRL Distribution Point (RFC 5280
                4.2.1.13), e.g. ``"http://127.0.0.1:8080/root.crl"``; None
                for no distribution point at all.
            send_root: have the server send the root after the leaf (an
                untrusted chain then fails with verify code 19 instead of 20).

        Returns:
            The :class:`Leaf`.

        Raises:
            ValueError: no names were given.
        """
        if not names:
            raise ValueError("a leaf needs at least one name")
        issuer, issuer_key = self._load()
        key = _new_key()
        public = key.public_key()
        start = not_before if not_before is not None else now() - _BACKDATE
        end = not_after if not_after is not None else start + _LEAF_LIFETIME
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(issuer.subject)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_key_usage(ca=False), True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
            .add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_key.public_key()
                ),
                False,
            )
        )
        if crl_url is not None:
            point = x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), False)
        cert = builder.sign(issuer_key, hashes.SHA256())
        return Leaf(
            cert.public_bytes(serialization.Encoding.PEM),
            _key_pem(key),
            serial,
            (self.cert_pem,) if send_root else (),
        )

    def crl(self, revoked: Iterable[int] = ()) -> bytes:
        """A CRL signed by this root, current for a week.

        Args:
            revoked: the serial numbers to list as revoked (since an hour ago).

        Returns:
            The CRL, DER (the form served over HTTP, RFC 5280 4.2.1.13).
        """
        issuer, key = self._load()
        moment = now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(moment - datetime.timedelta(minutes=5))
            .next_update(moment + _CRL_LIFETIME)
            # RFC 5280 5.2.1 and 5.2.3: a conforming CRL carries both.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                False,
            )
            .add_extension(x509.CRLNumber(1), False)
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(moment - datetime.timedelta(hours=1))
                .build()
            )
        return builder.sign(key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )

    def trust(self, context: ssl.SSLContext) -> None:
        """Make ``context`` trust this root.

        Args:
            context: a client context.
        """
        context.load_verify_locations(cadata=self.cert_pem.decode("ascii"))

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this root (and no other).

        Returns:
            ``ssl.create_default_context(cadata=...)`` with this root only.
        """
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))

    def as_trustme(self) -> trustme.CA:
        """This root as a ``trustme.CA``, to issue leaves trustme's way.

        Returns:
            ``trustme.CA.from_pem(cert_pem, key_pem)``.
        """
        return trustme.CA.from_pem(self.cert_pem, self.key_pem)
