"""The agent process: one per user, from lock to clean exit.

    lock → vault, state database, one engine per folder → control socket → watchers
    → READY=1 → full reconcile of every folder (with the S3 listing, in a child
    process: child_run.py) → events, rescans
    → SIGTERM / SIGINT / `stop` → watchers and socket closed, state database closed.

Under systemd (Type=notify) it reports READY=1 once the socket answers, STATUS= as the
state changes, and WATCHDOG=1 when the unit sets WatchdogSec. sd_notify is a datagram
to $NOTIFY_SOCKET; it is small enough to write here rather than depend on a library.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from watchdog.observers import Observer

from s3vault.agent import paths
from s3vault.agent.child_run import ChildRuns
from s3vault.agent.lock import AgentLock
from s3vault.agent.metrics_file import MetricsFile
from s3vault.agent.protocol import PROTOCOL, VERBS, ProtocolError, Request, ok_reply
from s3vault.agent.server import ControlServer
from s3vault.agent.status import AgentStatus
from s3vault.agent.watcher import FolderRun, FolderWatch, Reconciler, Schedule, SyncLoop
from s3vault.config.sync import FolderSettings
from s3vault.errors import ConfigError, NotFoundError
from s3vault.private import private_file
from s3vault.process import log_to
from s3vault.sync.events import Debouncer
from s3vault.sync.ignore import IgnoreRules

if TYPE_CHECKING:
    from s3vault.config.model import Config

log = logging.getLogger(__name__)

LOG_NAME = "agent.log"


def sd_notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (e.g. "READY=1") to systemd; False when not run by systemd."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Half of systemd's WatchdogSec (from WATCHDOG_USEC), if it is meant for us."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


class Agent:
    """The running agent: sync loop, watchers and control socket around given engines.

    `run_agent` builds it from the config; tests may give it other engines.
    """

    def __init__(
        self,
        folders: list[tuple[FolderSettings, Reconciler]],
        *,
        debounce: float,
        rescan_interval: float,
        metrics_file: Path | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.status = AgentStatus((f.folder_id, str(f.path)) for f, _ in folders)
        self.observer = Observer()
        self.watches: list[FolderWatch] = []
        runs: list[FolderRun] = []
        self.loop = SyncLoop(
            runs,
            self.status,
            lock=self.lock,
            on_reconciled=self._after_reconcile,
        )
        now = self.loop.clock()
        for folder, engine in folders:
            holder = _Rules(folder)
            debouncer = Debouncer(debounce, is_ignored=holder.is_ignored)
            schedule = Schedule(debouncer, rescan_interval=rescan_interval, now=now)
            runs.append(FolderRun(folder.folder_id, engine, schedule))
            self.watches.append(
                FolderWatch(
                    folder,
                    debouncer,
                    self.lock,
                    self.loop.wake,
                    on_ignore_file=_reload_and_rescan(holder, schedule, self.lock),
                )
            )
        self.server: ControlServer | None = None
        self.metrics = (
            MetricsFile(metrics_file, self.status, self._waiting) if metrics_file else None
        )

    def _waiting(self) -> int:
        """Changed paths held by the folders' debouncers, not synced yet."""
        with self.lock:
            return sum(len(run.schedule.debouncer) for run in self.loop.folders)

    def dispatch(self, request: Request) -> dict[str, Any]:
        verb = request.verb
        if verb == "status":
            return ok_reply(status=self.status.snapshot())
        if verb == "hello":
            return ok_reply(protocol=PROTOCOL, verbs=sorted(VERBS), pid=os.getpid())
        folder = self._folder_arg(request)
        if verb == "pause":
            self.loop.pause(folder)
            self._notify_status()
        elif verb == "resume":
            self.loop.resume(folder)
            self._notify_status()
        elif verb == "sync-now":
            self.loop.sync_now(folder)
        elif verb == "stop":
            pass  # after the reply is sent (see `_after_reply`)
        else:
            raise ProtocolError(f"verb {verb!r} is not handled here")
        if folder is not None:
            snap = self.status.snapshot()
            (state,) = [f["state"] for f in snap["folders"] if f["folder"] == folder]
            return ok_reply(state=snap["state"], folder=folder, folder_state=state)
        return ok_reply(state=self.status.snapshot()["state"])

    def _folder_arg(self, request: Request) -> str | None:
        """The folder id a request's ``folder`` names: an id (s3://BUCKET/PREFIX/) or
        the folder's absolute local path. NotFoundError for any other."""
        given = request.args.get("folder")
        if given is None:
            return None
        folders = self.status.folders()
        for folder_id, path in folders:
            if given == folder_id or (
                os.path.isabs(given) and os.path.realpath(given) == os.path.realpath(path)
            ):
                return folder_id
        known = ", ".join(f"{fid} ({path})" for fid, path in folders)
        raise NotFoundError(
            f"the agent syncs no folder {given!r}",
            hint=f"Give a folder id or its absolute path; the agent syncs: {known}.",
        )

    def _after_reply(self, request: Request) -> None:
        if request.verb == "stop":
            log.info("stop requested over the control socket")
            self.loop.stop()

    def run(self) -> None:
        """Serve until stopped; the calling thread runs the sync loop."""
        self.server = ControlServer(
            paths.socket_path(), self.dispatch, self.status, after_reply=self._after_reply
        )
        server_thread = threading.Thread(
            target=self.server.serve_forever, name="control-socket", daemon=True
        )
        server_thread.start()
        try:
            self.observer.start()
            self._start_watches()
            self._start_watchdog()
            if self.metrics is not None:
                self.metrics.start()
            sd_notify("READY=1\nSTATUS=starting: full sync of every folder")
            log.info("agent ready; control socket %s", self.server.path)
            self.loop.run()
        finally:
            sd_notify("STOPPING=1")
            log.info("agent stopping")
            if self.observer.is_alive():
                self.observer.stop()
                self.observer.join(timeout=10)
            self.server.close()
            if self.metrics is not None:
                self.metrics.stop()

    def stop(self) -> None:
        self.loop.stop()

    def _after_reconcile(self) -> None:
        self._start_watches()
        self._notify_status()
        if self.metrics is not None:
            self.metrics.request_write()

    def _notify_status(self) -> None:
        """systemctl status shows this line: the state and what needs attention."""
        snap = self.status.snapshot()
        line = snap["state"]
        attention = snap["attention"]
        if attention["errors"]:
            line += f"; {attention['errors']} file errors (s3vault status)"
        if attention["conflicts"]:
            line += f"; {attention['conflicts']} conflicts"
        problems = [f["message"] for f in snap["folders"] if f["message"]]
        if problems:
            line += f"; {problems[0]}"
        sd_notify(f"STATUS={line}")

    def _start_watches(self) -> None:
        """Watch every folder root not watched yet.

        A root that is missing (an unmounted drive) is not fatal: its reconcile is
        refused and shown as the folder's error, and watching starts once a later
        reconcile (rescan, `sync-now`) finds it back.
        """
        for watch in self.watches:
            if watch.started:
                continue
            try:
                watch.start(self.observer)
            except (FileNotFoundError, NotADirectoryError) as exc:
                log.warning("not watching %s yet: %s", watch.root, exc.strerror)

    def _start_watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return

        # Pinged from its own thread: a reconcile may upload one big file for longer
        # than WatchdogSec, and that is work, not a hang.
        def ping() -> None:
            while not self.loop.stopping:
                sd_notify("WATCHDOG=1")
                threading.Event().wait(interval)

        threading.Thread(target=ping, name="sd-watchdog", daemon=True).start()


class _Rules:
    """A folder's ignore rules, reloaded when its .s3vaultignore changes."""

    def __init__(self, folder: FolderSettings) -> None:
        self.folder = folder
        self.rules = self._load()

    def _load(self) -> IgnoreRules:
        try:
            return IgnoreRules.for_folder(self.folder.path, self.folder.ignore)
        except ConfigError as exc:
            # Unreadable ignore file: the engine refuses the folder and says why; the
            # watcher just keeps its last rules.
            log.warning("%s", exc)
            return IgnoreRules(self.folder.ignore)

    def reload(self) -> None:
        self.rules = self._load()

    def is_ignored(self, relpath: str, is_dir: bool) -> bool:
        return self.rules.is_ignored(relpath, is_dir)


def _reload_and_rescan(
    holder: _Rules, schedule: Schedule, lock: threading.Lock
) -> Callable[[], None]:
    def changed() -> None:
        holder.reload()
        with lock:
            # New rules may un-ignore files no event will ever name: look at everything.
            if schedule.full is None:
                schedule.full = "ignore rules changed"

    return changed


def run_agent(config: Config, *, foreground: bool = True) -> int:
    """Run the agent until stopped; the exit status (0 after a clean stop).

    ``foreground``: log to stderr (systemd's journal); otherwise to agent.log in the
    state dir (the detached agent `s3vault agent` starts).
    """
    _setup_logging(foreground)
    if not config.folders:
        raise ConfigError(
            "no folders to sync: the config has no `folders:` section",
            hint="Add one (path, bucket, key), see docs/agent.md, then start the agent again.",
        )
    with AgentLock(paths.lock_path()):
        from s3vault.keys.open import keystore_from_config
        from s3vault.sync.engine import SyncEngine
        from s3vault.sync.state import StateDB, default_state_path
        from s3vault.vault.factory import build_vault

        vault = build_vault(
            config,
            keystore_factory=lambda: keystore_from_config(config),
            bandwidth_limit=config.agent.bandwidth_limit,
        )
        state = StateDB(default_state_path())
        try:
            # Big runs in a child process (see child_run.py), small ones here.
            engines: list[tuple[FolderSettings, Reconciler]] = [
                (
                    folder,
                    ChildRuns(
                        SyncEngine(folder, vault, state, workers=config.agent.workers),
                        config,
                        folder.folder_id,
                        state,
                    ),
                )
                for folder in config.folders
            ]
            agent = Agent(
                engines,
                debounce=config.agent.debounce_ms / 1000,
                rescan_interval=config.agent.rescan_interval,
                metrics_file=config.agent.metrics_file,
            )
            _handle_signals(agent)
            agent.run()
        finally:
            state.close()
    log.info("agent stopped")
    return 0


def _handle_signals(agent: Agent) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        # Not agent.stop() here: the handler runs inside whatever the main thread was
        # doing (maybe holding a lock); a thread does the stopping.
        threading.Thread(target=agent.stop, name="stop").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _setup_logging(foreground: bool) -> None:
    handler: logging.Handler
    if foreground:
        handler = logging.StreamHandler(sys.stderr)
    else:  # created 0600 first: FileHandler would make it as the umask says
        handler = logging.FileHandler(private_file(paths.state_dir() / LOG_NAME), encoding="utf-8")
    # The agent's log replaces the command's (S3VAULT_LOG_LEVEL): one line per record.
    for old in logging.getLogger("s3vault").handlers[:]:
        logging.getLogger("s3vault").removeHandler(old)
    log_to(handler)
