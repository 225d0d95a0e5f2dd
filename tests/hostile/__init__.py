"""Hostile-server tests: STARTTLS attacks (including a replay of the EAST
test cases), SMTP smuggling, injection, message integrity, parser fuzzing,
faults at every point of a transaction, and secrets on every failure path.

Everything runs on loopback against :mod:`tests.hostile.fakeserver` (a
scriptable, misbehaving server), :mod:`tests.rawserver` or the aiosmtpd
based :class:`smtpcore.testserver.LocalSmtpServer`.
"""
