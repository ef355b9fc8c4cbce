"""Jobs: work off the UI thread, results back on it, failures as messages, cancel."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QThread
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

from s3vault.errors import NotFoundError
from s3vault.gui.jobs import Job, JobRunner


def test_work_runs_off_the_ui_thread_and_its_result_arrives_on_it(qtbot) -> None:
    runner = JobRunner()
    ui = QThread.currentThread()
    seen: dict[str, object] = {}

    def work(job: Job) -> int:
        seen["worker_is_ui"] = QThread.currentThread() == ui
        return 42

    def done(value: object) -> None:
        seen["done_on_ui"] = QThread.currentThread() == QApplication.instance().thread()
        seen["value"] = value

    runner.start("answer", work, on_done=done)
    qtbot.waitUntil(lambda: "value" in seen)
    assert seen == {"worker_is_ui": False, "done_on_ui": True, "value": 42}
    assert runner.shutdown()


def test_an_expected_failure_arrives_as_a_problem_with_its_hint(qtbot) -> None:
    runner = JobRunner()
    problems: list[object] = []

    def work(job: Job) -> None:
        raise NotFoundError("bucket nope does not exist", hint="Create it first.")

    runner.start("fails", work, on_failed=problems.append)
    qtbot.waitUntil(lambda: bool(problems))
    problem = problems[0]
    assert (problem.title, problem.message, problem.hint, problem.exit_code) == (
        "Not found",
        "bucket nope does not exist",
        "Create it first.",
        3,
    )
    assert runner.shutdown()


def test_cancel_ends_the_work_at_its_next_check_and_reports_cancelled(qtbot) -> None:
    runner = JobRunner()
    started, results, cancelled = threading.Event(), [], []

    def work(job: Job) -> int:
        started.set()
        while True:
            job.check()
            threading.Event().wait(0.01)

    job = runner.start(
        "endless", work, on_done=results.append, on_cancelled=lambda: cancelled.append(1)
    )
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: bool(cancelled))
    assert results == []
    assert runner.shutdown()


def test_a_result_arriving_after_its_owner_is_deleted_is_dropped(qtbot) -> None:
    runner = JobRunner()
    owner = QObject()
    release = threading.Event()
    delivered: list[object] = []

    job = runner.start(
        "late", lambda job: release.wait(5) and "late", on_done=delivered.append, owner=owner
    )
    owner.deleteLater()
    qtbot.waitUntil(lambda: not isValid(owner))
    release.set()
    qtbot.waitUntil(lambda: job not in runner.running)
    qtbot.wait(50)  # let any queued delivery run
    assert delivered == []
    assert runner.shutdown()



def test_a_method_callback_makes_its_object_the_owner(qtbot) -> None:
    runner = JobRunner()
    release = threading.Event()

    class View(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[object] = []

        def shown(self, value: object) -> None:
            self.got.append(value)  # on a deleted view this would raise

    view = View()
    got = view.got
    job = runner.start("late", lambda job: release.wait(5) and "late", on_done=view.shown)
    view.deleteLater()
    qtbot.waitUntil(lambda: not isValid(view))
    release.set()
    qtbot.waitUntil(lambda: job not in runner.running)
    qtbot.wait(50)
    assert got == []
    assert runner.shutdown()
