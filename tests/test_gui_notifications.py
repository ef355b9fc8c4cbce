"""Desktop notifications against a strict org.freedesktop.Notifications server on the
test session's private bus: one per kind, replaced in place, closed on recovery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from notify_server import NOTIFY_SIGNATURE, NotifyServer

from s3vault.gui.notifications import Close, NotificationSender, Notifier, Show


@pytest.fixture
def server(private_keyring: object) -> Iterator[NotifyServer]:
    with NotifyServer() as srv:
        yield srv


@pytest.fixture
def sender() -> Iterator[NotificationSender]:
    s = NotificationSender()
    yield s
    s.close()


def snapshot(errors: int = 0, conflicts: int = 0, **extra: Any) -> dict[str, Any]:
    problems = [
        {"folder": "f", "path": f"docs/file{i}.txt", "message": "permission denied"}
        for i in range(errors)
    ]
    problems += [
        {"folder": "f", "path": f"c{i}.txt", "message": "conflict: both changed"}
        for i in range(conflicts)
    ]
    return {"state": "idle", "folders": [], "errors": problems, "progress": None, **extra}


def feed(notifier: Notifier, sender: NotificationSender, status: dict[str, Any]) -> None:
    for command in notifier.feed(status):
        sender.send(command)
    assert sender.wait_idle()


def test_an_error_snapshot_sends_one_notify_the_strict_server_accepts(server, sender) -> None:
    notifier = Notifier()
    feed(notifier, sender, snapshot(errors=1))
    notifies = server.calls_of("Notify")
    assert len(notifies) == 1
    assert notifies[0].signature == NOTIFY_SIGNATURE and notifies[0].accepted
    assert list(server.live.values()) == [
        ("1 file failed to sync", "docs/file0.txt: permission denied")
    ]


def test_a_burst_of_20_error_snapshots_is_one_notification_replaced_in_place(
    server, sender
) -> None:
    notifier = Notifier()
    feed(notifier, sender, snapshot(errors=1))
    for n in range(2, 21):  # as fast as the agent pushes them: the sender coalesces
        for command in notifier.feed(snapshot(errors=n)):
            sender.send(command)
    assert sender.wait_idle()
    notifies = server.calls_of("Notify")
    assert 2 <= len(notifies) <= 20 and all(c.accepted for c in notifies)
    assert {c.reply for c in notifies} == {1}, "every update replaced the first notification"
    assert {c.body[1] for c in notifies[1:]} == {1}  # replaces_id
    assert len(server.live) == 1
    summary, body = server.live[1]
    assert summary == "20 files failed to sync"
    assert body.endswith("and 17 more")
    # The same snapshot again changes nothing: no new call at all.
    feed(notifier, sender, snapshot(errors=20))
    assert len(server.calls_of("Notify")) == len(notifies)


def test_recovery_closes_the_notification(server, sender) -> None:
    notifier = Notifier()
    feed(notifier, sender, snapshot(errors=3))
    feed(notifier, sender, snapshot(errors=0))
    closes = server.calls_of("CloseNotification")
    assert [c.body for c in closes] == [(1,)] and closes[0].accepted
    assert server.live == {}
    # A new problem afterwards is a new notification (the old id is gone).
    feed(notifier, sender, snapshot(errors=1))
    assert list(server.live) == [2]


def test_conflicts_and_a_refused_mass_delete_are_separate_notifications(server, sender) -> None:
    notifier = Notifier()
    refusal = {"folder": "f", "message": "this run would delete 50 of 60 synced files"}
    feed(notifier, sender, snapshot(errors=2, conflicts=1, refusals=[refusal]))
    assert sorted(s for s, _ in server.live.values()) == [
        "1 conflict to resolve",
        "2 files failed to sync",
        "A mass delete was refused: nothing was deleted",
    ]
    # The conflict is resolved: only its notification closes.
    feed(notifier, sender, snapshot(errors=2, refusals=[refusal]))
    assert len(server.live) == 2
    assert "1 conflict to resolve" not in {s for s, _ in server.live.values()}


def test_the_agent_going_away_leaves_notifications_as_they_are() -> None:
    notifier = Notifier()
    assert notifier.feed(snapshot(errors=1)) == [
        Show("error", "1 file failed to sync", "docs/file0.txt: permission denied")
    ]
    assert notifier.feed(None, connected=False) == []
    assert notifier.feed(snapshot()) == [Close("error")]


def test_a_folder_in_error_is_an_error_notification_until_it_recovers() -> None:
    notifier = Notifier()
    folder = {"folder": "f", "path": "/home/u/Docs", "state": "error", "message": "gone"}
    status = {"state": "error", "folders": [folder], "errors": []}
    (show,) = notifier.feed(status)
    assert isinstance(show, Show) and show.kind == "error" and "/home/u/Docs: gone" in show.body
    assert notifier.feed({"state": "idle", "folders": [], "errors": []}) == [Close("error")]


def test_without_a_notification_server_the_sender_falls_back_quietly(
    private_keyring: object,
) -> None:
    fallbacks: list[tuple[str, str]] = []
    sender = NotificationSender(on_unavailable=lambda s, b: fallbacks.append((s, b)))
    try:
        sender.send(Show("error", "1 file failed to sync", "x"))
        assert sender.wait_idle()
        sender.send(Close("error"))  # nothing was shown: nothing to close, no error
        assert sender.wait_idle()
    finally:
        sender.close()
    assert fallbacks == [("1 file failed to sync", "x")]


def test_the_server_is_strict_qtdbus_with_plain_python_values_is_rejected(qtbot, server) -> None:
    from PySide6.QtDBus import QDBusConnection, QDBusMessage

    bus = QDBusConnection.sessionBus()
    assert bus.isConnected()
    name = "org.freedesktop.Notifications"
    message = QDBusMessage.createMethodCall(name, "/org/freedesktop/Notifications", name, "Notify")
    message.setArguments(["s3vault", 0, "", "summary", "body", [], {}, -1])
    pending = bus.asyncCall(message)  # async: the server thread needs the GIL meanwhile
    qtbot.waitUntil(pending.isFinished, timeout=5000)
    reply = pending.reply()
    assert reply.type() == QDBusMessage.MessageType.ErrorMessage
    assert reply.errorName() == "org.freedesktop.DBus.Error.InvalidArgs"
    (call,) = server.calls_of("Notify")
    assert call.signature != NOTIFY_SIGNATURE and not call.accepted
    assert server.live == {}


def test_a_folder_refused_by_the_guard_is_one_mass_delete_notification_with_its_hint() -> None:
    # Protocol 2: the refusal stands on the folder (which is in error) until a run succeeds.
    refused = {
        "kind": "mass-delete",
        "message": "this run would delete 9 of 10 synced files",
        "hint": "run `s3vault sync --force`",
    }
    folder = {
        "folder": "f",
        "path": "/d",
        "state": "error",
        "message": refused["message"],
        "refused": refused,
    }
    status = {
        "state": "error",
        "folders": [folder],
        "errors": [],
        "conflicts": [],
        "attention": {"level": "error", "errors": 0, "conflicts": 0, "refused": 1},
    }
    notifier = Notifier()
    (show,) = notifier.feed(status)
    assert isinstance(show, Show) and show.kind == "mass-delete" and show.urgency == 2
    assert show.body == f"This run would delete 9 of 10 synced files\n{refused['hint']}"
    folder.update(state="idle", message=None, refused=None)
    assert notifier.feed(dict(status, state="idle")) == [Close("mass-delete")]


def test_the_agent_links_snapshots_reach_the_desktop_through_the_app_glue(
    qtbot, server, ctx
) -> None:
    from s3vault.gui.notifications import DesktopNotifications

    glue = DesktopNotifications(ctx.agent)
    try:
        ctx.agent.status.emit(snapshot(conflicts=2))
        server.wait_for(lambda: server.live)
        assert next(iter(server.live.values()))[0] == "2 conflicts to resolve"
        ctx.agent.status.emit(snapshot())
        server.wait_for(lambda: not server.live)
    finally:
        glue.close()
