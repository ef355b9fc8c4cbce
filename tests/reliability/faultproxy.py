"""A fault-injecting HTTP/1.1 forwarding proxy on 127.0.0.1, for the service-fault tests.

Put it between s3vault and a real service (SeaweedFS, moto's KMS) by pointing the
endpoint at it (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_KMS``): it forwards every
request and answer faithfully (keep-alive, ``Content-Length`` and chunked bodies,
streamed in 64 KiB pieces, never whole in memory) and, when a `Rule` matches, injects
a fault instead:

``reset``            forwards the request, then resets the connection (RST) before any
                     answer (the service did the work; the client never hears of it)
``reset mid-body``   sends the head and half the body, then resets
``stall``            holds the answer ``seconds`` (then sends it, if the client waited)
``500`` / ``503`` / ``slowdown``
                     answers the error itself (an S3 XML body, or KMS's JSON), without
                     forwarding the request
``truncate``         announces the whole body, sends half, closes (FIN)
``length more``      announces ``Content-Length`` + 1000, sends the body, closes
``length fewer``     announces half the length, sends the whole body, closes

`FaultProxy.down` / `FaultProxy.up` close and reopen the listening port (connection
refused, as a service that is gone). Every injected fault is counted by kind in
`FaultProxy.injected` (what really happened on the wire, for the reliability report)
and every request is logged in `FaultProxy.requests`.

    with FaultProxy(upstream="http://127.0.0.1:8333", flavour="s3") as proxy:
        proxy.add(Rule("503", method="PUT", times=2))
        ...  # point s3vault at proxy.url
        assert proxy.injected["503"] == 2
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "reset",
    "reset mid-body",
    "stall",
    "500",
    "503",
    "slowdown",
    "truncate",
    "length more",
    "length fewer",
)
_PIECE = 64 * 1024
_NO_BODY_STATUS = {204, 304}


@dataclass
class Rule:
    """When to inject which fault.

    Matches a request whose ``method`` (if given) is its method and whose ``path``
    regex (if given) is found in its path (query included). Of the matching requests
    it skips the first ``after``, then fires on each (or with ``probability``, drawn from
    the proxy's seeded RNG) until it has fired ``times`` times (None: for ever).
    """

    kind: str
    method: str | None = None
    path: str | None = None
    after: int = 0
    times: int | None = 1
    probability: float = 1.0
    seconds: float = 0.0  # for "stall"
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path is None or re.search(self.path, path) is not None

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass
class Request:
    """One request as the proxy saw it: when, what, and the fault it got (if any)."""

    at: float
    method: str
    path: str
    fault: str | None = None
    status: int | None = None


class _Closed(Exception):
    """The peer closed the connection (or it broke)."""


class _Reader:
    """Buffered reads from a socket: lines, exact counts, pieces."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        try:
            data = self.sock.recv(_PIECE)
        except OSError as exc:
            raise _Closed(str(exc)) from None
        if not data:
            raise _Closed("closed")
        self.buf += data

    def head(self) -> bytes:
        """Up to and including the blank line that ends a message head."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise _Closed("head too large")
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def piece(self, most: int) -> bytes:
        if not self.buf:
            self._fill()
        piece, self.buf = self.buf[:most], self.buf[most:]
        return piece

    def until_close(self) -> bytes:
        if self.buf:
            piece, self.buf = self.buf, b""
            return piece
        try:
            return self.sock.recv(_PIECE)
        except OSError:
            return b""


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _build_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([first, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n").encode("latin-1")


def _body_pieces(reader: _Reader, headers: list[tuple[str, str]], *, to_close: bool) -> Any:
    """The body's raw bytes (chunk framing included), piece by piece."""
    if (_header(headers, "transfer-encoding") or "").lower() == "chunked":
        while True:
            size_line = reader.line()
            yield size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = reader.line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            left = size + 2  # the data and its CRLF
            while left:
                piece = reader.piece(min(left, _PIECE))
                left -= len(piece)
                yield piece
        return
    length = _header(headers, "content-length")
    if length is not None:
        left = int(length)
        while left:
            piece = reader.piece(min(left, _PIECE))
            left -= len(piece)
            yield piece
        return
    if to_close:
        while piece := reader.until_close():
            yield piece


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _error_body(kind: str, flavour: str) -> tuple[int, str, bytes, str]:
    status, code = {
        "500": (500, "InternalError"),
        "503": (503, "ServiceUnavailable"),
        "slowdown": (503, "SlowDown"),
    }[kind]
    reason = "Internal Server Error" if status == 500 else "Service Unavailable"
    if flavour == "kms":
        kms_code = "KMSInternalException" if status == 500 else "ServiceUnavailableException"
        body = f'{{"__type": "{kms_code}", "message": "injected by the fault proxy"}}'
        return status, reason, body.encode(), "application/x-amz-json-1.1"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message>"
        "<RequestId>faultproxy</RequestId></Error>"
    )
    return status, reason, body.encode(), "application/xml"


@dataclass
class FaultProxy:
    """The proxy to ``upstream`` (``http://host:port``); ``flavour`` "s3" or "kms"
    shapes the error bodies. Threads: one accepting, one per client connection."""

    upstream: str
    flavour: str = "s3"
    seed: int = 0
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.upstream)
        self._target = (url.hostname or "127.0.0.1", url.port or 80)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._stopping = False

    # ---- life cycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self.up()
        return self

    def up(self) -> None:
        """Listen (again, on the same port)."""
        if self._listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and reset every open connection: the service is gone."""
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for conn in conns:
            _reset(conn)

    def stop(self) -> None:
        self._stopping = True
        self.down()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- rules and counters -----------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def seed_rng(self, seed: int) -> None:
        """Draw the rules' probabilities from ``seed`` from now on (replayable)."""
        with self._lock:
            self._rng = random.Random(seed)

    def clear(self) -> None:
        """No more faults: forward everything."""
        with self._lock:
            self.rules.clear()

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.injected)

    def requests_since(self, at: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.at >= at]

    def _choose(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.spent or not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def _unfire(self, rule: Rule) -> None:
        """The chosen fault did not apply to this answer (no body to cut): not fired."""
        with self._lock:
            rule.fired -= 1

    def _count(self, request: Request, kind: str) -> None:
        with self._lock:
            request.fault = kind
            self.injected[kind] += 1

    # ---- serving --------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            reader = _Reader(client)
            up_reader: _Reader | None = None
            while True:
                try:
                    head = reader.head()
                except _Closed:
                    return
                if upstream is None:
                    upstream = socket.create_connection(self._target)
                    up_reader = _Reader(upstream)
                assert up_reader is not None
                if not self._exchange(client, reader, upstream, up_reader, head):
                    return
        except (_Closed, OSError):
            return
        finally:
            with self._lock:
                self._conns.discard(client)
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _exchange(
        self,
        client: socket.socket,
        reader: _Reader,
        upstream: socket.socket,
        up_reader: _Reader,
        head: bytes,
    ) -> bool:
        """One request and its answer; False when the client connection is done."""
        first, headers = _parse_head(head)
        method, path, _ = first.split(" ", 2)
        request = Request(time.monotonic(), method, path)
        with self._lock:
            self.requests.append(request)
        rule = self._choose(method, path)
        kind = rule.kind if rule else None
        expect = _header(headers, "expect")
        if expect is not None:
            # Answer "100 Continue" here and forward without it: the body follows at
            # once (Expect is never part of a SigV4 signature).
            headers = [(k, v) for k, v in headers if k.lower() != "expect"]
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _body_pieces(reader, headers, to_close=False)

        if kind in ("500", "503", "slowdown"):
            for _ in body:  # read and drop the request body
                pass
            status, reason, text, ctype = _error_body(kind, self.flavour)
            answer = [
                ("Content-Type", ctype),
                ("Content-Length", str(len(text))),
                ("x-amz-request-id", "faultproxy"),
            ]
            client.sendall(_build_head(f"HTTP/1.1 {status} {reason}", answer) + text)
            request.status = status
            self._count(request, kind)
            return True

        upstream.sendall(_build_head(first, headers))
        for piece in body:
            upstream.sendall(piece)
        answer_head = up_reader.head()
        status_line, answer_headers = _parse_head(answer_head)
        while status_line.split(" ")[1].startswith("1"):  # 100 Continue from upstream
            answer_head = up_reader.head()
            status_line, answer_headers = _parse_head(answer_head)
        status = int(status_line.split(" ")[1])
        request.status = status
        has_body = method != "HEAD" and status not in _NO_BODY_STATUS
        closes = (_header(answer_headers, "connection") or "").lower() == "close"
        to_close = has_body and (
            _header(answer_headers, "content-length") is None
            and (_header(answer_headers, "transfer-encoding") or "").lower() != "chunked"
        )
        pieces = (
            _body_pieces(up_reader, answer_headers, to_close=to_close) if has_body else iter(())
        )
        length_text = _header(answer_headers, "content-length")
        length = int(length_text) if length_text is not None and has_body else None

        if kind == "reset":
            for _ in pieces:
                pass
            self._count(request, kind)
            _reset(client)
            return False
        if kind == "stall":
            self._count(request, kind)
            time.sleep(rule.seconds if rule else 0)
        if kind in ("length more", "length fewer") and length is not None and length > 1:
            announced = length + 1000 if kind == "length more" else length // 2
            answer_headers = [
                (k, str(announced) if k.lower() == "content-length" else v)
                for k, v in answer_headers
            ]
            client.sendall(_build_head(status_line, answer_headers))
            for piece in pieces:
                client.sendall(piece)
            self._count(request, kind)
            client.shutdown(socket.SHUT_RDWR)
            return False
        if kind in ("truncate", "reset mid-body") and has_body and (length or 0) > 1:
            client.sendall(answer_head)
            left = (length or 0) // 2
            for piece in pieces:
                if left <= 0:
                    continue  # drain upstream so its connection stays usable
                client.sendall(piece[:left])
                left -= len(piece)
            self._count(request, kind)
            if kind == "truncate":
                client.shutdown(socket.SHUT_RDWR)
            else:
                _reset(client)
            return False

        if rule is not None and kind != "stall":
            self._unfire(rule)
        client.sendall(answer_head)
        for piece in pieces:
            client.sendall(piece)
        return not (closes or to_close)
