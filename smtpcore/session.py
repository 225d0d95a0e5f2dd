"""``send_email``: the block's semantics on top of :class:`SmtpClient`.

The open session lives on the :class:`BasicEmailSessionDetails` between
calls, exactly as the block keeps it on its InputOutput variable: the first
call opens it, later calls reuse it (reconnecting transparently if the server
dropped it while idle), and ``close_session=True`` or ``details.close()``
ends it.
"""

from __future__ import annotations

from typing import Any

from smtpcore.client import SmtpClient
from smtpcore.envelope import prepare
from smtpcore.models import BasicEmailSessionDetails, EmailMessage
from smtpcore.opening import session_send_options
from smtpcore.protocol.transaction import SendResult

__all__ = ["send_email"]


def send_email(
    message: EmailMessage,
    session_details: BasicEmailSessionDetails,
    close_session: bool = True,
    **options: Any,
) -> SendResult:
    """Send ``message`` using the session kept on ``session_details``.

    Args:
        message: the message to send.
        session_details: server details and credentials; it also holds the
            open session between calls.
        close_session: close the session after sending (the block's
            default); False keeps it open for the next call.
        **options: :class:`SmtpClient` keyword options (``timeout``,
            ``tls_context``, ``starttls``, ...) used when a session is
            opened (a session kept open keeps the options it was opened
            with), and the per-message ``allow_partial``, ``dsn`` and
            ``require_tls`` (see :meth:`SmtpClient.send`).

    Returns:
        The :class:`SendResult`.

    Raises:
        PropertyNullError, PropertyEmptyError, PropertyValueOutOfRangeError,
        ArgumentError, FileNotFoundError, PermissionError, IsADirectoryError:
            invalid input; raised before any connection is opened.
        SmtpCommandError: an address breaks RFC 5321 (before connecting), or
            the server refused the sender, a recipient or the message.
        EmailSessionError: the session could not be opened or broke.
        SmtpProtocolError: the server broke the protocol.
    """
    send_options = session_send_options(session_details, options)
    built = prepare(message)
    client = session_details._session
    if not isinstance(client, SmtpClient):
        session_details.close()  # an asyncio session left open: end it
        client = SmtpClient(session_details, **options)
        session_details._session = client
    try:
        return client._deliver(built, send_options)
    finally:
        if close_session:
            session_details.close()
