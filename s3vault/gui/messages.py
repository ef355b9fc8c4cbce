"""What went wrong, in words a person can act on: the GUI's side of `s3vault.errors`.

Every failure a view shows goes through `problem_of`, so an expected error (an
`S3VaultError`, a local file that cannot be read) becomes a title, a message and a
hint, never a traceback; an unexpected one is logged with its traceback and shown as
a bug to report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtWidgets import QMessageBox, QWidget

from s3vault.errors import ExitCode, S3VaultError, UsageError, local_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    title: str
    message: str
    hint: str | None = None
    exit_code: int = int(ExitCode.UNEXPECTED)

    def text(self) -> str:
        """Message and hint on two lines (activity list, tooltips)."""
        return f"{self.message}\n{self.hint}" if self.hint else self.message


def problem_of(exc: BaseException) -> Problem:
    if isinstance(exc, S3VaultError):
        return Problem(exc.title, exc.message, exc.hint, int(exc.exit_code))
    if isinstance(exc, OSError):
        err = local_error(exc, "use", exc.filename or "a local file")
        return Problem(err.title, err.message, err.hint, int(err.exit_code))
    log.error("unexpected error", exc_info=exc)
    return Problem(
        "Unexpected error",
        f"{type(exc).__name__}: {exc}",
        "This is a bug in s3vault; please report it with the log.",
    )


def usage_problem(message: str, hint: str | None = None) -> Problem:
    err = UsageError(message, hint=hint)
    return Problem(err.title, err.message, err.hint, int(err.exit_code))


def show_problem(parent: QWidget | None, problem: Problem) -> None:
    """A modal warning with the message, and the hint as the box's informative text."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(f"s3vault: {problem.title}")
    box.setText(problem.message)
    if problem.hint:
        box.setInformativeText(problem.hint)
    box.setAccessibleName(problem.title)
    box.open()  # window-modal, never blocks the event loop (tests can find and close it)
