"""Desktop notifications for what needs the user: file errors, conflicts, a refused
mass delete. One notification per kind, replaced in place and closed on recovery, so
a burst never floods the desktop (owncloud #1777: 5,000 popups froze a desktop).

- `Notifier` (pure) turns status snapshots into `Show`/`Close` commands, only when
  what a notification says changes.
- `NotificationSender` speaks `org.freedesktop.Notifications` with jeepney on the
  session bus, in its own thread (the UI never waits on D-Bus), with the exact
  signature ``susssasa{sv}i`` that strict servers (GNOME Shell) require; QtDBus with
  plain Python values marshals other types and is rejected. It keeps each kind's id
  and passes it as ``replaces_id``.
- `DesktopNotifications` wires them to the agent link; without a notification server
  it logs once and falls back to the tray's balloon, if there is a tray.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import QObject, Signal

from s3vault.gui.folder_status import CONFLICT_PREFIX
from s3vault.gui.status_text import home_relative, plural
from s3vault.gui.tray_state import Status, attention

log = logging.getLogger(__name__)

Kind = Literal["error", "conflict", "mass-delete"]
KINDS: tuple[Kind, ...] = ("error", "conflict", "mass-delete")
APP_NAME = "s3vault"
NOTIFY_SIGNATURE = "susssasa{sv}i"
BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
CALL_TIMEOUT = 5.0
BODY_LINES = 3


@dataclass(frozen=True, slots=True)
class Show:
    kind: Kind
    summary: str
    body: str
    urgency: int = 1  # 0 low, 1 normal, 2 critical


@dataclass(frozen=True, slots=True)
class Close:
    kind: Kind


Command = Show | Close


class Notifier:
    """Decides what to show for each snapshot; remembers what is shown per kind."""

    def __init__(self) -> None:
        self.shown: dict[Kind, Show] = {}

    def feed(self, status: Status | None, connected: bool = True) -> list[Command]:
        # Without the agent nothing is known: what is shown stays until it reports again.
        if not connected or status is None:
            return []
        wanted = {show.kind: show for show in _wanted(status)}
        commands: list[Command] = []
        for kind in KINDS:
            show = wanted.get(kind)
            if show is None:
                if self.shown.pop(kind, None) is not None:
                    commands.append(Close(kind))
            elif self.shown.get(kind) != show:
                self.shown[kind] = show
                commands.append(show)
        return commands


def _wanted(status: Status) -> list[Show]:
    need = attention(status)
    problems = [e for e in status.get("errors") or [] if isinstance(e, dict)]
    shows: list[Show] = []
    failed = [e for e in problems if not str(e.get("message", "")).startswith(CONFLICT_PREFIX)]
    folder_errors = [
        f"{f.get('path')}: {f.get('message')}"
        for f in status.get("folders") or []
        # A refused run has a notification of its own (below).
        if isinstance(f, dict)
        and f.get("state") == "error"
        and f.get("message")
        and not f.get("refused")
    ]
    if need.errors:
        summary = f"{plural(need.errors, 'file')} failed to sync"
        shows.append(Show("error", summary, _lines(_describe(failed) or folder_errors), 1))
    elif folder_errors:
        shows.append(Show("error", "A folder could not be synced", _lines(folder_errors), 2))
    if need.conflicts:
        conflicts = status.get("conflicts")
        items = (
            conflicts
            if isinstance(conflicts, list)
            else [e for e in problems if str(e.get("message", "")).startswith(CONFLICT_PREFIX)]
        )
        summary = f"{plural(need.conflicts, 'conflict')} to resolve"
        shows.append(Show("conflict", summary, _lines(_describe(items)), 1))
    if need.refusals:
        shows.append(
            Show(
                "mass-delete",
                "A mass delete was refused: nothing was deleted",
                # The guard's words start lower case (the CLI prints "error: ..." first).
                _lines([line[:1].upper() + line[1:] for line in need.refusals]),
                2,
            )
        )
    return shows


def _describe(items: list[Any]) -> list[str]:
    lines = []
    for item in items:
        if isinstance(item, dict):
            path, message = item.get("path"), item.get("message") or item.get("reason")
            lines.append(f"{path}: {message}" if path and message else str(path or message))
        else:
            lines.append(str(item))
    return lines


def _lines(lines: list[str]) -> str:
    shown = [home_relative(line) for line in lines[:BODY_LINES]]
    more = len(lines) - len(shown)
    return "\n".join(shown + ([f"and {more} more"] if more > 0 else []))


class NotificationSender:
    """Sends commands to the notification server from one worker thread.

    ``on_unavailable(summary, body)`` is called (from the worker) when no server
    answered a `Show`; the first such failure is logged, the rest are not.
    """

    def __init__(self, on_unavailable: Callable[[str, str], None] | None = None) -> None:
        self.ids: dict[Kind, int] = {}
        self.on_unavailable = on_unavailable
        self._queue: queue.Queue[Command | _Marker | None] = queue.Queue()
        self._logged = False
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self._thread.start()

    def send(self, command: Command) -> None:
        self._queue.put(command)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued command was sent (for tests and quit)."""
        done = threading.Event()
        self._queue.put(_Marker(done))
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(CALL_TIMEOUT * 2)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():  # a burst: only the newest per kind matters
                batch.append(self._queue.get_nowait())
            latest: dict[Kind, Command] = {}
            markers: list[_Marker] = []
            stop = False
            for item in batch:
                if item is None:
                    stop = True
                elif isinstance(item, _Marker):
                    markers.append(item)
                else:
                    latest.pop(item.kind, None)  # keep the order of the newest commands
                    latest[item.kind] = item
            for command in latest.values():
                self._send_one(command)
            for marker in markers:
                marker.done.set()
            if stop:
                break
        self._drop_connection()

    def _send_one(self, command: Command) -> None:
        try:
            self._do(command)
        except Exception as exc:  # no server, no bus, a refusal: never crash the app
            self._drop_connection()
            if isinstance(command, Show):
                self._unavailable(command, exc)

    def _do(self, command: Command) -> None:
        if isinstance(command, Show):
            hints = {
                "urgency": ("y", command.urgency),
                "desktop-entry": ("s", APP_NAME),
            }
            if command.kind == "error":
                hints["category"] = ("s", "transfer.error")
            body: tuple[Any, ...] = (
                APP_NAME,
                self.ids.get(command.kind, 0),
                APP_NAME,
                command.summary,
                command.body,
                [],
                hints,
                -1,
            )
            (new_id,) = self._call("Notify", NOTIFY_SIGNATURE, body)
            self.ids[command.kind] = int(new_id)
        else:
            notification_id = self.ids.pop(command.kind, None)
            if notification_id is not None:
                self._call("CloseNotification", "u", (notification_id,))

    def _call(self, method: str, signature: str, body: tuple[Any, ...]) -> tuple[Any, ...]:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import unwrap_msg

        if self._conn is None:
            self._conn = open_dbus_connection(bus="SESSION")
        address = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        message = new_method_call(address, method, signature, body)
        reply = self._conn.send_and_get_reply(message, timeout=CALL_TIMEOUT)
        return tuple(unwrap_msg(reply))

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def _unavailable(self, show: Show, exc: Exception) -> None:
        if not self._logged:
            self._logged = True
            log.warning("desktop notifications unavailable (%s): %s", type(exc).__name__, exc)
        if self.on_unavailable is not None:
            self.on_unavailable(show.summary, show.body)


@dataclass(frozen=True, slots=True)
class _Marker:
    done: threading.Event


class DesktopNotifications(QObject):
    """Feeds the agent link's snapshots to a `Notifier` and sends what it decides.

    ``fallback(summary, body)`` fires on the UI thread when no notification server
    answered; the app shows it as the tray's balloon if there is a tray.
    """

    fallback = Signal(str, str)

    def __init__(self, agent: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.notifier = Notifier()
        self.outbox = NotificationSender(on_unavailable=self.fallback.emit)
        self._agent = agent
        agent.status.connect(self.on_status)

    def on_status(self, status: Status) -> None:
        for command in self.notifier.feed(status, connected=True):
            self.outbox.send(command)

    def close(self) -> None:
        self.outbox.close()
