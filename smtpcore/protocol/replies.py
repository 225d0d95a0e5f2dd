"""SMTP replies: the reply value object and the bounded, incremental parser."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SmtpReply"]


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One complete server reply.

    Attributes:
        code: the three-digit reply code.
        lines: the text of each reply line, without code, separator or CRLF.
        enhanced_status: the RFC 3463 status (``"5.1.1"``) if the first line
            starts with one whose class matches the code, else None.  The
            status is kept in ``lines`` as well, exactly as the server sent it.
    """

    code: int
    lines: tuple[bytes, ...] = ()
    enhanced_status: str | None = None

    @property
    def text(self) -> str:
        """The reply text, lines joined with ``\\n``, decoded leniently."""
        return "\n".join(
            line.decode("utf-8", "replace") for line in self.lines
        )

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server waits for more (DATA's 354, AUTH's 334)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a temporary failure; the same command may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()
