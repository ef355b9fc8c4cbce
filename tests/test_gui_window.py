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


def test_every_control_of_every_view_has_an_accessible_name(qtbot, ctx: AppContext) -> None:
    # A screen reader names a control by its accessible name, or a button by its text.
    from PySide6.QtWidgets import (
        QAbstractButton,
        QAbstractItemView,
        QAbstractSpinBox,
        QComboBox,
        QLineEdit,
        QPlainTextEdit,
    )

    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show()
    unnamed = []
    for kind in (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView, QAbstractSpinBox,
                 QPlainTextEdit):
        for widget in window.findChildren(kind):
            if _part_of_another_control(widget):
                continue
            if widget.accessibleName():
                continue
            if isinstance(widget, QAbstractButton) and widget.text().replace("&", "").strip():
                continue
            unnamed.append(f"{type(widget).__name__} {widget.objectName()!r} in "
                           f"{type(widget.parent()).__name__}")
    assert unnamed == [], "\n".join(unnamed)


def _part_of_another_control(widget) -> bool:
    """Qt's own pieces of a control (a combo box's editor and popup list, a line edit's
    clear button, a table's headers and corner button): the control carries the name."""
    from PySide6.QtWidgets import QComboBox, QHeaderView, QLineEdit, QListView

    if widget.objectName().startswith("qt_") or isinstance(widget, QHeaderView):
        return True
    parent = widget.parent()
    if isinstance(parent, QLineEdit | QComboBox):
        return True
    # A combo box's popup: a QListView in a private frame whose parent is the combo box.
    return isinstance(widget, QListView) and isinstance(parent.parent(), QComboBox)
