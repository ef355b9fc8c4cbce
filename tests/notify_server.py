"""A strict ``org.freedesktop.Notifications`` server for tests (jeepney, session bus).

Strict like GNOME Shell: ``Notify`` is answered only when the message's signature is
exactly ``susssasa{sv}i``; anything else gets an ``InvalidArgs`` error (a lenient mock
would hide the QtDBus marshalling bug, GUI.md). Ids increase from 1; a non-zero
``replaces_id`` of a live notification keeps its id. ``CloseNotification`` removes one
and emits ``NotificationClosed``. Every call is recorded for the test's assertions.

    with NotifyServer() as server:       # needs DBUS_SESSION_BUS_ADDRESS (private bus)
        ...
        server.wait_for(lambda: server.live)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import Message
from jeepney.wrappers import new_signal

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
NOTIFY_SIGNATURE = "susssasa{sv}i"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


@dataclass
class Call:
    method: str
    signature: str
    body: tuple[Any, ...]
    accepted: bool
    reply: Any = None


@dataclass
class NotifyServer:
    calls: list[Call] = field(default_factory=list)
    live: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (summary, body)
    _next_id: int = 1
    _conn: DBusConnection | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> NotifyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._conn = open_dbus_connection(bus="SESSION")
        reply = self._conn.send_and_get_reply(message_bus.RequestName(NAME, 4), timeout=5)
        if reply.body[0] != 1:  # 1: primary owner
            raise RuntimeError(f"could not own {NAME} (reply {reply.body[0]})")
        self._thread = threading.Thread(target=self._serve, name="notify-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._conn is not None:
            self._conn.close()

    # ---- for assertions -----------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls: {self.calls}")
            time.sleep(0.02)

    # ---- the server -------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._conn is not None
        while not self._stop.is_set():
            try:
                msg = self._conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            except OSError:
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            if msg.header.fields.get(HeaderFields.path) != PATH:
                continue
            self._conn.send(self._answer(msg))

    def _answer(self, msg: Message) -> Message:
        method = str(msg.header.fields.get(HeaderFields.member))
        signature = str(msg.header.fields.get(HeaderFields.signature, ""))
        call = Call(method, signature, tuple(msg.body), accepted=False)
        with self._lock:
            self.calls.append(call)
            reply = self._dispatch(msg, call)
        return reply

    def _dispatch(self, msg: Message, call: Call) -> Message:
        if call.method == "Notify":
            if call.signature != NOTIFY_SIGNATURE:
                return new_error(
                    msg,
                    INVALID_ARGS,
                    "s",
                    (
                        f"Type of message, '({call.signature})', does not match expected type "
                        f"'({NOTIFY_SIGNATURE})'",
                    ),
                )
            _app, replaces_id, _icon, summary, body, _actions, _hints, _timeout = call.body
            if replaces_id and replaces_id in self.live:
                notification_id = replaces_id
            else:
                notification_id = self._next_id
                self._next_id += 1
            self.live[notification_id] = (summary, body)
            call.accepted, call.reply = True, notification_id
            return new_method_return(msg, "u", (notification_id,))
        if call.method == "CloseNotification" and call.signature == "u":
            (notification_id,) = call.body
            call.accepted = True
            if self.live.pop(notification_id, None) is not None and self._conn is not None:
                emitter = DBusAddress(PATH, interface=NAME)
                self._conn.send(
                    new_signal(emitter, "NotificationClosed", "uu", (notification_id, 3))
                )
            return new_method_return(msg)
        if call.method == "GetCapabilities":
            call.accepted = True
            return new_method_return(msg, "as", (["body", "persistence"],))
        if call.method == "GetServerInformation":
            call.accepted = True
            return new_method_return(msg, "ssss", ("strict-test", "s3vault", "1", "1.2"))
        return new_error(msg, UNKNOWN_METHOD, "s", (f"no method {call.method}({call.signature})",))
