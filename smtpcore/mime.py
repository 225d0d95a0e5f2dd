"""Message building on the stdlib :mod:`email` package.

:func:`build_message` turns our :class:`~smtpcore.models.EmailMessage` into
wire bytes (CRLF line ends, no line over 998 octets, 7-bit clean);
:func:`prepare_stdlib_message` takes a stdlib message as given, the way
``smtplib.SMTP.send_message`` does.  Both return a :class:`BuiltMessage`, the
bytes plus the envelope.  Dot-stuffing and the DATA terminator belong to
:mod:`smtpcore.protocol.data`.
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import mimetypes
import os
import re
import secrets
import unicodedata
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage as StdlibEmailMessage
from email.message import Message

from smtpcore.errors import ArgumentError
from smtpcore.mimestream import StreamedMessage, split_skeleton, streamed_size
from smtpcore.models import (
    AttachmentPath,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
)
from smtpcore.protocol.data import long_line_start
from smtpcore.protocol.transaction import InMemoryMessage

__all__ = [
    "MAX_LINE_OCTETS",
    "BuiltMessage",
    "Prepared",
    "build_message",
    "check_line_lengths",
    "dedupe_addresses",
]

# RFC 5322 2.1.1 / RFC 5321 4.5.3.1.6: a line is at most 998 octets plus CRLF.
MAX_LINE_OCTETS = 998

# email.policy.SMTP with one change.  refold_source="none" only affects header
# values stored as raw strings (``set_raw``): the address fields and a
# subject that needs our own encoded words, all folded by us.  The default
# "long" would re-parse such a value when a line passes 78 characters,
# decode our encoded words and write the decoded text back out, undoing the
# encoding.  Values assigned the ordinary way become header objects, which
# fold themselves under either setting.
_POLICY = email.policy.SMTP.clone(refold_source="none")
# RFC 6532: headers in UTF-8, for addresses whose local part is not ASCII.
# Such a message can only travel in an SMTPUTF8 session (RFC 6531); the
# transaction refuses it with 553 5.6.7 before MAIL when the server does not
# offer SMTPUTF8.
_UTF8_POLICY = _POLICY.clone(utf8=True)

# What str.splitlines() splits at, plus NUL.  CR, LF and NUL would let a value
# inject headers (RFC 5322 2.2 forbids them in field bodies); the stdlib
# refuses the rest with a misleading message, so we name them all up front.
_HEADER_BREAKERS = re.compile(r"[\x00\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

# Text the stdlib's header writer would emit in a form that does not read
# back as written; we write it as RFC 2047 encoded words ourselves.
# - "=?": RFC 2047 6.1 has readers decode "=?charset?enc?text?=" wherever it
#   may be an encoded word (the stdlib's reader even glued to other text or
#   inside a quoted string), but the stdlib's writer leaves such text as is.
# - Control characters: RFC 5322 3.2.3 to 3.2.5 keep them out of atoms,
#   quoted strings and unstructured text (only the obsolete syntax has
#   them); the stdlib's writer emits them raw and readers strip some of them.
_NEEDS_ENCODED_WORDS = re.compile(r"=\?|[\x01-\x08\x0e-\x1f\x7f]")

# RFC 5322 2.1.1: header lines SHOULD stay within 78 characters.
_LINE_WIDTH = 78
_FOLD = "\r\n "
# A space between two non-blanks: a fold there leaves no line of blanks
# only, which RFC 5322 3.2.2 forbids.
_FOLDABLE_SPACE = re.compile(r"(?<=\S) (?=\S)")

# RFC 2047 2: an encoded word is at most 75 characters.  39 octets of UTF-8
# become 52 base64 characters, 64 with "=?utf-8?b?" and "?=", which leaves
# room for "Subject: " or "From: " on the first line.
_ENCODED_WORD_OCTETS = 39


# RFC 2045 6.7 rules 2 and 3: the octets quoted-printable writes as themselves
# (printable ASCII except "=", plus space, tab and line ends); every other
# octet costs three characters.
_QP_LITERAL = bytes(range(0x20, 0x7F)).replace(b"=", b"") + b"\t\n"

# RFC 5322 3.6.4: id-right = dot-atom-text / no-fold-literal.
_DOT_ATOM_TEXT = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z"
)
_NO_FOLD_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]*\]\Z")

_BODY_SUBTYPES: dict[object, str] = {
    EmailMessageBodyFormat.TEXT: "plain",
    EmailMessageBodyFormat.HTML: "html",
}

# "Priority" and "Importance" are RFC 2156 (MIXER) fields, registered by
# RFC 4021; "X-Priority" is the de facto field Outlook and others read.
# NORMAL writes none: absence already means normal to every reader.
_PRIORITY_HEADERS: dict[object, tuple[tuple[str, str], ...]] = {
    EmailMessagePriority.NORMAL: (),
    EmailMessagePriority.URGENT: (
        ("Priority", "urgent"),
        ("X-Priority", "1 (Highest)"),
        ("Importance", "high"),
    ),
    EmailMessagePriority.NON_URGENT: (
        ("Priority", "non-urgent"),
        ("X-Priority", "5 (Lowest)"),
        ("Importance", "low"),
    ),
}


# Attachments this large are streamed from their files while the message is
# sent instead of being read into memory first (see smtpcore.mimestream).
STREAM_THRESHOLD = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BuiltMessage(InMemoryMessage):
    """A message ready to send, with its envelope.

    Attributes:
        data: the RFC 5322 message: CRLF line ends, no line over 998
            octets; 7-bit clean from :func:`build_message`, encoded as the
            caller chose from :func:`prepare_stdlib_message`.
        sender: the envelope sender (MAIL FROM).
        recipients: the envelope recipients (RCPT TO), duplicates removed.
        message_id: the Message-ID header value with its angle brackets, or
            None when the message has none.
    """

    # The fields (data, sender, recipients, message_id) and the size,
    # eight_bit and chunks() the transaction reads come from InMemoryMessage.


# What preparing a message gives: in memory, or with attachments streamed.
Prepared = BuiltMessage | StreamedMessage


# --------------------------------------------------------------------------
# Our model -> bytes.
# --------------------------------------------------------------------------


def build_message(
    message: EmailMessage,
    *,
    date: datetime | None = None,
    stream_threshold: int | None = STREAM_THRESHOLD,
) -> Prepared:
    """Build the wire form of one of our messages.

    Headers: From, To, Cc (if any), Subject (unless None), Date, Message-ID,
    MIME-Version, the priority headers, the content headers.  Bcc addresses
    are only in the envelope (RFC 5322 3.6.3 allows that, and it is the only
    way no recipient sees them).  The body is one UTF-8 ``text/plain`` or
    ``text/html`` part, inside ``multipart/mixed`` with attachments.  The
    model should have passed ``validate_message``: the checks here only stop
    values that would corrupt the message.

    Args:
        message: the message to build.
        date: the Date header's value; None means now.  A naive datetime is
            taken as local time.
        stream_threshold: attachments of at least this many octets are not
            read now but streamed from their files while the message is
            sent (a :class:`~smtpcore.mimestream.StreamedMessage`); None
            reads every attachment now.

    Returns:
        The bytes, the envelope (From's address; To, Cc then Bcc, duplicates
        removed, comparing domains case-insensitively) and the Message-ID.

    Raises:
        ArgumentError: (a ``ValueError``) a header value contains a line
            break or NUL, an address cannot be written into a header (a
            non-ASCII local part needs SMTPUTF8, which is not supported yet),
            an attachment's file name contains a line break, the body
            contains a lone surrogate, or a header line would exceed 998
            octets.  ``property_name`` names the offending value.
        FileNotFoundError: an attachment does not exist.
        PermissionError: an attachment cannot be read.
        IsADirectoryError: an attachment is a directory.
    """
    if message.from_ is None:
        raise ArgumentError("from_", "The message has no sender.")
    to = list(message.to or [])
    cc = list(message.cc or [])
    bcc = list(message.bcc or [])
    subtype = _BODY_SUBTYPES.get(message.body_format)
    if subtype is None:
        raise ArgumentError(
            "body_format", f"Unknown body format {message.body_format!r}."
        )
    priority_headers = _PRIORITY_HEADERS.get(message.priority)
    if priority_headers is None:
        raise ArgumentError("priority", f"Unknown priority {message.priority!r}.")

    utf8 = any(
        not (address.address or "").rpartition("@")[0].isascii()
        for address in [message.from_, *to, *cc]
    )
    msg = StdlibEmailMessage(policy=_UTF8_POLICY if utf8 else _POLICY)
    placeholders: dict[bytes, str] = {}
    sender_mailbox = _header_mailbox(message.from_, "from_")
    _set_address_header(msg, "From", [sender_mailbox])
    for field, addresses in (("to", to), ("cc", cc)):
        mailboxes = [
            _header_mailbox(address, f"{field}[{index}]")
            for index, address in enumerate(addresses)
        ]
        if mailboxes:
            _set_address_header(msg, field.title(), mailboxes)
    if message.subject is not None:
        _set_subject(msg, message.subject)
    msg["Date"] = email.utils.format_datetime(_aware(date))
    # Always pass a domain: make_msgid(domain=None) calls socket.getfqdn(),
    # a DNS lookup per message.
    message_id = email.utils.make_msgid(domain=_msgid_domain(sender_mailbox.domain))
    msg["Message-ID"] = message_id
    # Set before set_content(), which would otherwise append it after the
    # content headers.
    msg["MIME-Version"] = "1.0"
    for name, value in priority_headers:
        msg[name] = value

    # One kind of line end; CRLF first, so that it becomes one and not two.
    body = (message.body or "").replace("\r\n", "\n").replace("\r", "\n")
    msg.set_content(body, subtype=subtype, charset="utf-8", cte=_body_cte(body))
    attachments = list(message.attachments or [])
    if attachments:
        # make_mixed() moves the content headers and body into a first
        # subpart, keeping every other header (and its order) on top.
        msg.make_mixed()
        for index, path in enumerate(attachments):
            where = f"attachments[{index}]"
            if (
                stream_threshold is not None
                and os.stat(path).st_size >= stream_threshold
            ):
                # A line no base64 body or MIME header can contain.
                token = b"SMTPCORE-STREAM-" + secrets.token_hex(16).encode()
                placeholders[token] = os.fspath(path)
                msg.attach(_attachment_part(path, where, placeholder=token.decode()))
            else:
                msg.attach(_attachment_part(path, where))

    data = msg.as_bytes()
    # Guaranteed for every body by the encodings chosen above; only an
    # addr-spec longer than any valid one can fail here.
    if not utf8 and not data.isascii():
        raise ArgumentError("message", "The built message is not 7-bit clean.")
    check_line_lengths(data, "message")

    sender = _address_text(message.from_, "from_")
    envelope = [
        _address_text(address, f"{field}[{index}]")
        for field, addresses in (("to", to), ("cc", cc), ("bcc", bcc))
        for index, address in enumerate(addresses)
    ]
    if placeholders:
        segments = split_skeleton(data, placeholders)
        return StreamedMessage(
            sender,
            dedupe_addresses(envelope),
            message_id,
            segments,
            streamed_size(segments),
        )
    return BuiltMessage(
        data, sender, dedupe_addresses(envelope), message_id, checked=True
    )


def _aware(date: datetime | None) -> datetime:
    if date is None:
        return datetime.now().astimezone()
    if date.utcoffset() is None:
        # format_datetime() would write a naive datetime with "-0000", which
        # RFC 5322 3.3 defines as UTC: wrong unless this machine runs on UTC.
        return date.astimezone()
    return date


def _body_cte(body: str) -> str:
    """Pick the Content-Transfer-Encoding for a body with ``\\n`` line ends."""
    # RFC 2045 2.7: "7bit" data has lines of at most 998 octets and no NUL.
    # (A split and map(len) run in C; a regex like [^\n]{999} costs about
    # size x line length.)
    if (
        body.isascii()
        and "\0" not in body
        and max(map(len, body.split("\n"))) <= MAX_LINE_OCTETS
    ):
        return "7bit"
    try:
        raw = body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(
            "body", f"The body contains a lone surrogate at index {exc.start}."
        ) from None
    quoted_size = len(raw) + 2 * len(raw.translate(None, _QP_LITERAL))
    base64_size = (len(raw) + 2) // 3 * 4
    # Quoted-printable stays readable in the source of the message, so it is
    # kept unless base64 is clearly (a tenth or more) shorter, as it is for
    # text in non-Latin scripts where every character costs 6 to 12 octets.
    if base64_size * 10 <= quoted_size * 9:
        return "base64"
    return "quoted-printable"


def _attachment_part(
    path: AttachmentPath, where: str, *, placeholder: str | None = None
) -> StdlibEmailMessage:
    file_path = os.fspath(path)
    if placeholder is None:
        with open(file_path, "rb") as handle:
            data = handle.read()
    else:
        data = b""  # the headers only: the body is streamed in its place
    filename = os.path.basename(file_path)
    _check_header_text(filename, where, "file name")
    content_type, encoding = mimetypes.guess_type(file_path)
    if (
        content_type is None
        # "x.tar.gz" guesses application/x-tar with encoding "gzip": the type
        # of the content once decompressed, not of the bytes we send.
        or encoding is not None
        # RFC 2046 5.1.1 and 5.2.1: multipart and message/rfc822 bodies may
        # not be base64-encoded, and only base64 carries arbitrary bytes.
        or content_type.startswith(("multipart/", "message/"))
    ):
        content_type = "application/octet-stream"
    maintype, _, subtype = content_type.partition("/")
    part = StdlibEmailMessage(policy=_POLICY)
    # Bytes and base64 for every type, text/* included, so that the file
    # arrives octet for octet (no charset guess, no line-end conversion).
    # A non-ASCII file name is written per RFC 2231 by the stdlib.
    part.set_content(
        data,
        maintype,
        subtype,
        cte="base64",
        disposition="attachment",
        filename=filename,
    )
    # EmailMessage.set_content() adds MIME-Version, which RFC 2045 4 wants
    # at the top level only.
    del part["MIME-Version"]
    if "=?" in filename:
        # An ASCII name that looks like an RFC 2047 encoded word would be
        # written as a plain quoted string, which readers decode into
        # another name: the RFC 2231 form says exactly which octets it is.
        del part["Content-Disposition"]
        encoded = urllib.parse.quote(filename, safe="")
        part.set_raw("Content-Disposition", f"attachment; filename*=utf-8''{encoded}")
    if placeholder is not None:
        # A str payload is written as it is: the placeholder line stands
        # where the base64 body will be streamed.
        part.set_payload(placeholder)
    return part


# --------------------------------------------------------------------------
# Headers.
# --------------------------------------------------------------------------


def _check_header_text(value: str, where: str, what: str = "value") -> None:
    found = _HEADER_BREAKERS.search(value)
    if found is not None:
        raise ArgumentError(
            where,
            f"The {what} contains {found.group()!r}; line breaks and NUL "
            "cannot be written into a header.",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(
            where, f"The {what} contains a lone surrogate at index {exc.start}."
        ) from None


def _set_subject(msg: Message, subject: str) -> None:
    _check_header_text(subject, "subject")
    if not subject.isascii() or _NEEDS_ENCODED_WORDS.search(subject):
        # Our own encoded words and folding: the stdlib's folder may fold at
        # a run of white space between two encoded words, which RFC 2047 6.2
        # readers then drop; inside our words the white space is encoded.
        msg.set_raw("Subject", _fold("Subject", _encoded_words(subject)))
    else:
        msg["Subject"] = subject


def _set_address_header(msg: Message, field: str, mailboxes: list[Address]) -> None:
    # We fold address fields ourselves.  The stdlib's folder can put the
    # comma between two mailboxes into an encoded word ("=?utf-8?q?=2C?=")
    # when a display name needing encoding ends near column 78, which merges
    # the two mailboxes into one for every reader.  The stdlib still parses
    # each addr-spec and quotes ASCII display names (headerregistry.Address).
    tokens: list[str] = []
    for position, box in enumerate(mailboxes):
        words = _mailbox_tokens(box)
        if position < len(mailboxes) - 1:
            words[-1] += ","
        tokens.extend(words)
    msg.set_raw(field, _fold(field, tokens))


def _mailbox_tokens(box: Address) -> list[str]:
    """A mailbox as words that may be folded between (RFC 5322 3.4)."""
    name = box.display_name
    address = f"<{box.addr_spec}>"
    if not name:
        return [box.addr_spec]
    if name.isascii() and not _NEEDS_ENCODED_WORDS.search(name):
        # str(Address) is the phrase, quoted when it has specials (RFC 5322
        # 3.2.4), then " <addr-spec>".  Folding at its single spaces keeps
        # it readable, and unfolding gives back the same text (RFC 5322
        # 2.2.3), inside a quoted string too.
        phrase = str(box).removesuffix(" " + address)
        words = _FOLDABLE_SPACE.split(phrase)
        if all(len(word) < _LINE_WIDTH for word in words):
            return [*words, address]
    # RFC 2047 5 (3): a phrase may consist of encoded words.
    return [*_encoded_words(name), address]


def _fold(field: str, words: list[str]) -> str:
    """Join words with spaces, starting a continuation line (RFC 5322 2.2.3)
    before a word that would pass column 78."""
    lines: list[str] = []
    line = ""
    width = len(field) + 2  # "Field: "
    for word in words:
        if line and width + 1 + len(word) > _LINE_WIDTH:
            lines.append(line)
            line, width = word, 1 + len(word)
        elif line:
            line += " " + word
            width += 1 + len(word)
        else:
            line = word
            width += len(word)
    lines.append(line)
    return _FOLD.join(lines)


def _header_mailbox(address: EmailAddress, where: str) -> Address:
    addr = _address_text(address, where)
    _check_header_text(addr, f"{where}.address", "address")
    name = address.name or ""
    _check_header_text(name, f"{where}.name", "display name")
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    if not domain.isascii() and local.isascii():
        # Without SMTPUTF8 the domain goes in its A-label form (IDNA); an
        # address that needs SMTPUTF8 anyway keeps its U-labels (RFC 6532).
        addr = f"{local}@{_a_label_domain(domain, f'{where}.address')}"
    try:
        if not local.isascii():
            # The stdlib's addr-spec parser refuses RFC 6532 local parts;
            # the address itself passed our RFC 6531 grammar already.
            return Address(display_name=name, username=local, domain=domain)
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError, AttributeError) as exc:
        # The stdlib's parser raises ValueError for most bad addresses, but
        # IndexError for "" and AttributeError for "a@[1.2.3.4".
        raise ArgumentError(
            f"{where}.address", f"{addr!r} cannot be written into a header: {exc}"
        ) from None


def _address_text(address: EmailAddress, where: str) -> str:
    if address is None or address.address is None:
        raise ArgumentError(f"{where}.address", "The address is missing.")
    return address.address


def _a_label_domain(domain: str, where: str) -> str:
    """RFC 5890 A-label form of a non-ASCII domain, for use in headers."""
    # The stdlib codec implements IDNA 2003, whose mapping differs from IDNA
    # 2008 for a few characters ("faß.de" becomes "fass.de", a different
    # domain).  Accept the conversion only when it decodes back to the same
    # name, so that we never address a different domain than the one given.
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
        back = ascii_domain.encode("ascii").decode("idna")
    except UnicodeError:
        back, ascii_domain = "", ""
    if not ascii_domain or back != unicodedata.normalize("NFC", domain).lower():
        raise ArgumentError(
            where,
            f"The domain {domain!r} has no unambiguous ASCII (IDNA) form; "
            "give it in its xn-- form.",
        )
    return ascii_domain


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words for ``text``, each at most 64 characters.

    Words split between code points, never inside one's UTF-8 sequence
    (RFC 2047 5, rule 3).  Header text is short, so a loop is fine here.
    """
    words: list[bytes] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _ENCODED_WORD_OCTETS:
            words.append(bytes(chunk))
            chunk.clear()
        chunk += encoded
    words.append(bytes(chunk))
    return [f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words]


def _msgid_domain(domain: str) -> str:
    """The right-hand side for a Message-ID: the sender's domain if it is a
    valid RFC 5322 3.6.4 id-right (a name or a literal like ``[127.0.0.1]``),
    else ``localhost``."""
    if _DOT_ATOM_TEXT.match(domain) or _NO_FOLD_LITERAL.match(domain):
        return domain
    return "localhost"


def dedupe_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    # RFC 5321 2.4: the local part may be case-sensitive, the domain is not.
    # The first spelling wins.
    seen: set[str] = set()
    unique: list[str] = []
    for address in addresses:
        local, at, domain = address.rpartition("@")
        key = f"{local}@{domain.lower()}" if at else address
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return tuple(unique)


def check_line_lengths(data: bytes, where: str) -> None:
    # Linear in the size whatever the line lengths (a regex such as
    # [^\r\n]{999} costs seconds on a message of a few MB).
    start = long_line_start(data)
    if start is not None:
        line_no = data.count(b"\n", 0, start) + 1
        raise ArgumentError(
            where,
            f"Line {line_no} of the message is longer than {MAX_LINE_OCTETS} "
            "octets, which SMTP does not allow (RFC 5321 4.5.3.1.6); encode "
            "the part with quoted-printable or base64.",
        )
