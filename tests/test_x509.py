"""Tests of the pure-Python X.509 reader, against what ``cryptography`` reads.

Certificates come from three places: ``cryptography``'s builder (signed,
realistic), trustme (what the test servers use), and a small DER encoder
below that can write what builders refuse to (v1 and v2 certificates,
BMPString names, GeneralizedTime before 2050, malformed fields).  Every
field is compared with ``cryptography``'s reading of the same bytes.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from functools import cache

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.errors import ArgumentError, SmtpCoreError
from smtpcore.x509 import (
    MAX_DEPTH,
    Certificate,
    CertificateParseError,
    Name,
    parse_certificate,
)

UTC = datetime.timezone.utc

# --------------------------------------------------------------------------
# A DER encoder, just enough to write certificates by hand.
# --------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element with a minimal definite length."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(value: int) -> bytes:
    size = 1
    while not -(1 << (8 * size - 1)) <= value < 1 << (8 * size - 1):
        size += 1
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = b""
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


def name(*rdns: list[tuple[str, int, bytes]]) -> bytes:
    """A Name; each RDN is a list of (OID, string tag, encoded value)."""
    return seq(
        *(
            tlv(0x31, b"".join(seq(oid(kind), tlv(tag, raw)) for kind, tag, raw in rdn))
            for rdn in rdns
        )
    )


def utc_time(text: str) -> bytes:
    return tlv(0x17, text.encode())


def generalized_time(text: str) -> bytes:
    return tlv(0x18, text.encode())


def extension(dotted: str, value: bytes, critical: bool = False) -> bytes:
    flag = tlv(0x01, b"\xff") if critical else b""
    return seq(oid(dotted), flag, tlv(0x04, value))


KEY = ec.generate_private_key(ec.SECP256R1())
SPKI = KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"))
CN_EXAMPLE = name([("2.5.4.3", 0x0C, b"example")])
SAN = "2.5.29.17"
CRL_DP = "2.5.29.31"


def make_cert(
    *,
    version: int | None = 2,
    serial: bytes | None = None,
    issuer: bytes = CN_EXAMPLE,
    not_before: bytes | None = None,
    not_after: bytes | None = None,
    subject: bytes = CN_EXAMPLE,
    spki: bytes = SPKI,
    unique_ids: bytes = b"",
    extensions: list[bytes] | None = None,
) -> bytes:
    """A certificate with a dummy signature (the reader checks none)."""
    fields = [] if version is None else [tlv(0xA0, integer(version))]
    fields += [
        serial if serial is not None else integer(1),
        ECDSA_SHA256,
        issuer,
        seq(
            not_before if not_before is not None else utc_time("240101000000Z"),
            not_after if not_after is not None else utc_time("340101000000Z"),
        ),
        subject,
        spki,
        unique_ids,
    ]
    if extensions is not None:
        fields.append(tlv(0xA3, seq(*extensions)))
    signature = tlv(0x03, b"\x00" + seq(integer(1), integer(1)))
    return seq(seq(*fields), ECDSA_SHA256, signature)


def build(
    subject: x509.Name,
    *,
    issuer: x509.Name | None = None,
    serial: int = 1,
    not_before: datetime.datetime = datetime.datetime(2024, 1, 1, tzinfo=UTC),
    not_after: datetime.datetime = datetime.datetime(2034, 1, 1, tzinfo=UTC),
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> bytes:
    """A certificate signed by ``cryptography``'s builder, as DER."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if issuer is not None else subject)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for value in extensions:
        builder = builder.add_extension(value, critical=False)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def simple_name(**attributes: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attributes.items()])


@cache
def trustme_leaf_der() -> bytes:
    ca = trustme.CA(organization_name="smtpcore", organization_unit_name="x509 tests")
    leaf = ca.issue_cert("mail.example.test", "127.0.0.1", "::1", "pm@example.test")
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


# --------------------------------------------------------------------------
# The reference: every field as cryptography reads it.
# --------------------------------------------------------------------------

SHORT_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "DC",
}
# cryptography writes these two as dotted OIDs unless told otherwise.
RFC4514_NAMES = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


def assert_same_name(ours: Name, theirs: x509.Name) -> None:
    assert ours.attributes == tuple(
        (SHORT_NAMES.get(attr.oid, attr.oid.dotted_string), attr.value)
        for attr in theirs
    )
    assert [len(rdn) for rdn in ours.relative_names()] == [
        len(rdn) for rdn in theirs.rdns
    ]
    assert str(ours) == theirs.rfc4514_string(RFC4514_NAMES)


def their_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    prefixes: dict[type, str] = {
        x509.DNSName: "DNS:",
        x509.RFC822Name: "email:",
        x509.UniformResourceIdentifier: "URI:",
        x509.IPAddress: "IP:",
    }
    return tuple(
        f"{prefixes[type(entry)]}{entry.value}"
        for entry in names.value
        if type(entry) in prefixes
    )


def their_crl_uris(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        entry.value
        for point in points.value
        for entry in point.full_name or ()
        if isinstance(entry, x509.UniformResourceIdentifier)
    )


def assert_matches_cryptography(der: bytes) -> Certificate:
    """Parse ``der`` and check every field against cryptography."""
    ours = parse_certificate(der)
    theirs = x509.load_der_x509_certificate(der)
    assert ours.serial_number == theirs.serial_number
    assert_same_name(ours.issuer, theirs.issuer)
    assert_same_name(ours.subject, theirs.subject)
    assert ours.not_before == theirs.not_valid_before_utc
    assert ours.not_after == theirs.not_valid_after_utc
    assert ours.not_before.tzinfo is UTC
    assert ours.subject_alt_names == their_alt_names(theirs)
    assert ours.crl_distribution_points == their_crl_uris(theirs)
    assert ours.is_self_issued == (theirs.subject == theirs.issuer)
    return ours


# --------------------------------------------------------------------------
# Names.
# --------------------------------------------------------------------------


def test_several_rdns_and_unicode() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "test"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Bayern"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "München"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Grüße, Söhne + Co"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "東京 <mail>"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "#2; \\ok\\"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "4711"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "pm@example.test"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "VATDE-123"),
            x509.NameAttribute(NameOID.COMMON_NAME, " Zoë 😀 "),
        ]
    )
    cert = assert_matches_cryptography(build(subject))
    assert cert.subject.get("OU") == ["東京 <mail>", "#2; \\ok\\"]
    assert cert.subject.get("2.5.4.97") == ["VATDE-123"]
    assert cert.subject.get("DC") == ["test", "example"]
    assert cert.subject.get("UID") == []
    assert str(cert.subject).startswith(
        "CN=\\ Zoë 😀\\ ,2.5.4.97=VATDE-123,emailAddress=pm@example.test,"
        "serialNumber=4711,OU=\\#2\\; \\\\ok\\\\,OU=東京 \\<mail\\>,"
        "O=Grüße\\, Söhne \\+ Co,L=München,"
    )
    assert cert.is_self_issued


def test_multi_valued_rdn() -> None:
    subject = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")]
            ),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "mail"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
                ]
            ),
        ]
    )
    cert = assert_matches_cryptography(build(subject))
    assert cert.subject.rdn_sizes == (1, 2)
    assert str(cert.subject) in ("CN=mail+OU=ops,O=Example", "OU=ops+CN=mail,O=Example")
    # Same attributes, grouped differently: a different name.
    flat = Name(cert.subject.attributes)
    assert flat != cert.subject
    assert str(flat).count(",") == 2


@pytest.mark.parametrize(
    ("tag", "raw", "text"),
    [
        pytest.param(0x0C, "Zürich 東京".encode(), "Zürich 東京", id="UTF8String"),
        pytest.param(
            0x1E, "Zürich 😀".encode("utf-16-be"), "Zürich 😀", id="BMPString"
        ),
        pytest.param(
            0x1C, "Zürich 😀".encode("utf-32-be"), "Zürich 😀", id="Universal"
        ),
        pytest.param(0x13, b"Example Ltd", "Example Ltd", id="PrintableString"),
        pytest.param(0x16, b"pm@example.test", "pm@example.test", id="IA5String"),
    ],
)
def test_string_types(tag: int, raw: bytes, text: str) -> None:
    der = make_cert(subject=name([("2.5.4.3", tag, raw)]))
    cert = assert_matches_cryptography(der)
    assert cert.subject.attributes == (("CN", text),)
    assert not cert.is_self_issued


def test_teletex_string_is_latin1() -> None:
    der = make_cert(subject=name([("2.5.4.7", 0x14, b"M\xfcnchen")]))
    assert parse_certificate(der).subject.get("L") == ["München"]


@pytest.mark.parametrize(
    ("tag", "raw", "text"),
    [
        pytest.param(0x0C, b"ok\xff\xfe", "ok\ufffd\ufffd", id="UTF8-invalid"),
        pytest.param(0x0C, b"\xed\xa0\x80", "\ufffd" * 3, id="UTF8-surrogate"),
        pytest.param(0x1E, b"\x00A\x00", "A\ufffd", id="BMP-odd-length"),
        pytest.param(0x1E, b"\xd8\x00\x00A", "\ufffdA", id="BMP-lone-surrogate"),
        pytest.param(0x1C, b"\x00\x11\x00\x00", "\ufffd", id="Universal-too-big"),
        pytest.param(0x1C, b"\x00\x00\x00A\x00", "A\ufffd", id="Universal-short"),
        pytest.param(0x13, b"Caf\xe9", "Caf\ufffd", id="Printable-8bit"),
    ],
)
def test_bad_string_bytes_become_replacement_characters(
    tag: int, raw: bytes, text: str
) -> None:
    cert = parse_certificate(make_cert(issuer=name([("2.5.4.10", tag, raw)])))
    assert cert.issuer.get("O") == [text]
    str(cert.issuer).encode("utf-8")  # always valid text


def test_non_string_value_is_hex_der() -> None:
    der = make_cert(subject=seq(tlv(0x31, seq(oid("1.2.3.4"), integer(5)))))
    assert parse_certificate(der).subject.attributes == (("1.2.3.4", "#020105"),)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("Sue, Grabbit and Runn", "Sue\\, Grabbit and Runn"),
        ('say "hi"', 'say \\"hi\\"'),
        ("a+b;c<d>e\\f", "a\\+b\\;c\\<d\\>e\\\\f"),
        ("#start", "\\#start"),
        ("mid#dle", "mid#dle"),
        (" both ", "\\ both\\ "),
        (" ", "\\ "),
        ("nul\0byte", "nul\\00byte"),
        ("東京/Avast", "東京/Avast"),
    ],
)
def test_rfc4514_escaping(value: str, escaped: str) -> None:
    assert str(Name((("CN", value),))) == f"CN={escaped}"
    reference = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
    assert str(Name((("CN", value),))) == reference.rfc4514_string()


def test_name_rdn_sizes_are_validated_and_canonical() -> None:
    pairs = (("O", "Example"), ("CN", "a"), ("OU", "b"))
    assert Name(pairs, (1, 1, 1)) == Name(pairs)
    assert Name(pairs, (1, 1, 1)).rdn_sizes == ()
    assert str(Name(pairs, (1, 2))) == "CN=a+OU=b,O=Example"
    assert Name(pairs, (1, 2)).relative_names() == (pairs[:1], pairs[1:])
    for sizes in [(1, 1), (2, 2), (0, 3), (3, 0)]:
        with pytest.raises(ArgumentError) as caught:
            Name(pairs, sizes)
        assert caught.value.property_name == "rdn_sizes"
    assert str(Name()) == ""


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    NameOID.COMMON_NAME,
                    NameOID.ORGANIZATION_NAME,
                    NameOID.ORGANIZATIONAL_UNIT_NAME,
                    NameOID.LOCALITY_NAME,
                    NameOID.STATE_OR_PROVINCE_NAME,
                ]
            ),
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=16),
        ),
        max_size=6,
    )
)
def test_random_names_match_cryptography(
    attributes: list[tuple[x509.ObjectIdentifier, str]],
) -> None:
    subject = x509.Name([x509.NameAttribute(kind, value) for kind, value in attributes])
    der = make_cert(subject=subject.public_bytes())
    assert_matches_cryptography(der)


# --------------------------------------------------------------------------
# Serial numbers and times.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("serial", [1, 127, 128, 255, 256, 2**64, 2**159 - 1])
def test_serial_numbers(serial: int) -> None:
    cert = assert_matches_cryptography(build(simple_name(CN="s"), serial=serial))
    assert cert.serial_number == serial


@pytest.mark.parametrize("serial", [0, -1, -129, 2**167])
def test_nonconforming_serials_are_read_as_written(serial: int) -> None:
    # RFC 5280 4.1.2.2 forbids these, yet asks users to cope with them.
    assert parse_certificate(make_cert(serial=integer(serial))).serial_number == serial


def test_oversized_serial_is_refused() -> None:
    with pytest.raises(CertificateParseError, match="serialNumber"):
        parse_certificate(make_cert(serial=integer(2**600)))


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (utc_time("500101000000Z"), datetime.datetime(1950, 1, 1, tzinfo=UTC)),
        (utc_time("700101000000Z"), datetime.datetime(1970, 1, 1, tzinfo=UTC)),
        (utc_time("000229120000Z"), datetime.datetime(2000, 2, 29, 12, tzinfo=UTC)),
        (
            utc_time("491231235959Z"),
            datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
        ),
        (
            generalized_time("20200229120000Z"),
            datetime.datetime(2020, 2, 29, 12, tzinfo=UTC),
        ),
        (
            generalized_time("19491231000000Z"),
            datetime.datetime(1949, 12, 31, tzinfo=UTC),
        ),
        (
            generalized_time("99991231235959Z"),
            datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        ),
    ],
)
def test_times(encoded: bytes, expected: datetime.datetime) -> None:
    cert = assert_matches_cryptography(make_cert(not_before=encoded, not_after=encoded))
    assert cert.not_before == cert.not_after == expected


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(
        min_value=datetime.datetime(1950, 1, 1),
        max_value=datetime.datetime(9999, 12, 31),
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=UTC))
)
def test_builder_times_either_side_of_2050(moment: datetime.datetime) -> None:
    # The builder writes UTCTime before 2050 and GeneralizedTime from 2050.
    der = build(simple_name(CN="t"), not_before=moment, not_after=moment)
    cert = assert_matches_cryptography(der)
    assert cert.not_before == cert.not_after == moment


@pytest.mark.parametrize(
    "encoded",
    [
        utc_time("2401010000Z"),  # no seconds
        utc_time("240101000000+0100"),  # offset instead of Z
        utc_time("240101000000"),
        utc_time("+40101000000Z"),  # int() would take these
        utc_time(" 40101000000Z"),
        utc_time("240230000000Z"),  # 30 February
        utc_time("241301000000Z"),
        utc_time("240101240000Z"),
        utc_time("240101000060Z"),
        generalized_time("20240101000000.5Z"),  # fractions (RFC 5280 4.1.2.5.2)
        generalized_time("00000101000000Z"),
        tlv(0x04, b"240101000000Z"),  # not a time type
    ],
)
def test_bad_times(encoded: bytes) -> None:
    with pytest.raises(CertificateParseError):
        parse_certificate(make_cert(not_after=encoded))


# --------------------------------------------------------------------------
# Extensions.
# --------------------------------------------------------------------------


def test_subject_alt_names_of_each_kind() -> None:
    names = x509.SubjectAlternativeName(
        [
            x509.DNSName("mail.example.com"),
            x509.OtherName(x509.ObjectIdentifier("1.3.6.1.5.5.7.8.9"), b"\x0c\x01a"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("2001:db8:0:0:0:0:0:1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DirectoryName(simple_name(CN="dir")),
            x509.RFC822Name("postmaster@example.com"),
            x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
            x509.UniformResourceIdentifier("https://example.com/a?b=c"),
            x509.DNSName("*.example.com"),
        ]
    )
    cert = assert_matches_cryptography(build(simple_name(CN="s"), extensions=(names,)))
    assert cert.subject_alt_names == (
        "DNS:mail.example.com",
        "IP:127.0.0.1",
        "IP:2001:db8::1",
        "IP:::1",
        "email:postmaster@example.com",
        "URI:https://example.com/a?b=c",
        "DNS:*.example.com",
    )


def _points(*points: x509.DistributionPoint) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(list(points))


def _uri(value: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(value)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param(
            _points(
                x509.DistributionPoint(
                    [_uri("http://crl.test/a.crl")], None, None, None
                )
            ),
            ("http://crl.test/a.crl",),
            id="one",
        ),
        pytest.param(
            _points(
                x509.DistributionPoint(
                    [
                        _uri("http://crl.test/a.crl"),
                        x509.DirectoryName(simple_name(CN="CRL1")),
                        _uri("ldap://ldap.test/cn=CRL1?certificateRevocationList"),
                    ],
                    None,
                    None,
                    None,
                )
            ),
            (
                "http://crl.test/a.crl",
                "ldap://ldap.test/cn=CRL1?certificateRevocationList",
            ),
            id="several-uris-and-a-directory-name",
        ),
        pytest.param(
            _points(
                x509.DistributionPoint(
                    [_uri("http://one.test/1.crl")], None, None, None
                ),
                x509.DistributionPoint(
                    None,
                    x509.RelativeDistinguishedName(
                        [x509.NameAttribute(NameOID.COMMON_NAME, "CRL2")]
                    ),
                    None,
                    None,
                ),
                x509.DistributionPoint(
                    None,
                    None,
                    frozenset({x509.ReasonFlags.key_compromise}),
                    [_uri("http://issuer.test/")],
                ),
                x509.DistributionPoint(
                    [x509.DNSName("not-a-uri.test"), _uri("http://two.test/2.crl")],
                    None,
                    frozenset({x509.ReasonFlags.ca_compromise}),
                    [x509.DirectoryName(simple_name(CN="Issuer"))],
                ),
            ),
            ("http://one.test/1.crl", "http://two.test/2.crl"),
            id="several-points-relative-and-issuer-names",
        ),
    ],
)
def test_crl_distribution_points(
    points: x509.CRLDistributionPoints, expected: tuple[str, ...]
) -> None:
    cert = assert_matches_cryptography(build(simple_name(CN="c"), extensions=(points,)))
    assert cert.crl_distribution_points == expected


def test_v1_certificate_without_extensions() -> None:
    der = make_cert(version=None, serial=integer(0x1234))
    assert x509.load_der_x509_certificate(der).version == x509.Version.v1
    cert = assert_matches_cryptography(der)
    assert cert.subject_alt_names == cert.crl_distribution_points == ()
    assert cert.serial_number == 0x1234


def test_v2_unique_ids_are_skipped() -> None:
    ids = tlv(0x81, b"\x00\x01\x02") + tlv(0x82, b"\x04\xf0")
    # cryptography reads no v2 certificates; unique IDs may appear in v3 too.
    san = x509.SubjectAlternativeName([x509.DNSName("a.test")]).public_bytes()
    assert_matches_cryptography(
        make_cert(unique_ids=ids, extensions=[extension(SAN, san)])
    )
    for unique_ids in (ids, tlv(0x82, b"\x00\x07"), tlv(0x81, b"\x00")):
        v2 = parse_certificate(make_cert(version=1, unique_ids=unique_ids))
        assert v2.subject.get("CN") == ["example"]


def test_unknown_and_critical_extensions() -> None:
    san = x509.SubjectAlternativeName([x509.DNSName("a.test")]).public_bytes()
    der = make_cert(
        extensions=[
            extension("1.3.6.1.4.1.99999.1", b"\xff\x00 not DER at all", critical=True),
            extension(SAN, san, critical=True),
            extension("2.5.29.19", seq()),  # basicConstraints
        ]
    )
    assert parse_certificate(der).subject_alt_names == ("DNS:a.test",)


def test_antivirus_issuer() -> None:
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Avast Software s.r.o."),
            x509.NameAttribute(
                NameOID.ORGANIZATIONAL_UNIT_NAME,
                "generated by Avast Antivirus for SSL/TLS scanning",
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, "Avast Web/Mail Shield Root"),
        ]
    )
    root = assert_matches_cryptography(build(root_name))
    leaf_der = build(simple_name(CN="smtp.example.com"), issuer=root_name, serial=7)
    leaf = assert_matches_cryptography(leaf_der)
    assert root.is_self_issued and not leaf.is_self_issued
    assert leaf.issuer == root.subject
    assert leaf.issuer.get("CN") == ["Avast Web/Mail Shield Root"]
    assert str(leaf.issuer) == (
        "CN=Avast Web/Mail Shield Root,"
        "OU=generated by Avast Antivirus for SSL/TLS scanning,"
        "O=Avast Software s.r.o.,C=CZ"
    )


def test_trustme_issuer_with_comma() -> None:
    ca = trustme.CA(
        organization_name="ESET, spol. s r.o.", organization_unit_name="SSL"
    )
    pem = ca.issue_cert("mail.example.test").cert_chain_pems[0].bytes().decode()
    cert = assert_matches_cryptography(ssl.PEM_cert_to_DER_cert(pem))
    assert cert.issuer.get("O") == ["ESET, spol. s r.o."]
    assert "O=ESET\\, spol. s r.o." in str(cert.issuer)
    assert cert.subject_alt_names == ("DNS:mail.example.test",)


def test_certificate_from_a_tls_handshake() -> None:
    """The DER that ssl hands out with CERT_NONE, from a real handshake."""
    ca = trustme.CA(organization_name="smtpcore", organization_unit_name="handshake")
    leaf = ca.issue_cert("mail.example.test", "127.0.0.1", "::1", "pm@example.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    server_errors: list[BaseException] = []

    def serve(sock: socket.socket) -> None:
        try:
            with server_context.wrap_socket(sock, server_side=True) as tls:
                tls.sendall(b"x")
        except (OSError, ssl.SSLError) as exc:  # reported to the main thread
            server_errors.append(exc)

    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(5)
    client_sock.settimeout(5)
    thread = threading.Thread(target=serve, args=(server_sock,))
    thread.start()
    try:
        with client_context.wrap_socket(client_sock) as tls:
            der = tls.getpeercert(binary_form=True)
            assert tls.recv(1) == b"x"
    finally:
        thread.join(5)
        server_sock.close()
    assert not server_errors
    assert der is not None
    cert = assert_matches_cryptography(der)
    assert cert.subject_alt_names == (
        "DNS:mail.example.test",
        "IP:127.0.0.1",
        "IP:::1",
        "email:pm@example.test",
    )
    assert cert.issuer.get("OU") == ["handshake"]


# --------------------------------------------------------------------------
# Malformed input: only CertificateParseError, with an offset.
# --------------------------------------------------------------------------


def test_truncation_at_every_offset() -> None:
    der = trustme_leaf_der()
    assert parse_certificate(der).subject_alt_names  # whole: fine
    for end in range(len(der)):
        with pytest.raises(CertificateParseError) as caught:
            parse_certificate(der[:end])
        assert 0 <= caught.value.offset <= end


@pytest.mark.parametrize("extra", [b"\x00", b"\x30\x00", trustme_leaf_der()])
def test_trailing_data(extra: bytes) -> None:
    der = trustme_leaf_der()
    with pytest.raises(CertificateParseError, match="after Certificate") as caught:
        parse_certificate(der + extra)
    assert caught.value.offset == len(der)


def test_bytes_like_input() -> None:
    der = trustme_leaf_der()
    assert parse_certificate(bytearray(der)) == parse_certificate(memoryview(der))
    with pytest.raises(TypeError):
        parse_certificate(der.hex())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message", "offset"),
    [
        (b"", "missing Certificate", 0),
        (b"\x30", "no length octets", 0),
        (b"\x30\x80\x00\x00", "indefinite length", 1),
        (b"\x30\x85\x00\x00\x00\x00\x01\x00", "length of 5 octets", 1),
        (b"\x30\x81\x01\x00", "minimal", 1),
        (b"\x30\x82\x00\x81" + b"\x00" * 0x81, "minimal", 1),
        (b"\x30\x83\x01", "truncated length", 1),
        (b"\x30\x03\x02\x01", "runs past", 0),
        (b"\x30\x04\x02\x05\x00\x00", "runs past", 2),
        (b"\x1f\x81\x00\x00", "high tag number", 0),
        (b"\x31\x00", "where Certificate", 0),
        (b"\x30\x00", "missing tbsCertificate", 2),
    ],
)
def test_framing_errors(data: bytes, message: str, offset: int) -> None:
    with pytest.raises(CertificateParseError, match=message) as caught:
        parse_certificate(data)
    assert caught.value.offset == offset
    assert f"offset {offset}" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, SmtpCoreError)


def _nested(levels: int) -> bytes:
    inner = seq(oid("1.2.840.10045.2.1"))
    for _ in range(levels):
        inner = seq(inner)
    return inner


def test_nesting_depth_is_bounded() -> None:
    # Certificate, tbsCertificate and the key info itself are three levels.
    assert parse_certificate(make_cert(spki=_nested(MAX_DEPTH - 3)))
    with pytest.raises(CertificateParseError, match="nested"):
        parse_certificate(make_cert(spki=_nested(MAX_DEPTH - 2)))
    with pytest.raises(CertificateParseError, match="nested"):
        parse_certificate(make_cert(spki=_nested(20_000)))  # no RecursionError


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([extension(SAN, seq()), extension(SAN, seq())], "duplicate extension"),
        ([extension(SAN, seq(tlv(0x87, b"\x7f\x00\x00")))], "3-octet IP"),
        ([extension(SAN, seq(tlv(0x89, b"x")))], "not a GeneralName"),
        ([extension(SAN, seq(tlv(0x82, b"a")) + b"\x00\x00")], "after SubjectAltName"),
        ([extension(SAN, tlv(0x04, b""))], "SubjectAltName"),
        (
            [extension(CRL_DP, seq(seq(tlv(0xA0, tlv(0xA2, b"")))))],
            "DistributionPointName",
        ),
        ([extension(CRL_DP, seq(seq(tlv(0x81, b"\x00"), tlv(0xA0, b""))))], "after"),
        ([seq(oid(SAN), tlv(0x01, b"\xff\xff"), tlv(0x04, seq()))], "BOOLEAN"),
        ([seq(oid(SAN), tlv(0x04, seq()), tlv(0x04, seq()))], "after Extension"),
        ([seq(tlv(0x06, b""), tlv(0x04, seq()))], "OID"),
        ([seq(tlv(0x06, b"\x55\x80\x1d"), tlv(0x04, seq()))], "non-minimal OID"),
        ([seq(tlv(0x06, b"\x55\x1d\x91"), tlv(0x04, seq()))], "truncated OID"),
        ([seq(tlv(0x06, b"\x81" * 25 + b"\x01"), tlv(0x04, seq()))], "arc too long"),
    ],
)
def test_malformed_extensions(extensions: list[bytes], message: str) -> None:
    with pytest.raises(CertificateParseError, match=message):
        parse_certificate(make_cert(extensions=extensions))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 3}, "unknown certificate version"),
        ({"version": 256}, "version over 1 octets"),
        ({"serial": tlv(0x02, b"")}, "empty INTEGER"),
        ({"subject": seq(tlv(0x31, b""))}, "empty RelativeDistinguishedName"),
        ({"issuer": seq(seq(seq(oid("2.5.4.3"))))}, "where RelativeDistinguished"),
        ({"issuer": seq(tlv(0x31, seq(oid("2.5.4.3"))))}, "missing attribute value"),
        ({"unique_ids": tlv(0x83, b"\x00")}, "after tbsCertificate"),
    ],
)
def test_malformed_tbs_fields(kwargs: dict[str, int | bytes], message: str) -> None:
    with pytest.raises(CertificateParseError, match=message):
        parse_certificate(make_cert(**kwargs))  # type: ignore[arg-type]


def _parse_or_error(data: bytes) -> Certificate | CertificateParseError:
    """Anything other than these two escaping fails the calling test."""
    try:
        return parse_certificate(data)
    except CertificateParseError as exc:
        return exc


@settings(max_examples=200)
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _parse_or_error(data)


@settings(max_examples=200)
@given(st.data())
def test_random_mutations_of_a_real_certificate(data: st.DataObject) -> None:
    der = bytearray(trustme_leaf_der())
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        position = data.draw(st.integers(0, len(der) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            der[position] = data.draw(st.integers(0, 255))
        elif action == "insert":
            der[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del der[position]
    _parse_or_error(bytes(der))


_PRIMITIVE_TAGS = [0x01, 0x02, 0x04, 0x06, 0x0C, 0x16, 0x17, 0x1E, 0x81, 0x82, 0x86]
_CONSTRUCTED_TAGS = [0x30, 0x31, 0xA0, 0xA1, 0xA2, 0xA4]
der_trees = st.recursive(
    st.builds(tlv, st.sampled_from([*_PRIMITIVE_TAGS, 0x87]), st.binary(max_size=17)),
    lambda children: st.builds(
        lambda tag, kids: tlv(tag, b"".join(kids)),
        st.sampled_from(_CONSTRUCTED_TAGS),
        st.lists(children, max_size=4),
    ),
    max_leaves=16,
)


@settings(max_examples=200)
@given(st.sampled_from([SAN, CRL_DP]), der_trees)
def test_random_extension_contents(kind: str, value: bytes) -> None:
    # Well-framed but arbitrary contents reach the SAN and CRL DP parsers,
    # which random bytes at the top level almost never do.  Where both
    # readers accept the contents, they must agree.
    der = make_cert(extensions=[extension(kind, value)])
    result = _parse_or_error(der)
    if isinstance(result, CertificateParseError):
        return
    try:
        theirs = x509.load_der_x509_certificate(der)
        expected = (their_alt_names(theirs), their_crl_uris(theirs))
    except ValueError:
        return
    assert (result.subject_alt_names, result.crl_distribution_points) == expected
