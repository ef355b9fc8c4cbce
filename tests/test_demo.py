"""`s3vault demo` (what `make demo` runs) end to end, twice: the second run reuses
the keys, the folder, the S3 data and the sync state of the first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def run_demo(data_dir: Path) -> str:
    env = dict(os.environ, COLUMNS="160", NO_COLOR="1")
    r = subprocess.run(
        [sys.executable, "-m", "s3vault", "demo", "--data-dir", str(data_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
        check=False,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
    return out


def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    first = run_demo(data_dir)
    assert "created master key demo-aes" in first
    assert first.count("identical") == 5  # four objects and the restored folder
    assert "are ciphertext:" in first
    assert re.search(r"first run:\s+4 uploaded", first)
    assert re.search(r"after adding journal/\S+: 1 uploaded", first)
    moved = r"after moving it to journal/archive/\S+: 0 uploaded, 1 renamed, 0 deleted"
    assert re.search(moved, first)

    second = run_demo(data_dir)
    assert "master key demo-aes already in the keyring" in second
    assert re.search(r"first run:\s+0 uploaded", second)  # the state remembers the first
    assert second.count("identical") == 5
    # The demo's S3 data and state stay in its data dir, never in the user's.
    assert (data_dir / "state.db").exists() and (data_dir / "s3").is_dir()
