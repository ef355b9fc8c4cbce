"""The control socket's messages: one JSON object per line, UTF-8, at most 1 MiB.

    request   {"verb": "pause", "args": {}}
    reply     {"ok": true, ...}  or  {"ok": false, "error": {"type", "message", "hint"}}

Only the verbs in `VERBS` exist; anything else — unknown verb, malformed JSON, a line
too long, a non-object — gets an error reply and never reaches the agent. JSON only:
a socket peer must never be able to make the agent build objects (no pickle).

Versioning: `PROTOCOL` is in every status snapshot and in the reply to ``hello``. A
change that adds (a verb, an argument, a field) bumps it; clients ignore fields they
do not know and check ``protocol >= N`` before using what version N added. A change
that removes or redefines something would need a new socket, not a bump.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from s3vault.errors import S3VaultError, UsageError

MAX_MESSAGE = 1024 * 1024
PROTOCOL = 2
"""1: status, pause, resume, sync-now, stop, subscribe. 2: hello; pause, resume and
sync-now take {"folder": ID}; per-folder paused, refused and conflicts; attention,
conflicts and files in the snapshot."""
VERBS = frozenset({"hello", "status", "pause", "resume", "sync-now", "stop", "subscribe"})
FOLDER_VERBS = frozenset({"pause", "resume", "sync-now"})  # take an optional "folder"


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
    allowed = {"folder"} if verb in FOLDER_VERBS else set()
    unknown_args = set(args) - allowed
    if unknown_args:
        raise ProtocolError(f"{verb} takes no argument {', '.join(sorted(unknown_args))}")
    if "folder" in args and not isinstance(args["folder"], str):
        raise ProtocolError('"folder" is a string: a folder id (s3://BUCKET/PREFIX/) or path')
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
