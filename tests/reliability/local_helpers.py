"""What the local-fault and two-machine tests share: a small tmpfs, a CLI run checked for
a clean exit, the objects of a prefix."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted afterwards (the
    tests run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        unmount(path)


def unmount(path: Path) -> None:
    """Unmount ``path`` if something is mounted there (lazily: an agent may watch it)."""
    if subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode == 0:
        subprocess.run(["umount", "-l", str(path)], check=True)


def clean_exit(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The stderr of a CLI run that ended with ``code`` and no traceback."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err, result.stdout.decode())
    assert "Traceback" not in err and "Traceback" not in result.stdout.decode(), err
    return err


def json_out(result: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(result.stdout)


def objects(s3_client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Every object under ``prefix``: key → (ETag, LastModified)."""
    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}


def leftovers(folder: Path) -> list[str]:
    """s3vault's temp files left in ``folder`` (there must be none)."""
    return sorted(str(p) for p in folder.rglob("*.s3vault-part"))
