"""A replay of the EAST STARTTLS test cases for SMTP clients.

The cases are those of the Email Analysis Toolkit (EAST), published with
Damian Poddebniak, Fabian Ising, Hanno Böck, Sebastian Schinzel: "Why TLS is
better without STARTTLS: A Security Analysis of STARTTLS in the Email
Context", 30th USENIX Security Symposium, 2021
(https://nostarttls.secvuln.info/).  The ``.ron`` files come from
https://github.com/Email-Analysis-Toolkit/fake-mail-server (commit
cbd323cf8cc892df24639641231c97a36d7549d0, paths ``testcases/smtp/**`` and
``testcases_extra/Certificate Validation/smtp/**``; author Damian
Poddebniak), licensed under either of the Apache License, Version 2.0 or
the MIT license, at your option.  Each row of :data:`CASES` transcribes one
file (its path relative to that repository is the row's name) into a
:class:`~tests.hostile.fakeserver.Behaviour`, whose fields and defaults
follow the project's ``src/smtp/config.rs``; nothing is read from disk at
run time, and no certificate or key of the project is used (trustme makes
fresh ones: example.org becomes 127.0.0.1).

The EAST cases do not say what a client should do; the expected outcome of
each row is smtpcore's documented behaviour.  Every row is run with TLS
required in two ways (credentials under the default policy, and
``starttls="required"`` without credentials) and with both clients, and
every run checks what the server received: no AUTH and no mail
transaction ever went out before TLS, and a message was delivered only over
TLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import trustme

from smtpcore import (
    EmailSessionError,
    EmailSessionReason,
    SmtpCommandError,
    SmtpCoreError,
    SmtpErrorKind,
    SmtpProtocolError,
    UserCredentials,
)
from tests.hostile.fakeserver import Behaviour, FakeServer
from tests.hostile.support import (
    FORBIDDEN_IN_CLEAR,
    USER,
    TlsPair,
    details,
    expired_pair,
    message,
    self_signed_pair,
    send_via,
    tls_pair,
)

# Three cases wait for a server that never answers; every other reply is
# instant on loopback.
TIMEOUT = 0.5

Certificate = Literal["good", "self-signed", "unknown-root", "other-name", "expired"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What smtpcore does with a case: deliver (``error`` None) or raise
    ``error`` with one of ``reasons`` (EmailSessionError) or with ``kind``
    (SmtpCommandError)."""

    error: type[SmtpCoreError] | None = None
    reasons: tuple[EmailSessionReason, ...] = ()
    kind: SmtpErrorKind | None = None


def session_error(*reasons: EmailSessionReason) -> Outcome:
    """An EmailSessionError with one of ``reasons``."""
    return Outcome(EmailSessionError, reasons)


Reason = EmailSessionReason
DELIVERED = Outcome()
NO_TLS = session_error(Reason.STARTTLS_NOT_AVAILABLE)
LOST = session_error(Reason.CONNECTION_LOST)
TIMED_OUT = session_error(Reason.CONNECTION_TIMEOUT)
NOT_SMTP = session_error(Reason.INVALID_PORT)
UNTRUSTED = session_error(Reason.EXPIRED_OR_UNTRUSTED_CERTIFICATE)
WRONG_NAME = session_error(Reason.INVALID_SSL_CERTIFICATE)
BROKEN = Outcome(SmtpProtocolError)
REFUSED = Outcome(SmtpCommandError, kind=SmtpErrorKind.UNEXPECTED_STATUS_CODE)
# For the rows marked as bugs, where the fix may choose between errors.
FAILS = Outcome(SmtpCoreError)
FAILS_AT_ONCE = session_error(Reason.STARTTLS_NOT_AVAILABLE, Reason.CONNECTION_LOST)


@dataclass(frozen=True, slots=True)
class EastCase:
    """One EAST test case file, transcribed."""

    path: str
    outcome: Outcome
    behaviour: Behaviour = field(default_factory=Behaviour)
    certificate: Certificate = "good"
    bug: str | None = None
    # The client's TLS handshake meets a server that never answers it.
    silent_handshake: bool = False
    # The client must not even try a TLS handshake.
    no_handshake: bool = False


# testcases/smtp/others/ehlo/250-all*.ron and others/X_1.ron: AUTH with
# every mechanism name EAST knows, in the files' order.
EVERY_MECHANISM = (
    "AUTH 0SNET ANONYMOUS APOP ATOKEN CRAM_MD5 CRAM-MD5 CRAM-MD52 CRAM-MD5-LOCAL "
    "CRAM-MD5_NOP_IN CRAM-RIPEMD CRAM-SHA1 CRAM-SHA256 CRAM-SHA512 CRYPT "
    "DIGEST-MD5 DPLAIN EXTERNAL GS2-IAKERB GS2-KRB5 GSSAPI GSS-SPNEGO HASH LOGIN "
    "LOGIN1 LOGIN2 LOGIN_2 LOGIN-LDAP LOGIN_MYSQL LOGIN_OLD LOGIN_OUD LOGIN_SEG "
    "MD5 MD5-CRYPT MSN NTLM OAUTHBEARER OLD_LOGIN OMD3-MD5 OTP OWSADMIN PLAIN "
    "PLAIN2 PLAIN_3 PLAIN-CLIENTTOKEN PLAIN-MD5 PLAIN_MYSQL RPA RSA-AUTH "
    "SASLPLAIN SCRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 SECURID SHA-1 SKEY SPA "
    "SSL-REQUIRED X-0THROOT XALIOAUTH XOAUTH XOAUTH2 XYMCOOKIE XYMYCONNECT"
)
PLAIN_LOGIN = "AUTH PLAIN LOGIN"
B_1_INJECTION = b"220 Ready to start TLS\r\n250-example.org\r\n250 AUTH LOGIN\r\n"

# The replies the others/ cases put in place of a command's own.
TEXTS = {
    220: b"220 %s client!\r\n",
    221: b"221 Closing connection!\r\n",
    354: b"354 Start mail input; End with <CRLF>.<CRLF>\r\n",
    421: b"421 Service shutting down\r\n",
    454: b"454 TLS not available due to temporary reason\r\n",
    500: b"500 Syntax error, command unrecognized\r\n",
    501: b"501 Syntax error in command or arguments\r\n",
    502: b"502 Command not implemented\r\n",
    504: b"504 Command Parameter not implemented\r\n",
    530: b"530 Must issue STARTTLS first\r\n",
    550: b"550 Requested action not taken: Command rejected\r\n",
    554: b"554 No SMTP service here\r\n",
}


def text(code: int, verb: str = "OK") -> bytes:
    """A case's reply line for ``code`` (the 220s name the command)."""
    return TEXTS[code].replace(b"%s", verb.encode()) if code == 220 else TEXTS[code]


def overriding(**replies: bytes) -> Behaviour:
    """The setup capabilities, with some commands' replies overridden."""
    return Behaviour(override_response=tuple(replies.items()))


def after_ehlo_500(verb: str, code: int) -> Behaviour:
    """others/helo and others/rset: EHLO refused with 500, ``verb`` answered
    with ``code``."""
    return overriding(ehlo=text(500), **{verb: text(code, verb)})



EXTRA = "testcases_extra/Certificate Validation/smtp"

CASES: list[EastCase] = [
    # testcases/smtp/setup*.ron: the baseline every case varies.
    EastCase("testcases/smtp/setup.ron", DELIVERED),
    EastCase(
        "testcases/smtp/setup_opportunistic_encryption.ron",
        DELIVERED,
        Behaviour(capabilities=("STARTTLS", "AUTH PLAIN")),
    ),
    # Buffering: the forged lines in the STARTTLS response (step 2), the
    # EHLO after TLS ignored so that the client reads them (step 1), both.
    EastCase(
        "testcases/smtp/Buffering/B_1.ron#step2",
        BROKEN,
        Behaviour(capabilities_tls=(PLAIN_LOGIN,), stls_response=B_1_INJECTION),
    ),
    EastCase(
        "testcases/smtp/Buffering/B_1.ron#step1",
        TIMED_OUT,
        Behaviour(capabilities_tls=(PLAIN_LOGIN,), ignore_commands_tls=("ehlo",)),
    ),
    EastCase(
        "testcases/smtp/Buffering/B_1.ron#step1+2",
        BROKEN,
        Behaviour(
            capabilities_tls=(PLAIN_LOGIN,),
            ignore_commands_tls=("ehlo",),
            stls_response=B_1_INJECTION,
        ),
    ),
    # Negotiation: no ESMTP; STARTTLS missing or refused.
    EastCase(
        "testcases/smtp/Negotiation/D_1.ron",
        NO_TLS,
        Behaviour(
            capabilities=(),
            capabilities_tls=(),
            hide_commands=("ehlo", "starttls"),
        ),
    ),
    EastCase(
        "testcases/smtp/Negotiation/O_1.ron",
        NO_TLS,
        Behaviour(
            capabilities=(PLAIN_LOGIN,),
            capabilities_tls=(PLAIN_LOGIN,),
            stls_response=text(502),
            stls_make_transition=False,
        ),
    ),
    *(
        EastCase(
            f"testcases/smtp/Negotiation/{name}.ron",
            outcome,
            Behaviour(
                capabilities_tls=(PLAIN_LOGIN,),
                stls_response=response,
                stls_make_transition=False,
            ),
        )
        for name, response, outcome in (
            ("O_2", text(502), NO_TLS),
            ("O_3", text(454), NO_TLS),
            ("O_4", b"354 do something else\r\n", BROKEN),
        )
    ),
    EastCase(
        "testcases/smtp/others/X_1.ron",
        NO_TLS,
        Behaviour(
            capabilities=(EVERY_MECHANISM,),
            capabilities_tls=(),
            stls_response=text(502),
            stls_make_transition=False,
        ),
    ),
    # others/greeting: the greeting replaced.
    EastCase(
        "testcases/smtp/others/greeting/220.ron",
        DELIVERED,
        Behaviour(greeting=b"220 smtp.example.com ESMTP ready\r\n"),
    ),
    EastCase(
        "testcases/smtp/others/greeting/221.ron",
        FAILS,
        Behaviour(greeting=b"221 Service closing transmission channel\r\n"),
    ),
    EastCase(
        "testcases/smtp/others/greeting/354.ron",
        NOT_SMTP,
        Behaviour(greeting=text(354)),
    ),
    EastCase(
        "testcases/smtp/others/greeting/421.ron", LOST, Behaviour(greeting=text(421))
    ),
    *(
        EastCase(
            f"testcases/smtp/others/greeting/{code}.ron",
            REFUSED,
            Behaviour(greeting=text(code)),
        )
        for code in (500, 501, 530, 554)
    ),
    # others/ehlo: EHLO answered otherwise.
    *(
        EastCase(
            f"testcases/smtp/others/ehlo/{code}.ron",
            outcome,
            overriding(ehlo=text(code, "EHLO")),
        )
        for code, outcome in (
            # A 2xx without keywords: no STARTTLS offered.
            (220, NO_TLS),
            (221, NO_TLS),
            (354, BROKEN),
            (421, LOST),
            # 5xx: HELO, which the server accepts; still no STARTTLS.
            (500, NO_TLS),
            (501, NO_TLS),
            (502, NO_TLS),
            (504, NO_TLS),
            (530, NO_TLS),
            (550, NO_TLS),
        )
    ),
    *(
        EastCase(
            f"testcases/smtp/others/ehlo/{name}.ron",
            NO_TLS,
            Behaviour(capabilities=capabilities),
        )
        for name, capabilities in (
            ("250-all", (EVERY_MECHANISM,)),
            ("250-all-no-starttls", (EVERY_MECHANISM,)),
            ("250-empty", ()),
        )
    ),
    # others/helo: EHLO refused, HELO answered otherwise.
    *(
        EastCase(
            f"testcases/smtp/others/helo/ehlo500_helo{code}.ron",
            outcome,
            after_ehlo_500("HELO", code),
        )
        for code, outcome in (
            (220, NO_TLS),
            (221, NO_TLS),
            (354, BROKEN),
            (421, LOST),
            (500, REFUSED),
            (501, REFUSED),
            (530, REFUSED),
        )
    ),
    # others/quit: the greeting refused, then QUIT answered otherwise.
    *(
        EastCase(
            f"testcases/smtp/others/quit/greeting500_quit{code}.ron",
            REFUSED,
            Behaviour(
                greeting=text(500),
                override_response=(("QUIT", text(code, "OK")),),
            ),
        )
        for code in (220, 221, 354, 421, 500, 501, 530)
    ),
    # others/rset: RSET is never reached (no STARTTLS after HELO).
    *(
        EastCase(
            f"testcases/smtp/others/rset/ehlo500_rset{code}.ron",
            NO_TLS,
            after_ehlo_500("RSET", code),
        )
        for code in (220, 221, 354, 421, 500, 501, 530)
    ),
    # others/starttls: STARTTLS answered otherwise.  An override replaces
    # EAST's whole handling, so the server never starts TLS: after a 220
    # the client's handshake meets silence.
    EastCase(
        "testcases/smtp/others/starttls/220.ron",
        TIMED_OUT,
        overriding(starttls=text(220, "EHLO")),
        silent_handshake=True,
    ),
    EastCase(
        "testcases/smtp/others/starttls/221.ron",
        FAILS_AT_ONCE,
        overriding(starttls=text(221)),
        no_handshake=True,
    ),
    EastCase(
        "testcases/smtp/others/starttls/354.ron",
        BROKEN,
        overriding(starttls=text(354)),
    ),
    EastCase(
        "testcases/smtp/others/starttls/421.ron", LOST, overriding(starttls=text(421))
    ),
    *(
        EastCase(
            f"testcases/smtp/others/starttls/{code}.ron",
            NO_TLS,
            overriding(starttls=text(code)),
        )
        for code in (454, 500, 501, 530)
    ),
    # testcases_extra/Certificate Validation: bad certificates.
    EastCase(f"{EXTRA}/T_1.ron", UNTRUSTED, certificate="self-signed"),
    EastCase(f"{EXTRA}/T_2.ron", UNTRUSTED, certificate="unknown-root"),
    EastCase(f"{EXTRA}/T_3.ron", WRONG_NAME, certificate="other-name"),
    EastCase(f"{EXTRA}/T_4.ron", UNTRUSTED, certificate="expired"),
]


def contexts(ca: trustme.CA, certificate: Certificate) -> TlsPair:
    """Server and client contexts for a case's bad certificate."""
    if certificate == "self-signed":
        return self_signed_pair(ca)
    if certificate == "unknown-root":
        return TlsPair(tls_pair(trustme.CA()).server, tls_pair(ca).client)
    if certificate == "other-name":
        return tls_pair(ca, "other.example.org")
    return expired_pair(ca)




def params() -> list[object]:
    """One pytest param per case and client, named after the case's file;
    known bugs are strict xfails."""
    result: list[object] = []
    for case in CASES:
        for client in ("blocking", "asyncio"):
            bug = case.bug
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            name = f"{client}-{case.path.rsplit('smtp/', 1)[-1]}"
            result.append(pytest.param(case, client, id=name, marks=marks))
    return result


def test_the_table_has_every_east_smtp_case() -> None:
    # 59 files under testcases/smtp (the two setup files included) and 4
    # under testcases_extra; B_1 is replayed in three steps.
    files = {case.path.split("#")[0] for case in CASES}
    assert len(files) == 63
    assert len(CASES) == 65
    assert len({case.path for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "with_credentials", [True, False], ids=["credentials", "required"]
)
@pytest.mark.parametrize(("case", "client"), params())
def test_east_case(
    fake: FakeServer,
    ca: trustme.CA,
    tls: TlsPair,
    password: str,
    case: EastCase,
    client: str,
    with_credentials: bool,
) -> None:
    send = send_via(client)
    if case.certificate != "good":
        tls = contexts(ca, case.certificate)
    credentials = UserCredentials(USER, password) if with_credentials else None
    error: SmtpCoreError | None = None
    fake.reset(case.behaviour, tls.server)
    try:
        send(
            message("east"),
            details(fake.port, credentials),
            tls_context=tls.client,
            timeout=TIMEOUT,
            # With credentials TLS is required by default.
            starttls="auto" if with_credentials else "required",
        )
    except SmtpCoreError as caught:
        error = caught
    outcome = case.outcome
    if outcome.error is None:
        assert error is None, error
    else:
        assert isinstance(error, outcome.error), error
    if outcome.reasons:
        assert isinstance(error, EmailSessionError)
        assert error.reason in outcome.reasons, error
    if outcome.kind is not None:
        assert isinstance(error, SmtpCommandError)
        assert error.kind is outcome.kind, error
    sessions = fake.sessions
    assert sessions
    for session in sessions:
        # Nothing that needs TLS ever went out without it.
        assert not FORBIDDEN_IN_CLEAR & set(session.in_clear()), session.verbs()
        assert not session.contents or session.tls
        if case.no_handshake:
            assert session.unread == b"", "the client tried a TLS handshake"
    if outcome is DELIVERED:
        [session] = sessions
        assert len(session.contents) == 1
        assert ("AUTH" in session.verbs()) is with_credentials
