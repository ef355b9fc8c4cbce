"""Drag and drop upload (`s3vault.gui.uploads`) against real SeaweedFS and keyring:
files and folders are checked, questions asked once per drop, files encrypted with
the current key; cancel cancels, bad input loses nothing and says why."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gui_helpers import write_gui_config
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from s3vault.gui.agent_link import AgentLink
from s3vault.gui.context import AppContext
from s3vault.gui.upload_dialog import CANCEL, Question
from s3vault.gui.upload_run import State
from s3vault.gui.uploads import UploadSession, start_upload

MiB = 1024 * 1024


class Answers:
    """An `Ask` that answers each question with the next of ``replies`` at once."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.asked: list[Question] = []

    def __call__(self, parent: object, question: Question, answer: Callable[[str], None]) -> None:
        self.asked.append(question)
        answer(self.replies.pop(0))


def drop(
    qtbot, ctx: AppContext, paths: list[Path], bucket: str, prefix: str = "", ask=None
) -> UploadSession:
    session = start_upload(None, ctx, paths, bucket, prefix, ask=ask or Answers())
    assert session is not None
    qtbot.addWidget(session.window)
    wait_finished(qtbot, session)
    return session


def wait_finished(qtbot, session: UploadSession) -> None:
    qtbot.waitUntil(lambda: session.summary is not None and not session.running, timeout=30_000)


def decrypted(ctx: AppContext, bucket: str, key: str, tmp_path: Path) -> bytes:
    out = tmp_path / "out.bin"
    ctx.vault().get(bucket, key, out)
    return out.read_bytes()


def keys_in(s3_client, bucket: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "b.bin").write_bytes(os.urandom(3000))
    return src


def test_dropped_files_are_encrypted_with_the_current_key_and_decrypt_to_the_same_bytes(
    qtbot, qtmodeltester, ctx: AppContext, gui_key: str, bucket: str, files: Path, tmp_path: Path
) -> None:
    paths = [files / "a.txt", files / "b.bin"]
    session = drop(qtbot, ctx, paths, bucket, "in/")
    qtmodeltester.check(session.model)
    assert session.summary is not None and session.summary.done == 2
    for path in paths:
        assert decrypted(ctx, bucket, f"in/{path.name}", tmp_path) == path.read_bytes()
        assert ctx.vault().inspect(bucket, f"in/{path.name}").key_name == gui_key
    done = [e for e in ctx.activity.entries() if e.what == "upload" and e.level == "done"]
    assert {e.item for e in done} >= {f"s3://{bucket}/in/a.txt", f"s3://{bucket}/in/b.bin"}
    assert session.status_text() == "2 uploaded"


def test_a_dropped_folder_uploaded_once_lands_under_its_own_name_at_the_prefix(
    qtbot, ctx: AppContext, gui_key: str, bucket: str, files: Path, s3_client, tmp_path: Path
) -> None:
    (files / "sub").mkdir()
    (files / "sub" / "deep.txt").write_bytes(b"deep")
    ask = Answers("once")
    session = drop(qtbot, ctx, [files], bucket, "p/", ask)
    assert [q.title for q in ask.asked] == ["Dropped folder"]
    assert session.summary is not None and session.summary.done == 3
    assert keys_in(s3_client, bucket) == ["p/src/a.txt", "p/src/b.bin", "p/src/sub/deep.txt"]
    assert decrypted(ctx, bucket, "p/src/sub/deep.txt", tmp_path) == b"deep"


def test_keep_in_sync_adds_the_folder_to_the_config_keeping_its_comments_and_uploads_nothing(
    qtbot, ctx: AppContext, gui_key: str, bucket: str, files: Path, s3_client
) -> None:
    added: list[Path] = []
    session = start_upload(None, ctx, [files], bucket, "p/", ask=Answers("sync"))
    assert session is not None
    qtbot.addWidget(session.window)
    session.folder_added.connect(added.append)
    wait_finished(qtbot, session)
    text = ctx.config_path.read_text(encoding="utf-8")
    assert text.startswith("# s3vault config of a GUI test")
    [folder] = ctx.config.folders
    assert (folder.path, folder.bucket, folder.prefix, folder.key) == (
        files,
        bucket,
        "p/src/",
        gui_key,
    )
    assert added == [files]
    assert keys_in(s3_client, bucket) == []
    assert any("after restart" in e.result for e in ctx.activity.entries())


@pytest.fixture
def taken(ctx: AppContext, gui_key: str, bucket: str, files: Path, tmp_path: Path) -> Path:
    """``a.txt`` is already stored at ``a.txt`` with other content."""
    old = tmp_path / "old.txt"
    old.write_bytes(b"old content")
    ctx.vault().put(old, bucket, "a.txt")
    return files / "a.txt"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("skip", {"a.txt": b"old content"}),
        ("replace", {"a.txt": b"alpha\n"}),
        ("keep-both", {"a.txt": b"old content", "a (1).txt": b"alpha\n"}),
        (CANCEL, {"a.txt": b"old content"}),
    ],
)
def test_an_existing_object_is_asked_about_once_and_the_answer_is_obeyed(
    qtbot,
    ctx: AppContext,
    bucket: str,
    taken: Path,
    files: Path,
    s3_client,
    tmp_path: Path,
    answer: str,
    expected: dict[str, bytes],
) -> None:
    ask = Answers(answer)
    drop(qtbot, ctx, [taken, files / "b.bin"], bucket, "", ask)
    assert [q.title for q in ask.asked] == ["Objects exist"]
    if answer != CANCEL:
        expected = {**expected, "b.bin": (files / "b.bin").read_bytes()}
    assert keys_in(s3_client, bucket) == sorted(expected)
    for key, content in expected.items():
        assert decrypted(ctx, bucket, key, tmp_path) == content


def test_cancel_in_the_real_question_box_uploads_nothing_at_all(
    qtbot, ctx: AppContext, bucket: str, taken: Path, files: Path, s3_client
) -> None:
    # Cyberduck #17358: "Cancel" in the overwrite prompt still uploaded. Not here.
    session = start_upload(None, ctx, [taken, files / "b.bin"], bucket, "")
    assert session is not None
    qtbot.addWidget(session.window)
    boxes: list[QMessageBox] = []

    def box_open() -> bool:
        boxes[:] = [b for b in session.window.findChildren(QMessageBox) if b.isVisible()]
        return bool(boxes)

    qtbot.waitUntil(box_open, timeout=20_000)
    [cancel] = [b for b in boxes[0].buttons() if b.text() == "Cancel"]
    qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    wait_finished(qtbot, session)
    assert session.summary is not None and session.summary.cancelled_by_user
    assert keys_in(s3_client, bucket) == ["a.txt"]
    assert session.summary.done == 0 and session.model.rows == []


def test_special_files_broken_links_and_link_loops_are_reported_and_the_rest_uploads(
    qtbot, ctx: AppContext, gui_key: str, bucket: str, tmp_path: Path, s3_client
) -> None:
    root = tmp_path / "drop"
    (root / "sub").mkdir(parents=True)
    (root / "good.txt").write_bytes(b"good")
    os.mkfifo(root / "pipe")
    (root / "broken").symlink_to(root / "missing")
    (root / "self").symlink_to(root / "self")  # a link to itself
    (root / "sub" / "up").symlink_to(root)  # a folder loop
    (root / "out").symlink_to(tmp_path)  # outside the dropped folder
    (root / "inner").symlink_to(root / "good.txt")  # inside: followed
    session = drop(qtbot, ctx, [root], bucket, "", Answers("once"))
    assert keys_in(s3_client, bucket) == ["drop/good.txt", "drop/inner"]
    messages = {r.path.name: r.message for r in session.model.rows if r.state is State.SKIPPED}
    assert "FIFO" in messages["pipe"]
    assert "broken symbolic link" in messages["broken"]
    assert "loop" in messages["self"] and "loop" in messages["up"]
    assert "outside the dropped folder" in messages["out"]
    warned = {Path(e.item).name for e in ctx.activity.entries() if e.level == "warning"}
    assert {"pipe", "broken", "self", "up", "out"} <= warned


@pytest.fixture
def small_parts_ctx(
    qtbot, tmp_path: Path, bucket: str, agent_socket: Path, gui_key: str
) -> Iterator[AppContext]:
    """A context whose uploads go in 5 MiB parts, one at a time."""
    config = write_gui_config(
        tmp_path / "parts.yaml",
        bucket,
        extra="transfer: {multipart_threshold: 5MiB, part_size: 5MiB, concurrency: 1}\n",
    )
    context = AppContext(config, agent=AgentLink(agent_socket))
    yield context
    context.agent.close()
    assert context.jobs.shutdown(30_000)


def on_first_part(session: UploadSession, action: Callable[[], None]) -> None:
    """Run ``action`` in the upload's thread as soon as its first part was sent (a
    direct connection: the upload goes on only after it)."""
    done: list[bool] = []

    def hook(event: object) -> None:
        if getattr(event, "sent", 0) > 0 and not done:
            done.append(True)
            action()

    session.run_started.connect(
        lambda job: job.signals.progress.connect(hook, Qt.ConnectionType.DirectConnection)
    )


def test_cancel_during_a_multipart_upload_leaves_no_object_and_no_parts(
    qtbot, small_parts_ctx: AppContext, bucket: str, tmp_path: Path, s3_client
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 * MiB))
    session = start_upload(None, small_parts_ctx, [big], bucket, "", ask=Answers())
    assert session is not None
    qtbot.addWidget(session.window)
    on_first_part(session, session.cancel)
    wait_finished(qtbot, session)
    assert session.summary is not None
    assert (session.summary.done, session.summary.cancelled) == (0, 1)
    assert session.model.rows[0].message == "cancelled; nothing was stored"
    assert keys_in(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_file_growing_while_it_uploads_fails_clearly_stores_nothing_and_retry_uploads_it(
    qtbot, small_parts_ctx: AppContext, bucket: str, tmp_path: Path, s3_client
) -> None:
    growing = tmp_path / "growing.log"
    growing.write_bytes(os.urandom(11 * MiB))

    def grow() -> None:
        with growing.open("ab") as f:
            f.write(b"more lines\n")

    session = start_upload(None, small_parts_ctx, [growing], bucket, "", ask=Answers())
    assert session is not None
    qtbot.addWidget(session.window)
    on_first_part(session, grow)
    wait_finished(qtbot, session)
    row = session.model.rows[0]
    assert row.state is State.FAILED and "changed while it was being uploaded" in row.message
    assert keys_in(s3_client, bucket) == []
    assert session.window.retry_button.isEnabled()
    session.window.retry_button.click()
    wait_finished(qtbot, session)
    assert session.model.rows[0].state is State.DONE
    assert keys_in(s3_client, bucket) == ["growing.log"]


def test_no_current_key_says_to_generate_or_import_one_and_uploads_nothing(
    qtbot, ctx: AppContext, bucket: str, files: Path, s3_client
) -> None:
    session = drop(qtbot, ctx, [files / "a.txt"], bucket, "")
    assert keys_in(s3_client, bucket) == []
    errors = [e.result for e in ctx.activity.entries() if e.level == "error"]
    assert any("Generate or import a key in Keys" in text for text in errors)
    boxes = [b for b in session.window.findChildren(QMessageBox) if b.isVisible()]
    assert any("no current key" in b.text() for b in boxes)


def test_dropping_nothing_starts_nothing(ctx: AppContext, bucket: str) -> None:
    assert start_upload(None, ctx, [], bucket, "") is None


def test_kms_unreachable_is_one_clear_message_before_any_upload(
    qtbot, ctx: AppContext, bucket: str, files: Path, s3_client, kms_key_id: str,
    keyring_service: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from s3vault.embedded.ports import free_port
    from s3vault.keys.material import KmsKey
    from s3vault.keys.store import KeyStore

    store = KeyStore(keyring_service)
    store.put(KmsKey("team-kms", kms_key_id))
    store.set_current("team-kms")
    # KMS where nothing listens (an outage, a wrong endpoint): the check before the
    # upload finds the key unusable, and says where to look.
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{free_port()}")
    session = drop(qtbot, ctx, [files / "a.txt", files / "b.bin"], bucket, "")
    assert keys_in(s3_client, bucket) == []
    assert session.summary is not None and session.summary.done == 0
    errors = [e.result for e in ctx.activity.entries() if e.level == "error"]
    assert len(errors) == 1
    assert "cannot reach KMS" in errors[0]
    assert "AWS_ENDPOINT_URL_KMS" in errors[0]  # the hint: where the endpoint comes from
