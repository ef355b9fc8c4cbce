"""What a rotation is asked to do, and what it did: the options and the report.

Nothing here touches S3 or a key. The CLI (and later the GUI) build `RotationOptions`
and render the `RotationReport`; its JSON form and its codes are stable for scripts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from s3vault.crypto.envelope import Version
from s3vault.errors import ExitCode


class Action(StrEnum):
    """What rotating an object does: re-wrap its data key, or re-encrypt it under a new one."""

    REWRAP = "rewrap"
    REENCRYPT = "reencrypt"


class SkipReason(StrEnum):
    """Why an object was left alone (stable codes for scripts)."""

    ALREADY_ON_TARGET = "already-on-target"
    NOT_SELECTED = "not-wrapped-by-from-key"
    NOT_ENCRYPTED = "not-encrypted"


@dataclass(frozen=True)
class RotationOptions:
    """What a rotation does; the CLI options, in the engine's words.

    ``context`` replaces the encryption context (KMS) or description entries (raw keys)
    carried over from each object; None keeps each object's own. ``version`` is the
    format a re-encryption writes (None: the object's own). ``verify_content`` streams
    the body after writing and authenticates it (None: only for re-encryption, whose
    old content is gone once the new one is written). ``count_versions`` looks for
    non-current versions that still hold an old wrap (a listing and a read per old
    version, in versioned buckets only).
    """

    to_key: str
    from_key: str | None = None
    reencrypt: bool = False
    version: Version | None = None
    context: Mapping[str, str] | None = None
    allow_legacy: bool = False
    verify_content: bool | None = None
    dry_run: bool = False
    count_versions: bool = True

    @property
    def action(self) -> Action:
        return Action.REENCRYPT if self.reencrypt else Action.REWRAP

    @property
    def verifies_content(self) -> bool:
        return self.reencrypt if self.verify_content is None else self.verify_content


@dataclass(frozen=True)
class Rotated:
    """An object that was (or, in a dry run, would be) rotated."""

    key: str
    action: Action
    from_key: str
    to_key: str
    format: str
    envelope: str
    version_id: str | None = None
    content_verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "action": self.action.value,
            "from_key": self.from_key,
            "to_key": self.to_key,
            "format": self.format,
            "envelope": self.envelope,
            "version_id": self.version_id,
            "content_verified": self.content_verified,
        }


@dataclass(frozen=True)
class Skipped:
    """An object left alone, and why (not a failure)."""

    key: str
    code: SkipReason
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "code": self.code.value, "reason": self.reason}


@dataclass(frozen=True)
class Failed:
    """An object that could not be rotated: the error's message, hint and exit code."""

    key: str
    reason: str
    hint: str | None
    exit_code: int

    @property
    def changed_meanwhile(self) -> bool:
        """Another writer changed the object during its rotation (its write was kept)."""
        return self.exit_code == int(ExitCode.CONFLICT)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "reason": self.reason,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


Outcome = Rotated | Skipped | Failed


@dataclass
class RotationReport:
    """What a run did, object by object; filled as the run goes (partial if interrupted)."""

    target: str
    to_key: str
    from_key: str | None
    action: Action
    dry_run: bool
    rotated: list[Rotated] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    noncurrent_versions_with_old_key: int | None = None
    """None when the bucket is not versioned (or the run ended before the count)."""
    interrupted: bool = False

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Rotated):
            self.rotated.append(outcome)
        elif isinstance(outcome, Skipped):
            self.skipped.append(outcome)
        else:
            self.failed.append(outcome)

    @property
    def exit_code(self) -> int:
        """0 without failures, else the exit code most failures share (8: changed meanwhile)."""
        if not self.failed:
            return 0
        counts = Counter(f.exit_code for f in self.failed)
        return min(counts, key=lambda code: (-counts[code], code))

    @property
    def hint(self) -> str | None:
        """What to do about non-current versions that still carry an old wrap, if any."""
        count = self.noncurrent_versions_with_old_key
        if not count:
            return None
        which = f"'{self.from_key}'" if self.from_key else f"a key other than '{self.to_key}'"
        what = f"a data key wrapped by {which}"
        if self.action is Action.REENCRYPT:
            what = f"their previous content under its old data key, wrapped by {which}"
        return (
            f"{count} non-current object version(s) still hold {what} (or could not be "
            "checked). They stay readable with the old key until they are deleted: keep "
            "that key until then. Remove them with a "
            "lifecycle rule (NoncurrentVersionExpiration), or one by one with "
            "`aws s3api list-object-versions --bucket BUCKET --prefix PREFIX` and "
            "`aws s3api delete-object --bucket BUCKET --key KEY --version-id ID`."
        )

    def summary(self) -> str:
        """One line: rotated, skipped (and why), failed, interrupted (CLI and GUI)."""
        reasons = {
            SkipReason.ALREADY_ON_TARGET: f"already on {self.to_key}",
            SkipReason.NOT_SELECTED: f"not wrapped by {self.from_key}",
            SkipReason.NOT_ENCRYPTED: "not encrypted",
        }
        counts = Counter(skipped.code for skipped in self.skipped)
        why = ", ".join(f"{reasons[code]}: {counts[code]}" for code in reasons if counts[code])
        verb = "would rotate" if self.dry_run else "rotated"
        line = f"{verb} {len(self.rotated)}, skipped {len(self.skipped)}"
        if why:
            line += f" ({why})"
        line += f", failed {len(self.failed)}"
        if self.interrupted:
            line += " (interrupted)"
        elif self.rotated and not self.dry_run:
            line += "; each rotated object read back and verified"
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "action": self.action.value,
            "to_key": self.to_key,
            "from_key": self.from_key,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            # Sorted by key: workers finish in any order, a report should not.
            "rotated": [r.to_json() for r in sorted(self.rotated, key=_by_key)],
            "skipped": [s.to_json() for s in sorted(self.skipped, key=_by_key)],
            "failed": [f.to_json() for f in sorted(self.failed, key=_by_key)],
            "noncurrent_versions_with_old_key": self.noncurrent_versions_with_old_key,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


def _by_key(outcome: Outcome) -> str:
    return outcome.key
