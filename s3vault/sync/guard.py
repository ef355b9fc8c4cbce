"""The safety check between a plan and S3: never turn a lost folder into mass deletion.

A missing drive, an unmounted share, a folder replaced by an empty one all look, to
a naive sync, like "the user deleted everything". Like rclone bisync's max-delete
check and Syncthing's folder marker, the guard refuses such a run before anything
is changed in S3, and says what to check. Refusals a user can overrule on purpose
(`s3vault sync --force`) are ``forceable``; a root that is not there at all is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3vault.config.sync import FolderSettings
from s3vault.errors import RefusedError
from s3vault.sync.model import Plan
from s3vault.sync.scan import RootStatus

FORCE = "s3vault sync --force"


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """Whether the plan may run; if not, why (``reason``) and what to do (``hint``).

    A run allowed only because of ``force`` is ok, with the overruled reason kept
    for the log.
    """

    ok: bool
    reason: str = ""
    hint: str = ""
    forceable: bool = True
    # What was refused, for the agent's status: root-missing, not-a-directory,
    # root-unreadable, root-changed, folder-emptied, mass-delete.
    kind: str = ""

    def raise_if_refused(self) -> None:
        if not self.ok:
            raise RefusedError(self.reason, hint=self.hint or None)


def guard(
    plan: Plan,
    local_count: int,
    state_count: int,
    settings: FolderSettings,
    *,
    root_status: RootStatus = "ok",
    root_changed: bool = False,
    force: bool = False,
) -> GuardVerdict:
    """Check a plan of ``settings``' folder before it runs.

    ``local_count`` and ``state_count`` are the folder's totals (the whole scan and
    every state row), also when ``plan`` covers only a batch of events.
    ``root_changed``: the root's device/inode differ from those in the state.
    """
    if root_status != "ok":
        return _root_problem(root_status, settings)
    verdict = _refusal(plan, local_count, state_count, settings, root_changed)
    if verdict is None:
        return GuardVerdict(ok=True)
    if force:
        return GuardVerdict(ok=True, reason=f"forced: {verdict.reason}")
    return verdict


def _root_problem(status: RootStatus, settings: FolderSettings) -> GuardVerdict:
    root = settings.path
    if status == "missing":
        kind = "root-missing"
        reason = f"the sync folder {root} does not exist: is a drive not mounted?"
        hint = "Nothing was changed in S3. Mount the drive or create the folder, or fix 'path'."
    elif status == "not-a-directory":
        kind = "not-a-directory"
        reason = f"the sync folder {root} is not a folder"
        hint = "Nothing was changed in S3. Fix 'path' in the config."
    else:
        kind = "root-unreadable"
        reason = f"the sync folder {root} cannot be read"
        hint = "Nothing was changed in S3. Check the folder's permissions."
    return GuardVerdict(ok=False, reason=reason, hint=hint, forceable=False, kind=kind)


def _refusal(
    plan: Plan,
    local_count: int,
    state_count: int,
    settings: FolderSettings,
    root_changed: bool,
) -> GuardVerdict | None:
    root = settings.path
    if root_changed and plan.changes_remote:
        # Same path, other directory: an empty mount point, a restored copy, a
        # different disk. Harmless while nothing would change; otherwise ask.
        return GuardVerdict(
            ok=False,
            reason=f"{root} is not the folder synced before (another disk or directory "
            "at the same path): is a drive not mounted, or was the folder replaced?",
            hint=f"Nothing was changed in S3. If this is the right folder, run `{FORCE}` "
            "to sync it and remember it.",
            kind="root-changed",
        )
    if local_count == 0 and state_count > 0:
        return GuardVerdict(
            ok=False,
            reason=f"the folder {root} is suddenly empty (it held {state_count} synced "
            "files): was a drive unmounted?",
            hint=f"Nothing was deleted in S3. If you emptied the folder on purpose, run `{FORCE}`.",
            kind="folder-emptied",
        )
    deletes = plan.deletes
    too_many_files = deletes > settings.max_delete_files
    too_large_share = state_count > 0 and deletes * 100 > settings.max_delete_percent * state_count
    if too_many_files or too_large_share:
        limit = (
            f"more than {settings.max_delete_files} files"
            if too_many_files
            else f"more than {settings.max_delete_percent} %"
        )
        return GuardVerdict(
            ok=False,
            reason=f"this run would delete {deletes} of {state_count} synced files of {root} "
            f"from S3 ({limit})",
            hint=f"Nothing was deleted. If you deleted these files on purpose, run `{FORCE}`; "
            "the limits are the folder's max_delete_percent and max_delete_files.",
            kind="mass-delete",
        )
    return None
