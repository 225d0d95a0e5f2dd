"""The states of an SMTP client connection and every transition between them.

Nothing but tables lives here (h11's ``_state.py`` is the model): the
connection engine looks a transition up and raises if there is none.

The state is *optimistic*: sending a command moves to the state the command
leads to if it succeeds, so that a pipelined group (RFC 2920) can be checked
command by command before any reply is known.  A reply moves the state only
when it answers the last command still outstanding; an earlier reply in a
group is superseded by the commands sent after it (a refused MAIL inside a
MAIL/RCPT/DATA group is followed by the DATA reply, which settles the state).
"""

from __future__ import annotations

import enum

__all__ = [
    "MUST_BE_LAST",
    "REPLY_TRANSITIONS",
    "SEND_TRANSITIONS",
    "Kind",
    "Outcome",
    "State",
]


class State(enum.Enum):
    """Where the client is in the SMTP conversation."""

    # Members are singletons compared by identity, so identity hashing is
    # correct, and it runs in C: Enum.__hash__ is Python code, and these
    # tables are looked up for every command and reply.
    __hash__ = object.__hash__

    GREETING = "waiting for the server greeting"
    REFUSED = "greeting refused; only QUIT is left"
    HELLO = "greeted; EHLO or HELO needed"
    READY = "ready for a mail transaction"
    STARTTLS = "STARTTLS sent"
    TLS_UPGRADE = "the transport must start TLS now"
    AUTH = "in an AUTH exchange"
    MAIL = "MAIL sent"
    RCPT = "RCPT sent"
    DATA = "DATA sent; waiting for 354"
    CONTENT = "sending message content"
    CHUNKS = "sending BDAT chunks"
    CONTENT_DONE = "message content sent; waiting for the final reply"
    QUIT = "QUIT sent"
    CLOSED = "closed"
    ERROR = "broken by a protocol error"


class Kind(enum.Enum):
    """What a reply answers: the greeting, a command, or the message content."""

    __hash__ = object.__hash__  # see State

    GREETING = "greeting"
    EHLO = "EHLO"
    HELO = "HELO"
    LHLO = "LHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    CONTENT = "message content"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


class Outcome(enum.Enum):
    """A reply's class by its first digit (RFC 5321 4.2.1)."""

    __hash__ = object.__hash__  # see State

    POSITIVE = 2
    INTERMEDIATE = 3
    NEGATIVE = 4  # 4yz and 5yz: the caller reads the code for which


# (state, what is sent) -> state if it succeeds.  A pair that is missing is a
# command the protocol does not allow there (LocalProtocolError).
SEND_TRANSITIONS: dict[State, dict[Kind, State]] = {
    State.GREETING: {},
    # RFC 5321 3.1: after a 554 greeting the client should send QUIT.
    State.REFUSED: {Kind.QUIT: State.QUIT},
    State.HELLO: {
        Kind.EHLO: State.HELLO,
        Kind.HELO: State.HELLO,
        Kind.LHLO: State.HELLO,
        Kind.NOOP: State.HELLO,
        Kind.RSET: State.HELLO,
        Kind.QUIT: State.QUIT,
    },
    State.READY: {
        Kind.EHLO: State.HELLO,
        Kind.HELO: State.HELLO,
        Kind.LHLO: State.HELLO,
        Kind.STARTTLS: State.STARTTLS,
        Kind.AUTH: State.AUTH,
        Kind.MAIL: State.MAIL,
        Kind.RSET: State.READY,
        Kind.NOOP: State.READY,
        Kind.QUIT: State.QUIT,
    },
    State.STARTTLS: {},
    State.TLS_UPGRADE: {},
    # Only a response (or "*") after a 334; the engine checks the 334.
    State.AUTH: {Kind.AUTH: State.AUTH},
    State.MAIL: {
        Kind.RCPT: State.RCPT,
        Kind.RSET: State.READY,
        Kind.NOOP: State.MAIL,
        Kind.QUIT: State.QUIT,
    },
    State.RCPT: {
        Kind.RCPT: State.RCPT,
        Kind.DATA: State.DATA,
        # RFC 3030 2: BDAT replaces DATA; the last chunk ends the content.
        Kind.BDAT: State.CHUNKS,
        Kind.BDAT_LAST: State.CONTENT_DONE,
        Kind.RSET: State.READY,
        Kind.NOOP: State.RCPT,
        Kind.QUIT: State.QUIT,
    },
    State.DATA: {},
    State.CHUNKS: {
        Kind.BDAT: State.CHUNKS,
        Kind.BDAT_LAST: State.CONTENT_DONE,
        Kind.RSET: State.READY,
        Kind.QUIT: State.QUIT,
    },
    State.CONTENT: {Kind.CONTENT: State.CONTENT_DONE},
    # RFC 2920 3.1: message content may be the first "command" of a group,
    # so the next transaction can follow the final dot without a wait.
    State.CONTENT_DONE: {
        Kind.MAIL: State.MAIL,
        Kind.RSET: State.READY,
        Kind.QUIT: State.QUIT,
    },
    State.QUIT: {},
    State.CLOSED: {},
    State.ERROR: {},
}

# RFC 2920 3.1: "The EHLO, DATA, VRFY, EXPN, TURN, QUIT, and NOOP commands can
# only appear as the last command in a group since their success or failure
# produces a change of state which the client SMTP must accommodate."
# STARTTLS (RFC 3207 4) and AUTH (RFC 4954 4) change the session as well.
MUST_BE_LAST: frozenset[Kind] = frozenset(
    {
        Kind.GREETING,
        Kind.EHLO,
        Kind.HELO,
        Kind.LHLO,
        Kind.STARTTLS,
        Kind.AUTH,
        Kind.DATA,
        Kind.NOOP,
        Kind.QUIT,
    }
)

# (what the reply answers, its outcome) -> new state, or None to keep the
# state.  A missing pair is a reply the protocol does not allow there, e.g.
# 354 to MAIL (SmtpProtocolError).
REPLY_TRANSITIONS: dict[tuple[Kind, Outcome], State | None] = {
    (Kind.GREETING, Outcome.POSITIVE): State.HELLO,
    (Kind.GREETING, Outcome.NEGATIVE): State.REFUSED,
    (Kind.EHLO, Outcome.POSITIVE): State.READY,
    (Kind.EHLO, Outcome.NEGATIVE): State.HELLO,
    (Kind.HELO, Outcome.POSITIVE): State.READY,
    (Kind.HELO, Outcome.NEGATIVE): State.HELLO,
    (Kind.LHLO, Outcome.POSITIVE): State.READY,
    (Kind.LHLO, Outcome.NEGATIVE): State.HELLO,
    (Kind.STARTTLS, Outcome.POSITIVE): State.TLS_UPGRADE,
    (Kind.STARTTLS, Outcome.NEGATIVE): State.READY,
    (Kind.AUTH, Outcome.POSITIVE): State.READY,
    (Kind.AUTH, Outcome.INTERMEDIATE): State.AUTH,
    (Kind.AUTH, Outcome.NEGATIVE): State.READY,
    (Kind.MAIL, Outcome.POSITIVE): None,
    (Kind.MAIL, Outcome.NEGATIVE): State.READY,
    (Kind.RCPT, Outcome.POSITIVE): None,
    (Kind.RCPT, Outcome.NEGATIVE): None,
    (Kind.DATA, Outcome.INTERMEDIATE): State.CONTENT,
    (Kind.DATA, Outcome.NEGATIVE): State.READY,
    (Kind.CONTENT, Outcome.POSITIVE): State.READY,
    (Kind.CONTENT, Outcome.NEGATIVE): State.READY,
    # RFC 3030 4.2: after a refused chunk the transaction has failed; the
    # client sends RSET.
    (Kind.BDAT, Outcome.POSITIVE): None,
    (Kind.BDAT, Outcome.NEGATIVE): State.CHUNKS,
    (Kind.BDAT_LAST, Outcome.POSITIVE): State.READY,
    (Kind.BDAT_LAST, Outcome.NEGATIVE): State.READY,
    (Kind.RSET, Outcome.POSITIVE): State.READY,
    (Kind.RSET, Outcome.NEGATIVE): None,
    (Kind.NOOP, Outcome.POSITIVE): None,
    (Kind.NOOP, Outcome.NEGATIVE): None,
    (Kind.QUIT, Outcome.POSITIVE): State.CLOSED,
    (Kind.QUIT, Outcome.NEGATIVE): State.CLOSED,
}
