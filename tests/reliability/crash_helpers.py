"""Shared by the crash tests: a mixed tree that changes, kill -9 at a random moment, and
the checks that a restarted process converged.

`MixedTree` writes small files and multipart-sized ones into a folder and changes
them the way a user does (edits, new files, deletes, renames), remembering which
files it never touched: those are the ones a sync must leave exactly as they were.
`converged` compares a prefix in S3 with the folder (every object decrypts to its
file's bytes) and with the state database, and finds no multipart upload open.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_helpers import wait_for

from s3vault.agent.client import AgentClient
from s3vault.errors import UnreachableError
from s3vault.sync.state import StateDB
from s3vault.vault.vault import Vault

MiB = 1024 * 1024
LARGE = 11 * MiB  # three parts of 5 MiB: a multipart upload with the config below


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def kill_9(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL ``proc`` and reap it; False if it had already ended by itself."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def run_then_kill_9(
    argv: Sequence[str], env: dict[str, str], delay: float
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start ``argv``, SIGKILL it after ``delay`` seconds; (the process, whether the kill
    landed, i.e. it was still running)."""
    proc = subprocess.Popen(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=delay)
    killed = kill_9(proc)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc, killed


def start_agent(agents: Any, log: Path, *, wait: bool = True) -> subprocess.Popen[bytes]:
    """`AgentProcs.start`, its output appended to ``log`` (a pipe nobody reads would
    fill and block a long-running agent); stopped with the fixture's other agents."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s3vault",
                "--config",
                str(agents.config),
                "agent",
                "--foreground",
            ],
            env=agents.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    agents.procs.append(proc)
    if wait:

        def ready() -> bool:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"the agent exited {proc.returncode}: {tail}")
            try:
                with AgentClient(agents.socket, timeout=10):
                    return True
            except UnreachableError:
                return False

        wait_for(ready, "the agent's control socket", timeout=60.0)
    return proc


@dataclass
class MixedTree:
    """A folder of small and multipart files that changes like a user's."""

    root: Path
    rng: random.Random
    small_files: int = 60
    large_files: int = 2
    changed: set[str] = field(default_factory=set)  # ever written, moved or deleted by us
    originals: dict[str, tuple[str, int]] = field(default_factory=dict)  # untouched: sha, mtime
    _serial: int = 0

    def write(self) -> None:
        for n in range(self.small_files):
            self._put(f"dir-{n % 6}/small-{n}.txt", self.rng.randint(0, 16 * 1024))
        for n in range(self.large_files):
            self._put(f"large-{n}.bin", LARGE)
        self.changed.clear()
        for rel in self.files():
            path = self.root / rel
            self.originals[rel] = (file_sha(path), path.stat().st_mtime_ns)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def _put(self, rel: str, size: int) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.rng.randbytes(size))
        self.changed.add(rel)

    def _name(self, stem: str) -> str:
        self._serial += 1
        return f"{stem}-{self._serial}"

    def change(self) -> None:
        """A round of what a user does: edits, new files, a delete, renames, and one
        multipart-sized change (a new large file, a rewrite, or a rename of one)."""
        rng = self.rng
        files = self.files()
        small = [f for f in files if not f.endswith(".bin")]
        large = [f for f in files if f.endswith(".bin")]
        for rel in rng.sample(small, min(3, len(small))):
            self._put(rel, rng.randint(1, 8192))
        for _ in range(2):
            self._put(f"dir-{rng.randrange(6)}/{self._name('new')}.txt", rng.randint(0, 4096))
        victim = rng.choice(small)
        (self.root / victim).unlink(missing_ok=True)
        self.changed.add(victim)
        self._rename(rng.choice([f for f in small if f != victim]))
        what = rng.choice(("new", "rewrite", "rename")) if large else "new"
        if what == "new" or not large:
            self._put(f"{self._name('large')}.bin", LARGE)
        elif what == "rewrite":
            self._put(rng.choice(large), LARGE)
        else:
            self._rename(rng.choice(large))
        if len(large) > 4:  # keep the tree small: one large file out for each one in
            victim = rng.choice(large)
            if (self.root / victim).exists():
                (self.root / victim).unlink()
                self.changed.add(victim)

    def edit_one(self) -> str:
        """An edit while a sync runs: one file (maybe a large one) rewritten."""
        rel = self.rng.choice(self.files())
        size = LARGE if rel.endswith(".bin") else self.rng.randint(1, 8192)
        self._put(rel, size)
        return rel

    def _rename(self, rel: str) -> None:
        source = self.root / rel
        if not source.exists():
            return
        target = source.with_name(f"{self._name('renamed')}-{source.name}")
        source.rename(target)
        self.changed.update({rel, target.relative_to(self.root).as_posix()})

    def untouched(self) -> dict[str, tuple[str, int]]:
        """Files the test never changed, with their original hash and mtime."""
        return {rel: v for rel, v in self.originals.items() if rel not in self.changed}

    def check_untouched(self, *, hashes: bool) -> int:
        """Assert every untouched file still has its mtime (and its hash); bytes checked."""
        checked = 0
        for rel, (digest, mtime) in self.untouched().items():
            path = self.root / rel
            st = path.stat()
            assert st.st_mtime_ns == mtime, f"the sync changed the mtime of {rel}"
            if hashes:
                assert file_sha(path) == digest, f"the sync changed the bytes of {rel}"
                checked += st.st_size
        return checked

    def snapshot(self) -> dict[str, str]:
        return {rel: file_sha(self.root / rel) for rel in self.files()}


def stored_objects(s3_client: Any, bucket: str, prefix: str) -> dict[str, str]:
    """Relative key -> ETag of every object under ``prefix``."""
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {
        o["Key"].removeprefix(prefix): o["ETag"].strip('"')
        for page in pages
        for o in page.get("Contents", [])
    }


def open_multipart_uploads(s3_client: Any, bucket: str, prefix: str) -> list[str]:
    reply = s3_client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in reply.get("Uploads", [])]


def decrypts_to(vault: Vault, bucket: str, key: str) -> bytes:
    out = io.BytesIO()
    vault.get(bucket, key, out)
    return out.getvalue()


@dataclass
class Convergence:
    """Checks that a folder, its prefix in S3 and its state database agree.

    An object already decrypted and found equal to its file (same ETag, same file
    hash) is not decrypted again at the next check: its bytes cannot have changed.
    """

    tree: MixedTree
    vault: Vault
    s3_client: Any
    bucket: str
    prefix: str
    state_path: Path
    folder_id: str
    verified: dict[str, tuple[str, str]] = field(default_factory=dict)  # rel: etag, sha

    def check(self, why: str) -> int:
        """Assert S3 holds exactly the folder's files, each object decrypting to its
        file's bytes; the state agrees with S3 with no write left announced; no
        multipart upload is open; no untouched file changed. Bytes compared."""
        local = self.tree.snapshot()
        stored = stored_objects(self.s3_client, self.bucket, self.prefix)
        assert set(stored) == set(local), (
            f"S3 and the folder differ: only in S3 {sorted(set(stored) - set(local))}, "
            f"only local {sorted(set(local) - set(stored))} {why}"
        )
        todo = [rel for rel, d in local.items() if self.verified.get(rel) != (stored[rel], d)]

        def opened(rel: str) -> tuple[str, str, int]:
            plain = decrypts_to(self.vault, self.bucket, self.prefix + rel)
            return rel, sha(plain), len(plain)

        checked = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            for rel, digest, size in pool.map(opened, todo):
                assert digest == local[rel], f"{rel} does not decrypt to the file's bytes {why}"
                self.verified[rel] = (stored[rel], digest)
                checked += size
        with StateDB(self.state_path) as state:
            rows = state.all(self.folder_id)
            assert set(rows) == set(local), f"the state and the folder differ {why}"
            for rel, row in rows.items():
                assert row.etag.strip('"') == stored[rel], f"state ETag of {rel} {why}"
                assert row.content_hash == local[rel], f"state hash of {rel} {why}"
            assert state.uploads(self.folder_id) == [], f"writes still announced {why}"
        assert open_multipart_uploads(self.s3_client, self.bucket, self.prefix) == [], (
            f"multipart uploads left open {why}"
        )
        return checked + self.tree.check_untouched(hashes=True)
