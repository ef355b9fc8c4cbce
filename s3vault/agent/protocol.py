"""The control socket's messages: one JSON object per line, UTF-8, at most 1 MiB.

    request   {"verb": "pause", "args": {}}
    reply     {"ok": true, ...}  or  {"ok": false, "error": {"type", "message", "hint"}}

Only the verbs in `VERBS` exist; anything else — unknown verb, malformed JSON, a line
too long, a non-object — gets an error reply and never reaches the agent. JSON only:
a socket peer must never be able to make the agent build objects (no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from s3vault.errors import S3VaultError, UsageError

MAX_MESSAGE = 1024 * 1024
VERBS = frozenset({"status", "pause", "resume", "sync-now", "stop", "subscribe"})


class LineReader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class ProtocolError(UsageError):
    """A message that is not a valid request or reply."""

    title = "Invalid control message"


@dataclass(frozen=True, slots=True)
class Request:
    verb: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return encode({"verb": self.verb, "args": self.args})


def encode(message: dict[str, Any]) -> bytes:
    """One line of compact JSON (newline-terminated); ProtocolError if over the cap."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def decode(line: bytes) -> dict[str, Any]:
    """The JSON object of one line; ProtocolError for anything else."""
    if len(line) > MAX_MESSAGE:
        raise ProtocolError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("a message is a JSON object")
    return value


def parse_request(line: bytes) -> Request:
    message = decode(line)
    verb, args = message.get("verb"), message.get("args", {})
    if not isinstance(verb, str):
        raise ProtocolError('a request needs "verb": a string')
    if verb not in VERBS:
        raise ProtocolError(f"unknown verb {verb[:64]!r}; known: {', '.join(sorted(VERBS))}")
    if not isinstance(args, dict):
        raise ProtocolError('"args" is a JSON object')
    unknown = set(message) - {"verb", "args"}
    if unknown:
        raise ProtocolError(f"unknown fields in request: {', '.join(sorted(unknown))}")
    return Request(verb, args)


def read_message(stream: LineReader) -> bytes | None:
    """The next line (without its newline); None at end of stream.

    Reads at most MAX_MESSAGE + 1 bytes, so a peer cannot make us buffer without end.
    """
    line = stream.readline(MAX_MESSAGE + 1)
    if not line:
        return None
    if not line.endswith(b"\n") and len(line) > MAX_MESSAGE:
        raise ProtocolError(f"message longer than {MAX_MESSAGE} bytes")
        # A last line without newline: the peer closed after writing it; accept it.
    return line.rstrip(b"\n")


def ok_reply(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error_reply(exc: S3VaultError) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {
            "type": exc.title,
            "message": exc.message,
            "hint": exc.hint,
            "exit_code": int(exc.exit_code),
        },
    }
