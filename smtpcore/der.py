"""A strict DER reader (X.690 10.1): element framing, the primitive values
X.509 uses, and the bounds that keep hostile input cheap.  It only parses
bytes; :mod:`smtpcore.x509` reads certificates with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from smtpcore.errors import SmtpCoreError

__all__ = [
    "BIT_STRING",
    "BOOLEAN",
    "CONSTRUCTED",
    "GENERALIZED_TIME",
    "INTEGER",
    "MAX_DEPTH",
    "MAX_SERIAL_OCTETS",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "SET",
    "UTC_TIME",
    "CertificateParseError",
    "Reader",
    "Tlv",
    "check_structure",
    "contents",
    "decode_ia5",
    "decode_integer",
    "decode_oid",
    "decode_string",
    "decode_time",
    "read_tlv",
]


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
MAX_SERIAL_OCTETS = 64

# A 128-bit UUID arc (2.25.N, X.667) takes 19 base-128 octets; 20 admits it
# and keeps every arc's decimal form short (CPython limits int -> str).
_MAX_OID_ARC_OCTETS = 20

# --------------------------------------------------------------------------
# Tags (identifier octets) used below, X.690 8.1.2 and RFC 5280 4.1.
# --------------------------------------------------------------------------

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31
CONSTRUCTED = 0x20
_HIGH_TAG_NUMBER = 0x1F

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

# --------------------------------------------------------------------------
# The DER TLV reader.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tlv:
    """One element: identifier octet, and where it and its contents lie."""

    tag: int
    offset: int
    content_start: int
    end: int


def read_tlv(data: bytes, pos: int, end: int) -> Tlv:
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
    return Tlv(tag, pos, cursor, cursor + length)


def check_structure(data: bytes, start: int, end: int, depth: int) -> None:
    """Check that ``data[start:end]`` is a run of well-framed elements.

    Constructed elements are checked inside too, so what the schema reader
    skips is well formed as well.  Linear work, recursion at most MAX_DEPTH.
    """
    pos = start
    while pos < end:
        tlv = read_tlv(data, pos, end)
        if tlv.tag & CONSTRUCTED:
            if depth >= MAX_DEPTH:
                raise CertificateParseError(f"nested over {MAX_DEPTH} deep", pos)
            check_structure(data, tlv.content_start, tlv.end, depth + 1)
        pos = tlv.end  # always > pos: an element is at least two octets


class Reader:
    """Reads the elements inside one constructed element, in order."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self._data = data
        self._pos = start
        self._end = end

    @classmethod
    def inside(cls, data: bytes, tlv: Tlv) -> Reader:
        return cls(data, tlv.content_start, tlv.end)

    @classmethod
    def only(cls, data: bytes, tlv: Tlv, tag: int | None, what: str) -> Tlv:
        """The single element inside ``tlv`` (an explicit tag's or wrapper's)."""
        reader = cls.inside(data, tlv)
        element = reader.read(tag, what)
        reader.expect_end(what)
        return element

    def at_end(self) -> bool:
        return self._pos >= self._end

    def read(self, tag: int | None, what: str) -> Tlv:
        """The next element; ``tag`` None accepts any tag."""
        if self._pos >= self._end:
            raise CertificateParseError(f"missing {what}", self._pos)
        tlv = read_tlv(self._data, self._pos, self._end)
        if tag is not None and tlv.tag != tag:
            found = f"tag 0x{tlv.tag:02x} where {what} (0x{tag:02x}) belongs"
            raise CertificateParseError(found, tlv.offset)
        self._pos = tlv.end
        return tlv

    def read_optional(self, tag: int, what: str) -> Tlv | None:
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


def contents(data: bytes, tlv: Tlv) -> bytes:
    return data[tlv.content_start : tlv.end]


def decode_integer(data: bytes, tlv: Tlv, what: str, max_octets: int) -> int:
    content = contents(data, tlv)
    if not content:
        raise CertificateParseError(f"empty INTEGER in {what}", tlv.offset)
    if len(content) > max_octets:
        raise CertificateParseError(f"{what} over {max_octets} octets", tlv.offset)
    return int.from_bytes(content, "big", signed=True)


def decode_oid(data: bytes, tlv: Tlv) -> str:
    content = contents(data, tlv)
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


def decode_string(data: bytes, tlv: Tlv) -> str | None:
    """A directory string's text, or None if ``tlv`` is not a string type."""
    encoding = _STRING_ENCODINGS.get(tlv.tag)
    if encoding is None:
        return None
    # "replace" turns bad bytes, odd-length BMPString and surrogates into
    # U+FFFD, so the result is always valid, encodable text.
    return contents(data, tlv).decode(encoding, "replace")


def decode_ia5(data: bytes, tlv: Tlv) -> str:
    # GeneralName strings are IMPLICIT IA5String (RFC 5280 4.2.1.6).
    return contents(data, tlv).decode("ascii", "replace")


def decode_time(data: bytes, tlv: Tlv) -> datetime:
    # RFC 5280 4.1.2.5: UTCTime is YYMMDDHHMMSSZ, GeneralizedTime
    # YYYYMMDDHHMMSSZ; both UTC, with seconds, without fractions.
    digits = {UTC_TIME: 12, GENERALIZED_TIME: 14}.get(tlv.tag)
    raw = contents(data, tlv)
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
