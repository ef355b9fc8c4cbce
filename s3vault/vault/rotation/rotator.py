"""The rotation of one object, of a prefix (a bounded pool) and the report of the run.

Per object: read it (`snapshot`) -> find the key that opens its data key (`opening`)
-> decide: skip (not encrypted, not wrapped by ``--from-key``, already on the target),
re-wrap (`rewrap`) or re-encrypt (`reencrypt`) -> what was written is verified
(`verify`). Every expected failure of one object becomes a `Failed` outcome; the run
goes on with the others.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from s3vault.crypto.constants import CEK_CBC
from s3vault.crypto.envelope import Envelope, Version
from s3vault.errors import ExitCode, RefusedError, S3VaultError, UsageError
from s3vault.keys.provider import KeyProvider
from s3vault.remote.s3 import ObjectSummary, S3Remote, s3_url
from s3vault.vault.rotation.opening import DataKeyOpener, Opened
from s3vault.vault.rotation.pool import run_bounded
from s3vault.vault.rotation.reencrypt import Reencryptor
from s3vault.vault.rotation.report import (
    Action,
    Failed,
    Outcome,
    Rotated,
    RotationOptions,
    RotationReport,
    Skipped,
    SkipReason,
)
from s3vault.vault.rotation.rewrap import Rewrapper
from s3vault.vault.rotation.snapshot import Rewritten, Snapshot, read_snapshot
from s3vault.vault.rotation.verify import Verifier
from s3vault.vault.rotation.versions import OldVersionCounter
from s3vault.vault.vault import Vault

DEFAULT_WORKERS = 8


class Rotator:
    """Rotates objects of one vault as `RotationOptions` say; thread-safe per object.

    Building it resolves the keys (a missing key fails here, before any object is
    touched): the target key, the ``--from-key`` and, for KMS keys, their ARNs.
    """

    def __init__(self, vault: Vault, options: RotationOptions) -> None:
        self.remote: S3Remote = vault.remote
        self.keys: KeyProvider = vault.keys
        self._vault = vault  # for where instruction files are (its suffix)
        self.options = options
        self._default_version = Version(vault.defaults.format)
        self.target = self.keys.resolve_key(options.to_key)
        self.source = self.keys.resolve_key(options.from_key) if options.from_key else None
        self._in_place = self.source is not None and self.source.same_key_as(self.target)
        if self._in_place and not options.reencrypt:
            raise UsageError(
                f"--from-key and --to-key both name '{options.to_key}': nothing to re-wrap",
                hint="To give objects under that key new data keys, add --reencrypt.",
            )
        self._opener = DataKeyOpener(
            self.keys, self.target, self.source, allow_legacy=options.allow_legacy
        )
        verifier = Verifier(vault, self.target, verify_content=options.verifies_content)
        self._rewrapper = Rewrapper(vault, self.target, verifier)
        self._reencryptor = Reencryptor(
            vault, self.target, verifier, allow_legacy=options.allow_legacy
        )
        self._old_versions = OldVersionCounter(vault, self.target, self.source)
        self._started = datetime.now(UTC)

    # ---- runs ----------------------------------------------------------------------

    def new_report(self, bucket: str, key_or_prefix: str) -> RotationReport:
        return RotationReport(
            target=s3_url(bucket, key_or_prefix),
            to_key=self.options.to_key,
            from_key=self.options.from_key,
            action=self.options.action,
            dry_run=self.options.dry_run,
        )

    def rotate_one(self, bucket: str, key: str, report: RotationReport) -> None:
        """Rotate one object into ``report``, then count its old non-current versions."""
        suffix = self._vault.instruction_suffix
        if self._vault.is_instruction_key(key):
            raise UsageError(
                f"{s3_url(bucket, key)} is an instruction file",
                hint=f"Rotate its object: {s3_url(bucket, key[: -len(suffix)])}",
            )
        report.add(self.rotate_object(bucket, key))
        if self.options.count_versions:
            report.noncurrent_versions_with_old_key = self.count_noncurrent(bucket, key, exact=True)

    def rotate_prefix(
        self,
        bucket: str,
        prefix: str,
        report: RotationReport,
        *,
        workers: int = DEFAULT_WORKERS,
        on_found: Callable[[str], None] | None = None,
        on_done: Callable[[Outcome], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Rotate every object under ``prefix``, ``workers`` at a time, into ``report``.

        Objects are listed as they are rotated (constant memory for any number);
        ``on_found`` and ``on_done`` are called on the calling thread. ``cancel`` stops
        taking new objects (those under way finish: each rotation is one atomic write).
        The count of old non-current versions comes last, once the run wrote its own.
        """
        keys = self._keys_under(bucket, prefix, on_found)
        lock = threading.Lock()

        def work(key: str) -> Outcome:
            outcome = self.rotate_object(bucket, key)
            # Recorded by the worker: rotations still under way when the run is
            # interrupted finish, and the report shows them too.
            with lock:
                report.add(outcome)
            return outcome

        for outcome in run_bounded(work, keys, workers, cancel):
            if on_done:
                on_done(outcome)
        if cancel is not None and cancel.is_set():
            report.interrupted = True
            return
        if self.options.count_versions:
            report.noncurrent_versions_with_old_key = self.count_noncurrent(
                bucket, prefix, workers=workers
            )

    def rotate_keys(
        self,
        bucket: str,
        keys: list[str],
        report: RotationReport,
        *,
        workers: int = DEFAULT_WORKERS,
        on_done: Callable[[Outcome], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Rotate the objects ``keys`` (a selection), as `rotate_prefix` rotates a prefix.

        An instruction file among them fails (its object is what to rotate); the count
        of old non-current versions is the sum over the keys (None if unversioned).
        """

        def work(key: str) -> Outcome:
            if self._vault.is_instruction_key(key):
                reason = f"{s3_url(bucket, key)} is an instruction file"
                return Failed(key, reason, "Rotate its object instead.", int(ExitCode.USAGE))
            return self.rotate_object(bucket, key)

        for outcome in run_bounded(work, keys, workers, cancel):
            report.add(outcome)
            if on_done:
                on_done(outcome)
        if cancel is not None and cancel.is_set():
            report.interrupted = True
            return
        if self.options.count_versions:
            counts = [self.count_noncurrent(bucket, key, exact=True) for key in keys]
            known = [n for n in counts if n is not None]
            report.noncurrent_versions_with_old_key = sum(known) if known else None

    def count_noncurrent(
        self, bucket: str, prefix: str, *, exact: bool = False, workers: int = DEFAULT_WORKERS
    ) -> int | None:
        """How many non-current versions still hold a data key wrapped by the old key.

        The old key is ``--from-key``, else any key but the target; see
        `OldVersionCounter.count`. None for a bucket that never had versioning.
        """
        return self._old_versions.count(bucket, prefix, exact=exact, workers=workers)

    def _keys_under(
        self, bucket: str, prefix: str, on_found: Callable[[str], None] | None
    ) -> Iterator[str]:
        for entry in self.remote.list(bucket, prefix, recursive=True):
            # Instruction files are rotated with their object (s3vault never stores an
            # object of its own under that suffix).
            if not isinstance(entry, ObjectSummary) or self._vault.is_instruction_key(entry.key):
                continue
            if on_found:
                on_found(entry.key)
            yield entry.key

    # ---- one object ------------------------------------------------------------------

    def rotate_object(self, bucket: str, key: str) -> Outcome:
        """Rotate one object; every expected failure becomes a `Failed` outcome."""
        try:
            return self._rotate(bucket, key)
        except S3VaultError as exc:
            return Failed(key, exc.message, exc.hint, int(exc.exit_code))

    def _rotate(self, bucket: str, key: str) -> Outcome:
        snap = read_snapshot(self._vault, bucket, key)
        env = snap.envelope
        if env is None:
            return Skipped(key, SkipReason.NOT_ENCRYPTED, "not encrypted (no envelope)")
        opened = self._opener.open(env)
        if opened is None:
            return Skipped(
                key, SkipReason.NOT_SELECTED, f"not wrapped by '{self.options.from_key}'"
            )
        action = self._decide(env, opened)
        if action is None:
            if not self.options.dry_run:
                # A killed run may have left a copy of it open, and another finished it.
                self._abort_leftover_parts(snap)
            return Skipped(key, SkipReason.ALREADY_ON_TARGET, f"already on '{self.options.to_key}'")
        if self.options.dry_run:
            version = self._target_version(env) if action is Action.REENCRYPT else env.version
            return Rotated(
                key, action, opened.by, self.options.to_key, version.value, env.location.value
            )
        context = self._context_for(env)
        if action is Action.REWRAP:
            done = self._rewrapper.rewrap(snap, env, opened, context)
        else:
            done = self._reencryptor.reencrypt(
                snap, env, opened, self._target_version(env), context
            )
        self._abort_leftover_parts(snap)
        return self._rotated(snap, action, opened, done)

    def _abort_leftover_parts(self, snap: Snapshot) -> None:
        """Abort the multipart uploads to an object on the target key (rotated now, or
        before) that began before this run: those of an earlier run killed while it
        copied or re-encrypted the object in parts (they would hold storage until a
        lifecycle rule), also when a later run finished that object (found by the soak
        of tests/reliability/test_crash_rotate.py). Only for an object big enough to be
        written in parts; best effort (a denied listing of uploads does not undo a
        rotation that succeeded)."""
        transfer = self.remote.transfer
        if snap.stored.head.size < min(transfer.copy_threshold, transfer.multipart_threshold):
            return
        with contextlib.suppress(S3VaultError):
            self._vault.abort_unfinished_uploads(snap.bucket, snap.key, self._started)

    def _decide(self, env: Envelope, opened: Opened) -> Action | None:
        """Re-wrap, re-encrypt, or None when the object is already where it should be."""
        if opened.on_target:
            if not self.options.reencrypt:
                return None
            # Re-encryption under the same key is asked for by --from-key == --to-key;
            # otherwise only a change of format gives an object on the target work.
            if not self._in_place and self._target_version(env) is env.version:
                return None
        if self.options.reencrypt:
            return Action.REENCRYPT
        if env.version is Version.V1 or env.content_cipher == CEK_CBC:
            raise RefusedError(
                f"this object's content is in the legacy {env.content_cipher} format, "
                "which s3vault does not write: its data key cannot simply be re-wrapped",
                hint="Re-encrypt it: add --reencrypt --allow-legacy.",
            )
        return Action.REWRAP

    def _target_version(self, env: Envelope) -> Version:
        if self.options.version is not None:
            return self.options.version
        return env.version if env.version is not Version.V1 else self._default_version

    def _context_for(self, env: Envelope) -> dict[str, str]:
        """The context the new wrap carries: --context, else the object's own entries."""
        if self.options.context is not None:
            return dict(self.options.context)
        return self.keys.context_of(env)

    def _rotated(self, snap: Snapshot, action: Action, opened: Opened, done: Rewritten) -> Rotated:
        return Rotated(
            key=snap.key,
            action=action,
            from_key=opened.by,
            to_key=self.options.to_key,
            format=done.envelope.version.value,
            envelope=done.envelope.location.value,
            version_id=done.written.version_id,
            content_verified=done.content_verified,
        )
