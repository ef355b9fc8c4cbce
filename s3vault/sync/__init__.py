"""The sync engine: one folder mirrored into its S3 prefix (docs/sync.md).

Pure decisions, no I/O beyond stat: `scan`, `ignore`, `events` (watcher events
coalesced), `planner` and `guard`. State: `state` (SQLite: what S3 confirmed, writes
in flight, one run per folder at a time). Carrying a plan out: `engine`
(`SyncEngine.reconcile`), `uploads` (the upload rules, the streaming path),
`small_files` (many small files at once), `ownership` (this machine's own objects
after a crash or key rotation), `runner` (pool and retries), `report` (what a run
did). `restore` is the way back. Every object goes through `s3vault.vault.Vault`.

The names below are the pure core's, for callers that only plan (tests, tools).
"""

from s3vault.config.sync import AgentSettings, FolderSettings, check_folders
from s3vault.sync.events import Change, Debouncer, FsEvent, coalesce
from s3vault.sync.guard import GuardVerdict, guard
from s3vault.sync.ignore import DEFAULT_PATTERNS, IGNORE_FILE, IgnoreRules
from s3vault.sync.model import (
    Action,
    Conflict,
    Copy,
    DeleteRemote,
    Forget,
    LocalFile,
    Plan,
    PlanCounts,
    RemoteObject,
    RootIdentity,
    SyncedFile,
    Touch,
    Upload,
)
from s3vault.sync.planner import plan, remote_index
from s3vault.sync.scan import (
    ScanResult,
    file_hasher,
    hash_file,
    root_identity,
    root_status,
    scan,
    scan_paths,
)
from s3vault.sync.state import InFlightUpload, StateDB, default_state_path

__all__ = [
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "Action",
    "AgentSettings",
    "Change",
    "Conflict",
    "Copy",
    "Debouncer",
    "DeleteRemote",
    "FolderSettings",
    "Forget",
    "FsEvent",
    "GuardVerdict",
    "IgnoreRules",
    "InFlightUpload",
    "LocalFile",
    "Plan",
    "PlanCounts",
    "RemoteObject",
    "RootIdentity",
    "ScanResult",
    "StateDB",
    "SyncedFile",
    "Touch",
    "Upload",
    "check_folders",
    "coalesce",
    "default_state_path",
    "file_hasher",
    "guard",
    "hash_file",
    "plan",
    "remote_index",
    "root_identity",
    "root_status",
    "scan",
    "scan_paths",
]
