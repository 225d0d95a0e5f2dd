"""Helpers shared by the hostile-server tests: TLS contexts, session
details, messages, and the secret detector."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import trustme
from hypothesis import settings

from conftest import Sender
from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    SendResult,
    ServerDetails,
    UserCredentials,
    send_email,
)
from smtpcore.aio import send_email_async

__all__ = [
    "FORBIDDEN_IN_CLEAR",
    "RECIPIENT",
    "SENDER",
    "USER",
    "TlsPair",
    "details",
    "examples",
    "exception_texts",
    "expired_pair",
    "message",
    "secret_forms",
    "self_signed_pair",
    "send_via",
    "tls_pair",
]

SENDER = "sender@example.com"
RECIPIENT = "recipient@example.com"
USER = "user@example.com"

# What a client that requires TLS must never send before TLS is up:
# credentials and the mail transaction (RFC 3207 4; DESIGN.md "Wire
# behaviour").
FORBIDDEN_IN_CLEAR = frozenset({"AUTH", "MAIL", "RCPT", "DATA", "BDAT"})


@dataclass(frozen=True, slots=True)
class TlsPair:
    """A server context and a client context that trusts it (or, for the
    bad certificates, does not)."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def _server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def tls_pair(ca: trustme.CA, *names: str) -> TlsPair:
    """A server certificate and a client that trusts it.

    Args:
        ca: the issuing CA.
        *names: the certificate's identities (default 127.0.0.1 and
            localhost).

    Returns:
        The server context, and a verifying client context trusting ``ca``.
    """
    leaf = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    return TlsPair(_server_context(leaf), _client_context(ca))


def expired_pair(ca: trustme.CA) -> TlsPair:
    """An expired server certificate (EAST's T_4).

    Args:
        ca: the issuing CA, trusted by the client.

    Returns:
        A server presenting a leaf for 127.0.0.1 that expired yesterday.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = ca.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    return TlsPair(_server_context(leaf), _client_context(ca))


def self_signed_pair(ca: trustme.CA) -> TlsPair:
    """A self-signed server certificate (EAST's T_1).

    Args:
        ca: the CA the client trusts (and the server does not use).

    Returns:
        A server presenting a fresh root's own certificate.
    """
    root = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with root.cert_pem.tempfile() as cert, root.private_key_pem.tempfile() as key:
        context.load_cert_chain(cert, key)
    return TlsPair(context, _client_context(ca))


def examples(count: int) -> int:
    """The example count of a property test.

    ``settings(max_examples=...)`` on a test pins its count, so a profile
    could not raise it; this lets the "big" profile raise every property
    test at once.

    Args:
        count: the count for CI.

    Returns:
        ``count``, or the loaded profile's ``max_examples`` if larger.
    """
    loaded: int = settings().max_examples
    return max(count, loaded)


def details(
    port: int, credentials: UserCredentials | None = None
) -> BasicEmailSessionDetails:
    """Session details for a server on 127.0.0.1, ``use_ssl=False``.

    Args:
        port: the server's port.
        credentials: None for no AUTH.

    Returns:
        New details (each holds its own session).
    """
    return BasicEmailSessionDetails(
        ServerDetails("127.0.0.1", port, False), credentials
    )


def message(subject: str = "hostile", *to: str) -> EmailMessage:
    """A small text message from SENDER.

    Args:
        subject: the subject.
        *to: the recipients (default RECIPIENT).

    Returns:
        The message.
    """
    return EmailMessage(list(to or (RECIPIENT,)), SENDER, subject=subject, body="hi")


def send_via(client: str) -> Sender:
    """``send_email`` of one client, as the root conftest's ``send`` fixture
    gives it (for tests that mark one client only).

    Args:
        client: ``"blocking"``, or ``"asyncio"`` (``send_email_async`` run
            by ``asyncio.run``).

    Returns:
        A function with the signature of ``send_email``.
    """
    if client == "blocking":
        return send_email

    def via_asyncio(*args: Any, **kwargs: Any) -> SendResult:
        return asyncio.run(send_email_async(*args, **kwargs))

    return via_asyncio


def secret_forms(secret: str) -> list[str]:
    """The secret in clear and every base64 form it can take on the wire.

    Inside a longer base64 payload (PLAIN's ``\\0user\\0password``) the
    secret is encoded at one of three alignments; for each, the encoding of
    the whole 3-octet groups it fills appears verbatim in the payload.

    Args:
        secret: a password or token.

    Returns:
        The forms to look for.
    """
    raw = secret.encode()
    forms = [secret, base64.b64encode(raw).decode()]
    for skip in range(3):
        whole = raw[skip:]
        whole = whole[: len(whole) - len(whole) % 3]
        forms.append(base64.b64encode(whole).decode())
    return forms


def exception_texts(error: BaseException) -> Iterable[str]:
    """Every text an exception shows.

    Args:
        error: the exception.

    Returns:
        ``str``, ``repr``, the formatted traceback with its whole
        cause/context chain, and the ``repr`` of every attribute and of the
        arguments of each exception in the chain.
    """
    yield str(error)
    yield repr(error)
    yield "".join(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield from (repr(value) for value in vars(current).values())
        yield repr(current.args)
        current = current.__cause__ or current.__context__
