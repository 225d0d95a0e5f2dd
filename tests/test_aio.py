"""AsyncSmtpClient and send_email_async against real loopback servers: the
same semantics as the blocking client, plus the connection pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import trustme

from conftest import Endpoint
from smtpcore import (
    BasicEmailSessionDetails,
    EmailMessage,
    EmailSessionError,
    EmailSessionReason,
    SendResult,
    ServerDetails,
    SmtpClient,
    SmtpCommandError,
    SmtpErrorKind,
    UserCredentials,
    send_email,
)
from smtpcore.aio import AsyncSmtpClient, send_email_async
from smtpcore.errors import ArgumentError, PropertyEmptyError
from smtpcore.testserver import LocalSmtpServer
from tests.rawserver import RawConnection, RawServer

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def message(subject: str = "hello", to: str = "rcpt@example.com") -> EmailMessage:
    return EmailMessage([to], "sender@example.com", subject=subject, body="body")


def raw(index: int, to: str = "rcpt@example.com") -> tuple[str, list[str], bytes]:
    return (
        "sender@example.com",
        [to],
        b"Subject: %d\r\n\r\nbody %d\r\n" % (index, index),
    )


def test_session_kept_on_details_is_reused(endpoint: Endpoint) -> None:
    async def scenario() -> None:
        async with endpoint.details:
            for number in range(3):
                await send_email_async(
                    message(f"m{number}"),
                    endpoint.details,
                    close_session=False,
                    **endpoint.options,
                )
            assert endpoint.server.connections == 1

    run(scenario())
    [session] = endpoint.server.sessions
    assert session[-1].line == "QUIT"  # aclose() said goodbye
    assert [m.parsed()["Subject"] for m in endpoint.server.messages] == [
        "m0",
        "m1",
        "m2",
    ]


def test_close_session_true_opens_one_connection_per_send(endpoint: Endpoint) -> None:
    for number in range(2):
        run(
            send_email_async(
                message(f"m{number}"), endpoint.details, **endpoint.options
            )
        )
    assert endpoint.server.connections == 2 and len(endpoint.server.messages) == 2
    assert endpoint.details._session is None


def test_sync_close_of_an_async_session_aborts_it(submission: Endpoint) -> None:
    run(
        send_email_async(
            message(), submission.details, close_session=False, **submission.options
        )
    )
    session = submission.details._session
    assert isinstance(session, AsyncSmtpClient) and session.is_connected
    submission.details.close()
    assert not session.is_connected and submission.details._session is None


def test_switching_between_blocking_and_asyncio_on_one_details(
    submission: Endpoint,
) -> None:
    details, options = submission.details, submission.options
    send_email(message("blocking"), details, close_session=False, **options)
    assert isinstance(details._session, SmtpClient)
    run(send_email_async(message("asyncio"), details, close_session=False, **options))
    asyncio_session = details._session
    assert isinstance(asyncio_session, AsyncSmtpClient)
    # And back: the asyncio session is ended, not left open behind the new one.
    send_email(message("blocking again"), details, close_session=False, **options)
    assert isinstance(details._session, SmtpClient)
    assert not asyncio_session.is_connected
    details.close()
    assert submission.server.connections == 3 and len(submission.server.messages) == 3


def test_reconnects_when_the_server_dropped_the_idle_session(
    endpoint: Endpoint,
) -> None:
    async def scenario() -> None:
        async with AsyncSmtpClient(endpoint.details, **endpoint.options) as client:
            await client.send(message("before"))
            endpoint.server.drop_connections()
            await asyncio.sleep(0.05)
            await client.send(message("after"))

    run(scenario())
    assert endpoint.server.connections == 2
    assert [m.parsed()["Subject"] for m in endpoint.server.messages] == [
        "before",
        "after",
    ]


def test_send_many_uses_the_pool_and_keeps_the_order(endpoint: Endpoint) -> None:
    async def scenario() -> list[SendResult | Exception]:
        async with AsyncSmtpClient(
            endpoint.details, max_connections=4, **endpoint.options
        ) as client:
            return await client.send_many([raw(index) for index in range(12)])

    results = run(scenario())
    assert all(isinstance(result, SendResult) for result in results)
    assert len(results) == 12
    assert endpoint.server.connections == 4
    subjects = sorted(int(m.parsed()["Subject"]) for m in endpoint.server.messages)
    assert subjects == list(range(12))


def test_send_many_reports_each_failure_in_place(ca: trustme.CA, password: str) -> None:
    with LocalSmtpServer(
        tls="implicit",
        users={"u": password},
        ca=ca,
        refuse_recipients={"no@example.com"},
    ) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, True),
            UserCredentials("u", password),
        )
        items: list[Any] = [
            raw(0),
            raw(1, to="no@example.com"),
            ("bad", ["x@y.z"], b"x"),
        ]
        items.append(raw(3))

        async def scenario() -> list[SendResult | Exception]:
            client = AsyncSmtpClient(
                details, tls_context=server.client_context(), max_connections=2
            )
            try:
                return await client.send_many(items)
            finally:
                await client.close()

        results = run(scenario())
        assert isinstance(results[0], SendResult) and isinstance(results[3], SendResult)
        assert isinstance(results[1], SmtpCommandError)
        assert results[1].kind is SmtpErrorKind.RECIPIENT_NOT_ACCEPTED
        assert isinstance(results[2], SmtpCommandError) and results[2].reply.code == 501
        assert sorted(m.parsed()["Subject"] for m in server.messages) == ["0", "3"]


def test_refused_recipient_aborts_and_allow_partial_delivers(
    ca: trustme.CA, password: str
) -> None:
    with LocalSmtpServer(
        tls="starttls",
        users={"u": password},
        ca=ca,
        refuse_recipients={"no@example.com"},
    ) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, False),
            UserCredentials("u", password),
        )
        two = EmailMessage(["ok@example.com", "no@example.com"], "s@example.com")

        async def scenario() -> SendResult:
            async with AsyncSmtpClient(
                details, tls_context=server.client_context()
            ) as c:
                with pytest.raises(SmtpCommandError) as info:
                    await c.send(two)
                assert info.value.mailbox == "no@example.com"
                assert server.messages == []
                return await c.send(two, allow_partial=True)

        result = run(scenario())
        assert result.accepted == ["ok@example.com"]
        assert result.rejected["no@example.com"].code == 550
        assert server.connections == 1
        assert "RSET" in [command.line for command in server.sessions[0]]


def test_concurrent_sends_on_one_client_take_turns(submission: Endpoint) -> None:
    async def scenario() -> list[SendResult]:
        async with AsyncSmtpClient(submission.details, **submission.options) as client:
            return await asyncio.gather(
                *(client.send(message(str(n))) for n in range(5))
            )

    results = run(scenario())
    assert len(results) == 5 and submission.server.connections == 1
    assert len(submission.server.messages) == 5


def test_input_errors_before_connecting(submission: Endpoint) -> None:
    with pytest.raises(PropertyEmptyError):
        run(send_email_async(EmailMessage([], "a@b.com"), submission.details))
    with pytest.raises(ArgumentError):
        AsyncSmtpClient(submission.details, max_connections=0)
    assert submission.server.connections == 0


def test_untrusted_certificate(smtps: Endpoint) -> None:
    async def scenario() -> None:
        await AsyncSmtpClient(smtps.details, timeout=2).connect()

    with pytest.raises(EmailSessionError) as info:
        run(scenario())
    assert info.value.reason is EmailSessionReason.EXPIRED_OR_UNTRUSTED_CERTIFICATE


def test_antivirus_root_is_named(password: str) -> None:
    avast = trustme.CA(organization_name="AVAST Software s.r.o.")
    with LocalSmtpServer(tls="implicit", users={"u": password}, ca=avast) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, True),
            UserCredentials("u", password),
        )
        with pytest.raises(EmailSessionError) as info:
            run(AsyncSmtpClient(details, timeout=2).connect())
    assert info.value.reason is EmailSessionReason.CERTIFICATE_REPLACED_BY_ANTIVIRUS
    assert "Avast" in str(info.value)


@pytest.mark.parametrize(
    ("use_ssl", "reason"),
    [
        (True, EmailSessionReason.SSL_WRAPPED_CONNECTION_NOT_SUPPORTED),
        (False, EmailSessionReason.SSL_WRAPPED_CONNECTION_REQUIRED),
    ],
)
def test_tls_mode_mismatch(
    ca: trustme.CA, use_ssl: bool, reason: EmailSessionReason
) -> None:
    # A plain server for use_ssl=True, an implicit-TLS one for use_ssl=False.
    tls = "none" if use_ssl else "implicit"
    with LocalSmtpServer(tls=tls, ca=ca) as server:  # type: ignore[arg-type]
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, use_ssl)
        )
        started = time.monotonic()
        with pytest.raises(EmailSessionError) as info:
            run(
                AsyncSmtpClient(
                    details, timeout=4, tls_context=server.client_context()
                ).connect()
            )
    assert info.value.reason is reason
    assert time.monotonic() - started < 3.5


def silent_after_content(conn: RawConnection) -> None:
    conn.send(b"220 raw.test ESMTP\r\n")
    conn.read_line()
    conn.send(b"250-raw.test\r\n250 PIPELINING\r\n")
    conn.read_until(b"DATA\r\n")
    conn.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.read_until(b"\r\n.\r\n")
    conn.hold()


def test_data_timeout_leaves_delivery_unknown() -> None:
    with RawServer(silent_after_content) as server:
        details = BasicEmailSessionDetails(
            ServerDetails(server.host, server.port, False)
        )

        async def scenario() -> None:
            client = AsyncSmtpClient(details, timeout=2, data_timeout=0.3)
            try:
                await client.send_raw("a@example.com", ["b@example.com"], b"Hi\r\n")
            finally:
                await client.close()

        with pytest.raises(EmailSessionError) as info:
            run(scenario())
    error = info.value
    assert (
        error.reason is EmailSessionReason.CONNECTION_TIMEOUT and error.delivery_unknown
    )
    assert "final reply" in str(error)
