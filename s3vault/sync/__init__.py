"""The sync engine's pure core: settings, ignore rules, scan, event coalescing, the
state database, the planner and its safety guard (docs/sync.md).

The watcher, the transfer workers and the agent build on these; every object goes
through `s3vault.vault.Vault`.
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
