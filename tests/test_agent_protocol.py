"""The control socket's messages (pure): allow-listed verbs, malformed input, size cap."""

from __future__ import annotations

import io
import json

import pytest

from s3vault.agent.protocol import (
    FOLDER_VERBS,
    MAX_MESSAGE,
    PROTOCOL,
    VERBS,
    ProtocolError,
    Request,
    encode,
    error_reply,
    ok_reply,
    parse_request,
    read_message,
)
from s3vault.errors import ExitCode, UnreachableError


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_allowed_verb_round_trips(verb):
    args = {"folder": "s3://b/p/"} if verb in FOLDER_VERBS else {}
    line = Request(verb, args).encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_request(line.rstrip(b"\n")) == Request(verb, args)


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        ({"verb": "status", "args": {"folder": "s3://b/p/"}}, "status takes no argument folder"),
        ({"verb": "pause", "args": {"folder": "x", "all": True}}, "takes no argument all"),
        ({"verb": "resume", "args": {"folder": 3}}, '"folder" is a string'),
    ],
)
def test_arguments_a_verb_does_not_take_are_refused(request_, says):
    # An argument of a later protocol must fail loudly, never be ignored (a pause of
    # one folder taken for a pause of all).
    with pytest.raises(ProtocolError, match=says):
        parse_request(json.dumps(request_).encode())


def test_protocol_version_is_two_and_hello_is_a_verb():
    assert PROTOCOL == 2 and "hello" in VERBS and FOLDER_VERBS < VERBS


def test_args_default_to_empty():
    assert parse_request(b'{"verb": "status"}') == Request("status", {})


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"verb": "rm -rf"}', "unknown verb"),
        (b'{"verb": "__class__"}', "unknown verb"),
        (b'{"verb": "STATUS"}', "unknown verb"),  # verbs are exact, not case-folded
        (b'{"args": {}}', '"verb"'),
        (b'{"verb": 1}', '"verb"'),
        (b'{"verb": "status", "args": []}', '"args"'),
        (b'{"verb": "status", "extra": 1}', "unknown fields"),
        (b'["status"]', "JSON object"),
        (b'"status"', "JSON object"),
        (b"null", "JSON object"),
        (b"{not json", "malformed JSON"),
        (b'{"verb": "status"', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"\x80\x04\x95", "malformed JSON"),  # a pickle header is just bad bytes
        (b"", "malformed JSON"),
    ],
)
def test_bad_requests_are_rejected_with_a_reason(line, says):
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert says in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_size_cap_on_encode_and_parse():
    big = {"verb": "status", "args": {"pad": "x" * MAX_MESSAGE}}
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(big)
    with pytest.raises(ProtocolError, match="longer than"):
        parse_request(json.dumps(big).encode())


def test_read_message_stops_at_the_cap():
    # A peer sending an endless line costs us MAX_MESSAGE + 1 bytes, then an error.
    stream = io.BytesIO(b"x" * (3 * MAX_MESSAGE))
    with pytest.raises(ProtocolError, match="longer than"):
        read_message(stream)


def test_read_message_lines_and_end():
    stream = io.BytesIO(b'{"verb":"status"}\n{"verb":"pause"}')
    assert read_message(stream) == b'{"verb":"status"}'
    assert read_message(stream) == b'{"verb":"pause"}'  # last line without newline
    assert read_message(stream) is None


def test_replies():
    assert ok_reply(state="idle") == {"ok": True, "state": "idle"}
    reply = error_reply(UnreachableError("S3 down", hint="check the network"))
    assert reply == {
        "ok": False,
        "error": {
            "type": "Service unreachable",
            "message": "S3 down",
            "hint": "check the network",
            "exit_code": 6,
        },
    }
    assert json.loads(encode(reply)) == reply
