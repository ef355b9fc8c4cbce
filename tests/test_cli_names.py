"""Names are shown as they are: an object key or a file name chosen by someone else
never turns into terminal markup, emoji, colours or cursor movement.

Each name goes through the real command line (put, ls, get, inspect, rotate, rm,
sync, restore, and their errors), plain and with --json, against SeaweedFS; names
with a backslash (which SeaweedFS rewrites as '/') against moto's S3, which keeps it.
Plain output must carry the name exactly, with control characters shown as escapes;
JSON must carry it exactly, byte for byte.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest

from s3vault.errors import ExitCode

# (name, how plain output shows it)
NAMES = [
    ("notes [draft].txt", "notes [draft].txt"),
    ("report[bold].txt", "report[bold].txt"),
    ("[/]close [red]x[/red] :smile:.txt", "[/]close [red]x[/red] :smile:.txt"),
    (
        "esc\x1b[31mred\ttab\nnewline\u202ebidi\x07.txt",
        "esc\\x1b[31mred\\x09tab\\x0anewline\\u202ebidi\\x07.txt",
    ),
]
IDS = ["brackets", "bold-tag", "closing-tag-and-emoji-code", "control-characters"]

# Raw control characters must never reach the terminal (tab and newline only as
# the layout's own).
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e]")


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr
    return result


def text(result) -> str:
    out = result.stdout.decode() + result.stderr.decode()
    assert not _RAW_CONTROL.search(out), out
    return out


@pytest.fixture
def key(run_cli):
    ok(run_cli("key", "generate", "names-key"))
    ok(run_cli("key", "generate", "names-key-2"))
    return "names-key"


@pytest.mark.parametrize(("name", "shown"), NAMES, ids=IDS)
def test_one_object_name_through_every_object_command(run_cli, key, bucket, tmp_path, name, shown):
    # A '/' in a name is a folder on disk and in the key alike.
    local = tmp_path / "src" / name
    local.parent.mkdir(parents=True)
    local.write_bytes(b"content of " + name.encode())
    url = f"s3://{bucket}/dir/{name}"
    shown_url = f"s3://{bucket}/dir/{shown}"

    put = text(ok(run_cli("put", local, url)))
    assert f"encrypted {tmp_path / 'src' / shown} → {shown_url} (" in put
    assert json.loads(ok(run_cli("put", local, url, "--json")).stdout)["url"] == url

    listing = text(ok(run_cli("ls", f"s3://{bucket}/dir/", "--recursive")))
    assert f"dir/{shown} " in listing
    listed = json.loads(ok(run_cli("ls", f"s3://{bucket}/dir/", "-r", "--json")).stdout)
    assert [entry["key"] for entry in listed] == [f"dir/{name}"]

    inspected = text(ok(run_cli("inspect", url)))
    assert shown_url in inspected and f"dir/{shown}" in inspected
    assert json.loads(ok(run_cli("inspect", url, "--json")).stdout)["key"] == f"dir/{name}"

    out = tmp_path / "out"
    out.mkdir()
    got = text(ok(run_cli("get", url, f"{out}/")))  # into a folder: the key's last part
    assert f"decrypted {shown_url} → {out / shown.rsplit('/')[-1]} (" in got
    assert (out / local.name).read_bytes() == local.read_bytes()

    rotated = text(ok(run_cli("rotate", url, "--to-key", "names-key-2")))
    assert f"re-wrapped {shown_url}: names-key → names-key-2" in rotated
    report = json.loads(ok(run_cli("rotate", url, "--to-key", key, "--json")).stdout)
    assert [r["key"] for r in report["rotated"]] == [f"dir/{name}"]

    removed = text(ok(run_cli("rm", url)))
    assert removed.strip() == f"deleted {shown_url}"


@pytest.mark.parametrize(("name", "shown"), NAMES, ids=IDS)
def test_errors_show_the_name_as_it_is(run_cli, key, bucket, tmp_path, name, shown):
    missing_object = run_cli("get", f"s3://{bucket}/{name}", tmp_path / "x")
    assert missing_object.returncode == ExitCode.NOT_FOUND
    assert f"error: s3://{bucket}/{shown} does not exist" in text(missing_object)

    missing_file = run_cli("put", tmp_path / name, f"s3://{bucket}/x")
    assert missing_file.returncode == ExitCode.NOT_FOUND
    assert f"{tmp_path / shown} does not exist" in text(missing_file)

    as_json = run_cli("get", f"s3://{bucket}/{name}", tmp_path / "x", "--json")
    error = json.loads(as_json.stdout)["error"]
    assert error["message"] == f"s3://{bucket}/{name} does not exist"


def test_sync_restore_and_recursive_rotate_show_every_name(run_cli, key, bucket, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, _ in NAMES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode())
    target = f"s3://{bucket}/synced"

    dry = text(ok(run_cli("sync", folder, target, "--dry-run")))
    for _, shown in NAMES:
        assert f"would upload {shown} (new, " in dry
    planned = json.loads(ok(run_cli("sync", folder, target, "--dry-run", "--json")).stdout)
    assert sorted(step["path"] for step in planned["would"]) == sorted(n for n, _ in NAMES)

    ok(run_cli("sync", folder, target))
    (folder / NAMES[0][0]).unlink()
    (folder / NAMES[3][0]).rename(folder / ("moved " + NAMES[3][0]))
    dry = text(ok(run_cli("sync", folder, target, "--dry-run")))
    assert f"would delete {NAMES[0][1]} (deleted here)" in dry
    assert f"would rename {NAMES[3][1]} → moved {NAMES[3][1]} (a server-side copy)" in dry

    restored = tmp_path / "restored"
    report = json.loads(ok(run_cli("restore", target, restored, "--json")).stdout)
    assert report["restored"] == len(NAMES) and not report["errors"]
    for name, _ in NAMES:
        assert (restored / name).read_bytes() == name.encode()
    again = run_cli("restore", target, restored)  # every file exists: all kept
    assert "0 restored" in text(ok(again))

    rotated = text(ok(run_cli("rotate", target + "/", "-r", "--to-key", "names-key-2")))
    assert f"re-wrapped s3://{bucket}/synced/{NAMES[3][1]}: names-key → names-key-2" in rotated


def test_backslashes_in_object_keys_are_printed_as_they_are(run_cli, kms, key, tmp_path):
    # moto's S3 keeps a backslash in a key, as AWS does (SeaweedFS turns it into '/').
    bucket = "names-backslash"
    moto = boto3.client(
        "s3", endpoint_url=kms.endpoint_url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )  # fmt: skip
    moto.create_bucket(Bucket=bucket)
    env = {"AWS_ENDPOINT_URL_S3": kms.endpoint_url}
    name = "C:\\Users\\me\\[bold]report.txt"
    local = tmp_path / "report.txt"
    local.write_bytes(b"backslashes")
    url = f"s3://{bucket}/{name}"

    assert url in text(ok(run_cli("put", local, url, env=env)))
    assert f"{name} " in text(ok(run_cli("ls", f"s3://{bucket}/", env=env)))
    listed = json.loads(ok(run_cli("ls", f"s3://{bucket}/", "--json", env=env)).stdout)
    assert [e["key"] for e in listed] == [name]
    assert url in text(ok(run_cli("inspect", url, env=env)))
    got = text(ok(run_cli("get", url, tmp_path / "back.txt", env=env)))
    assert f"decrypted {url} → " in got
    assert (tmp_path / "back.txt").read_bytes() == b"backslashes"
    assert text(ok(run_cli("rm", url, env=env))).strip() == f"deleted {url}"
