"""``smtpcore._cli_input``: splitting a JSON array of the seed's messages,
address options, and the session details built from options and files."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._cli_common import Console
from smtpcore._cli_input import (
    MessageProblem,
    load_messages,
    parse_address,
    session_details,
    split_json_array,
)
from smtpcore.demo import SEED_EXAMPLES
from smtpcore.errors import ArgumentError
from smtpcore.models import (
    EmailAddress,
    EmailMessage,
    EmailMessageBodyFormat,
    EmailMessagePriority,
)

# JSON values with the characters that matter to the splitter: brackets,
# braces, commas, quotes and backslashes inside strings.
_tricky_text = st.text(alphabet=st.sampled_from('ab ,[]{}:"\\\n\u00e9'), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3)
    ),
    max_leaves=8,
)
_objects = st.dictionaries(_tricky_text, _json_values, max_size=4)
_layouts = st.sampled_from(
    [
        {},
        {"indent": 2},
        {"separators": (",", ":")},
        {"indent": "\t", "separators": (" , ", " : ")},
    ]
)


@settings(max_examples=200)
@given(st.lists(_objects, max_size=5), _layouts)
def test_split_gives_back_each_element(items: list[Any], layout: Any) -> None:
    text = json.dumps(items, **layout)
    parts = split_json_array(text)
    assert parts is not None
    assert [json.loads(part) for part in parts] == items


@settings(max_examples=100)
@given(_objects, _layouts)
def test_a_single_object_is_not_an_array(item: Any, layout: Any) -> None:
    assert split_json_array(json.dumps(item, **layout)) is None


@settings(max_examples=100)
@given(
    st.lists(_objects, min_size=1, max_size=3), st.sampled_from(["x", "[]", "{}", "1"])
)
def test_trailing_data_is_refused(items: list[Any], trailing: str) -> None:
    with pytest.raises(ArgumentError, match="after the JSON array"):
        split_json_array(json.dumps(items) + " " + trailing)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[{"a": 1}', "not closed"),
        ('[{"a": "]"}', "not closed"),
        ('[{"a": 1}}', "not closed"),  # closed by "}" instead of "]"
        ('["\\"]', "not closed"),  # the quote is escaped: the string runs on
    ],
)
def test_broken_arrays_are_refused(text: str, words: str) -> None:
    with pytest.raises(ArgumentError, match=words) as caught:
        split_json_array(text)
    assert caught.value.property_name == "--message"


def test_seed_examples_with_bare_tokens_split_whole() -> None:
    # The seed's documents are not JSON (bare EmailMessagePriority.Urgent):
    # each element must come back verbatim for from_json to read.
    examples = [example.message_json for example in SEED_EXAMPLES]
    parts = split_json_array("[\n" + ",\n".join(examples) + "\n]\n")
    assert parts == examples
    messages = [EmailMessage.from_json(part) for part in parts]
    assert messages[3].priority is EmailMessagePriority.URGENT
    assert messages[4].body_format is EmailMessageBodyFormat.HTML


def test_empty_array_and_empty_elements() -> None:
    assert split_json_array("[]") == []
    assert split_json_array(" [ ] ") == []
    # An empty element is handed on, for from_json to refuse.
    assert split_json_array("[{}, ]") == ["{}", ""]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a@example.com", EmailAddress("a@example.com")),
        ("  a@example.com ", EmailAddress("a@example.com")),
        ("Ann Example <a@example.com>", EmailAddress("a@example.com", "Ann Example")),
        (
            '"Example, Ann" <a@example.com>',
            EmailAddress("a@example.com", "Example, Ann"),
        ),
        ("<a@example.com>", EmailAddress("a@example.com")),
        # Smuggling stays in the address, where validation refuses it.
        ("x <a@example.com> SIZE=1>", EmailAddress("a@example.com> SIZE=1", "x")),
        ("a@example.com> SIZE=1", EmailAddress("a@example.com> SIZE=1")),
    ],
)
def test_parse_address(text: str, expected: EmailAddress) -> None:
    assert parse_address(text) == expected


def _args(**given: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {
        "session": None,
        "host": "127.0.0.1",
        "port": None,
        "user": None,
        "password_env": None,
        "mode": None,
        "message": None,
    }
    return argparse.Namespace(**{**defaults, **given})


def _console() -> tuple[Console, io.StringIO]:
    stderr = io.StringIO()
    return Console(io.StringIO(), stderr, json_output=False), stderr


@pytest.mark.parametrize(
    ("mode", "port", "expected"),
    [
        (None, None, (465, True, "auto")),  # the seed's defaults
        (None, 587, (587, False, "auto")),
        (None, 465, (465, True, "auto")),
        ("ssl", None, (465, True, "auto")),
        ("starttls", None, (587, False, "required")),
        ("no-tls", None, (25, False, "never")),
        ("ssl", 2465, (2465, True, "auto")),
    ],
)
def test_session_from_options(
    mode: str | None, port: int | None, expected: tuple[int, bool, str]
) -> None:
    console, _ = _console()
    details, starttls = session_details(_args(mode=mode, port=port), console)
    server = details.server_details
    assert server is not None and details.credentials is None
    assert (server.port, server.use_ssl, starttls) == expected


def _session_file(tmp_path: Path, mode: int, password: str | None) -> str:
    path = tmp_path / "session.json"
    credentials = {"Username": "u@example.com", "Password": password, "Domain": None}
    path.write_text(
        json.dumps(
            {
                "ServerDetails": {
                    "Host": "smtp.example.com",
                    "Port": 587,
                    "UseSsl": False,
                },
                "Credentials": credentials,
            }
        )
    )
    path.chmod(mode)
    return str(path)


@pytest.mark.skipif(os.name != "posix", reason="mode bits")
def test_session_file_warns_when_world_readable(tmp_path: Path) -> None:
    console, stderr = _console()
    path = _session_file(tmp_path, 0o644, "from-the-file")
    details, starttls = session_details(_args(session=path, host=None), console)
    assert details.credentials is not None
    assert details.credentials.password == "from-the-file"  # used as is
    assert starttls == "auto"
    assert "chmod 600" in stderr.getvalue()
    assert console.scrub("x from-the-file y") == "x <redacted> y"

    quiet, quiet_err = _console()
    session_details(
        _args(session=_session_file(tmp_path, 0o600, "p4ssw0rd"), host=None), quiet
    )
    assert quiet_err.getvalue() == ""


def test_password_env_overrides_the_file_and_mode_overrides_use_ssl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_PASSWORD", "from-the-environment")
    console, stderr = _console()
    path = _session_file(tmp_path, 0o644, "from-the-file")
    args = _args(session=path, host=None, password_env="SESSION_PASSWORD", mode="ssl")
    details, _ = session_details(args, console)
    assert details.credentials is not None and details.server_details is not None
    assert details.credentials.password == "from-the-environment"
    assert details.server_details.use_ssl and details.server_details.port == 587
    # The file's password is not the one in use: nothing to warn about.
    assert stderr.getvalue() == ""


def test_password_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SURELY_NOT_SET", raising=False)
    console, _ = _console()
    with pytest.raises(ArgumentError, match="SURELY_NOT_SET is not set"):
        session_details(_args(user="u", password_env="SURELY_NOT_SET"), console)


def test_a_bad_element_is_named(tmp_path: Path) -> None:
    path = tmp_path / "messages.json"
    path.write_text('[{"To": ["a@example.com"], "From": "b@example.com"}, {"Tox": []}]')
    with pytest.raises(MessageProblem, match="message 2 of 2") as caught:
        load_messages(_args(message=str(path)))
    assert caught.value.index == 1
    assert isinstance(caught.value.error, ArgumentError)
    assert caught.value.error.property_name == "tox"


def test_unreadable_message_file(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="--message") as caught:
        load_messages(_args(message=str(tmp_path / "missing.json")))
    assert caught.value.property_name == "--message"
    (tmp_path / "latin1.json").write_bytes(b'{"Subject": "\xe9"}')
    with pytest.raises(ArgumentError, match="not UTF-8"):
        load_messages(_args(message=str(tmp_path / "latin1.json")))
