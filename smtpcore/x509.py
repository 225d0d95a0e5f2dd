"""A minimal, strict reader for the few X.509 fields smtpcore needs.

Diagnosis needs the issuer of an untrusted leaf (to recognise
TLS-intercepting anti-virus products), the CRL distribution points (to fetch
the CRL when revocation checking is on) and, for ``probe``, subject, serial,
validity and SANs.  The input is the DER of ``getpeercert(binary_form=True)``;
this module only parses bytes (no socket, no ssl, no clock).

The *structure* is checked strictly (X.690 10.1 DER framing, each element
where RFC 5280 4.1 puts it, no trailing bytes) so hostile input cannot make
the reader loop, recurse deeply or read past a boundary.  *Values* are read
leniently where their meaning stays clear (bad string bytes become U+FFFD, a
non-minimal or negative serial is read as written): a diagnosis that fails on
a sloppy CA's certificate helps nobody.  Signatures are not checked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from smtpcore.der import (
    BIT_STRING,
    BOOLEAN,
    INTEGER,
    MAX_DEPTH,
    MAX_SERIAL_OCTETS,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    CertificateParseError,
    Reader,
    Tlv,
    check_structure,
    contents,
    decode_ia5,
    decode_integer,
    decode_oid,
    decode_string,
    decode_time,
)
from smtpcore.errors import ArgumentError

__all__ = [
    "MAX_DEPTH",
    "Certificate",
    "CertificateParseError",
    "Name",
    "parse_certificate",
]

# --------------------------------------------------------------------------
# X.509 tags and names (RFC 5280 4.1).
# --------------------------------------------------------------------------

_VERSION = 0xA0  # [0] EXPLICIT Version
_ISSUER_UID = 0x81  # [1] IMPLICIT BIT STRING
_SUBJECT_UID = 0x82  # [2] IMPLICIT BIT STRING
_EXTENSIONS = 0xA3  # [3] EXPLICIT Extensions

# GeneralName ::= CHOICE (RFC 5280 4.2.1.6), implicitly tagged: otherName
# [0], x400Address [3], directoryName [4] and ediPartyName [5] are
# constructed, the others primitive.  Only these four kinds are reported.
_GN_RFC822 = 0x81
_GN_DNS = 0x82
_GN_URI = 0x86
_GN_IP = 0x87
_SAN_PREFIXES = {_GN_RFC822: "email:", _GN_DNS: "DNS:", _GN_URI: "URI:"}
_GENERAL_NAME_TAGS = frozenset({0xA0, 0x81, 0x82, 0xA3, 0xA4, 0xA5, 0x86, 0x87, 0x88})

_OID_SUBJECT_ALT_NAME = "2.5.29.17"
_OID_CRL_DISTRIBUTION_POINTS = "2.5.29.31"

_SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}

# --------------------------------------------------------------------------
# Value objects.
# --------------------------------------------------------------------------


def _escape_rfc4514(value: str) -> str:
    # RFC 4514 2.4: '"', '+', ',', ';', '<', '>' and '\' are escaped
    # anywhere, NUL as "\00", '#' or a space at the start and a space at the
    # end (a lone space once).  The backslash goes first, so that the escapes
    # added after it are not escaped again.
    for char in ("\\", '"', "+", ",", ";", "<", ">"):
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[:1] == "#" or (value[:1] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1:] == " ":
        value = value[:-1] + "\\ "
    return value


@dataclass(frozen=True, slots=True)
class Name:
    """An X.501 distinguished name, as RFC 5280 4.1.2.4 encodes it.

    Attributes:
        attributes: ``(type, value)`` pairs in encoded order (least specific
            first, e.g. ``(("C", "US"), ("O", "Example"), ("CN", "Root"))``).
            The type is a short name (CN, O, OU, C, L, ST, emailAddress,
            serialNumber, DC) or the dotted OID.  A value that is not a
            directory string is given as ``"#"`` plus the hex of its DER,
            the RFC 4514 2.4 form.
        rdn_sizes: how many attributes each relative distinguished name
            holds, in order; empty (the usual case) when each holds one.
            Multi-valued RDNs are rare but change both the name's identity
            and its string form (``CN=a+OU=b``).

    Raises:
        ArgumentError: ``rdn_sizes`` does not partition ``attributes``.
    """

    attributes: tuple[tuple[str, str], ...] = ()
    rdn_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.rdn_sizes:
            return
        if min(self.rdn_sizes) < 1 or sum(self.rdn_sizes) != len(self.attributes):
            message = f"{self.rdn_sizes} does not partition the attributes."
            raise ArgumentError("rdn_sizes", message)
        # One canonical form, so that equality does not depend on whether
        # single-valued RDNs were spelled out.
        if max(self.rdn_sizes) == 1:
            object.__setattr__(self, "rdn_sizes", ())

    def get(self, short_name: str) -> list[str]:
        """The values of every attribute of one type, in encoded order.

        Args:
            short_name: a short name such as ``"CN"`` or a dotted OID for
                types without one.

        Returns:
            The values, possibly empty.
        """
        return [value for kind, value in self.attributes if kind == short_name]

    def relative_names(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        """The attributes grouped by relative distinguished name.

        Returns:
            One tuple of ``(type, value)`` pairs per RDN, in encoded order.
        """
        sizes = self.rdn_sizes or (1,) * len(self.attributes)
        groups: list[tuple[tuple[str, str], ...]] = []
        start = 0
        for size in sizes:
            groups.append(self.attributes[start : start + size])
            start += size
        return tuple(groups)

    def __str__(self) -> str:
        """The RFC 4514 string: most specific RDN first, ``+`` inside an RDN.

        Returns:
            E.g. ``"CN=Avast Web/Mail Shield Root,O=Avast Software s.r.o.,C=CZ"``.
        """
        # RFC 4514 2.1: RDNs are written in reverse order of the encoding.
        return ",".join(
            "+".join(f"{kind}={_escape_rfc4514(value)}" for kind, value in rdn)
            for rdn in reversed(self.relative_names())
        )


@dataclass(frozen=True, slots=True)
class Certificate:
    """The fields of an X.509 certificate that smtpcore reads.

    Attributes:
        serial_number: the serial number (RFC 5280 4.1.2.2), read as the
            signed integer it is encoded as.
        issuer: who signed the certificate.
        subject: whom the certificate names.
        not_before: start of validity, timezone-aware UTC.
        not_after: end of validity, timezone-aware UTC.
        subject_alt_names: ``"DNS:..."``, ``"IP:..."`` (IPv6 compressed),
            ``"email:..."`` and ``"URI:..."`` entries in encoded order; other
            kinds of name are left out.
        crl_distribution_points: the URI full names of every distribution
            point, in order (RFC 5280 4.2.1.13).
        is_self_issued: subject and issuer are the same name (RFC 5280 3.3),
            compared attribute by attribute after decoding.
    """

    serial_number: int
    issuer: Name
    subject: Name
    not_before: datetime
    not_after: datetime
    subject_alt_names: tuple[str, ...]
    crl_distribution_points: tuple[str, ...]
    is_self_issued: bool


# --------------------------------------------------------------------------
# Structures.
# --------------------------------------------------------------------------


def _parse_name(data: bytes, tlv: Tlv) -> Name:
    # Name ::= SEQUENCE OF RelativeDistinguishedName
    # RDN ::= SET SIZE (1..MAX) OF AttributeTypeAndValue (RFC 5280 4.1.2.4)
    attributes: list[tuple[str, str]] = []
    sizes: list[int] = []
    rdns = Reader.inside(data, tlv)
    while not rdns.at_end():
        rdn = rdns.read(SET, "RelativeDistinguishedName")
        members = Reader.inside(data, rdn)
        count = 0
        while not members.at_end():
            pair = members.read(SEQUENCE, "AttributeTypeAndValue")
            fields = Reader.inside(data, pair)
            oid = decode_oid(data, fields.read(OID, "attribute type"))
            value_tlv = fields.read(None, "attribute value")
            fields.expect_end("AttributeTypeAndValue")
            value = decode_string(data, value_tlv)
            if value is None:
                value = "#" + data[value_tlv.offset : value_tlv.end].hex()
            attributes.append((_SHORT_NAMES.get(oid, oid), value))
            count += 1
        if count == 0:
            raise CertificateParseError("empty RelativeDistinguishedName", rdn.offset)
        sizes.append(count)
    return Name(tuple(attributes), tuple(sizes))


def _general_names(data: bytes, reader: Reader) -> list[Tlv]:
    """Every GeneralName left in ``reader``, checked against the CHOICE."""
    names: list[Tlv] = []
    while not reader.at_end():
        name = reader.read(None, "GeneralName")
        if name.tag not in _GENERAL_NAME_TAGS:
            found = f"tag 0x{name.tag:02x} is not a GeneralName (RFC 5280 4.2.1.6)"
            raise CertificateParseError(found, name.offset)
        names.append(name)
    return names


def _parse_subject_alt_names(data: bytes, value: Tlv) -> list[str]:
    sequence = Reader.only(data, value, SEQUENCE, "SubjectAltName")
    entries: list[str] = []
    for name in _general_names(data, Reader.inside(data, sequence)):
        if name.tag in _SAN_PREFIXES:
            entries.append(_SAN_PREFIXES[name.tag] + decode_ia5(data, name))
        elif name.tag == _GN_IP:
            packed = contents(data, name)
            # RFC 5280 4.2.1.6: exactly four octets for IPv4, sixteen for
            # IPv6 (the address/mask forms belong to name constraints only).
            if len(packed) not in (4, 16):
                raise CertificateParseError(f"{len(packed)}-octet IP", name.offset)
            entries.append(f"IP:{ipaddress.ip_address(packed)}")
    return entries


def _parse_crl_distribution_points(data: bytes, value: Tlv) -> list[str]:
    # RFC 5280 4.2.1.13: CRLDistributionPoints ::= SEQUENCE OF
    # DistributionPoint ::= SEQUENCE { distributionPoint [0] (explicit, as
    # it is a CHOICE) OPTIONAL, reasons [1] OPTIONAL, cRLIssuer [2] OPTIONAL }
    # and DistributionPointName ::= CHOICE { fullName [0] GeneralNames,
    # nameRelativeToCRLIssuer [1] RelativeDistinguishedName }.
    sequence = Reader.only(data, value, SEQUENCE, "CRLDistributionPoints")
    uris: list[str] = []
    points = Reader.inside(data, sequence)
    while not points.at_end():
        point = Reader.inside(data, points.read(SEQUENCE, "DistributionPoint"))
        name = point.read_optional(0xA0, "distributionPoint")
        point.read_optional(0x81, "reasons")
        # cRLIssuer names who signed the CRL, not where to fetch it.
        point.read_optional(0xA2, "cRLIssuer")
        point.expect_end("DistributionPoint")
        if name is None:
            continue
        choice = Reader.only(data, name, None, "DistributionPointName")
        if choice.tag == 0xA0:
            for general in _general_names(data, Reader.inside(data, choice)):
                if general.tag == _GN_URI:
                    uris.append(decode_ia5(data, general))
        elif choice.tag != 0xA1:
            found = f"tag 0x{choice.tag:02x} is not a DistributionPointName"
            raise CertificateParseError(found, choice.offset)
    return uris


def _parse_extensions(data: bytes, tlv: Tlv) -> tuple[list[str], list[str]]:
    """SANs and CRL URIs from ``[3] EXPLICIT Extensions``; others skipped."""
    sequence = Reader.only(data, tlv, SEQUENCE, "Extensions")
    alt_names: list[str] = []
    crl_uris: list[str] = []
    seen: set[str] = set()
    extensions = Reader.inside(data, sequence)
    while not extensions.at_end():
        extension = extensions.read(SEQUENCE, "Extension")
        fields = Reader.inside(data, extension)
        oid = decode_oid(data, fields.read(OID, "extnID"))
        critical = fields.read_optional(BOOLEAN, "critical")
        if critical is not None and critical.end - critical.content_start != 1:
            raise CertificateParseError("BOOLEAN of the wrong size", critical.offset)
        value = fields.read(OCTET_STRING, "extnValue")
        fields.expect_end("Extension")
        # RFC 5280 4.2: "A certificate MUST NOT include more than one
        # instance of a particular extension"; two would leave us guessing.
        if oid in seen:
            raise CertificateParseError(f"duplicate extension {oid}", extension.offset)
        seen.add(oid)
        if oid == _OID_SUBJECT_ALT_NAME:
            alt_names = _parse_subject_alt_names(data, value)
        elif oid == _OID_CRL_DISTRIBUTION_POINTS:
            crl_uris = _parse_crl_distribution_points(data, value)
    return alt_names, crl_uris


def parse_certificate(der: bytes | bytearray | memoryview) -> Certificate:
    """Read a DER-encoded X.509 certificate.

    Args:
        der: the certificate, e.g. from ``getpeercert(binary_form=True)``;
            any bytes-like object.

    Returns:
        The fields smtpcore uses.  The signature is not verified.

    Raises:
        CertificateParseError: the bytes are not a well-formed certificate
            (the message says what is wrong and at which offset).  No other
            exception escapes for any byte string.
        TypeError: ``der`` is not bytes-like.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise TypeError(f"der must be bytes, not {type(der).__name__}")
    data = bytes(der)
    top = Reader(data, 0, len(data))
    certificate = top.read(SEQUENCE, "Certificate")
    top.expect_end("Certificate")  # trailing bytes are not part of it
    check_structure(data, certificate.content_start, certificate.end, 1)

    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
    # signatureValue } (RFC 5280 4.1.1).
    outer = Reader.inside(data, certificate)
    tbs_tlv = outer.read(SEQUENCE, "tbsCertificate")
    outer.read(SEQUENCE, "signatureAlgorithm")
    outer.read(BIT_STRING, "signatureValue")
    outer.expect_end("signatureValue")

    # TBSCertificate, RFC 5280 4.1.2, field by field.
    tbs = Reader.inside(data, tbs_tlv)
    version_tlv = tbs.read_optional(_VERSION, "version")
    if version_tlv is not None:
        number = Reader.only(data, version_tlv, INTEGER, "version")
        # v1(0), v2(1), v3(2); a later version may mean fields we misread.
        if decode_integer(data, number, "version", 1) not in (0, 1, 2):
            raise CertificateParseError("unknown certificate version", number.offset)
    serial_tlv = tbs.read(INTEGER, "serialNumber")
    serial_number = decode_integer(data, serial_tlv, "serialNumber", MAX_SERIAL_OCTETS)
    tbs.read(SEQUENCE, "signature AlgorithmIdentifier")
    issuer = _parse_name(data, tbs.read(SEQUENCE, "issuer"))
    validity = Reader.inside(data, tbs.read(SEQUENCE, "validity"))
    not_before = decode_time(data, validity.read(None, "notBefore"))
    not_after = decode_time(data, validity.read(None, "notAfter"))
    validity.expect_end("validity")
    subject = _parse_name(data, tbs.read(SEQUENCE, "subject"))
    tbs.read(SEQUENCE, "subjectPublicKeyInfo")
    tbs.read_optional(_ISSUER_UID, "issuerUniqueID")
    tbs.read_optional(_SUBJECT_UID, "subjectUniqueID")
    extensions = tbs.read_optional(_EXTENSIONS, "extensions")
    tbs.expect_end("tbsCertificate")

    alt_names: list[str] = []
    crl_uris: list[str] = []
    if extensions is not None:
        alt_names, crl_uris = _parse_extensions(data, extensions)

    return Certificate(
        serial_number=serial_number,
        issuer=issuer,
        subject=subject,
        not_before=not_before,
        not_after=not_after,
        subject_alt_names=tuple(alt_names),
        crl_distribution_points=tuple(crl_uris),
        is_self_issued=subject == issuer,
    )
