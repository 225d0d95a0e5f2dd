"""SASL mechanisms as pure challenge -> response objects (RFC 4422).

A mechanism knows nothing of SMTP: the dialogue sends ``AUTH <name>`` with
the mechanism's initial response, decodes each ``334`` challenge and hands
it to :meth:`SaslMechanism.respond`.  Objects hold secrets, so their
``repr`` never shows them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import ClassVar

__all__ = ["Login", "Plain", "SaslMechanism", "choose_mechanism"]

# RFC 4422 3.1 leaves the number of round trips to the mechanism; a server
# that keeps challenging forever must not keep us forever.
MAX_ROUNDS = 10


class SaslMechanism(ABC):
    """One SASL exchange; create a new object per authentication."""

    name: ClassVar[bytes]

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The response sent with the AUTH command, or None to wait for a
        challenge first (RFC 4954 4)."""

    @abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded ``334`` challenge.

        Raises:
            ValueError: the challenge makes no sense for this mechanism.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mechanism>"


class Plain(SaslMechanism):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in UTF-8."""

    name = b"PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        self._message = b"\0".join(
            part.encode("utf-8") for part in (authzid, username, password)
        )

    def initial_response(self) -> bytes | None:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        # RFC 4616 2: with no initial response the server sends an empty
        # challenge and the message follows; anything more is an error.
        if challenge:
            raise ValueError("PLAIN expects an empty challenge")
        return self._message


class Login(SaslMechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password.

    Servers word the prompts differently ("Username:", "User Name", ...),
    so the answer goes by round, not by the prompt's text.
    """

    name = b"LOGIN"

    def __init__(self, username: str, password: str) -> None:
        self._answers = [username.encode("utf-8"), password.encode("utf-8")]
        self._round = 0

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._round >= len(self._answers):
            raise ValueError("LOGIN got more than two challenges")
        answer = self._answers[self._round]
        self._round += 1
        return answer


# Strongest first: PLAIN before LOGIN only because both send the password
# and PLAIN does it in one round trip.
_PREFERENCE: tuple[type[Plain] | type[Login], ...] = (Plain, Login)


def choose_mechanism(
    offered: Collection[str], username: str, password: str
) -> SaslMechanism | None:
    """Pick the best mechanism both sides support.

    Args:
        offered: the upper-case mechanism names from the EHLO reply.
        username: the user name.
        password: the password.

    Returns:
        A fresh mechanism object, or None if nothing usable is offered.
    """
    for mechanism in _PREFERENCE:
        if mechanism.name.decode("ascii") in offered:
            return mechanism(username, password)
    return None
