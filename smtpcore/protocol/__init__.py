"""The sans-IO SMTP core: no sockets, no TLS, no clocks.

:class:`SmtpConnection` turns commands into bytes and bytes into replies;
:mod:`smtpcore.protocol.dialogue` writes the conversation on top of it once,
for every transport.
"""

from smtpcore.protocol.connection import NEED_DATA, ConnectionClosed, SmtpConnection
from smtpcore.protocol.replies import SmtpReply
from smtpcore.protocol.state import State

__all__ = ["NEED_DATA", "ConnectionClosed", "SmtpConnection", "SmtpReply", "State"]
