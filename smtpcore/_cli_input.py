"""``smtpcore send``'s input: the session details and the message(s), from
options or from the seed's JSON files.

Private to :mod:`smtpcore.cli`.  Nothing here connects; every failure is
invalid input (exit status 3).
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys

from smtpcore._cli_common import Console, StartTlsPolicy, describe, resolve_mode
from smtpcore.errors import ArgumentError
from smtpcore.models import (
    BasicEmailSessionDetails,
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
    ServerDetails,
    UserCredentials,
)

__all__ = [
    "PRIORITIES",
    "MessageProblem",
    "load_messages",
    "parse_address",
    "session_details",
    "split_json_array",
]

PRIORITIES = {
    "normal": EmailMessagePriority.NORMAL,
    "non-urgent": EmailMessagePriority.NON_URGENT,
    "urgent": EmailMessagePriority.URGENT,
}
# A conventional environment variable name; anything else given to
# --password-env may well be the password itself and is never echoed.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MessageProblem(Exception):
    """Message ``index`` of ``total`` is invalid input; ``error`` says why.

    Args:
        index: the message's position, from 0.
        total: how many messages there are.
        error: the input error.
    """

    def __init__(self, index: int, total: int, error: BaseException) -> None:
        super().__init__(f"message {index + 1} of {total}: {describe(error)}")
        self.index = index
        self.error = error


def _read(path: str, option: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ArgumentError(option, f"{option} {path}: {exc.strerror or exc}") from exc


def _text(data: bytes, path: str, option: str) -> str:
    try:
        # RFC 8259 8.1: UTF-8; a byte order mark may be ignored.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArgumentError(option, f"{option} {path}: not UTF-8 text") from exc


def _password_from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        if _ENV_NAME.fullmatch(name):
            raise ArgumentError(
                "--password-env", f"--password-env: the variable {name} is not set"
            )
        raise ArgumentError(
            "--password-env",
            "--password-env takes the NAME of an environment variable (not the "
            "password), and no variable of that name is set",
        )
    return value


def _world_readable(path: str) -> bool:
    if os.name != "posix":
        return False  # Windows: mode bits say nothing about who may read
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def session_details(
    args: argparse.Namespace, console: Console
) -> tuple[BasicEmailSessionDetails, StartTlsPolicy]:
    """The session details and the STARTTLS policy from the options.

    Args:
        args: the parsed options.
        console: for the world-readable warning and to blank the password.

    Returns:
        ``(details, starttls policy)``.

    Raises:
        ArgumentError: a file cannot be read or is not the seed's JSON
            shape, or the password variable is not set.
    """
    password = _password_from_env(args.password_env) if args.password_env else None
    if args.session is None:
        port, mode = resolve_mode(args.mode, args.port)
        credentials = UserCredentials(args.user, password) if args.user else None
        details = BasicEmailSessionDetails(
            ServerDetails(args.host, port, mode.use_ssl), credentials
        )
        console.add_secret(password)
        return details, mode.starttls
    details = BasicEmailSessionDetails.from_json(_read(args.session, "--session"))
    credentials = details.credentials
    if credentials is not None and credentials.password and password is None:
        console.add_secret(credentials.password)
        if _world_readable(args.session):
            console.warn(
                f"{args.session} holds a password and every user of this machine "
                f"can read it: chmod 600 {args.session}, or use --password-env"
            )
    if password is not None:
        if credentials is None:
            raise ArgumentError(
                "--password-env", "--password-env: the session file has no Credentials"
            )
        credentials.password = password
        console.add_secret(password)
    server = details.server_details
    if server is None:
        return details, "auto"  # validation names the missing value
    _, mode = resolve_mode(args.mode, server.port, server.use_ssl)
    if args.mode is not None:
        server.use_ssl = mode.use_ssl
    return details, mode.starttls


def split_json_array(text: str) -> list[str] | None:
    """The source text of each element of a top-level JSON array.

    The seed's documents are not quite JSON (bare ``EmailMessagePriority.
    Urgent`` tokens), so the array is split here by its structure and each
    element is left to ``EmailMessage.from_json``, which reads the tokens
    and rejects anything else that is not JSON.  Every character inside the
    brackets belongs to one element, so nothing can hide between them.

    Args:
        text: the document.

    Returns:
        The elements' texts, stripped, in order; None if the document is not
        an array (then it is one message).

    Raises:
        ArgumentError: the array is not closed, is closed by ``}``, or has
            data after it (``property_name`` ``"--message"``).
    """
    body = text.strip(" \t\r\n")  # RFC 8259 2: the four whitespace characters
    if not body.startswith("["):
        return None
    elements: list[str] = []
    depth = 0
    in_string = escaped = False
    start = 1
    for index, char in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                if char != "]":
                    break
                if body[index + 1 :].strip(" \t\r\n"):
                    raise ArgumentError(
                        "--message", "--message: unexpected data after the JSON array"
                    )
                last = body[start:index].strip(" \t\r\n")
                if last or elements:
                    elements.append(last)
                return elements
        elif char == "," and depth == 1:
            elements.append(body[start:index].strip(" \t\r\n"))
            start = index + 1
    raise ArgumentError("--message", "--message: the JSON array is not closed")


def parse_address(text: str) -> EmailAddress:
    """An address option: ``a@example.com`` or ``Name <a@example.com>``.

    Anything that is not the second form is the address as typed, for
    validation to judge before connecting.  (Not ``email.utils.parseaddr``:
    it silently rewrites malformed input into some other address.)

    Args:
        text: the option's value.

    Returns:
        The address, with the display name (quotes removed) if one was given.
    """
    text = text.strip()
    if text.endswith(">") and "<" in text:
        name, _, address = text[:-1].rpartition("<")
        return EmailAddress(address.strip(), name.strip().strip('"').strip() or None)
    return EmailAddress(text)


def load_messages(args: argparse.Namespace) -> list[EmailMessage]:
    """The message(s) to send, from --message or the message options.

    Args:
        args: the parsed options.

    Returns:
        At least one message.

    Raises:
        ArgumentError: a file cannot be read or is not the seed's JSON shape.
        MessageProblem: an element of a JSON array is not a message.
    """
    if args.message is None:
        body = args.body
        if args.body_file is not None:
            body = _text(
                _read(args.body_file, "--body-file"), args.body_file, "--body-file"
            )
        return [
            EmailMessage(
                to=[parse_address(a) for a in args.to],
                from_=parse_address(args.from_),
                cc=[parse_address(a) for a in args.cc or ()],
                bcc=[parse_address(a) for a in args.bcc or ()],
                priority=PRIORITIES[args.priority] if args.priority else None,
                subject=args.subject,
                body_format=EmailMessageBodyFormat.HTML if args.html else None,
                body=body,
                attachments=list(args.attach or ()),
            )
        ]
    text = _text(_read(args.message, "--message"), args.message, "--message")
    elements = split_json_array(text)
    if elements is None:
        return [EmailMessage.from_json(text)]
    if not elements:
        raise ArgumentError(
            "--message", f"--message {args.message}: the array is empty"
        )
    messages: list[EmailMessage] = []
    for index, element in enumerate(elements):
        try:
            messages.append(EmailMessage.from_json(element))
        except ArgumentError as exc:
            raise MessageProblem(index, len(elements), exc) from exc
    return messages
