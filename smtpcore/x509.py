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
from datetime import datetime, timezone

from smtpcore.errors import ArgumentError, SmtpCoreError

__all__ = ["Certificate", "CertificateParseError", "Name", "parse_certificate"]


class CertificateParseError(SmtpCoreError, ValueError):
    """The bytes are not a well-formed DER X.509 certificate.

    Attributes:
        offset: the byte offset in the input where the problem was found.
    """

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} (at offset {offset})")
        self.offset = offset


# --------------------------------------------------------------------------
# Limits.  Each bounds the work hostile input can cause.
# --------------------------------------------------------------------------

# Real certificates nest constructed elements about six deep (Certificate >
# tbsCertificate > extensions > Extensions > Extension); 32 leaves ample room
# while keeping the structure check's recursion far below Python's limit.
MAX_DEPTH: int = 32

# X.690 8.1.3.5 allows up to 126 length octets; four express 4 GiB, far more
# than any certificate, and refusing more keeps lengths machine-sized.
_MAX_LENGTH_OCTETS = 4

# RFC 5280 4.1.2.2: conforming CAs use at most 20 octets, and users "SHOULD be
# prepared to gracefully handle" longer ones.  64 is generous for broken CAs
# while keeping the number (and its decimal form) small.
_MAX_SERIAL_OCTETS = 64

# A 128-bit UUID arc (2.25.N, X.667) takes 19 base-128 octets; 20 admits it
# and keeps every arc's decimal form short (CPython limits int -> str).
_MAX_OID_ARC_OCTETS = 20

# --------------------------------------------------------------------------
# Tags (identifier octets) used below, X.690 8.1.2 and RFC 5280 4.1.
# --------------------------------------------------------------------------

_BOOLEAN = 0x01
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_SET = 0x31
_CONSTRUCTED = 0x20
_HIGH_TAG_NUMBER = 0x1F

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

# Directory string types and how to decode them.  TeletexString's real
# repertoire (T.61) is a mess; every decoder in practice reads it as
# Latin-1.  The 7-bit types are read as ASCII so a stray 8-bit byte shows as
# U+FFFD rather than passing for text it is not.
_STRING_ENCODINGS: dict[int, str] = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString / T61String
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}

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
# The DER TLV reader.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tlv:
    """One element: identifier octet, and where it and its contents lie."""

    tag: int
    offset: int
    content_start: int
    end: int


def _read_tlv(data: bytes, pos: int, end: int) -> _Tlv:
    """Read the element at ``pos``, which must lie wholly before ``end``."""
    tag = data[pos]
    # No X.509 field uses a tag number above 30 (X.690 8.1.2.4).
    if tag & _HIGH_TAG_NUMBER == _HIGH_TAG_NUMBER:
        raise CertificateParseError(f"high tag number form (0x{tag:02x})", pos)
    if pos + 1 >= end:
        raise CertificateParseError("truncated element: no length octets", pos)
    first = data[pos + 1]
    cursor = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        # X.690 10.1: DER uses the definite form only.
        raise CertificateParseError("indefinite length is not allowed in DER", pos + 1)
    else:
        count = first & 0x7F
        if count > _MAX_LENGTH_OCTETS:
            raise CertificateParseError(f"length of {count} octets", pos + 1)
        if cursor + count > end:
            raise CertificateParseError("truncated length octets", pos + 1)
        length = int.from_bytes(data[cursor : cursor + count], "big")
        # X.690 10.1: "the minimum number of octets".
        if data[cursor] == 0 or length < 0x80:
            raise CertificateParseError("length not in its minimal DER form", pos + 1)
        cursor += count
    if length > end - cursor:
        raise CertificateParseError(f"length {length} runs past offset {end}", pos)
    return _Tlv(tag, pos, cursor, cursor + length)


def _check_structure(data: bytes, start: int, end: int, depth: int) -> None:
    """Check that ``data[start:end]`` is a run of well-framed elements.

    Constructed elements are checked inside too, so what the schema reader
    skips is well formed as well.  Linear work, recursion at most MAX_DEPTH.
    """
    pos = start
    while pos < end:
        tlv = _read_tlv(data, pos, end)
        if tlv.tag & _CONSTRUCTED:
            if depth >= MAX_DEPTH:
                raise CertificateParseError(f"nested over {MAX_DEPTH} deep", pos)
            _check_structure(data, tlv.content_start, tlv.end, depth + 1)
        pos = tlv.end  # always > pos: an element is at least two octets


class _Reader:
    """Reads the elements inside one constructed element, in order."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self._data = data
        self._pos = start
        self._end = end

    @classmethod
    def inside(cls, data: bytes, tlv: _Tlv) -> _Reader:
        return cls(data, tlv.content_start, tlv.end)

    @classmethod
    def only(cls, data: bytes, tlv: _Tlv, tag: int | None, what: str) -> _Tlv:
        """The single element inside ``tlv`` (an explicit tag's or wrapper's)."""
        reader = cls.inside(data, tlv)
        element = reader.read(tag, what)
        reader.expect_end(what)
        return element

    def at_end(self) -> bool:
        return self._pos >= self._end

    def read(self, tag: int | None, what: str) -> _Tlv:
        """The next element; ``tag`` None accepts any tag."""
        if self._pos >= self._end:
            raise CertificateParseError(f"missing {what}", self._pos)
        tlv = _read_tlv(self._data, self._pos, self._end)
        if tag is not None and tlv.tag != tag:
            found = f"tag 0x{tlv.tag:02x} where {what} (0x{tag:02x}) belongs"
            raise CertificateParseError(found, tlv.offset)
        self._pos = tlv.end
        return tlv

    def read_optional(self, tag: int, what: str) -> _Tlv | None:
        """The next element if it has ``tag``, else None (nothing consumed)."""
        if self._pos >= self._end or self._data[self._pos] != tag:
            return None
        return self.read(tag, what)

    def expect_end(self, what: str) -> None:
        if self._pos != self._end:
            raise CertificateParseError(f"unexpected data after {what}", self._pos)


# --------------------------------------------------------------------------
# Primitive values.
# --------------------------------------------------------------------------


def _content(data: bytes, tlv: _Tlv) -> bytes:
    return data[tlv.content_start : tlv.end]


def _decode_integer(data: bytes, tlv: _Tlv, what: str, max_octets: int) -> int:
    content = _content(data, tlv)
    if not content:
        raise CertificateParseError(f"empty INTEGER in {what}", tlv.offset)
    if len(content) > max_octets:
        raise CertificateParseError(f"{what} over {max_octets} octets", tlv.offset)
    return int.from_bytes(content, "big", signed=True)


def _decode_oid(data: bytes, tlv: _Tlv) -> str:
    content = _content(data, tlv)
    if not content or content[-1] & 0x80:
        raise CertificateParseError("empty or truncated OID", tlv.offset)
    arcs: list[int] = []
    value = 0
    octets = 0
    for byte in content:
        # X.690 8.19.2: each arc uses the fewest octets, so never starts 0x80.
        if octets == 0 and byte == 0x80:
            raise CertificateParseError("non-minimal OID arc", tlv.offset)
        octets += 1
        if octets > _MAX_OID_ARC_OCTETS:
            raise CertificateParseError("OID arc too long", tlv.offset)
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            octets = 0
    # X.690 8.19.4: the first octet group packs the first two arcs as
    # 40 * X + Y, where X is 0, 1 or 2 and only X = 2 allows Y >= 40.
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return ".".join(str(arc) for arc in (*head, *arcs[1:]))


def _decode_string(data: bytes, tlv: _Tlv) -> str | None:
    """A directory string's text, or None if ``tlv`` is not a string type."""
    encoding = _STRING_ENCODINGS.get(tlv.tag)
    if encoding is None:
        return None
    # "replace" turns bad bytes, odd-length BMPString and surrogates into
    # U+FFFD, so the result is always valid, encodable text.
    return _content(data, tlv).decode(encoding, "replace")


def _decode_ia5(data: bytes, tlv: _Tlv) -> str:
    # GeneralName strings are IMPLICIT IA5String (RFC 5280 4.2.1.6).
    return _content(data, tlv).decode("ascii", "replace")


def _decode_time(data: bytes, tlv: _Tlv) -> datetime:
    # RFC 5280 4.1.2.5: UTCTime is YYMMDDHHMMSSZ, GeneralizedTime
    # YYYYMMDDHHMMSSZ; both UTC, with seconds, without fractions.
    digits = {_UTC_TIME: 12, _GENERALIZED_TIME: 14}.get(tlv.tag)
    raw = _content(data, tlv)
    if digits is None:
        found = f"tag 0x{tlv.tag:02x} where a UTCTime or GeneralizedTime belongs"
        raise CertificateParseError(found, tlv.offset)
    # bytes.isdigit() accepts ASCII digits only, unlike int() (" 1", "+1").
    if len(raw) != digits + 1 or raw[-1:] != b"Z" or not raw[:-1].isdigit():
        raise CertificateParseError(f"bad time {raw[:20]!r}", tlv.offset)
    text = raw[:-1].decode("ascii")
    if digits == 12:
        # RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, YY < 50 is 20YY.
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
    else:
        year = int(text[:4])
    month, day, hour, minute, second = (
        int(text[i : i + 2]) for i in range(digits - 10, digits, 2)
    )
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise CertificateParseError(f"time {text}: {exc}", tlv.offset) from None


# --------------------------------------------------------------------------
# Structures.
# --------------------------------------------------------------------------


def _parse_name(data: bytes, tlv: _Tlv) -> Name:
    # Name ::= SEQUENCE OF RelativeDistinguishedName
    # RDN ::= SET SIZE (1..MAX) OF AttributeTypeAndValue (RFC 5280 4.1.2.4)
    attributes: list[tuple[str, str]] = []
    sizes: list[int] = []
    rdns = _Reader.inside(data, tlv)
    while not rdns.at_end():
        rdn = rdns.read(_SET, "RelativeDistinguishedName")
        members = _Reader.inside(data, rdn)
        count = 0
        while not members.at_end():
            pair = members.read(_SEQUENCE, "AttributeTypeAndValue")
            fields = _Reader.inside(data, pair)
            oid = _decode_oid(data, fields.read(_OID, "attribute type"))
            value_tlv = fields.read(None, "attribute value")
            fields.expect_end("AttributeTypeAndValue")
            value = _decode_string(data, value_tlv)
            if value is None:
                value = "#" + data[value_tlv.offset : value_tlv.end].hex()
            attributes.append((_SHORT_NAMES.get(oid, oid), value))
            count += 1
        if count == 0:
            raise CertificateParseError("empty RelativeDistinguishedName", rdn.offset)
        sizes.append(count)
    return Name(tuple(attributes), tuple(sizes))


def _general_names(data: bytes, reader: _Reader) -> list[_Tlv]:
    """Every GeneralName left in ``reader``, checked against the CHOICE."""
    names: list[_Tlv] = []
    while not reader.at_end():
        name = reader.read(None, "GeneralName")
        if name.tag not in _GENERAL_NAME_TAGS:
            found = f"tag 0x{name.tag:02x} is not a GeneralName (RFC 5280 4.2.1.6)"
            raise CertificateParseError(found, name.offset)
        names.append(name)
    return names


def _parse_subject_alt_names(data: bytes, value: _Tlv) -> list[str]:
    sequence = _Reader.only(data, value, _SEQUENCE, "SubjectAltName")
    entries: list[str] = []
    for name in _general_names(data, _Reader.inside(data, sequence)):
        if name.tag in _SAN_PREFIXES:
            entries.append(_SAN_PREFIXES[name.tag] + _decode_ia5(data, name))
        elif name.tag == _GN_IP:
            packed = _content(data, name)
            # RFC 5280 4.2.1.6: exactly four octets for IPv4, sixteen for
            # IPv6 (the address/mask forms belong to name constraints only).
            if len(packed) not in (4, 16):
                raise CertificateParseError(f"{len(packed)}-octet IP", name.offset)
            entries.append(f"IP:{ipaddress.ip_address(packed)}")
    return entries


def _parse_crl_distribution_points(data: bytes, value: _Tlv) -> list[str]:
    # RFC 5280 4.2.1.13: CRLDistributionPoints ::= SEQUENCE OF
    # DistributionPoint ::= SEQUENCE { distributionPoint [0] (explicit, as
    # it is a CHOICE) OPTIONAL, reasons [1] OPTIONAL, cRLIssuer [2] OPTIONAL }
    # and DistributionPointName ::= CHOICE { fullName [0] GeneralNames,
    # nameRelativeToCRLIssuer [1] RelativeDistinguishedName }.
    sequence = _Reader.only(data, value, _SEQUENCE, "CRLDistributionPoints")
    uris: list[str] = []
    points = _Reader.inside(data, sequence)
    while not points.at_end():
        point = _Reader.inside(data, points.read(_SEQUENCE, "DistributionPoint"))
        name = point.read_optional(0xA0, "distributionPoint")
        point.read_optional(0x81, "reasons")
        # cRLIssuer names who signed the CRL, not where to fetch it.
        point.read_optional(0xA2, "cRLIssuer")
        point.expect_end("DistributionPoint")
        if name is None:
            continue
        choice = _Reader.only(data, name, None, "DistributionPointName")
        if choice.tag == 0xA0:
            for general in _general_names(data, _Reader.inside(data, choice)):
                if general.tag == _GN_URI:
                    uris.append(_decode_ia5(data, general))
        elif choice.tag != 0xA1:
            found = f"tag 0x{choice.tag:02x} is not a DistributionPointName"
            raise CertificateParseError(found, choice.offset)
    return uris


def _parse_extensions(data: bytes, tlv: _Tlv) -> tuple[list[str], list[str]]:
    """SANs and CRL URIs from ``[3] EXPLICIT Extensions``; others skipped."""
    sequence = _Reader.only(data, tlv, _SEQUENCE, "Extensions")
    alt_names: list[str] = []
    crl_uris: list[str] = []
    seen: set[str] = set()
    extensions = _Reader.inside(data, sequence)
    while not extensions.at_end():
        extension = extensions.read(_SEQUENCE, "Extension")
        fields = _Reader.inside(data, extension)
        oid = _decode_oid(data, fields.read(_OID, "extnID"))
        critical = fields.read_optional(_BOOLEAN, "critical")
        if critical is not None and critical.end - critical.content_start != 1:
            raise CertificateParseError("BOOLEAN of the wrong size", critical.offset)
        value = fields.read(_OCTET_STRING, "extnValue")
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
    top = _Reader(data, 0, len(data))
    certificate = top.read(_SEQUENCE, "Certificate")
    top.expect_end("Certificate")  # trailing bytes are not part of it
    _check_structure(data, certificate.content_start, certificate.end, 1)

    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
    # signatureValue } (RFC 5280 4.1.1).
    outer = _Reader.inside(data, certificate)
    tbs_tlv = outer.read(_SEQUENCE, "tbsCertificate")
    outer.read(_SEQUENCE, "signatureAlgorithm")
    outer.read(_BIT_STRING, "signatureValue")
    outer.expect_end("signatureValue")

    # TBSCertificate, RFC 5280 4.1.2, field by field.
    tbs = _Reader.inside(data, tbs_tlv)
    version_tlv = tbs.read_optional(_VERSION, "version")
    if version_tlv is not None:
        number = _Reader.only(data, version_tlv, _INTEGER, "version")
        # v1(0), v2(1), v3(2); a later version may mean fields we misread.
        if _decode_integer(data, number, "version", 1) not in (0, 1, 2):
            raise CertificateParseError("unknown certificate version", number.offset)
    serial_tlv = tbs.read(_INTEGER, "serialNumber")
    serial_number = _decode_integer(
        data, serial_tlv, "serialNumber", _MAX_SERIAL_OCTETS
    )
    tbs.read(_SEQUENCE, "signature AlgorithmIdentifier")
    issuer = _parse_name(data, tbs.read(_SEQUENCE, "issuer"))
    validity = _Reader.inside(data, tbs.read(_SEQUENCE, "validity"))
    not_before = _decode_time(data, validity.read(None, "notBefore"))
    not_after = _decode_time(data, validity.read(None, "notAfter"))
    validity.expect_end("validity")
    subject = _parse_name(data, tbs.read(_SEQUENCE, "subject"))
    tbs.read(_SEQUENCE, "subjectPublicKeyInfo")
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
