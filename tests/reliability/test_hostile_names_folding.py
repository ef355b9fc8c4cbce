"""Restore onto a file system that folds case: two object keys, one file.

exFAT (a USB stick, an SD card; so do FAT, NTFS, APFS and ext4 with casefold) is
case-insensitive and case-preserving: there, ``d/File.txt`` and ``d/file.txt`` are
one file, and so are ``Docs/a.txt`` and ``docs/a.txt``. Restore must then never let
the second object overwrite the first (with ``--overwrite``), nor take the first for a
file that was there before and keep it silently (without): the second key is refused
(exit 9) and named, the first keeps its bytes, the rest is restored. A real exFAT,
made with mkfs.exfat in an image and mounted through FUSE (exfat-fuse) from a loop
device (the tests run as root).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import clean_exit
from sync_helpers import SYNC_KEY, sync_vault, write

MiB = 1024 * 1024
CONTENTS = {
    "Docs/a.txt": b"Docs/a.txt: the first of a pair that differs in a folder's case",
    "d/File.txt": b"d/File.txt: the first of a pair that differs in a name's case",
    "d/file.txt": b"d/file.txt: the second, one file with d/File.txt on exFAT",
    "docs/a.txt": b"docs/a.txt: the second, one file with Docs/a.txt on exFAT",
    "x.txt": b"x.txt: no other key names this file",
}
SECOND = {"d/file.txt": "d/File.txt", "docs/a.txt": "Docs/a.txt"}


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def exfat(tmp_path: Path) -> Iterator[Path]:
    image = tmp_path / "exfat.img"
    with image.open("wb") as f:
        f.truncate(32 * MiB)
    _run("mkfs.exfat", str(image))
    loop = _run("losetup", "--find", "--show", str(image))
    mount = tmp_path / "usb-stick"
    mount.mkdir()
    try:
        _run("mount.exfat-fuse", loop, str(mount))
        try:
            yield mount
        finally:
            _run("umount", str(mount))
    finally:
        _run("losetup", "--detach", loop)


def test_restore_onto_a_case_folding_file_system_refuses_the_second_of_two_keys(
    exfat, run_cli, keyring_service, bucket, tmp_path, reliability
):
    # The premise: this file system sees one file under both names.
    (exfat / "Probe").write_bytes(b"1")
    assert (exfat / "probe").read_bytes() == b"1"
    (exfat / "Probe").unlink()

    vault = sync_vault(keyring_service)
    for rel, data in CONTENTS.items():
        source = write(tmp_path / "src" / uuid.uuid4().hex, "f", data)
        vault.put(source, bucket, f"fold/{rel}", key_name=SYNC_KEY)
    url = f"s3://{bucket}/fold/"

    for overwrite in ([], ["--overwrite"]):  # the second run finds the first's files
        result = run_cli("restore", url, exfat, "--json", *overwrite)
        clean_exit(result, 9)
        report = json.loads(result.stdout)
        refused = {e["path"]: e["message"] for e in report["errors"]}
        assert set(refused) == set(SECOND), report
        for second, first in SECOND.items():
            assert first in refused[second] and "one file" in refused[second]
        for rel, data in CONTENTS.items():
            if rel not in SECOND:
                assert (exfat / rel).read_bytes() == data, (overwrite, rel)
        reliability.hostile_input("object keys one file apart on exFAT (restore)", len(CONTENTS))
    reliability.data(sum(len(CONTENTS[rel]) for rel in CONTENTS if rel not in SECOND), 0)
