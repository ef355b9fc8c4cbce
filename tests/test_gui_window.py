"""The main window: its views, the agent state line, drops routed to the browser."""

from __future__ import annotations

from s3vault.gui.context import AppContext
from s3vault.gui.main_window import MainWindow


def test_main_window_lists_every_view_and_says_when_the_agent_is_not_running(
    qtbot, ctx: AppContext
) -> None:
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show()
    assert "s3vault" in window.windowTitle()
    names = [window.sidebar.item(i).text() for i in range(window.sidebar.count())]
    assert names == ["Folders", "Browser", "Keys", "Activity", "Settings"]
    ctx.agent.connect_now()
    qtbot.waitUntil(lambda: window.agent_label.text() == "Agent: not running", timeout=5000)
