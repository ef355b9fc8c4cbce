"""The envelope of the selected object, every field decoded and labelled, as
`s3vault inspect` shows it; "Copy as JSON" puts the same document on the clipboard.

The fields are those of `ObjectInfo.to_json` in its order, so a field added there
shows here too (with a label made from its name if it has none below).
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from s3vault.errors import NotFoundError, S3VaultError
from s3vault.gui.bucket_model import human_size
from s3vault.gui.context import AppContext
from s3vault.gui.messages import Problem
from s3vault.vault.objects import ObjectInfo

LABELS = {
    "url": "Address",
    "bucket": "Bucket",
    "key": "Object key",
    "encrypted": "Encrypted",
    "format": "Format",
    "location": "Envelope location",
    "instruction_file": "Instruction file",
    "content_cipher": "Content cipher",
    "content_cipher_name": "Content cipher (name)",
    "wrap_algorithm": "Wrap algorithm",
    "key_name": "Master key name",
    "kms_key_id": "KMS key",
    "key_names": "Local key names",
    "key_source": "Master key found by",
    "key_confirmed": "Confirmed by opening",
    "key_check_message": "Key check",
    "description": "Material description",
    "encryption_context": "Encryption context",
    "encrypted_data_key": "Encrypted data key",
    "encrypted_data_key_size": "Encrypted data key size",
    "iv": "IV",
    "message_id": "Message ID",
    "commitment": "Key commitment",
    "tag_length": "Tag length (bits)",
    "legacy": "Legacy format",
    "plaintext_size": "Plaintext size",
    "ciphertext_size": "Stored size",
    "etag": "ETag",
    "last_modified": "Last modified",
    "version_id": "Version ID",
    "error": "Envelope error",
}
_SIZES = {"plaintext_size", "ciphertext_size", "encrypted_data_key_size"}
# Base64 values, hundreds of characters without a space: shown shortened (the whole
# value in the tooltip, the text field_text() gives and "Copy as JSON").
_BINARY = {"encrypted_data_key", "iv", "message_id", "commitment"}
_SHORT_BINARY = 40


def label_of(field: str) -> str:
    return LABELS.get(field, field.replace("_", " ").capitalize())


KEY_SOURCES = {
    "description": "the envelope's material description",
    "kms-key-id": "the KMS key id in the envelope",
    "opened": "opening the data key with the local keys",
}
KEY_CHECKS = {
    "confirmed": "Yes: this key opens the data key",
    "not-checked": "Not checked",
    "failed": "No: could not open the data key",
    "unconfirmable": "Cannot be confirmed: a legacy wrap opens with any key of its type",
}
# Shown only when they add something: the check's message when there is one, the list
# of local names when it is not just the master key's name.
_ONLY_WHEN_SET = {"key_check_message"}


def shown_fields(data: dict[str, Any]) -> list[str]:
    """The fields the panel shows, in `to_json` order ("Copy as JSON" has them all)."""
    fields = []
    for field, value in data.items():
        if field in _ONLY_WHEN_SET and not value:
            continue
        if field == "key_names" and (value or []) == [data.get("key_name")]:
            continue
        if field == "key_check":  # said by key_confirmed (with its message)
            continue
        fields.append(field)
    return fields


def value_text(field: str, value: Any, data: dict[str, Any] | None = None) -> str:
    """A field's value as the panel shows it (binary values stay base64, as they come)."""
    if field == "key_confirmed":
        check = (data or {}).get("key_check")
        text = KEY_CHECKS.get(str(check)) if check else None
        return text or ("Yes: this key opens the data key" if value else "No")
    if value is None:
        return "—"
    if field == "key_source" and isinstance(value, str):
        return KEY_SOURCES.get(value, value)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if field in _SIZES and isinstance(value, int):
        return f"{human_size(value)} ({value:,} bytes)" if value >= 1024 else f"{value} bytes"
    if field == "last_modified" and isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value) or "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


# Long values without a space (a label wraps only at spaces): start and end shown.
_TOKENS = {"etag", "version_id", "kms_key_id"}
_SHORT_TOKEN = 26


def shown_text(field: str, text: str) -> str:
    """What the label shows: a long base64 value or token as its start and end (the
    whole value is in the tooltip and in "Copy as JSON")."""
    if field in _BINARY and len(text) > _SHORT_BINARY:
        return f"{text[:24]}…{text[-12:]}"
    if field in _TOKENS and len(text) > _SHORT_TOKEN and " " not in text:
        return f"{text[:14]}…{text[-10:]}"
    return text


def summary_of(data: dict[str, Any]) -> str:
    """One line on top: what kind of object this is."""
    if data.get("error"):
        return f"Invalid envelope: {data['error']}"
    if not data.get("encrypted"):
        return "Not encrypted: a plain object, no S3 Encryption Client envelope"
    where = "an instruction file" if data.get("location") == "instruction-file" else "metadata"
    return f"Encrypted ({data.get('format')}), envelope in {where}"


class EnvelopePanel(QWidget):
    """``loaded(dict)`` fires when an object's fields are shown."""

    loaded = Signal(dict)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._data: dict[str, Any] | None = None
        self._values: dict[str, QLabel] = {}
        self._token = 0  # the object asked for last; older answers are dropped

        self.title = QLabel("Select an object to see its envelope.")
        self.title.setWordWrap(True)
        self.title.setAccessibleName("Envelope summary")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # Values wrap to the panel's width; a long word (a URL) is cut at the edge,
        # its whole text is in the tooltip and in "Copy as JSON".
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form_host)
        scroll.setAccessibleName("Envelope fields")
        self.copy_button = QPushButton("Copy as JSON")
        self.copy_button.setAccessibleName("Copy the envelope as JSON")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_json)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        # Wide enough for the labels and most values (in characters: any font, any scale).
        self.setMinimumWidth(38 * self.fontMetrics().averageCharWidth())
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)

    # ---- what the browser calls ------------------------------------------------------

    def show_object(self, bucket: str, key: str) -> None:
        """Read and show the envelope of ``bucket/key`` (in a job)."""
        self._token += 1
        token = self._token
        self._set_fields(None)
        self.title.setText(f"Reading the envelope of {key}…")
        self.ctx.jobs.start(
            f"inspect s3://{bucket}/{key}",
            lambda job: self._inspect(bucket, key),
            on_done=lambda data: self._show(token, data),
            on_failed=lambda problem: self._failed(token, bucket, key, problem),
        )

    def _inspect(self, bucket: str, key: str) -> dict[str, Any]:
        """`Vault.inspect`; an envelope that cannot be read is shown as invalid (with
        the object's S3 facts), while a missing or unreachable object is a failure."""
        vault = self.ctx.vault()
        try:
            # With the key check: which master key really opens the data key (a
            # keyring read, or a KMS call, here in the job).
            return vault.inspect(bucket, key, confirm_key=True).to_json()
        except NotFoundError:
            raise
        except S3VaultError as exc:
            head = vault.head(bucket, key)  # raises again if the object itself failed
            return ObjectInfo.from_head(head, None, error=exc.message).to_json()

    def clear(self, text: str = "Select an object to see its envelope.") -> None:
        self._token += 1
        self._set_fields(None)
        self.title.setText(text)

    def info_json(self) -> dict[str, Any] | None:
        """The fields shown (as `to_json` gave them), or None."""
        return self._data

    def field_text(self, field: str) -> str | None:
        """The text of ``field``, in full (None if the panel does not show it)."""
        if self._data is None or field not in self._values:
            return None
        return value_text(field, self._data[field], self._data)

    def copy_json(self) -> None:
        if self._data is not None:
            text = json.dumps(self._data, indent=2, sort_keys=True, default=str)
            QGuiApplication.clipboard().setText(text)

    # ---- inside ----------------------------------------------------------------------

    def _show(self, token: int, data: dict[str, Any]) -> None:
        if token != self._token:
            return
        self._set_fields(data)
        self.title.setText(summary_of(data))
        self.loaded.emit(data)

    def _failed(self, token: int, bucket: str, key: str, problem: Problem) -> None:
        if token != self._token:
            return
        self._set_fields(None)
        self.title.setText(f"Cannot read the envelope: {problem.text()}")
        self.ctx.activity.add("inspect", f"s3://{bucket}/{key}", problem.message, "error")

    def _set_fields(self, data: dict[str, Any] | None) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._values = {}
        self._data = data
        self.copy_button.setEnabled(data is not None)
        for field in shown_fields(data or {}):
            value = (data or {})[field]
            name = QLabel(label_of(field) + ":")
            full = value_text(field, value, data)
            text = QLabel(shown_text(field, full))
            text.setWordWrap(True)
            text.setMinimumWidth(1)  # wraps to the panel, never widens it
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.setAccessibleName(label_of(field))
            # The JSON name (for scripts) and the whole value.
            text.setToolTip(f"{field}: {full}")
            name.setBuddy(text)
            self.form.addRow(name, text)
            self._values[field] = text
