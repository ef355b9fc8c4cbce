"""Ordinary mistakes a new user makes get a message they can act on and a documented
exit code, never a traceback, and lose nothing. Each test does what the user did."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from s3vault.errors import ExitCode


def fails(result, code):
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    return err


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    return result


@pytest.fixture
def stored(run_cli, bucket, tmp_path):
    """An object s3://BUCKET/notes.txt under the current key `first`."""
    ok(run_cli("key", "generate", "first"))
    src = tmp_path / "notes.txt"
    src.write_bytes(b"my notes")
    ok(run_cli("put", src, f"s3://{bucket}/notes.txt"))
    return f"s3://{bucket}/notes.txt"


def test_get_into_a_folder_that_cannot_be_written(run_cli, stored, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    r = run_cli("get", stored, locked / "notes.txt", unprivileged=True)
    err = fails(r, ExitCode.USAGE)
    assert f"error: cannot write into {locked}: permission denied" in err
    assert list(locked.iterdir()) == []


def test_get_to_a_folder_that_does_not_exist_writes_no_file_of_its_name(run_cli, stored, tmp_path):
    r = run_cli("get", stored, "./outdir/", cwd=tmp_path)
    err = fails(r, ExitCode.NOT_FOUND)
    assert "folder ./outdir/ does not exist" in err and "mkdir -p ./outdir/" in err
    assert not (tmp_path / "outdir").exists()
    (tmp_path / "outdir").mkdir()
    ok(run_cli("get", stored, "./outdir/", cwd=tmp_path))
    assert (tmp_path / "outdir" / "notes.txt").read_bytes() == b"my notes"


def test_get_says_which_key_opened_the_object_when_key_named_another(run_cli, stored, tmp_path):
    ok(run_cli("key", "generate", "second"))
    r = ok(run_cli("get", stored, tmp_path / "out.txt", "--key", "second"))
    assert b"key first, authenticated" in r.stdout
    assert b"note: opened with first, the key its envelope names, not second" in r.stderr
    quiet = ok(run_cli("get", stored, tmp_path / "out2.txt", "--key", "first"))
    assert b"note:" not in quiet.stderr


def test_a_bad_environment_variable_is_named_not_blamed_on_the_file(run_cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("agent: {workers: 4}\n")
    r = run_cli("--config", config, "config", "show", env={"S3VAULT_AGENT_WORKERS": "many"})
    err = fails(r, ExitCode.USAGE)
    assert "invalid environment variable S3VAULT_AGENT_WORKERS: Input should be a valid" in err
    assert str(config) not in err
    config.write_text("agent: {workers: lots}\n")
    err = fails(run_cli("--config", config, "config", "show"), ExitCode.USAGE)
    assert f"invalid configuration in {config}: agent.workers: " in err


def test_a_yaml_error_keeps_its_text(run_cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("buckets: [one,\n  two\n")
    err = fails(run_cli("--config", config, "config", "validate"), ExitCode.USAGE)
    assert f"config file {config} is not valid YAML/JSON at line 3, column 1: " in err
    assert "expected ',' or ']'" in err


def test_an_invalid_bucket_name_is_a_usage_error(run_cli, keyring_service):
    err = fails(run_cli("ls", "s3://Bad_Bucket!/"), ExitCode.USAGE)
    assert "error: 'Bad_Bucket!' is not a valid bucket name" in err


def test_key_export_says_why_a_piped_answer_is_refused(run_cli):
    ok(run_cli("key", "generate", "secret-key"))
    r = run_cli("key", "export", "secret-key", input=b"y\n")
    err = fails(r, ExitCode.USAGE)
    assert "standard input is not a terminal" in err and "--yes" in err
    assert r.stdout == b""


def test_sync_reports_an_unreadable_file_as_such(run_cli, bucket, tmp_path):
    ok(run_cli("key", "generate", "sync-key"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "fine.txt").write_text("fine")
    secret = folder / "secret.txt"
    secret.write_text("mine only")
    secret.chmod(0)
    r = run_cli("sync", folder, f"s3://{bucket}/f", "--json", unprivileged=True)
    report = json.loads(r.stdout)
    assert r.returncode == ExitCode.USAGE
    assert report["uploaded"] == 1 and report["deferred"] == []
    (error,) = report["errors"]
    assert error["path"] == "secret.txt"
    assert error["message"] == f"cannot read {secret}: permission denied"
    plain = run_cli("sync", folder, f"s3://{bucket}/f", unprivileged=True)
    assert f"error: secret.txt: cannot read {secret}: permission denied" in fails(
        plain, ExitCode.USAGE
    )


def test_sync_uses_the_current_key_and_lists_a_dry_run_per_file(run_cli, bucket, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("bb")
    target = f"s3://{bucket}/docs"
    err = fails(run_cli("sync", folder, target), ExitCode.KEY_MISSING)
    assert "none is current" in err and "s3vault key use NAME" in err
    ok(run_cli("key", "generate", "current-key"))  # the first key becomes current

    dry = ok(run_cli("sync", folder, target, "--dry-run")).stdout.decode().splitlines()
    assert dry == [
        "would upload a.txt (new, 1 B)",
        "would upload b.txt (new, 2 B)",
        "dry run: would upload 2 files (3 B), rename 0, delete 0; nothing was changed",
    ]
    report = json.loads(ok(run_cli("sync", folder, target, "--json")).stdout)
    assert report["uploaded"] == 2
    listed = json.loads(ok(run_cli("ls", target + "/", "--json")).stdout)
    assert {e["key_name"] for e in listed} == {"current-key"}


@pytest.mark.parametrize("command", ["pause", "resume", "sync-now", "stop", "status"])
def test_agent_commands_show_examples_in_their_help(run_cli, command):
    out = ok(run_cli(command, "--help")).stdout.decode()
    assert "Examples:" in out and f"s3vault {command}" in out


def test_no_runtime_dir_variable_is_not_a_warning(run_cli):
    # root on a server: XDG_RUNTIME_DIR unset; the agent's directory falls back quietly.
    r = run_cli("status", env={"XDG_RUNTIME_DIR": None})
    err = fails(r, ExitCode.UNREACHABLE)
    assert "Warning" not in err and err.startswith("error: the s3vault agent is not running")


def test_usage_errors_from_click_name_the_command_and_keep_the_text(run_cli, tmp_path):
    name = "missing [bold]file.txt"
    err = fails(run_cli("put", tmp_path / name), ExitCode.USAGE)
    assert "Usage: s3vault put [OPTIONS] LOCAL TARGET" in err
    assert "error: Missing argument 'TARGET'." in err
    err = fails(run_cli("put", "a", "s3://b/k", "--format", "[bold]v9"), ExitCode.USAGE)
    assert "Invalid value for '--format': '[bold]v9' is not one of 'v2', 'v3'." in err


def test_unprivileged_prefix_really_drops_the_override(tmp_path):
    # The tests above rely on it: with the prefix, root cannot write a 0555 folder.
    from cli_run import UNPRIVILEGED

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    r = subprocess.run([*UNPRIVILEGED, "touch", str(locked / "x")], check=False)
    assert r.returncode != 0 and not os.path.exists(locked / "x")


def test_get_writes_into_a_device_and_never_replaces_it(run_cli, stored, tmp_path):
    r = ok(run_cli("get", stored, os.devnull))
    assert (
        f"decrypted {stored} → {os.devnull} (8 B, v3, key first, authenticated)"
        in r.stdout.decode()
    )
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE) as reader:
        ok(run_cli("get", stored, fifo))
        assert reader.stdout.read() == b"my notes"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_context_for_a_raw_key_object_is_refused_not_ignored(run_cli, stored, tmp_path):
    r = run_cli("get", stored, tmp_path / "out.txt", "--context", "project=alpha")
    err = fails(r, ExitCode.USAGE)
    assert "--context is checked only for objects whose data key AWS KMS wraps" in err
    assert not (tmp_path / "out.txt").exists()


def test_inspect_of_a_bucket_names_no_object(run_cli, bucket):
    err = fails(run_cli("inspect", f"s3://{bucket}/"), ExitCode.USAGE)
    assert f"s3://{bucket}/ names no object" in err and "s3vault ls" in err


def test_restore_of_an_empty_prefix_says_nothing_is_there(run_cli, stored, bucket, tmp_path):
    err = fails(run_cli("restore", f"s3://{bucket}/typo", tmp_path / "out"), ExitCode.NOT_FOUND)
    assert f"there are no objects under s3://{bucket}/typo/: nothing was restored" in err


def test_restore_into_a_folder_that_cannot_be_created(run_cli, stored, bucket, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    r = run_cli("restore", f"s3://{bucket}/", locked / "sub", unprivileged=True)
    err = fails(r, ExitCode.USAGE)
    assert f"cannot create the folder {locked / 'sub'}: permission denied" in err


def test_a_state_dir_that_cannot_be_written(run_cli, stored, bucket, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    locked = tmp_path / "state"
    locked.mkdir(mode=0o555)
    r = run_cli(
        "sync", folder, f"s3://{bucket}/f", env={"XDG_STATE_HOME": str(locked)}, unprivileged=True
    )
    err = fails(r, ExitCode.USAGE)
    assert "cannot create the state database" in err and "permission denied" in err


def test_key_export_never_replaces_a_device_with_the_key(run_cli, tmp_path):
    ok(run_cli("key", "generate", "secret-key"))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (os.devnull, str(fifo)):
        r = run_cli("key", "export", "secret-key", "--file", target, "--yes")
        assert f"{target} is not a regular file" in fails(r, ExitCode.USAGE)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temp file left
