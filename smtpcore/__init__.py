"""smtpcore: a protocol-level SMTP client with a sans-IO core.

This module only re-exports the public names; see DESIGN.md for the layers.
"""

from smtpcore.client import SmtpClient
from smtpcore.errors import (
    ArgumentError,
    EmailSessionError,
    EmailSessionReason,
    PropertyEmptyError,
    PropertyNullError,
    PropertyValueOutOfRangeError,
    SmtpCommandError,
    SmtpCoreError,
    SmtpErrorKind,
    SmtpProtocolError,
)
from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.transaction import SendResult
from smtpcore.session import send_email

__all__ = [
    "ArgumentError",
    "BasicEmailSessionDetails",
    "EmailAddress",
    "EmailMessage",
    "EmailMessageBodyFormat",
    "EmailMessagePriority",
    "EmailSessionError",
    "EmailSessionReason",
    "PropertyEmptyError",
    "PropertyNullError",
    "PropertyValueOutOfRangeError",
    "SendResult",
    "ServerDetails",
    "SmtpClient",
    "SmtpCommandError",
    "SmtpCoreError",
    "SmtpErrorKind",
    "SmtpProtocolError",
    "SmtpReply",
    "UserCredentials",
    "send_email",
]
