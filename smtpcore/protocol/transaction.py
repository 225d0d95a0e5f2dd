"""The mail transaction: MAIL, RCPT..., DATA or BDAT, and the content, for
one message or a pipelined batch.

The RFC points that decide behaviour here:

- RFC 2920 3.1: with PIPELINING, MAIL, RCPT and DATA go out in one write,
  and "the message content may be the first 'command' of a group": the next
  transaction's MAIL/RCPT(/DATA) follows a message's final dot in the same
  write, so a batch costs about one round trip per message.
- Once DATA has been answered with 354 the only way to abort is to drop the
  connection.  So with the default all-or-nothing recipient policy and more
  than one recipient, DATA waits for the RCPT replies; it joins the group
  only with one recipient (a refused RCPT makes the server refuse DATA) or
  with ``allow_partial``.  Under CHUNKING (RFC 3030) ``BDAT ... LAST`` takes
  DATA's place after the RCPT replies, where RSET can stand in for it, and
  it travels with the next transaction's group: one round trip per message
  whatever the number of recipients.
- RFC 1870 (SIZE), 6152 (8BITMIME), 6531 (SMTPUTF8), 3461 (DSN), 8689
  (REQUIRETLS): parameters are sent only when offered; what the server
  could not carry is refused before anything is sent.
- RFC 2033 4.2 (LMTP): one reply per accepted recipient after the content.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpcore.errors import (
    ArgumentError,
    SmtpCommandError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.protocol.address import encode_mailbox, needs_smtputf8
from smtpcore.protocol.commands import Data, Mail, Rcpt, Rset
from smtpcore.protocol.data import encode_bdat
from smtpcore.protocol.extensions import Extensions
from smtpcore.protocol.outgoing import (
    Dsn,
    InMemoryMessage,
    Outgoing,
    SendOptions,
    SendResult,
    xtext,
)
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.requests import Conversation, Write
from smtpcore.protocol.state import State

if TYPE_CHECKING:
    from smtpcore.protocol.dialogue import Dialogue

__all__ = [
    "Dsn",
    "InMemoryMessage",
    "Outgoing",
    "SendOptions",
    "SendResult",
    "run_batch",
    "xtext",
]


_DATA = Data()


def _refusal(
    kind: SmtpErrorKind,
    code: int,
    status: str,
    text: str,
    command: str,
    mailbox: str | None = None,
) -> SmtpCommandError:
    """An error standing in for the refusal a server would send, raised
    before anything is sent."""
    reply = SmtpReply(code, (f"{status} {text}".encode(),), status)
    return SmtpCommandError(kind, reply, command, mailbox)


@dataclass(slots=True)
class _Tx:
    """One message on its way."""

    index: int
    message: Outgoing
    mail: Mail
    rcpts: tuple[Rcpt, ...]
    chunked: bool  # BDAT instead of DATA (RFC 3030)
    in_group: bool  # DATA / BDAT LAST rides with MAIL and RCPT
    payload: bytes  # for BDAT: the CRLF-normalised content
    chunk_replies: int = 0  # pipelined BDAT chunks whose replies are due


def _plan(
    index: int,
    message: Outgoing,
    options: SendOptions,
    ext: Extensions,
    *,
    tls: bool,
    lmtp: bool,
) -> _Tx:
    """Build MAIL and RCPT for ``message``, refusing before any byte is sent
    what this server would refuse anyway."""
    sender, recipients, size = message.sender, message.recipients, message.size
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    # RFC 1870 6.1: do not send more than the server's declared maximum.
    if ext.size is not None and size > ext.size:
        raise _refusal(
            SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
            552,
            "5.3.4",
            f"Message size {size} exceeds the limit {ext.size}",
            "MAIL FROM",
            sender,
        )
    require_tls = options.require_tls
    if require_tls and not (tls and ext.requiretls):
        # RFC 8689 5: REQUIRETLS needs TLS on this hop and the server's offer.
        why = (
            "the server does not offer REQUIRETLS"
            if tls
            else "this session is not on TLS"
        )
        raise _refusal(
            SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
            530,
            "5.7.30",
            f"REQUIRETLS support required: {why}",
            "MAIL FROM",
            sender,
        )
    keywords = ext.keywords  # upper-cased: each test below is one lookup
    utf8 = "SMTPUTF8" in keywords and any(map(needs_smtputf8, [sender, *recipients]))
    binary = message.binary
    eight_bit = not binary and message.eight_bit
    if binary and not ("CHUNKING" in keywords and "BINARYMIME" in keywords):
        # RFC 3030 3: binary content only with CHUNKING and BINARYMIME.
        raise _refusal(
            SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
            554,
            "5.6.3",
            "binary content, but the server offers no CHUNKING with BINARYMIME",
            "MAIL FROM",
            sender,
        )
    if eight_bit and not ("8BITMIME" in keywords or utf8):
        # RFC 6152 3: 8-bit content only to a server that offers 8BITMIME.
        raise _refusal(
            SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
            554,
            "5.6.3",
            "8-bit content, but the server offers no 8BITMIME",
            "MAIL FROM",
            sender,
        )
    params: list[bytes] = []
    if "SIZE" in keywords:
        params.append(b"SIZE=%d" % size)
    if binary:
        params.append(b"BODY=BINARYMIME")
    elif eight_bit and "8BITMIME" in keywords:
        params.append(b"BODY=8BITMIME")
    if utf8:
        params.append(b"SMTPUTF8")
    if require_tls:
        params.append(b"REQUIRETLS")
    dsn = options.dsn if "DSN" in keywords else None
    notify: tuple[bytes, ...] = ()
    if dsn is not None:
        if dsn.ret:
            params.append(b"RET=" + dsn.ret.encode())
        if dsn.envid:
            params.append(b"ENVID=" + xtext(dsn.envid))
        if dsn.notify:
            notify = (b"NOTIFY=" + ",".join(v.upper() for v in dsn.notify).encode(),)
    mail = Mail(_encode(sender, utf8, sender=True), tuple(params))
    rcpts = _rcpts(tuple(recipients), utf8, notify, dsn is not None and dsn.orcpt)
    chunked = "CHUNKING" in keywords
    data = message.data
    # A streamed message's BDAT chunks follow the RCPT replies; an in-memory
    # one's single BDAT LAST may ride with the group like DATA.
    in_group = (
        "PIPELINING" in keywords
        and not lmtp
        and (options.allow_partial or len(rcpts) == 1)
        and not (chunked and data is None)
    )
    payload = b""
    if chunked and data is not None:
        # Binary content goes exactly as given: the size says where it ends.
        payload = data if binary else _bdat_payload(data)
    return _Tx(index, message, mail, rcpts, chunked, in_group, payload)


# A batch mostly repeats a few envelopes: their RCPT commands are built and
# checked once.  A refusal raises and is not cached.
@functools.lru_cache(maxsize=256)
def _rcpts(
    recipients: tuple[str, ...], utf8: bool, notify: tuple[bytes, ...], orcpt: bool
) -> tuple[Rcpt, ...]:
    return tuple(
        Rcpt(
            _encode(address, utf8, sender=False),
            (*notify, b"ORCPT=rfc822;" + xtext(address)) if orcpt else notify,
        )
        for address in recipients
    )


def _bdat_payload(chunk: bytes) -> bytes:
    try:
        return encode_bdat(chunk)
    except ValueError as exc:
        raise ArgumentError("data", str(exc)) from exc


def _encode(address: str, utf8: bool, *, sender: bool) -> bytes:
    if not address and sender:
        return b""  # RFC 5321 4.5.5: the null reverse-path
    try:
        return encode_mailbox(address, smtputf8=utf8)
    except ValueError as exc:
        # RFC 6531 3.7.4.1 / RFC 3463: 553 5.6.7 for an address this
        # session cannot carry, 501 5.1.7 / 5.1.3 for bad syntax.
        carry = needs_smtputf8(address) and not utf8
        status = "5.6.7" if carry else ("5.1.7" if sender else "5.1.3")
        raise _refusal(
            SmtpErrorKind.SENDER_NOT_ACCEPTED
            if sender
            else SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            553 if carry else 501,
            status,
            str(exc),
            "MAIL FROM" if sender else "RCPT TO",
            address,
        ) from exc


def run_batch(
    dialogue: Dialogue,
    messages: Sequence[Outgoing | None],
    options: SendOptions,
    results: list[SendResult | Exception | None],
) -> Conversation[None]:
    """Send every message whose result is still None, in order.

    ``results[i]`` is set as message ``i`` finishes: strictly in order, so
    when the connection breaks (``EmailSessionError`` or
    ``SmtpProtocolError`` propagates) the first None is the message that was
    in flight, and its error's ``delivery_unknown`` says whether it may have
    been delivered.  A message whose group went out with the previous
    message's content was never given content: it was not delivered.
    """
    conn = dialogue.conn
    lmtp = dialogue.policy.lmtp
    ahead: _Tx | None = None  # a transaction whose group is already written
    for index, message in enumerate(messages):
        if results[index] is not None or message is None:
            continue
        tx, ahead = (
            (ahead, None)
            if ahead is not None and ahead.index == index
            else (None, None)
        )
        try:
            if tx is None:
                tx = _plan(
                    index,
                    message,
                    options,
                    conn.extensions,
                    tls=conn.tls_active,
                    lmtp=lmtp,
                )
                yield Write(_group(dialogue, tx))
            accepted, rejected = yield from _group_replies(dialogue, tx, options)
            wire = yield from _content(dialogue, tx, len(accepted))
            ahead = _plan_next(dialogue, messages, results, index, options)
            if ahead is not None:
                wire += _group(dialogue, ahead)
            if wire:  # empty when BDAT LAST already went with the group
                yield Write(wire)
            results[index] = yield from _finish(
                dialogue, tx, accepted, rejected, options
            )
        except SmtpCommandError as exc:
            results[index] = exc


def _plan_next(
    dialogue: Dialogue,
    messages: Sequence[Outgoing | None],
    results: list[SendResult | Exception | None],
    index: int,
    options: SendOptions,
) -> _Tx | None:
    """The next message's transaction, to ride with this one's content."""
    conn = dialogue.conn
    if not conn.extensions.pipelining:
        return None
    for following in range(index + 1, len(messages)):
        message = messages[following]
        if results[following] is not None or message is None:
            continue
        try:
            return _plan(
                following,
                message,
                options,
                conn.extensions,
                tls=conn.tls_active,
                lmtp=dialogue.policy.lmtp,
            )
        except SmtpCommandError as exc:
            results[following] = exc  # refused before sending: nothing to pipeline
    return None


def _group(dialogue: Dialogue, tx: _Tx) -> bytes:
    """MAIL, every RCPT, and DATA or BDAT LAST when they join the group; one
    write with PIPELINING, else just MAIL (the rest waits for replies)."""
    conn = dialogue.conn
    if not conn.extensions.pipelining:
        return conn.send(tx.mail)
    send = conn.send
    wire = [send(tx.mail)]
    for rcpt in tx.rcpts:
        wire.append(send(rcpt))
    if tx.in_group:
        wire.append(
            conn.send_bdat(tx.payload, last=True) if tx.chunked else send(_DATA)
        )
    return b"".join(wire)


def _group_replies(
    dialogue: Dialogue, tx: _Tx, options: SendOptions
) -> Conversation[tuple[list[str], dict[str, SmtpReply]]]:
    """Read MAIL's and every RCPT's reply (sending RCPTs one by one without
    PIPELINING); abort with RSET per the recipient policy."""
    pipelined = dialogue.conn.extensions.pipelining
    sender = tx.message.sender
    mail_reply = yield from dialogue.reply("the reply to MAIL FROM")
    replies: list[SmtpReply] = []
    if pipelined:
        replies = yield from dialogue.replies(len(tx.rcpts), "the reply to RCPT TO")
    elif mail_reply.is_positive:
        for rcpt in tx.rcpts:
            replies.append((yield from dialogue.command(rcpt)))
    if not mail_reply.is_positive:
        yield from _abort(dialogue, tx)
        raise SmtpCommandError(
            SmtpErrorKind.SENDER_NOT_ACCEPTED, mail_reply, "MAIL FROM", sender
        )
    accepted: list[str] = []
    rejected: dict[str, SmtpReply] = {}
    for address, reply in zip(tx.message.recipients, replies, strict=True):
        if reply.is_positive:
            accepted.append(address)
        else:
            rejected.setdefault(address, reply)
    if rejected and not (options.allow_partial and accepted):
        yield from _abort(dialogue, tx)
        first = next(iter(rejected))
        raise SmtpCommandError(
            SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            rejected[first],
            "RCPT TO",
            first,
            rejected=rejected,
        )
    return accepted, rejected


def _content(dialogue: Dialogue, tx: _Tx, accepted: int) -> Conversation[bytes]:
    """Send the message and return its last bytes, which the caller writes
    together with the next transaction's group: DATA's content after its
    354, or the BDAT LAST chunk (nothing when it already went with the
    group).  A streamed message goes out chunk by chunk before that."""
    conn = dialogue.conn
    replies = accepted if dialogue.policy.lmtp else 1
    data = tx.message.data
    if tx.chunked:
        if tx.in_group:
            return b""
        if data is not None:
            return conn.send_bdat(tx.payload, last=True, replies=replies)
        for chunk in tx.message.chunks():
            yield Write(conn.send_bdat(_bdat_payload(chunk), last=False))
            if conn.extensions.pipelining:
                # RFC 3030 4.2: chunks may be pipelined; their replies are
                # read after the last one.
                tx.chunk_replies += 1
                continue
            reply = yield from dialogue.reply("the reply to BDAT")
            if not reply.is_positive:
                yield from _abort(dialogue, tx)
                raise SmtpCommandError(
                    SmtpErrorKind.MESSAGE_NOT_ACCEPTED, reply, "BDAT"
                )
        return conn.send_bdat(b"", last=True, replies=replies)
    if tx.in_group:
        data_reply = yield from dialogue.reply("the reply to DATA")
    else:
        data_reply = yield from dialogue.command(_DATA)
    if data_reply.code != 354:
        yield from _abort(dialogue, tx)
        raise SmtpCommandError(SmtpErrorKind.MESSAGE_NOT_ACCEPTED, data_reply, "DATA")
    checked = tx.message.checked
    if data is not None:
        return conn.send_content(data, end=True, replies=replies, checked=checked)
    for chunk in tx.message.chunks():
        yield Write(conn.send_content(chunk, checked=checked))
    return conn.send_content(b"", end=True, replies=replies, checked=checked)


def _finish(
    dialogue: Dialogue,
    tx: _Tx,
    accepted: list[str],
    rejected: dict[str, SmtpReply],
    options: SendOptions,
) -> Conversation[SendResult]:
    """Read the final reply (with LMTP: one per accepted recipient)."""
    verb = "BDAT" if tx.chunked else "DATA"
    refused_chunk: SmtpReply | None = None
    for _ in range(tx.chunk_replies):
        reply = yield from dialogue.reply("the reply to BDAT")
        if not reply.is_positive and refused_chunk is None:
            refused_chunk = reply
    policy = dialogue.policy
    finals: list[SmtpReply] = []
    for _ in range(len(accepted) if policy.lmtp else 1):
        finals.append(
            (
                yield from dialogue.reply(
                    "the final reply after the message content",
                    timeout=policy.data_timeout,
                    in_doubt=True,
                )
            )
        )
    if refused_chunk is not None or not policy.lmtp:
        refusal = refused_chunk or finals[0]
        if not refusal.is_positive:
            if tx.chunked:
                yield from _abort(dialogue, tx)  # RFC 3030 4.2
            raise SmtpCommandError(SmtpErrorKind.MESSAGE_NOT_ACCEPTED, refusal, verb)
        return SendResult(tx.message.message_id, accepted, rejected, finals[0])
    delivered = [a for a, r in zip(accepted, finals, strict=True) if r.is_positive]
    refused = {a: r for a, r in zip(accepted, finals, strict=True) if not r.is_positive}
    if not delivered:
        raise SmtpCommandError(
            SmtpErrorKind.MESSAGE_NOT_ACCEPTED,
            finals[0],
            verb,
            rejected={**rejected, **refused},
        )
    if refused and not options.allow_partial:
        # RFC 2033 4.2: the others already have the message; say so.
        first = next(iter(refused))
        raise SmtpCommandError(
            SmtpErrorKind.RECIPIENT_NOT_ACCEPTED,
            refused[first],
            verb,
            first,
            rejected={**rejected, **refused},
            accepted=delivered,
        )
    return SendResult(
        tx.message.message_id, delivered, {**rejected, **refused}, finals[-1]
    )


def _abort(dialogue: Dialogue, tx: _Tx) -> Conversation[None]:
    """End a failed transaction so the session can carry the next one."""
    if tx.in_group and dialogue.conn.pending:
        # DATA or BDAT LAST went out with the group: its reply comes first
        # (RFC 2920 3.1: nothing may follow DATA before its reply).
        yield from dialogue.reply(f"the reply to {'BDAT' if tx.chunked else 'DATA'}")
    if dialogue.conn.state is State.CONTENT:
        # The server answered 354 although we must abort: only dropping the
        # connection stops it from taking the message.  The client sees a
        # connection that is not idle and closes it.
        return
    reply = yield from dialogue.command(Rset())
    if not reply.is_positive:
        raise SmtpProtocolError(f"RSET refused: {reply}")
