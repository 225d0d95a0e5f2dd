"""The shape every SASL mechanism has (RFC 4422), shared by
:mod:`smtpcore.protocol.sasl` and :mod:`smtpcore.protocol.oauth`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeAlias

__all__ = [
    "MAX_ROUNDS",
    "SaslMechanism",
    "SaslServerFailure",
    "TokenSource",
    "utf8_credential",
]

# RFC 4422 3.1 leaves the number of round trips to the mechanism; a server
# that keeps challenging forever must not keep us forever.
MAX_ROUNDS = 10

# An OAuth 2 access token, or a function returning a fresh one.
TokenSource: TypeAlias = str | Callable[[], str]


class SaslServerFailure(ValueError):
    """The server said inside the exchange, not with a reply code, that
    authentication failed (SCRAM's ``e=``, RFC 5802 7).

    Attributes:
        temporary: the server ran out of resources; trying later may work.
            Otherwise the credentials were refused.
    """

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


def utf8_credential(text: str, what: str) -> bytes:
    """Encode a credential; the value never appears in the error."""
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError(f"the {what} contains a lone surrogate, not text")
    return text.encode("utf-8")


class SaslMechanism(ABC):
    """One SASL exchange; create a new object per authentication."""

    name: ClassVar[bytes]
    # Challenges answered so far (see _take_round).
    _round = 0

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The response sent with the AUTH command, or None to wait for a
        challenge first (RFC 4954 4).

        Returns:
            The raw (not yet base64-encoded) response, or None.
        """

    @abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded ``334`` challenge.

        Args:
            challenge: the base64-decoded challenge.

        Returns:
            The raw response (the dialogue base64-encodes it).

        Raises:
            ValueError: the challenge makes no sense for this mechanism, or
                one more challenge came than the mechanism has rounds.
        """

    def complete(self) -> None:
        """Check that the exchange really finished; called after ``235``.

        Most mechanisms have nothing to check.

        Raises:
            ValueError: the server claimed success without completing the
                mechanism (see :class:`Scram`).
        """
        return None  # nothing to check, unless a subclass says otherwise

    def _take_round(self, rounds: int) -> int:
        """Count one challenge of at most ``rounds``; return its index."""
        index = self._round
        if index >= rounds:
            raise ValueError(
                f"{self.name.decode('ascii')} expects {rounds} challenge(s), "
                f"got one more"
            )
        self._round = index + 1
        return index

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mechanism>"
