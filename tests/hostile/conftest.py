"""Fixtures of the hostile-server tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.hostile.fakeserver import FakeServer
from tests.hostile.support import TlsPair, tls_pair


@pytest.fixture(scope="session")
def tls(ca: trustme.CA) -> TlsPair:
    """A server certificate for 127.0.0.1 from the session CA, and a
    verifying client context that trusts that CA."""
    return tls_pair(ca)


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def fake(_fake_server: FakeServer, tls: TlsPair) -> FakeServer:
    """The shared hostile server, reset to EAST's setup case (STARTTLS, then
    AUTH PLAIN) with the ``tls`` certificate; ``fake.reset(...)`` changes it."""
    _fake_server.reset(context=tls.server)
    return _fake_server
