"""Key rotation: give objects a new master key without moving their data, or re-encrypt them.

Per object: read the envelope and the ETags it was read at -> find the master key that
opens the data key and decide (already on the target key, not wrapped by ``--from-key``,
not encrypted: skip) -> re-wrap or re-encrypt -> verify what was written.

- *Re-wrap* keeps the data key and wraps it with the new master key. An envelope in
  object metadata is rewritten by a server-side copy of the object onto itself
  (no body byte passes through this client); an envelope in an instruction file by
  rewriting only that file. V3's message id and key commitment stay as they were.
- *Re-encrypt* makes a new data key and streams the body through decryption and
  encryption (a leaked data key, or V2 -> V3).

Every write is conditional on the ETag read first, so a concurrent change makes that
object's rotation fail (ConflictError) and never overwrites the other writer's content.
Nothing here prints: the CLI (and later the GUI) render the `RotationReport`.
"""

from __future__ import annotations

import dataclasses
import hmac
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from s3vault.crypto.constants import (
    AUTHENTICATED_RAW_WRAPS,
    CEK_CBC,
    GCM_MAX_PLAINTEXT,
    META_UNENCRYPTED_LENGTH,
)
from s3vault.crypto.content import (
    ContentDecryptor,
    ContentEncryptor,
    ciphertext_length,
    plaintext_length,
    start_decryption,
)
from s3vault.crypto.edit import data_key_envelope, replace_data_key, user_entries
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    check_metadata_size,
    instruction_file_body,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
    render_envelope,
)
from s3vault.crypto.kdf import derive_v3_keys
from s3vault.errors import (
    ConflictError,
    IntegrityError,
    KeyMissingError,
    LegacyFormatError,
    RefusedError,
    S3VaultError,
    UsageError,
)
from s3vault.keys.material import MasterKey
from s3vault.keys.provider import DESCRIPTION_KEY, KeyProvider, ResolvedKey
from s3vault.remote.s3 import ObjectSummary, ObjectVersion, S3Remote, StoredObject, Written, s3_url
from s3vault.vault.vault import InstructionFile, Vault, content_cipher_for, new_envelope

DEFAULT_WORKERS = 8


class Action(StrEnum):
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
    key: str
    code: SkipReason
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "code": self.code.value, "reason": self.reason}


@dataclass(frozen=True)
class Failed:
    key: str
    reason: str
    hint: str | None
    exit_code: int

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


# ---- the engine ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """An object as read before rotating it: what every write is conditional on."""

    stored: StoredObject
    envelope: Envelope | None
    instruction: InstructionFile | None = None

    @property
    def bucket(self) -> str:
        return self.stored.head.bucket

    @property
    def key(self) -> str:
        return self.stored.head.key

    @property
    def etag(self) -> str:
        return self.stored.head.etag

    @property
    def url(self) -> str:
        return s3_url(self.bucket, self.key)


@dataclass(frozen=True)
class _Opened:
    """The data key of one object and the master key that opened it."""

    data_key: bytes = field(repr=False)
    by: str
    raw_key: MasterKey | None  # the raw key that opened it: after a rotation it must not
    on_target: bool


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
        self._lock = threading.Lock()
        self._raw_keys: dict[str, MasterKey | None] = {}
        self.target = self.keys.resolve_key(options.to_key)
        self.source = self.keys.resolve_key(options.from_key) if options.from_key else None
        for resolved in (self.target, self.source):
            if resolved is not None and not resolved.is_kms:
                self._raw_keys[resolved.key.name] = resolved.key
        self._in_place = self.source is not None and self.source.same_key_as(self.target)
        if self._in_place and not options.reencrypt:
            raise UsageError(
                f"--from-key and --to-key both name '{options.to_key}': nothing to re-wrap",
                hint="To give objects under that key new data keys, add --reencrypt.",
            )

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

        for outcome in _run_bounded(work, keys, workers, cancel):
            if on_done:
                on_done(outcome)
        if cancel is not None and cancel.is_set():
            report.interrupted = True
            return
        if self.options.count_versions:
            report.noncurrent_versions_with_old_key = self.count_noncurrent(
                bucket, prefix, workers=workers
            )

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
        snap = self._read(bucket, key)
        env = snap.envelope
        if env is None:
            return Skipped(key, SkipReason.NOT_ENCRYPTED, "not encrypted (no envelope)")
        opened = self._open(env)
        if opened is None:
            return Skipped(
                key, SkipReason.NOT_SELECTED, f"not wrapped by '{self.options.from_key}'"
            )
        action = self._decide(env, opened)
        if action is None:
            return Skipped(key, SkipReason.ALREADY_ON_TARGET, f"already on '{self.options.to_key}'")
        if self.options.dry_run:
            version = self._target_version(env) if action is Action.REENCRYPT else env.version
            return Rotated(
                key, action, opened.by, self.options.to_key, version.value, env.location.value
            )
        if action is Action.REWRAP:
            return self._rewrap(snap, env, opened)
        return self._reencrypt(snap, env, opened)

    def _decide(self, env: Envelope, opened: _Opened) -> Action | None:
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

    # ---- reading ---------------------------------------------------------------------

    def _read(self, bucket: str, key: str) -> _Snapshot:
        stored = self.remote.head_stored(bucket, key)
        return _Snapshot(stored, *self._vault.read_envelope_and_file(stored.head))

    # ---- which key opens it ----------------------------------------------------------

    def _open(self, env: Envelope) -> _Opened | None:
        """The data key and the key that opened it; None if ``--from-key`` does not wrap it."""
        if env.is_legacy and not self.options.allow_legacy:
            raise LegacyFormatError(
                "this object uses a legacy format or key wrap",
                hint="Add --allow-legacy (and --reencrypt for V1 or AES/CBC content) "
                "to rotate it into the current format.",
            )
        if env.is_kms:
            return self._open_kms(env)
        if env.wrap_algorithm in AUTHENTICATED_RAW_WRAPS:
            return self._open_raw(env)
        return self._open_legacy_raw(env)

    def _open_kms(self, env: Envelope) -> _Opened | None:
        source, target = self.source, self.target
        if source is not None and not source.is_kms and not target.is_kms:
            return None  # neither key can be the KMS key that wraps it: no KMS call
        data_key, arn = self.keys.decrypt_kms_data_key(env)
        on_target = arn == target.arn
        if source is not None and not on_target and arn != source.arn:
            return None
        by = source.name if source is not None and arn == source.arn else f"kms:{arn}"
        return _Opened(data_key, target.name if on_target else by, None, on_target)

    def _open_raw(self, env: Envelope) -> _Opened | None:
        # The described key first (usually the one that opens it), then --from-key and
        # the target: one unwrap per object in the common case, no keyring round trip.
        candidates: list[MasterKey] = []
        described = env.description.get(DESCRIPTION_KEY)
        if isinstance(described, str):
            stored = self._raw_key(described)
            if stored is not None:
                candidates.append(stored)
        for ref in (self.source, self.target):
            if ref is not None and not ref.is_kms:
                candidates.append(ref.key)
        opener: MasterKey | None = None
        data_key: bytes | None = None
        seen: set[str] = set()
        for key in candidates:
            if key.name in seen:
                continue
            seen.add(key.name)
            data_key = self.keys.unwrap_with(key, env)
            if data_key is not None:
                opener = key
                break
        if opener is None or data_key is None:
            if self.source is not None:
                return None
            data_key, opener = self._open_with_any_key(env)
        return self._opened_raw(data_key, opener)

    def _open_legacy_raw(self, env: Envelope) -> _Opened | None:
        # Unauthenticated wraps are never guessed: the description's key, or --from-key.
        source = self.source
        if source is not None and source.is_kms:
            return None
        data_key, opener = self._open_with_any_key(env, source.name if source else None)
        return self._opened_raw(data_key, opener)

    def _opened_raw(self, data_key: bytes, opener: MasterKey) -> _Opened | None:
        on_target = not self.target.is_kms and opener.name == self.target.name
        source = self.source
        if source is not None and not on_target and opener.name != source.name:
            return None
        return _Opened(data_key, opener.name, opener, on_target)

    def _open_with_any_key(
        self, env: Envelope, key_name: str | None = None
    ) -> tuple[bytes, MasterKey]:
        """The key provider's full search (every raw key in the keyring), serialised."""
        with self._lock:
            data_key, name = self.keys.decrypt_data_key(
                env, key_name=key_name, allow_legacy=self.options.allow_legacy
            )
        opener = self._raw_key(name) if name else None
        if opener is None:  # cannot happen for raw wraps: the provider names the key
            raise KeyMissingError("the key that opened this object is not in the keyring")
        return data_key, opener

    # ---- re-wrap ---------------------------------------------------------------------

    def _rewrap(self, snap: _Snapshot, env: Envelope, opened: _Opened) -> Rotated:
        materials = self.keys.wrap_data_key(
            opened.data_key, env.content_cipher, self.target.key, context=self._context_for(env)
        )
        new_env = dataclasses.replace(
            env,
            wrap_algorithm=materials.wrap_algorithm,
            encrypted_data_key=materials.encrypted_data_key,
            description=dict(materials.description),
        )
        written = self._write_rewrapped(snap, env, new_env)
        try:
            verified = self._verify(snap, new_env, opened, rewrap_of=env)
        except ConflictError:
            raise  # someone else wrote since: their object is not ours to put back
        except S3VaultError as exc:
            raise self._put_back(snap, written, exc) from None
        return self._rotated(snap, Action.REWRAP, opened, new_env, written, verified)

    def _write_rewrapped(self, snap: _Snapshot, env: Envelope, new_env: Envelope) -> Written:
        if env.location is Location.METADATA:
            metadata = replace_data_key(snap.stored.head.metadata, new_env)
            check_metadata_size(metadata)
            with _conflict_as(snap.url):
                return self.remote.copy_replace_metadata(snap.stored, metadata, if_match=snap.etag)
        assert snap.instruction is not None
        fields = replace_data_key(snap.instruction.fields, new_env)
        # A new instruction file must never be paired with other object content.
        self._check_unchanged(snap)
        return self._put_instruction(snap, instruction_file_body(fields))

    def _put_instruction(self, snap: _Snapshot, body: bytes) -> Written:
        assert snap.instruction is not None
        with _conflict_as(snap.url):
            return self.remote.put_bytes_if_match(
                snap.bucket,
                self._vault.instruction_key(snap.key),
                body,
                snap.instruction.stored.head.metadata,
                if_match=snap.instruction.stored.head.etag,
                headers=snap.instruction.stored.headers,
            )

    def _put_back(self, snap: _Snapshot, written: Written, failure: S3VaultError) -> S3VaultError:
        """After a failed verification, restore the previous envelope if nothing else wrote."""
        what = snap.url
        try:
            if snap.instruction is None:
                current = self.remote.head_stored(snap.bucket, snap.key)
                self.remote.copy_replace_metadata(
                    current, dict(snap.stored.head.metadata), if_match=written.etag
                )
            else:
                self.remote.put_bytes_if_match(
                    snap.bucket,
                    self._vault.instruction_key(snap.key),
                    snap.instruction.body,
                    snap.instruction.stored.head.metadata,
                    if_match=written.etag,
                    headers=snap.instruction.stored.headers,
                )
        except S3VaultError as exc:
            return type(failure)(
                f"{what}: the new envelope did not verify ({failure.message}); the previous "
                f"envelope could not be put back ({exc.message})",
                hint="Inspect the object (`s3vault inspect`) and keep the old key.",
            )
        return type(failure)(
            f"{what}: the new envelope did not verify ({failure.message}); the previous "
            "envelope was put back",
            hint=failure.hint,
        )

    # ---- re-encrypt ------------------------------------------------------------------

    def _reencrypt(self, snap: _Snapshot, env: Envelope, opened: _Opened) -> Rotated:
        head = snap.stored.head
        size = plaintext_length(head.size, env)
        if size is None or size > GCM_MAX_PLAINTEXT:
            raise RefusedError(
                f"the plaintext size of {snap.url} is unknown or too large to re-encrypt "
                "it as one AES-GCM object",
                hint="Download it with `s3vault get --allow-legacy` and upload it again.",
            )
        version = self._target_version(env)
        cipher = content_cipher_for(version)
        materials = self.keys.new_materials(self.target.key, cipher, context=self._context_for(env))
        new_env, encryptor = new_envelope(version, env.location, materials)
        user_metadata = user_entries(head.metadata)
        user_metadata[META_UNENCRYPTED_LENGTH] = str(size)
        # Written with the whole envelope in metadata first, also for an instruction-file
        # object: then every step leaves a readable object (see _move_to_instruction_file).
        full, _ = render_envelope(dataclasses.replace(new_env, location=Location.METADATA))
        metadata = {**user_metadata, **full}
        _check_size(metadata, env.location)
        reader = _Reencrypting(
            self.remote.iter_object(head),
            start_decryption(env, opened.data_key, allow_legacy=self.options.allow_legacy),
            encryptor,
            size,
        )
        headers = dict(snap.stored.headers)
        if snap.stored.tag_count:
            tagging = self.remote.tagging_header(snap.bucket, snap.key)
            if tagging:
                headers["Tagging"] = tagging
        with _conflict_as(snap.url):
            written = self.remote.put_stream(
                snap.bucket,
                snap.key,
                reader.read,
                ciphertext_length(size, cipher),
                metadata,
                content_type=None,  # the kept headers carry the object's own
                if_match=snap.etag,
                headers=headers,
                before_commit=reader.check_finished,
            )
        if env.location is Location.INSTRUCTION_FILE:
            written = self._move_to_instruction_file(snap, new_env, user_metadata, written)
        verified = self._verify(snap, new_env, opened, data_key=materials.data_key)
        return self._rotated(snap, Action.REENCRYPT, opened, new_env, written, verified)

    def _move_to_instruction_file(
        self,
        snap: _Snapshot,
        new_env: Envelope,
        user_metadata: dict[str, str],
        written: Written,
    ) -> Written:
        """Second and third step of re-encrypting an instruction-file object.

        The object was written with its whole new envelope in metadata, which readers
        use instead of the (now stale) instruction file. Then the new instruction file
        is written, then the data-key part leaves the metadata. An interruption between
        any two steps leaves an object that opens; only its envelope location differs.
        """
        content_part, instruction = render_envelope(new_env)
        assert instruction is not None
        self._put_instruction(snap, instruction_file_body(instruction))
        current = self.remote.head_stored(snap.bucket, snap.key)
        with _conflict_as(snap.url):
            return self.remote.copy_replace_metadata(
                current, {**user_metadata, **content_part}, if_match=written.etag
            )

    # ---- verification ----------------------------------------------------------------

    def _verify(
        self,
        before: _Snapshot,
        expected: Envelope,
        opened: _Opened,
        *,
        rewrap_of: Envelope | None = None,
        data_key: bytes | None = None,
    ) -> bool:
        """Read the object back: NEW opens it, OLD does not, the content still matches.

        Returns whether the body itself was downloaded and authenticated.
        """
        data_key = opened.data_key if data_key is None else data_key
        after = self._read(before.bucket, before.key)
        env = after.envelope
        if env is None or env.encrypted_data_key != expected.encrypted_data_key:
            raise ConflictError(
                f"{before.url} changed right after it was rotated: another writer replaced "
                "it, and its content was left as it is",
                hint="Run the rotation again to rotate the new content.",
            )
        if env.location is not expected.location:
            raise IntegrityError(f"the envelope of {before.url} is not where it was written")
        opened_now = self.keys.open_with(self.target, env)
        if opened_now is None or not hmac.compare_digest(opened_now, data_key):
            raise IntegrityError(f"the new envelope of {before.url} does not open with the new key")
        old = opened.raw_key
        if old is not None and not opened.on_target and self.keys.unwrap_with(old, env):
            raise IntegrityError(f"the new envelope of {before.url} still opens with the old key")
        if env.version is Version.V3:
            _check_commitment(env, data_key, before.url)
        if rewrap_of is not None:
            _check_same_content(before, after, rewrap_of, env)
        if not self.options.verifies_content:
            return False
        self._authenticate_body(after, env, data_key)
        return True

    def _authenticate_body(self, snap: _Snapshot, env: Envelope, data_key: bytes) -> None:
        decryptor = start_decryption(env, data_key)
        for chunk in self.remote.iter_object(snap.stored.head):
            decryptor.update(chunk)
        decryptor.finalize()

    def _check_unchanged(self, snap: _Snapshot) -> None:
        if self.remote.head(snap.bucket, snap.key).etag != snap.etag:
            raise _changed(snap.url)

    # ---- non-current versions --------------------------------------------------------

    def count_noncurrent(
        self, bucket: str, prefix: str, *, exact: bool = False, workers: int = DEFAULT_WORKERS
    ) -> int | None:
        """How many non-current versions still hold a data key wrapped by the old key.

        The old key is ``--from-key``, else any key but the target. A version whose
        envelope cannot be read or opened counts too (it may well be old). None for a
        bucket that never had versioning. With ``exact``, ``prefix`` is one object key.
        """
        if self.remote.bucket_versioning(bucket) is None:
            return None
        wanted = {prefix, self._vault.instruction_key(prefix)} if exact else None
        versions = (
            v
            for v in self.remote.list_versions(bucket, prefix)
            if not v.is_latest and not v.is_delete_marker and (wanted is None or v.key in wanted)
        )
        flags = _run_bounded(lambda v: self._version_has_old_key(bucket, v), versions, workers)
        return sum(1 for flag in flags if flag)

    def _version_has_old_key(self, bucket: str, version: ObjectVersion) -> bool:
        try:
            if self._vault.is_instruction_key(version.key):
                body, _ = self.remote.get_small(bucket, version.key, version_id=version.version_id)
                env = data_key_envelope(parse_instruction_file(body))
            else:
                stored = self.remote.head_stored(bucket, version.key, version_id=version.version_id)
                if needs_instruction_file(stored.head.metadata):
                    return False  # its data key lives in an instruction file version
                env = parse_envelope(stored.head.metadata)
            if self.source is not None:
                return self._wrapped_by(env, self.source)
            return not self._wrapped_by(env, self.target)
        except S3VaultError:
            return True

    def _wrapped_by(self, env: Envelope, ref: ResolvedKey) -> bool:
        if not ref.is_kms and not env.is_kms and env.wrap_algorithm not in AUTHENTICATED_RAW_WRAPS:
            # An unauthenticated legacy wrap cannot be tested; its description is a
            # good enough guess for a count.
            return env.description.get(DESCRIPTION_KEY) == ref.name
        return self.keys.open_with(ref, env) is not None

    # ---- helpers ---------------------------------------------------------------------

    def _raw_key(self, name: str) -> MasterKey | None:
        """A raw key of the keyring by name, read once per run (None if there is none)."""
        with self._lock:
            if name not in self._raw_keys:
                self._raw_keys[name] = self.keys.raw_key(name)
            return self._raw_keys[name]

    def _context_for(self, env: Envelope) -> dict[str, str]:
        """The context the new wrap carries: --context, else the object's own entries."""
        if self.options.context is not None:
            return dict(self.options.context)
        return self.keys.context_of(env)

    def _rotated(
        self,
        snap: _Snapshot,
        action: Action,
        opened: _Opened,
        env: Envelope,
        written: Written,
        verified: bool,
    ) -> Rotated:
        return Rotated(
            key=snap.key,
            action=action,
            from_key=opened.by,
            to_key=self.options.to_key,
            format=env.version.value,
            envelope=env.location.value,
            version_id=written.version_id,
            content_verified=verified,
        )


# ---- pure helpers ----------------------------------------------------------------------


def _check_size(metadata: Mapping[str, str], location: Location) -> None:
    try:
        check_metadata_size(metadata)
    except RefusedError as exc:
        if location is Location.METADATA:
            raise
        raise RefusedError(
            f"{exc.message}: re-encrypting an instruction-file object passes through an "
            "envelope in metadata, so that an interruption never leaves it unreadable",
            hint="Use a shorter encryption context, or an AES or KMS key "
            "(smaller wrapped data keys than RSA-4096).",
        ) from None


def _check_commitment(env: Envelope, data_key: bytes, url: str) -> None:
    assert env.message_id is not None and env.commitment is not None
    _, commitment = derive_v3_keys(data_key, env.message_id)
    if not hmac.compare_digest(commitment, env.commitment):
        raise IntegrityError(f"the key commitment of {url} does not match its data key")


def _check_same_content(before: _Snapshot, after: _Snapshot, old: Envelope, new: Envelope) -> None:
    """A re-wrap changed the data-key part only: same body, content fields and user entries."""
    same = (
        after.stored.head.size == before.stored.head.size
        and new.iv == old.iv
        and new.message_id == old.message_id
        and new.commitment == old.commitment
        and new.content_cipher == old.content_cipher
        and user_entries(after.stored.head.metadata) == user_entries(before.stored.head.metadata)
    )
    if not same:
        raise IntegrityError(f"re-wrapping {before.url} changed more than its data-key entries")


def _changed(url: str) -> ConflictError:
    return ConflictError(
        f"{url} changed after it was read: it was not rotated, and the new content was "
        "left as it is",
        hint="Run the rotation again to rotate the new content.",
    )


@contextmanager
def _conflict_as(url: str) -> Iterator[None]:
    """Re-raise S3's precondition failure (ConflictError) with rotation's explanation."""
    try:
        yield
    except ConflictError:
        raise _changed(url) from None


class _Reencrypting:
    """``read(n)`` of the new ciphertext, made from the old ciphertext as it streams in.

    The old body's tag (or padding, for legacy CBC) is verified before the last bytes
    of the new body (its tag) are produced, and `check_finished` runs before the upload
    is committed: content that does not authenticate is never stored under a new key.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        decryptor: ContentDecryptor,
        encryptor: ContentEncryptor,
        plaintext_size: int,
    ) -> None:
        self._chunks = iter(chunks)
        self._decryptor = decryptor
        self._encryptor = encryptor
        self._expected = plaintext_size
        self._seen = 0
        self._buffer = bytearray()
        self._finished = False

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n and not self._finished:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._push(self._decryptor.finalize())
                if self._seen != self._expected:
                    raise IntegrityError(
                        f"the object holds {self._seen} bytes of plaintext, not the "
                        f"{self._expected} its envelope announced"
                    )
                self._buffer += self._encryptor.finalize()
                self._finished = True
            else:
                self._push(self._decryptor.update(chunk))
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def _push(self, plaintext: bytes) -> None:
        self._seen += len(plaintext)
        if self._seen > self._expected:
            raise IntegrityError("the object holds more plaintext than its envelope announced")
        self._buffer += self._encryptor.update(plaintext)

    def check_finished(self) -> None:
        if not self._finished or self._buffer:
            raise IntegrityError("the re-encrypted body does not have the expected length")


_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _run_bounded(
    work: Callable[[_In], _Out],
    items: Iterable[_In],
    workers: int,
    cancel: threading.Event | None = None,
) -> Iterator[_Out]:
    """``work(item)`` for each item on ``workers`` threads; results as they complete.

    At most twice ``workers`` items are taken from ``items`` ahead of the results, so
    a listing of millions streams through in constant memory. Items not yet started
    are dropped when the consumer stops (Ctrl-C) or ``cancel`` is set.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rotate") as pool:
        pending: set[Future[_Out]] = set()
        try:
            for item in items:
                if cancel is not None and cancel.is_set():
                    break
                pending.add(pool.submit(work, item))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
