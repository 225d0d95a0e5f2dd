"""Secrets on the fault and hostile paths (issue 6, item 7).

Passwords and OAuth tokens must never appear in logs (every logger at
DEBUG, the ``smtpcore.transcript`` one included), in ``repr()`` of the
details, the credentials or the broken session left on them, or in an
exception (``str``, ``repr``, attributes, the whole cause/context chain and
traceback): DESIGN.md, "Wire behaviour".  Each run checks the secret in
clear and in every base64 form it takes on the wire.

The paths are those of test_faults.py (the server hangs up, answers 421
or goes silent at every point, then the same details send again) and of
the STARTTLS and EAST tests; the AUTH failure paths are covered by
conformance/test_no_secret_leaks.py.  A check is only worth something if
the secret was there to leak: every run also finds it, with the same
detector, in what the server received when the client did authenticate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from smtpcore import SmtpCoreError, UserCredentials
from tests.hostile.fakeserver import POINTS, Behaviour, FakeServer, Fault, Point
from tests.hostile.support import (
    USER,
    TlsPair,
    details,
    exception_texts,
    message,
    secret_forms,
    send_via,
)
from tests.hostile.test_faults import SHORT, provoke

Kind = Literal["password", "token"]

# Both kinds of secret with both clients.
WHO = [
    pytest.param(kind, client, id=f"{kind}-{client}")
    for kind in ("password", "token")
    for client in ("blocking", "asyncio")
]


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret made for one test, and how a client is given it."""

    kind: Kind
    value: str

    @classmethod
    def new(cls, kind: Kind) -> Secret:
        """A fresh secret; a token looks like a real one ("ya29." is
        Google's prefix)."""
        prefix = "ya29." if kind == "token" else ""
        return cls(kind, prefix + secrets.token_urlsafe(24))

    @property
    def credentials(self) -> UserCredentials:
        """The user name, and the password unless the secret is a token."""
        return UserCredentials(USER, self.value if self.kind == "password" else None)

    @property
    def options(self) -> dict[str, Any]:
        """Client options that pass a token."""
        return {"oauth_token": self.value} if self.kind == "token" else {}

    @property
    def behaviour(self) -> Behaviour:
        """A server that, after STARTTLS, offers what this secret needs."""
        token = self.kind == "token"
        offered = "AUTH OAUTHBEARER XOAUTH2" if token else "AUTH PLAIN"
        return Behaviour(capabilities_tls=(offered,))

    def assert_never_in(self, texts: Iterable[str]) -> None:
        """No form of the secret occurs in any of ``texts``."""
        forms = secret_forms(self.value)
        for text in texts:
            for form in forms:
                assert form not in text, f"the {self.kind} shows in {text[:300]!r}"

    def assert_in(self, text: str) -> None:
        """The detector finds the secret (so its silence elsewhere counts)."""
        assert any(form in text for form in secret_forms(self.value)), text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, from DEBUG up."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="smtpcore.transcript")
    return caplog


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The captured log, as text and as each record's message."""
    return [caplog.text, *(record.getMessage() for record in caplog.records)]


# ---------------------------------------------------------- fault paths

FAULTS: list[tuple[Point, str]] = [
    *((point, action) for action in ("close", "421") for point in POINTS),
    ("AUTH", "silence"),
    ("MAIL", "silence"),
    ("FINAL", "silence"),
]


@pytest.mark.parametrize(("kind", "client"), WHO)
@pytest.mark.parametrize(
    ("point", "action"),
    [pair for pair in FAULTS if pair[0] != "BODY"],
    ids=[f"{p}-{a}" for p, a in FAULTS if p != "BODY"],
)
def test_fault_paths_never_show_the_secret(
    fake: FakeServer,
    tls: TlsPair,
    logs: pytest.LogCaptureFixture,
    point: Point,
    action: Literal["close", "421", "silence"],
    kind: Kind,
    client: str,
) -> None:
    secret = Secret.new(kind)
    outcome = provoke(
        fake,
        tls,
        Fault(point, action),
        client,
        credentials=secret.credentials,
        behaviour=secret.behaviour,
        timeout=SHORT if action == "silence" else 2.0,
        data_timeout=SHORT if action == "silence" else 2.0,
        **secret.options,
    )
    assert logs.records, "nothing was logged: the check would be empty"
    secret.assert_never_in(
        [
            *exception_texts(outcome.error),
            *logged(logs),
            outcome.broken,
            repr(outcome.details),
            repr(outcome.details.credentials),
        ]
    )
    # The retry authenticated: there, on the wire, the detector sees it.
    [auth] = [seen.line for seen in outcome.second.seen if seen.verb == "AUTH"]
    secret.assert_in(auth.decode())


# -------------------------------------------------------- hostile paths

HOSTILE = {
    # EAST Buffering/B_1: forged AUTH offer injected after the 220.
    "starttls-injection": Behaviour(
        stls_response=b"220 Ready to start TLS\r\n250-example.org\r\n250 AUTH LOGIN\r\n"
    ),
    "starttls-not-offered": Behaviour(capabilities=("AUTH PLAIN LOGIN XOAUTH2",)),
    "starttls-refused": Behaviour(
        stls_response=b"454 TLS not available\r\n", stls_make_transition=False
    ),
    "starttls-354": Behaviour(
        stls_response=b"354 go ahead\r\n", stls_make_transition=False
    ),
    "handshake-garbage": Behaviour(stls_failure="garbage"),
    "ehlo-421": Behaviour(override_response=(("EHLO", b"421 shutting down\r\n"),)),
    "greeting-554": Behaviour(greeting=b"554 No SMTP service here\r\n"),
    "auth-not-offered": Behaviour(capabilities_tls=("SIZE 1000",)),
    "ehlo-ignored-after-tls": Behaviour(ignore_commands_tls=("EHLO",)),
}


@pytest.mark.parametrize(("kind", "client"), WHO)
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_paths_never_show_the_secret(
    fake: FakeServer,
    tls: TlsPair,
    logs: pytest.LogCaptureFixture,
    name: str,
    kind: Kind,
    client: str,
) -> None:
    secret = Secret.new(kind)
    fake.reset(HOSTILE[name], tls.server)
    kept = details(fake.port, secret.credentials)
    with pytest.raises(SmtpCoreError) as caught:
        send_via(client)(
            message(),
            kept,
            close_session=False,
            tls_context=tls.client,
            timeout=SHORT,
            **secret.options,
        )
    # A failure of the session, not of the input.
    assert not isinstance(caught.value, ValueError), caught.value
    secret.assert_never_in(
        [
            *exception_texts(caught.value),
            *logged(logs),
            repr(kept._session),
            repr(kept),
            repr(kept.credentials),
        ]
    )
    # None of these servers got as far as AUTH over TLS: the secret never
    # left the client.
    assert fake.sessions
    for session in fake.sessions:
        assert "AUTH" not in session.verbs()
        secret.assert_never_in(seen.line.decode("latin-1") for seen in session.seen)
    kept.close()


@pytest.mark.parametrize(("kind", "client"), WHO)
def test_the_transcript_of_a_whole_session_redacts_the_secret(
    fake: FakeServer,
    tls: TlsPair,
    logs: pytest.LogCaptureFixture,
    kind: Kind,
    client: str,
) -> None:
    # The control: a session that authenticates and sends.  The transcript
    # shows every command, AUTH with its payload redacted.
    secret = Secret.new(kind)
    fake.reset(secret.behaviour, tls.server)
    send_via(client)(
        message(),
        details(fake.port, secret.credentials),
        tls_context=tls.client,
        timeout=2.0,
        **secret.options,
    )
    lines = [r.getMessage() for r in logs.records if r.name == "smtpcore.transcript"]
    [auth] = [line for line in lines if line.startswith("C: AUTH")]
    assert auth.endswith("<redacted>")
    assert any(line.startswith("C: MAIL FROM:") for line in lines)
    secret.assert_never_in(logged(logs))
    [session] = fake.sessions
    [on_the_wire] = [seen.line for seen in session.seen if seen.verb == "AUTH"]
    secret.assert_in(on_the_wire.decode())
