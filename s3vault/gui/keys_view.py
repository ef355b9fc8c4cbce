"""The key manager: the master keys in the keyring, and generate, import, export,
delete and "make current", as `s3vault key ...` does them.

Every keyring, KMS and S3 call runs in a job; the view only shows results. The count
of objects known to use each key comes from listing the places `key delete` checks
(the config's buckets and the synced folders' prefixes); it is cancelled when the view
is hidden and made again when it is shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.key_dialogs import (
    GenerateKeyDialog,
    ImportKeyDialog,
    backup_prompt,
    export_key_dialog,
)
from s3vault.gui.keys_model import CountState, KeysModel
from s3vault.gui.messages import Problem, show_problem
from s3vault.keys.manage import (
    describe_key,
    detect_import_type,
    generate_new,
    key_info,
    parse_import,
    read_key_file,
)
from s3vault.keys.material import GenerateType, KmsKey
from s3vault.keys.store import KeyInfo, KeyStore
from s3vault.vault.key_users import count_objects_by_key, key_places, refuse_if_key_in_use

NO_PLACES_HINT = (
    "Objects using each key are not counted: no buckets configured (list them under "
    "`buckets:` in the config, or add a synced folder)."
)


class _Reply(QObject):
    """Hands one job's result to a view's callbacks, only while the view exists (a
    child of it: PySide drops calls to a deleted receiver) and while ``active`` (a
    count that was cancelled after its result was already on its way)."""

    def __init__(
        self, parent: QObject, on_done: Callable[[Any], None], on_failed: Callable[[Problem], None]
    ) -> None:
        super().__init__(parent)
        self.active = True
        self._on_done = on_done
        self._on_failed = on_failed

    def done(self, result: Any) -> None:
        if self.active:
            self._on_done(result)
        self.deleteLater()

    def failed(self, problem: Problem) -> None:
        if self.active:
            self._on_failed(problem)
        self.deleteLater()


class KeysView(QWidget):
    """``keystore`` builds the key store (default: the context's); tests give one
    over another keyring backend."""

    def __init__(
        self,
        ctx: AppContext,
        parent: QWidget | None = None,
        *,
        keystore: Callable[[], KeyStore] | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.keystore = keystore or ctx.keystore
        self.model = KeysModel(self)
        self.list_job: Job | None = None
        self.count_job: Job | None = None
        self._count_reply: _Reply | None = None
        self.loaded = False
        self._count_cancelled = False
        # The open dialog or message box of the last action (tests drive them).
        self.dialog: QWidget | None = None

        self.table = QTableView()
        self.table.setAccessibleName("Master keys")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        # Columns as wide as their contents; the table ends there (a stretched count
        # column put its number far from its key).
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        for label, slot, needs_key in (
            ("&Generate…", self.open_generate_dialog, False),
            ("&Import…", self.open_import_dialog, False),
            ("E&xport…", self.open_export_dialog, True),
            ("Make &current", self.make_current, True),
            ("&Delete…", self.delete_selected, True),
            ("&Refresh", self.refresh, False),
        ):
            button = QPushButton(label)
            plain = label.replace("&", "").rstrip("…")
            button.setAccessibleName(plain)
            button.clicked.connect(lambda _=False, s=slot: s())
            button.setProperty("needs_key", needs_key)
            bar.addWidget(button)
            self.buttons[plain] = button
        bar.addStretch(1)

        self.status = QLabel()
        self.status.setAccessibleName("Key list status")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        title = QLabel("<b>Master keys</b>")
        title.setAccessibleName("Master keys")
        layout.addWidget(title)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()
        ctx.config_changed.connect(self._config_changed)

    # ---- the list and the counts -----------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self.loaded:
            self.refresh()
        elif self._count_cancelled:
            self.start_count()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.cancel_count()

    def _config_changed(self) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self.loaded = False  # listed again when shown

    def cancel_count(self) -> None:
        """Stop counting (the view went away); showing the view counts again."""
        if self.count_job is not None:
            self.count_job.cancel()
            self.count_job = None
            self._count_cancelled = True
        if self._count_reply is not None:
            self._count_reply.active = False
            self._count_reply = None

    def _start(
        self,
        name: str,
        work: Callable[[Job], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[Problem], None],
    ) -> tuple[Job, _Reply]:
        reply = _Reply(self, on_done, on_failed)
        job = self.ctx.jobs.start(
            name,
            work,
            on_done=reply.done,
            on_failed=reply.failed,
            on_cancelled=reply.deleteLater,
            owner=reply,
        )
        return job, reply

    def refresh(self, *, count: bool = True) -> Job:
        """List the keys (a job) and, with ``count``, count the objects using them."""
        if self.list_job is not None:
            self.list_job.cancel()
        keystore = self.keystore
        self.list_job, _ = self._start(
            "list keys", lambda job: keystore().list(), self._listed, self._list_failed
        )
        if count:
            self.start_count()
        return self.list_job

    def start_count(self) -> Job | None:
        self.cancel_count()
        self._count_cancelled = False
        config = self.ctx.config
        places = key_places(config)
        if not places:
            self.model.set_counts(CountState.NOT_COUNTED, note=NO_PLACES_HINT)
            return None
        where = ", ".join(str(place) for place in places)
        self.model.set_counts(CountState.COUNTING, note=f"Counting objects in {where}…")
        ctx = self.ctx

        def work(job: Job) -> tuple[Counter[str], str]:
            return count_objects_by_key(ctx.vault(), places, job.check), where

        self.count_job, self._count_reply = self._start(
            "count objects by key", work, self._counted, self._count_failed
        )
        return self.count_job

    def _listed(self, keys: list[KeyInfo]) -> None:
        self.list_job = None
        self.loaded = True
        selected = self.selected_name()
        self.model.set_keys(keys)
        if selected is not None and (row := self.model.row_of(selected)) >= 0:
            self.table.selectRow(row)
        self._update_buttons()
        self._show_status()

    def _list_failed(self, problem: Problem) -> None:
        self.list_job = None
        self.loaded = True
        self.model.set_keys([])
        self.status.setText(f"The keys cannot be listed: {problem.text()}")
        self._update_buttons()
        self._failed("list", "keys", problem)

    def _counted(self, result: tuple[Counter[str], str]) -> None:
        counts, where = result
        self.count_job = self._count_reply = None
        self.model.set_counts(CountState.DONE, counts, note=f"Counted in {where}")
        self._show_status()

    def _count_failed(self, problem: Problem) -> None:
        self.count_job = self._count_reply = None
        self.model.set_counts(CountState.FAILED, note=f"Not counted: {problem.text()}")
        # A count is a hint, not an action: no dialog, but the activity list says why.
        self.ctx.activity.add("key", "keys", f"objects not counted: {problem.message}", "warning")

    def _show_status(self) -> None:
        if not self.model.rowCount():
            text = "No keys yet: generate one, or import a key you already have."
        else:
            text = ""
        if not key_places(self.ctx.config):
            text = f"{text} {NO_PLACES_HINT}".strip()
        self.status.setText(text)

    # ---- selection -------------------------------------------------------------------

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        info = self.model.key_at(rows[0].row()) if rows else None
        return info.name if info is not None else None

    def select(self, name: str) -> None:
        row = self.model.row_of(name)
        if row >= 0:
            self.table.selectRow(row)

    def _selected_info(self) -> KeyInfo | None:
        name = self.selected_name()
        row = self.model.row_of(name) if name else -1
        return self.model.key_at(row)

    def _update_buttons(self, *_: Any) -> None:
        has_key = self.selected_name() is not None
        for button in self.buttons.values():
            if button.property("needs_key"):
                button.setEnabled(has_key)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        menu = QMenu(self)
        menu.setAccessibleName("Key actions")
        menu.addAction("Make current", self.make_current)
        menu.addAction("Export…", self.open_export_dialog)
        menu.addSeparator()
        menu.addAction("Delete…", self.delete_selected)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # ---- actions: shared plumbing ----------------------------------------------------

    def _run(
        self, what: str, name: str, work: Callable[[Job], Any], done: Callable[[Any], None]
    ) -> Job:
        failed = lambda problem: self._failed(what, name, problem)  # noqa: E731
        return self._start(f"{what} key {name}", work, done, failed)[0]

    def _failed(self, what: str, name: str, problem: Problem) -> None:
        self.ctx.activity.add("key", name, f"{what} failed: {problem.message}", "error")
        show_problem(self, problem)

    def _done(self, name: str, result: str, level: Any = "done", *, count: bool = False) -> None:
        """An action succeeded: say so, and list the keys again (a generated key has
        no objects yet; an imported one may have: ``count``)."""
        self.ctx.activity.add("key", name, result, level)
        self.refresh(count=count)

    # ---- generate ----------------------------------------------------------------------

    def open_generate_dialog(self) -> GenerateKeyDialog:
        dialog = GenerateKeyDialog(self)
        dialog.accepted.connect(
            lambda: self.generate(dialog.name(), dialog.kind(), make_current=dialog.make_current())
        )
        self.dialog = dialog
        dialog.open()
        return dialog

    def generate(self, name: str, kind: GenerateType, *, make_current: bool = False) -> Job:
        keystore = self.keystore

        def work(job: Job) -> str:
            store = keystore()
            key, _ = generate_new(store, name, kind)
            if make_current:
                store.set_current(name)
            current = " (current)" if store.current() == name else ""
            return f"generated {describe_key(key)}{current}, fingerprint {key.fingerprint}"

        return self._run("generate", name, work, lambda result: self._generated(name, result))

    def _generated(self, name: str, result: str) -> None:
        self._done(name, result)
        self.dialog = backup_prompt(self, name, lambda: self.open_export_dialog(name))

    # ---- import ------------------------------------------------------------------------

    def open_import_dialog(self) -> ImportKeyDialog:
        dialog = ImportKeyDialog(self)
        dialog.accepted.connect(lambda: self._import_from(dialog))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _import_from(self, dialog: ImportKeyDialog) -> None:
        name = dialog.name()
        source = dialog.source()
        if source == ImportKeyDialog.FILE:
            self.import_file(name, Path(dialog.path()).expanduser())
        elif source == ImportKeyDialog.PASTE:
            self.import_text(name, dialog.take_pasted())
        else:
            self.import_kms(name, dialog.kms_key_id())

    def import_file(self, name: str, path: Path) -> Job:
        """Import the AES or RSA key in file ``path`` (its type is read from it)."""
        return self._import(name, lambda: read_key_file(path), f"from {path}")

    def import_text(self, name: str, data: bytes) -> Job:
        """Import the AES or RSA key in ``data`` (pasted text)."""
        return self._import(name, lambda: data, "from pasted text")

    def _import(self, name: str, read: Callable[[], bytes], origin: str) -> Job:
        keystore = self.keystore

        def work(job: Job) -> str:
            data = read()
            key, note = parse_import(name, detect_import_type(data), data)
            result = keystore().put(key)
            return f"{result}: {describe_key(key)}{note} {origin}, fingerprint {key.fingerprint}"

        return self._run("import", name, work, lambda result: self._done(name, result, count=True))

    def import_kms(self, name: str, key_id: str) -> Job:
        """Add a reference to AWS KMS key ``key_id`` (no secret is stored)."""
        keystore = self.keystore

        def work(job: Job) -> str:
            result = keystore().put(KmsKey(name, key_id))
            return f"{result}: KMS key {key_id}"

        return self._run("import", name, work, lambda result: self._done(name, result))

    # ---- export ------------------------------------------------------------------------

    def open_export_dialog(self, name: str | None = None) -> QWidget | None:
        name = name or self.selected_name()
        if name is None:
            return None
        self.dialog = export_key_dialog(self, self.ctx, name, keystore=self.keystore)
        return self.dialog

    # ---- make current ------------------------------------------------------------------

    def make_current(self, name: str | None = None) -> Job | None:
        name = name or self.selected_name()
        if name is None:
            return None
        keystore = self.keystore

        def work(job: Job) -> None:
            keystore().set_current(name)

        return self._run(
            "make current",
            name,
            work,
            lambda _: self._done(name, "is now the current key for new objects"),
        )

    # ---- delete ------------------------------------------------------------------------

    def delete_selected(self, name: str | None = None) -> Job | None:
        """Check that nothing known needs the key (a job), then ask to confirm."""
        name = name or self.selected_name()
        if name is None:
            return None
        keystore = self.keystore
        ctx = self.ctx
        config = ctx.config

        def work(job: Job) -> tuple[KeyInfo | None, bool]:
            info = key_info(keystore(), name)
            scan = info is None or info.type != "kms"
            places = key_places(config)
            checked = refuse_if_key_in_use(
                config, ctx.vault, name, places, scan=scan, limit=None, check=job.check, force=None
            )
            return info, checked

        return self._run("delete", name, work, lambda result: self._confirm_delete(name, *result))

    def _confirm_delete(self, name: str, info: KeyInfo | None, checked: bool) -> None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(f"s3vault: delete key '{name}'")
        box.setAccessibleName("Confirm deleting the key")
        if info is not None and info.type == "kms":
            box.setText(f"Forget the KMS key '{name}' ({info.key_id})?")
            notes = ["The KMS key itself is not changed; you can add it again later."]
        else:
            box.setText(
                f"Delete the key '{name}'? Deleting this key makes every object it "
                "protects unreadable forever, unless you have a copy of it."
            )
            notes = ["No object in the checked buckets names this key."]
            if not checked:
                notes = ["No bucket was checked for objects that need this key: " + NO_PLACES_HINT]
        if info is not None and info.current:
            notes.append(
                "It is the current key: after this there is no current key, and new "
                "objects need one chosen (“Make current”)."
            )
        box.setInformativeText("\n\n".join(notes))
        delete = box.addButton("&Delete the key", QMessageBox.ButtonRole.DestructiveRole)
        delete.setAccessibleName("Delete the key")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        cancel.setAccessibleName("Cancel")
        box.setDefaultButton(cancel)
        delete.clicked.connect(lambda: self._delete(name, was_current=bool(info and info.current)))
        self.dialog = box
        box.open()

    def _delete(self, name: str, *, was_current: bool) -> Job:
        keystore = self.keystore

        def work(job: Job) -> None:
            keystore().delete(name)

        result = "deleted" + ("; there is no current key now" if was_current else "")
        level = "warning" if was_current else "done"
        return self._run("delete", name, work, lambda _: self._done(name, result, level))
