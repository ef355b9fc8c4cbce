"""The first-start setup: the live store checks against SeaweedFS, and the wizard run
end to end (store tested, key generated in the test's keyring, backup that cannot be
skipped, folder, config written that the CLI uses)."""

from __future__ import annotations

import socket
import stat
import uuid
from pathlib import Path

import pytest

from s3vault.config.load import load_config
from s3vault.config.model import S3Settings
from s3vault.gui.jobs import JobRunner
from s3vault.gui.setup_wizard import SetupWizard
from s3vault.gui.store_test import StoreTester
from s3vault.keys.manage import export_text
from s3vault.keys.store import KeyStore
from s3vault.vault.store_check import BUCKET, CREDENTIALS, ENDPOINT, WRITE, check_store

PATH_STYLE = S3Settings(addressing_style="path")  # the endpoint: AWS_ENDPOINT_URL_S3


def verdicts_by_check(settings: S3Settings, bucket: str | None) -> dict[str, object]:
    return {v.check: v for v in check_store(settings, bucket)}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


# ---- the live checks -------------------------------------------------------------------


def test_store_check_passes_a_good_bucket_and_leaves_no_probe_object(
    bucket: str, s3_client
) -> None:
    verdicts = check_store(PATH_STYLE, bucket)
    assert [v.check for v in verdicts] == [CREDENTIALS, ENDPOINT, BUCKET, WRITE]
    assert all(v.ok for v in verdicts), [v.text() for v in verdicts]
    assert verdicts[0].text().startswith("✓ Credentials: found in the environment")
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_store_check_says_the_endpoint_is_unreachable_on_a_closed_port(bucket: str) -> None:
    settings = S3Settings(endpoint_url=f"http://127.0.0.1:{closed_port()}", addressing_style="path")
    verdicts = verdicts_by_check(settings, bucket)
    endpoint = verdicts[ENDPOINT]
    assert endpoint.ok is False
    assert "cannot reach S3 at http://127.0.0.1:" in endpoint.message
    assert "server is running" in (endpoint.hint or "")
    assert verdicts[BUCKET].ok is None and verdicts[WRITE].ok is None  # not tested


def test_store_check_reports_a_wrong_secret_as_access_denied(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    verdicts = verdicts_by_check(PATH_STYLE, bucket)
    credentials = verdicts[CREDENTIALS]
    assert credentials.ok is False
    assert "secret access key" in credentials.message and "access denied" in credentials.message
    assert verdicts[ENDPOINT].ok is True  # S3 answered: the endpoint is fine
    assert verdicts[BUCKET].ok is None


def test_store_check_uses_the_chosen_profile_and_names_it(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[good]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
        f"[bad]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = wrong\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    good = check_store(S3Settings(profile="good", addressing_style="path"), bucket)
    assert all(v.ok for v in good) and "profile good" in good[0].message
    bad = verdicts_by_check(S3Settings(profile="bad", addressing_style="path"), bucket)
    assert bad[CREDENTIALS].ok is False and "profile bad" in bad[CREDENTIALS].message
    missing = verdicts_by_check(S3Settings(profile="nope", addressing_style="path"), bucket)
    assert missing[CREDENTIALS].ok is False and "nope" in missing[CREDENTIALS].message


def test_a_missing_bucket_is_named_and_create_bucket_creates_it(qtbot, s3_client) -> None:
    name = f"test-missing-{uuid.uuid4().hex[:16]}"
    jobs = JobRunner()
    tester = StoreTester(jobs, lambda: (PATH_STYLE, name))
    qtbot.addWidget(tester)
    try:
        with qtbot.waitSignal(tester.tested, timeout=15_000) as first:
            tester.run()
        bucket_verdict = next(v for v in first.args[0] if v.check == BUCKET)
        assert bucket_verdict.ok is False and bucket_verdict.missing_bucket
        assert f"bucket {name} does not exist" in tester.lines.text()
        assert not tester.create_button.isHidden()
        with qtbot.waitSignal(tester.tested, timeout=15_000) as second:
            tester.create_button.click()
        assert all(v.ok for v in second.args[0]), tester.lines.text()
        assert tester.create_button.isHidden()
        s3_client.head_bucket(Bucket=name)
    finally:
        assert jobs.shutdown(15_000)
        s3_client.delete_bucket(Bucket=name)


# ---- the wizard ------------------------------------------------------------------------


def test_setup_end_to_end_writes_a_config_the_cli_uses(
    qtbot, tmp_path: Path, bucket: str, keyring_service: str, run_cli, s3
) -> None:
    path = tmp_path / "conf" / "config.yaml"
    wizard = SetupWizard(path, keyring_service=keyring_service)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    assert wizard.currentPage() is wizard.store

    store = wizard.store
    store.addressing.setCurrentIndex(store.addressing.findData("path"))
    store.bucket.setText(bucket)
    assert not store.isComplete()  # not tested yet
    store.tester.test_button.click()
    qtbot.waitUntil(store.isComplete, timeout=15_000)
    assert store.tester.lines.text().count("✓") == 4
    wizard.next()

    assert wizard.currentPage() is wizard.key
    wizard.key.name.setText("setup-key")
    wizard.next()  # stores the key in a job, then moves on
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.backup, timeout=10_000)
    keys = KeyStore(keyring_service)
    assert keys.names() == ["setup-key"]

    backup = wizard.backup
    assert not backup.isComplete()
    wizard.next()
    assert wizard.currentPage() is backup  # no way past without a backup
    backup.acknowledge.setChecked(True)
    assert backup.isComplete()
    backup.acknowledge.setChecked(False)
    assert not backup.isComplete()
    exported = tmp_path / "setup-key.key"
    backup.export_to(exported)
    qtbot.waitUntil(backup.isComplete, timeout=10_000)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert exported.read_bytes() == export_text(keys.get("setup-key"))
    wizard.next()

    assert wizard.currentPage() is wizard.folder
    docs = tmp_path / "docs"
    docs.mkdir()
    wizard.folder.enabled.setChecked(True)
    wizard.folder.path.setText(str(docs))
    wizard.folder.prefix.setText("laptop/docs")
    wizard.next()
    assert wizard.currentPage() is wizard.finish
    assert f"bucket {bucket}" in wizard.finish.summary.text()

    with qtbot.waitSignal(wizard.finished, timeout=10_000):
        wizard.button(wizard.WizardButton.FinishButton).click()
    assert wizard.choice == "configured"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert s3.secret_key not in text and s3.access_key not in text  # no secrets
    config = load_config(path)
    assert config.buckets == [bucket]
    assert config.defaults.key == "setup-key"
    assert config.keyring.service == keyring_service
    assert config.s3.addressing_style == "path"
    assert [(f.path, f.prefix, f.key) for f in config.folders] == [
        (docs, "laptop/docs/", "setup-key")
    ]

    (tmp_path / "hello.txt").write_text("hello")
    put = run_cli("--config", path, "put", tmp_path / "hello.txt", f"s3://{bucket}/")
    assert put.returncode == 0, put.stderr
    listed = run_cli("--config", path, "ls", f"s3://{bucket}/")
    assert listed.returncode == 0, listed.stderr
    assert b"hello.txt" in listed.stdout


def test_try_it_locally_returns_that_choice_and_writes_nothing(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    wizard = SetupWizard(path)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.welcome.try_locally.setChecked(True)
    assert wizard.welcome.isFinalPage()
    with qtbot.waitSignal(wizard.finished, timeout=5_000):
        wizard.button(wizard.WizardButton.FinishButton).click()
    assert wizard.choice == "try-locally"
    assert not path.exists()


def test_cancelling_the_setup_says_so_and_writes_nothing(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    wizard = SetupWizard(path)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.reject()
    assert wizard.choice == "cancelled" and not path.exists()


def test_an_imported_key_counts_as_its_own_backup(
    qtbot, tmp_path: Path, keyring_service: str
) -> None:
    from s3vault.keys.material import generate_key

    key = generate_key("office")
    key_file = tmp_path / "office.key"
    key_file.write_bytes(export_text(key))
    wizard = SetupWizard(tmp_path / "config.yaml", keyring_service=keyring_service)
    qtbot.addWidget(wizard)
    wizard.setStartId(wizard.pageIds()[2])  # the key page
    wizard.show()
    page = wizard.key
    page.import_.setChecked(True)
    page.name.setText("office")
    page.import_path.setText(str(key_file))
    wizard.next()
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.backup, timeout=10_000)
    assert KeyStore(keyring_service).get("office").fingerprint == key.fingerprint
    assert wizard.backup.isComplete()
    assert str(key_file) in wizard.backup.status.text()


def test_a_key_name_already_taken_is_refused_on_the_page(
    qtbot, tmp_path: Path, keyring_service: str
) -> None:
    from s3vault.keys.material import generate_key

    KeyStore(keyring_service).put(generate_key("taken"))
    wizard = SetupWizard(tmp_path / "config.yaml", keyring_service=keyring_service)
    qtbot.addWidget(wizard)
    wizard.setStartId(wizard.pageIds()[2])
    wizard.show()
    wizard.key.name.setText("taken")
    wizard.next()
    qtbot.waitUntil(lambda: wizard.key.error.text().startswith("✗"), timeout=10_000)
    assert "already exists" in wizard.key.error.text()
    assert wizard.currentPage() is wizard.key


def test_the_store_page_offers_the_profiles_of_the_aws_config(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[default]\nregion = us-east-1\n[profile work]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    wizard = SetupWizard(tmp_path / "config.yaml")
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    combo = wizard.store.profile
    qtbot.waitUntil(lambda: combo.findData("work") >= 0, timeout=5_000)
    combo.setCurrentIndex(combo.findData("work"))
    assert wizard.store.s3_settings().profile == "work"
    assert combo.itemData(0) is None  # the default credential chain stays first
