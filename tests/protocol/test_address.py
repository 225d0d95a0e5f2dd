"""Tests for smtpcore.protocol.address: RFC 5321 / 6531 mailbox checks."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore.protocol.address import (
    MAX_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    encode_mailbox,
    mailbox_problem,
    needs_smtputf8,
)

ATEXT = "abcXYZ0189!#$%&'*+-/=?^_`{|}~"

VALID = [
    "user@example.com",
    "a@b",
    "first.last@example.com",
    "user+tag@example.com",
    "user+tag+more@sub.example.co.uk",
    "!#$%&'*+-/=?^_`{|}~@example.com",
    "a@1.2.3.4.example",
    "a@xn--bcher-kva.de",
    "a@a-b--c.com",
    '"john doe"@example.com',
    '"<a@b.com> SIZE=1"@example.com',
    '"a>b"@example.com',
    '"a@b"@example.com',
    '"quote\\"inside"@example.com',
    '"back\\\\slash"@example.com',
    '"escaped\\ space"@example.com',
    '""@example.com',
    '"a.."@example.com',
    "a@[127.0.0.1]",
    "a@[255.255.255.255]",
    "a@[IPv6:::1]",
    "a@[IPv6:2001:db8::1]",
    "a@[ipv6:2001:DB8:0:0:0:0:0:1]",
    "a@[IPv6:::ffff:192.0.2.1]",
    "x" * 64 + "@example.com",
    "a@" + "b" * 63 + ".com",
    "ü@example.com",
    "用户@例子.广告",
    "a@bücher.de",
    "δοκιμή@παράδειγμα.δοκιμή",
    '"ü ö"@example.com',
]

INVALID = [
    ("", "empty"),
    ("userexample.com", 'missing "@"'),
    ('"quoted"', 'missing "@"'),
    ("a@b@example.com", 'more than one "@"'),
    ("@example.com", "empty local part"),
    ("user@", "empty domain"),
    (".user@example.com", 'starts with "."'),
    ("user.@example.com", 'ends with "."'),
    ("us..er@example.com", '".."'),
    ("user@.example.com", 'domain starts with "."'),
    ("user@example.com.", 'domain ends with "."'),
    ("user@example..com", '".."'),
    ("user@-example.com", 'starts with "-"'),
    ("user@example-.com", 'ends with "-"'),
    ("user@example.-com", 'starts with "-"'),
    ("x" * 65 + "@example.com", "local part longer than 64 octets"),
    ("ü" * 33 + "@example.com", "local part longer than 64 octets"),
    ("a@" + ".".join(["b" * 63] * 4 + ["b"]), "domain longer than 255 octets"),
    ("a@" + "b" * 64 + ".com", "label longer than 63 octets"),
    ("a\r@example.com", "line break"),
    ("a\n@example.com", "line break"),
    ("a\r\n@example.com", "line break"),
    ("a@exa\nmple.com", "line break"),
    ('"a\r\nb"@example.com', "line break"),
    ("a\x00@example.com", "NUL"),
    ('"a\x00"@example.com', "NUL"),
    ("a@example.com\x00", "NUL"),
    ("a\u2028@example.com", "line break"),
    ("a\x85@example.com", "line break"),
    ("a\x1b@example.com", "control character"),
    ('"\x7f"@example.com', "control character"),
    ("a\ud800@example.com", "surrogate"),
    ("a@b.com> SIZE=1", '"<" or ">"'),
    ("a@b.com>SIZE=1", '"<" or ">"'),
    ("<a@b.com>", '"<" or ">"'),
    ('"x"@b.com> SIZE=1', '"<" or ">"'),
    ("a b@example.com", "whitespace"),
    ("a@example.com SIZE=1", "whitespace"),
    ("a\t@example.com", "control character"),
    ("a\u00a0b@example.com", "whitespace"),
    ("a@exa mple.com", "whitespace"),
    ('"a"b@example.com', "after the quoted local part"),
    ('"unterminated@example.com', "unterminated"),
    ('"a\\"@example.com', "unterminated"),
    ('"a\\ü"@example.com', "backslash before a non-ASCII"),
    ('a"b"@example.com', "invalid character"),
    ("a(comment)@example.com", "invalid character"),
    ("a,b@example.com", "invalid character"),
    ("a@exam_ple.com", "invalid character"),
    ("a@[1.2.3.256]", "invalid IPv4"),
    ("a@[1.2.3]", "invalid IPv4"),
    ("a@[01.2.3.4]", "invalid IPv4"),
    ("a@[IPv6:1.2.3.4]", "invalid IPv6"),
    ("a@[IPv6:::g]", "invalid IPv6"),
    ("a@[IPv6:fe80::1%eth0]", "zone index"),
    ("a@[::1]", "unknown address literal tag"),
    ("a@[x-tag:abc]", "unknown address literal tag"),
    ("a@[1.2.3.4", 'without closing "]"'),
    ("a@[", 'without closing "]"'),
    ("a@[]", "invalid IPv4"),
    ("a@[\uff11.2.3.4]", "non-ASCII"),
]


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses_are_accepted(address: str) -> None:
    assert mailbox_problem(address) is None


@pytest.mark.parametrize(("address", "reason"), INVALID)
def test_invalid_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    problem = mailbox_problem(address)
    assert problem is not None
    assert reason in problem


def test_limits_are_the_rfc_values() -> None:
    assert (MAX_LOCAL_PART, MAX_DOMAIN, MAX_PATH) == (64, 255, 256)


def test_path_limit_counts_the_angle_brackets() -> None:
    # 64 + 1 + 189 = 254 octets, plus "<" and ">" makes the 256 of the path.
    domain = ".".join(["d" * 63, "d" * 63, "d" * 61])
    fits = "x" * 64 + "@" + domain
    assert len(fits) == MAX_PATH - 2
    assert mailbox_problem(fits) is None
    longer = fits + "d"
    problem = mailbox_problem(longer)
    assert problem is not None
    assert "254 octets" in problem


def test_lengths_count_utf8_octets_not_characters() -> None:
    # 32 two-octet characters are 64 octets: the limit exactly.
    assert mailbox_problem("é" * 32 + "@example.com") is None
    assert mailbox_problem("é" * 32 + "a@example.com") is not None
    # A 32-character label of two-octet characters is 64 octets: too long.
    assert mailbox_problem("a@" + "é" * 31 + ".com") is None
    assert mailbox_problem("a@" + "é" * 32 + ".com") is not None


# ---------------------------------------------------------------- SMTPUTF8


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("user@example.com", False),
        ("user@bücher.de", False),
        ("üser@example.com", True),
        ('"ü"@example.com', True),
        ('"a@ü"@example.com', True),
        ("ü", True),
        ("plain", False),
    ],
)
def test_needs_smtputf8_looks_at_the_local_part_only(
    address: str, expected: bool
) -> None:
    assert needs_smtputf8(address) is expected


def test_encode_ascii_is_unchanged_either_way() -> None:
    for address in ("user@example.com", '"john doe"@example.com', "a@[IPv6:::1]"):
        assert encode_mailbox(address, smtputf8=False) == address.encode("ascii")
        assert encode_mailbox(address, smtputf8=True) == address.encode("ascii")


def test_encode_with_smtputf8_is_utf8() -> None:
    assert encode_mailbox("üser@bücher.de", smtputf8=True) == (
        "üser@bücher.de".encode()
    )


def test_encode_without_smtputf8_idna_encodes_the_domain() -> None:
    assert encode_mailbox("user@bücher.de", smtputf8=False) == (
        b"user@xn--bcher-kva.de"
    )
    assert encode_mailbox("user@Bücher.example.de", smtputf8=False) == (
        b"user@xn--bcher-kva.example.de"
    )
    assert encode_mailbox("a@münchen.例子", smtputf8=False) == (
        b"a@xn--mnchen-3ya.xn--fsqu00a"
    )


def test_encode_without_smtputf8_refuses_a_utf8_local_part() -> None:
    with pytest.raises(ValueError, match="needs SMTPUTF8, which the server does not"):
        encode_mailbox("üser@example.com", smtputf8=False)


def test_encode_refuses_a_domain_idna_cannot_encode() -> None:
    # U+3002 is a label separator to the IDNA codec but a plain character to
    # the RFC 6531 grammar: encoding must not silently add a label.
    with pytest.raises(ValueError, match="IDNA"):
        encode_mailbox("a@b\u3002c", smtputf8=False)
    # A 60-octet UTF-8 label whose ACE form would exceed 63 octets.
    with pytest.raises(ValueError, match="IDNA"):
        encode_mailbox("a@ü" + "a" * 58 + ".de", smtputf8=False)


def test_encode_checks_the_idna_form_again() -> None:
    # Nameprep maps the fullwidth low line to "_", which no label may hold.
    assert mailbox_problem("a@\uff3fabc.de") is None
    with pytest.raises(ValueError, match="invalid character '_'"):
        encode_mailbox("a@\uff3fabc.de", smtputf8=False)
    # 232 octets of UTF-8 fit the path; the A-labels are 24 octets longer.
    address = "a" * 20 + "@" + ".".join(["ü" + "a" * 50] * 4)
    assert mailbox_problem(address) is None
    assert encode_mailbox(address, smtputf8=True) == address.encode("utf-8")
    with pytest.raises(ValueError, match="longer than 254 octets"):
        encode_mailbox(address, smtputf8=False)


@pytest.mark.parametrize(("address", "reason"), INVALID[:40])
def test_encode_refuses_invalid_addresses(address: str, reason: str) -> None:
    for utf8 in (False, True):
        with pytest.raises(ValueError, match="invalid mailbox"):
            encode_mailbox(address, smtputf8=utf8)


def test_encode_keeps_a_quoted_local_part_verbatim() -> None:
    address = '"<a@b.com> SIZE=1"@example.com'
    assert encode_mailbox(address, smtputf8=False) == address.encode()


# ---------------------------------------------------------------- properties

atoms = st.text(alphabet=ATEXT + "éü中", min_size=1, max_size=8)
LET_DIG = "abcxyzABCXYZ0189üé中"
# sub-domain = Let-dig [Ldh-str]: hyphens only inside.
labels = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(LET_DIG),
    st.text(alphabet=LET_DIG + "-", max_size=10),
    st.sampled_from(["", *LET_DIG]),
).filter(lambda label: not label.endswith("-"))


@settings(max_examples=200)
@given(
    local=st.lists(atoms, min_size=1, max_size=4).map(".".join),
    domain=st.lists(labels, min_size=1, max_size=4).map(".".join),
)
def test_any_address_built_from_the_grammar_is_accepted(
    local: str, domain: str
) -> None:
    address = f"{local}@{domain}"
    assert mailbox_problem(address) is None
    assert encode_mailbox(address, smtputf8=True) == address.encode("utf-8")


@settings(max_examples=200)
@given(
    qtext=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(
            lambda c: c not in '"\\'
        ),
        max_size=20,
    )
)
def test_any_quoted_local_part_is_accepted(qtext: str) -> None:
    address = f'"{qtext}"@example.com'
    assert mailbox_problem(address) is None


@settings(max_examples=200)
@given(
    before=st.text(max_size=30),
    bad=st.sampled_from(["\r", "\n", "\x00", "\r\n"]),
    after=st.text(max_size=30),
)
def test_cr_lf_nul_anywhere_are_refused(before: str, bad: str, after: str) -> None:
    address = before + bad + after
    assert mailbox_problem(address) is not None
    with pytest.raises(ValueError):
        encode_mailbox(address, smtputf8=True)


@settings(max_examples=200)
@given(
    before=st.text(max_size=30).filter(lambda s: '"' not in s),
    after=st.text(max_size=30),
    angle=st.sampled_from(["<", ">"]),
)
def test_an_unquoted_angle_bracket_is_refused(
    before: str, after: str, angle: str
) -> None:
    # Without any DQUOTE before it, the bracket cannot be inside a quoted
    # local part, so it would end the path on the wire.
    assert mailbox_problem(before + angle + after) is not None


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_and_agrees_with_encode(text: str) -> None:
    problem = mailbox_problem(text)
    if problem is None:
        assert encode_mailbox(text, smtputf8=True) == text.encode("utf-8")
    else:
        with pytest.raises(ValueError):
            encode_mailbox(text, smtputf8=True)


# ---------------------------------------------------------------- hostile input

HOSTILE = [
    '"' + "\\" * 100_000,
    '"' + "\\a" * 50_000,
    '"' + "a" * 100_000,
    '"' + "\\" * 100_001 + '"@a',
    "a." * 50_000 + "@example.com",
    "a" * 100_000 + "@" + "b." * 50_000,
    "a@" + "a-" * 50_000,
    "a@" + "a" * 100_000,
    "a@[" + "1." * 50_000 + "]",
    "a@[IPv6:" + ":" * 100_000 + "]",
    "!" * 100_000 + "(",
    "a" * 100_000,
    "a@" + "b" * 100_000 + "@",
]


@pytest.mark.parametrize("address", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_100_kb_inputs_are_refused_quickly(address: str) -> None:
    started = time.perf_counter()
    assert mailbox_problem(address) is not None
    # Linear time is milliseconds; catastrophic backtracking would be
    # seconds to forever.  The bound is loose so slow CI machines pass.
    assert time.perf_counter() - started < 1.0
