"""Full reconciles in a child process, so the agent idles at its import size.

A full reconcile builds per-file structures for the whole folder (the scan, the state
rows, the S3 listing, the plan). Python frees them when the run ends, but its allocator
keeps every 1 MiB arena that one surviving object pins (an interned string, a cache
entry of a library), and `malloc_trim` cannot return those. Measured on 100,000 files:
an agent that ran its full reconciles itself idled at 172 MB, against 80 MB on an empty
folder. A child process hands everything back when it exits.

`ChildRuns` is the agent's `Reconciler` for one folder: a big run is
``python -m s3vault.agent.child_run`` — the same config, folder and state database,
its progress and report streamed back as JSON lines on its stdout — and a small one
stays in the agent, on its own engine. Big: a full run of a folder never synced or
with `CHILD_MIN_FILES` state rows or more, or a batch of that many paths (a folder
copied in). Below that, what a run leaves pinned is smaller than the child's start-up
(a second of CPU, more on a loaded machine) is worth. The child dies with the agent
(``PR_SET_PDEATHSIG``); a kill at any point is as safe as a killed `s3vault sync`
(docs/sync.md, crash safety).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from s3vault.errors import (
    AccessDeniedError,
    ConflictError,
    ExitCode,
    IntegrityError,
    KeyMissingError,
    NotFoundError,
    RefusedError,
    S3VaultError,
    UnreachableError,
    UsageError,
)
from s3vault.process import log_to, no_core_dumps
from s3vault.sync.report import FileDone, PathError, PathIssue, SyncProgress, SyncReport

if TYPE_CHECKING:
    from s3vault.agent.watcher import Reconciler
    from s3vault.config.model import Config
    from s3vault.sync.state import StateDB

log = logging.getLogger(__name__)

CHILD_MIN_FILES = 2000  # about 1 KiB a file stays pinned after a run: 2 MB here

_BY_EXIT_CODE: dict[int, type[S3VaultError]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.NOT_FOUND: NotFoundError,
    ExitCode.INTEGRITY: IntegrityError,
    ExitCode.KEY_MISSING: KeyMissingError,
    ExitCode.UNREACHABLE: UnreachableError,
    ExitCode.ACCESS_DENIED: AccessDeniedError,
    ExitCode.CONFLICT: ConflictError,
    ExitCode.REFUSED: RefusedError,
}


class ChildRuns:
    """Big reconciles of one folder in a child process; small ones by ``engine``."""

    def __init__(
        self,
        engine: Reconciler,
        config: Config,
        folder_id: str,
        state: StateDB,
        *,
        min_files: int = CHILD_MIN_FILES,
    ) -> None:
        self.engine = engine
        self.config = config
        self.folder_id = folder_id
        self.state = state
        self.min_files = min_files

    def is_big(self, paths: Collection[str] | None) -> bool:
        """Whether a run of ``paths`` (None: all) goes to a child (see the module)."""
        if paths is not None:
            return len(paths) >= self.min_files
        fid = self.folder_id
        return self.state.folder(fid) is None or self.state.count(fid) >= self.min_files

    def reconcile(
        self,
        *,
        paths: Collection[str] | None = None,
        force: bool = False,
        dry_run: bool = False,
        with_remote_listing: bool = True,
        progress: Callable[[SyncProgress], None] | None = None,
    ) -> SyncReport:
        if dry_run or not self.is_big(paths):
            return self.engine.reconcile(
                paths=paths,
                force=force,
                dry_run=dry_run,
                with_remote_listing=with_remote_listing,
                progress=progress,
            )
        request = {
            "config": self.config.model_dump(mode="json"),
            "folder": self.folder_id,
            "state": os.fspath(self.state.path),
            "paths": sorted(paths) if paths is not None else None,
            "force": force,
            "with_remote_listing": with_remote_listing,
        }
        return run_child(request, progress)


def run_child(
    request: dict[str, Any], progress: Callable[[SyncProgress], None] | None
) -> SyncReport:
    """Run one reconcile in a child; its report, or the error it ended with."""
    # The request (the config) goes through a pipe: never argv, never a file.
    child = subprocess.Popen(
        [sys.executable, "-m", "s3vault.agent.child_run", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
    )
    assert child.stdin is not None and child.stdout is not None
    result: dict[str, Any] | None = None
    try:
        with child.stdin:
            child.stdin.write(json.dumps(request).encode() + b"\n")
        for line in child.stdout:
            message = json.loads(line)
            if "progress" in message:
                if progress is not None:
                    progress(SyncProgress(**message["progress"]))
            else:
                result = message
    finally:
        child.stdout.close()
        status = child.wait()
    if result is None:
        raise S3VaultError(
            f"the sync process of {request['folder']} ended with status {status} and no report",
            hint="See the agent's log; the folder is synced again after a pause.",
        )
    if "error" in result:
        raise error_from_json(result["error"])
    return report_from_json(result["report"], result.get("done", []))


def report_from_json(data: dict[str, Any], done: list[dict[str, Any]]) -> SyncReport:
    """A `SyncReport` again, from `SyncReport.to_json` and its ``done`` files."""
    report = SyncReport(
        folder=data["folder"],
        dry_run=data["dry_run"],
        uploaded=data["uploaded"],
        copied=data["copied"],
        deleted=data["deleted"],
        touched=data["touched"],
        forgotten=data["forgotten"],
        relearned=data["relearned"],
        skipped=data["skipped"],
        conflicts=[PathIssue(**c) for c in data["conflicts"]],
        errors=[PathError(**e) for e in data["errors"]],
        deferred=list(data["deferred"]),
        planned=dict(data["planned"]),
        bytes=data["bytes"],
        duration=data["duration"],
        forced=data["forced"],
    )
    report.done.extend(FileDone(**d) for d in done)
    return report


def error_to_json(exc: S3VaultError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "hint": exc.hint,
        "exit_code": int(exc.exit_code),
        "kind": getattr(exc, "kind", ""),
        "refused": isinstance(exc, RefusedError),
    }


def error_from_json(data: dict[str, Any]) -> S3VaultError:
    """The child's error as the class the agent's loop tells apart (by exit code)."""
    if data.get("refused") and data.get("kind"):
        from s3vault.sync.engine import SyncRefused

        return SyncRefused(data["message"], hint=data["hint"], kind=data["kind"])
    cls = _BY_EXIT_CODE.get(data["exit_code"], S3VaultError)
    return cls(data["message"], hint=data["hint"])


# ---- the child -----------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the agent dies, however it dies (Linux; elsewhere the run ends)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl
        os._exit(1)


def _write(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    """``python -m s3vault.agent.child_run AGENT_PID``, the request on stdin."""
    _die_with_parent(int(argv[0]))
    no_core_dumps()  # it holds the data keys of the run, like the agent
    # Our protocol has stdout to itself: anything else printed goes to the log.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    log_to(logging.StreamHandler(sys.stderr))
    request = json.loads(sys.stdin.readline())
    try:
        report = _reconcile(request, lambda p: _write(out, {"progress": asdict(p)}))
    except S3VaultError as exc:
        _write(out, {"error": error_to_json(exc)})
        return 0
    except Exception as exc:  # a bug: the agent says so and retries later
        log.exception("full reconcile of %s failed", request.get("folder"))
        _write(out, {"error": error_to_json(S3VaultError(f"internal error: {exc!r}"))})
        return 0
    done = [asdict(d) for d in report.done]
    _write(out, {"report": report.to_json(), "done": done})
    return 0


def _reconcile(request: dict[str, Any], progress: Callable[[SyncProgress], None]) -> SyncReport:
    from s3vault.config.model import Config
    from s3vault.keys.open import keystore_from_config
    from s3vault.sync.engine import SyncEngine
    from s3vault.sync.state import StateDB
    from s3vault.vault.factory import build_vault

    config = Config.model_validate(request["config"])
    (folder,) = [f for f in config.folders if f.folder_id == request["folder"]]
    vault = build_vault(
        config,
        keystore_factory=lambda: keystore_from_config(config),
        bandwidth_limit=config.agent.bandwidth_limit,
    )
    with StateDB(Path(request["state"])) as state:
        engine = SyncEngine(folder, vault, state, workers=config.agent.workers)
        return engine.reconcile(
            paths=request["paths"],
            force=request["force"],
            with_remote_listing=request["with_remote_listing"],
            progress=progress,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
