"""The encryption client: one facade the CLI, the GUI and the sync engine all use.

`Vault` joins a key provider (which master key wraps which data key), the envelope
format (s3vault.crypto) and S3 (s3vault.remote). It never releases plaintext that
did not authenticate, and never holds a whole object in memory.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from s3vault.config.model import DefaultsSettings
from s3vault.config.suffix import check_instruction_suffix
from s3vault.crypto.constants import GCM_MAX_PLAINTEXT, GCM_TAG_BYTES
from s3vault.crypto.content import (
    ContentDecryptor,
    ContentEncryptor,
    ciphertext_length,
    start_decryption,
)
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    check_metadata_size,
    expects_instruction_file,
    instruction_file_body,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
    render_envelope,
)
from s3vault.errors import (
    ConflictError,
    FormatError,
    NotEncryptedError,
    NotFoundError,
    RefusedError,
    S3VaultError,
    UsageError,
    local_error,
)
from s3vault.keys.provider import EncryptionMaterials, KeyProvider
from s3vault.remote.s3 import ObjectHead, ObjectSummary, Progress, S3Remote, Written, s3_url
from s3vault.vault.envelopes import InstructionFile, content_cipher_for, new_envelope
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.streams import EncryptingReader, decrypt_to_file, decrypt_to_stream

UNENCRYPTED_LENGTH = "x-amz-unencrypted-content-length"
LIST_WORKERS = 16
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8


@dataclass(frozen=True)
class PutResult:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    plaintext_size: int
    ciphertext_size: int
    format: str
    location: str
    key_name: str
    wrap_algorithm: str
    instruction_file: str | None  # the key of the instruction file written, if any

    @property
    def url(self) -> str:
        return s3_url(self.bucket, self.key)


@dataclass(frozen=True)
class SealedObject:
    """A small object encrypted in memory (`Vault.seal`): what `Vault.put` would store."""

    key: str
    body: bytes  # ciphertext followed by the GCM tag
    metadata: dict[str, str]  # the envelope (or V3's part of it) and the extra metadata
    instruction: bytes | None  # body of the instruction file, written after the object
    instruction_key: str | None  # where that body goes: KEY + the vault's suffix
    plaintext_size: int
    format: str
    location: str
    key_name: str
    wrap_algorithm: str


@dataclass(frozen=True)
class _NewObject:
    content_cipher: str
    materials: EncryptionMaterials
    encryptor: ContentEncryptor
    metadata: dict[str, str]
    instruction: bytes | None


@dataclass(frozen=True)
class GetResult:
    bucket: str
    key: str
    plaintext_size: int
    format: str
    key_name: str | None
    destination: str


@dataclass(frozen=True)
class PrefixEntry:
    """A "folder" in a non-recursive listing."""

    bucket: str
    prefix: str


class Vault:
    def __init__(self, remote: S3Remote, keys: KeyProvider, defaults: DefaultsSettings) -> None:
        self.remote = remote
        self.keys = keys
        self.defaults = defaults

    # ---- instruction files -----------------------------------------------------------

    @property
    def instruction_suffix(self) -> str:
        """The envelope of object KEY, when not in its metadata, is object KEY + this."""
        return self.defaults.instruction_suffix

    def with_instruction_suffix(self, suffix: str | None) -> Vault:
        """This vault reading and writing instruction files under ``suffix``.

        None (or the same suffix) is this vault. The copy shares the S3 client and the
        key provider; UsageError for a suffix `check_instruction_suffix` refuses.
        """
        if suffix is None or suffix == self.instruction_suffix:
            return self
        try:
            check_instruction_suffix(suffix)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        defaults = self.defaults.model_copy(update={"instruction_suffix": suffix})
        return Vault(self.remote, self.keys, defaults)

    def instruction_key(self, key: str) -> str:
        """The key of the instruction file that holds (or would hold) ``key``'s envelope."""
        return key + self.instruction_suffix

    def is_instruction_key(self, key: str) -> bool:
        """Whether ``key`` names an instruction file (under this vault's suffix)."""
        return len(key) > len(self.instruction_suffix) and key.endswith(self.instruction_suffix)

    # ---- put -----------------------------------------------------------------------

    def put(
        self,
        local: Path,
        bucket: str,
        key: str,
        *,
        key_name: str | None = None,
        version: Version | None = None,
        location: Location | None = None,
        context: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
        extra_metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Encrypt ``local`` under a fresh data key and store it at ``bucket/key``.

        The upload streams; the envelope goes in the object metadata or, with an
        instruction file, beside the object (written after the object, so a
        reader never finds an envelope whose object does not exist yet).

        ``if_match`` (an ETag) or ``if_none_match`` make the write conditional: a
        failed precondition raises ConflictError and stores nothing. ``extra_metadata``
        is user metadata outside the envelope (e.g. the sync engine's ``s3vault-mtime``);
        it counts towards S3's 2 KB metadata limit and may not use envelope names.
        """
        version = version or Version(self.defaults.format)
        location = location or Location(self.defaults.envelope)
        self._check_object_key(key, location)
        with _open_regular_file(local) as (source, size):
            if size > GCM_MAX_PLAINTEXT:
                raise RefusedError(
                    f"{local} is {size} bytes; one AES-GCM object holds at most "
                    f"{GCM_MAX_PLAINTEXT} bytes",
                    hint="Split the file (e.g. with `split -b 32G`) and upload the parts.",
                )
            new = self._new_object(size, version, location, key_name, context, extra_metadata)
            body_size = ciphertext_length(size, new.content_cipher)
            reader = EncryptingReader(source, size, new.encryptor)
            before = os.fstat(source.fileno())
            written = self.remote.put_stream(
                bucket,
                key,
                reader,
                body_size,
                new.metadata,
                progress=progress,
                # Checked after the last byte was read, before the object is committed:
                # a file that changed meanwhile is never stored torn.
                before_commit=lambda: _check_unchanged(local, before),
                if_match=if_match,
                if_none_match=if_none_match,
            )
        if new.instruction is not None:
            self.remote.put_bytes(bucket, self.instruction_key(key), new.instruction, {})
        return PutResult(
            bucket=bucket,
            key=key,
            etag=written.etag,
            version_id=written.version_id,
            plaintext_size=size,
            ciphertext_size=body_size,
            format=version.value,
            location=location.value,
            key_name=new.materials.key_name,
            wrap_algorithm=new.materials.wrap_algorithm,
            instruction_file=self.instruction_key(key) if new.instruction is not None else None,
        )

    def seal(
        self,
        plaintext: bytes,
        key: str,
        *,
        key_name: str | None = None,
        version: Version | None = None,
        location: Location | None = None,
        context: Mapping[str, str] | None = None,
        extra_metadata: Mapping[str, str] | None = None,
    ) -> SealedObject:
        """Encrypt a small in-memory ``plaintext`` as `put` would store it at ``key``.

        Same data key handling, envelope, metadata (x-amz-unencrypted-content-length,
        ``extra_metadata``) and checks as `put`; nothing is sent. The caller writes
        `SealedObject.body` with `SealedObject.metadata` to ``key`` and then, if set,
        `SealedObject.instruction` to `SealedObject.instruction_key` (object first, so a
        reader never finds an envelope whose object does not exist yet). The whole
        body is in memory: meant for small files (the sync engine's batch path).
        """
        version = version or Version(self.defaults.format)
        location = location or Location(self.defaults.envelope)
        self._check_object_key(key, location)
        size = len(plaintext)
        if size > GCM_MAX_PLAINTEXT:
            raise RefusedError(
                f"{size} bytes are more than one AES-GCM object holds ({GCM_MAX_PLAINTEXT})"
            )
        new = self._new_object(size, version, location, key_name, context, extra_metadata)
        body = new.encryptor.update(plaintext) + new.encryptor.finalize()
        return SealedObject(
            key=key,
            body=body,
            metadata=new.metadata,
            instruction=new.instruction,
            instruction_key=self.instruction_key(key) if new.instruction is not None else None,
            plaintext_size=size,
            format=version.value,
            location=location.value,
            key_name=new.materials.key_name,
            wrap_algorithm=new.materials.wrap_algorithm,
        )

    def _new_object(
        self,
        size: int,
        version: Version,
        location: Location,
        key_name: str | None,
        context: Mapping[str, str] | None,
        extra_metadata: Mapping[str, str] | None,
    ) -> _NewObject:
        """A fresh data key, its cipher and the envelope of an object of ``size`` bytes."""
        content_cipher = content_cipher_for(version)
        materials = self.keys.encryption_materials(
            content_cipher, key_name=key_name or self.defaults.key, context=context or {}
        )
        envelope, encryptor = new_envelope(version, location, materials)
        metadata, instruction = render_envelope(envelope)
        metadata[UNENCRYPTED_LENGTH] = str(size)
        _add_extra_metadata(metadata, extra_metadata)
        check_metadata_size(metadata)
        return _NewObject(
            content_cipher=content_cipher,
            materials=materials,
            encryptor=encryptor,
            metadata=metadata,
            instruction=instruction_file_body(instruction) if instruction is not None else None,
        )

    # ---- get -----------------------------------------------------------------------

    def get(
        self,
        bucket: str,
        key: str,
        destination: Path | BinaryIO,
        *,
        key_name: str | None = None,
        allow_legacy: bool = False,
        context: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        on_size: Callable[[int], None] | None = None,
    ) -> GetResult:
        """Decrypt ``bucket/key`` into a file path or a binary stream.

        Nothing is released before the authentication tag (and, for V3, the key
        commitment) verified: a file appears under its name only once verified, a
        stream receives its first byte only after the whole object verified.
        ``on_size`` learns the object's stored size before the transfer starts
        (for a progress bar); ``progress`` then receives the bytes as they arrive.
        """
        head = self.remote.head(bucket, key)
        envelope = self.read_envelope(head)
        if envelope is None:
            raise NotEncryptedError(
                f"{s3_url(bucket, key)} is not encrypted (it has no S3 Encryption Client "
                "envelope): s3vault releases only data it can authenticate",
                hint="Read it with a plain S3 client (e.g. `aws s3 cp`).",
            )
        if head.size > GCM_MAX_PLAINTEXT + GCM_TAG_BYTES:
            raise RefusedError(f"{s3_url(bucket, key)} is larger than one AES-GCM object can be")
        data_key, opened_by = self.keys.decrypt_data_key(
            envelope, key_name=key_name, context=context, allow_legacy=allow_legacy
        )
        if on_size:
            on_size(head.size)

        def decryptor() -> ContentDecryptor:
            return start_decryption(envelope, data_key, allow_legacy=allow_legacy)

        chunks = self.remote.iter_object(head, progress=progress)
        if isinstance(destination, Path):
            size = decrypt_to_file(chunks, decryptor(), destination)
            where = str(destination)
        else:
            size = decrypt_to_stream(chunks, decryptor(), decryptor(), destination)
            where = "-"
        return GetResult(
            bucket=bucket,
            key=key,
            plaintext_size=size,
            format=envelope.version.value,
            key_name=opened_by,
            destination=where,
        )

    # ---- inspect / list ------------------------------------------------------------

    def read_envelope(self, head: ObjectHead) -> Envelope | None:
        """The object's envelope, from its metadata or its instruction file.

        None when the object carries no envelope at all (a plain object).
        """
        return self.read_envelope_and_file(head)[0]

    def read_envelope_and_file(
        self, head: ObjectHead
    ) -> tuple[Envelope | None, InstructionFile | None]:
        """`read_envelope`, and the instruction file it came from (None if not from one).

        For rewriting that file conditionally on what was read (key rotation).
        """
        if not needs_instruction_file(head.metadata):
            return parse_envelope(head.metadata), None
        where = self.instruction_key(head.key)
        try:
            body, stored = self.remote.get_small(head.bucket, where)
        except NotFoundError:
            if expects_instruction_file(head.metadata):
                raise envelope_not_found(head.bucket, head.key, where) from None
            return None, None
        fields = parse_instruction_file(body)
        return parse_envelope(head.metadata, fields), InstructionFile(stored, body, fields)

    def inspect(self, bucket: str, key: str) -> ObjectInfo:
        head = self.remote.head(bucket, key)
        return self._info(head, self.read_envelope(head))

    def _info(self, head: ObjectHead, envelope: Envelope | None) -> ObjectInfo:
        in_file = envelope is not None and envelope.location is Location.INSTRUCTION_FILE
        return ObjectInfo.from_head(
            head, envelope, instruction_file=self.instruction_key(head.key) if in_file else None
        )

    def _info_or_error(self, head: ObjectHead) -> ObjectInfo:
        try:
            return self._info(head, self.read_envelope(head))
        except S3VaultError as exc:
            # One broken envelope must not hide the rest of a listing.
            return ObjectInfo.from_head(head, None, error=exc.message)

    def list(
        self, bucket: str, prefix: str = "", *, recursive: bool = False
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        """Objects under ``prefix`` with their envelopes (HEADs run in parallel).

        Instruction files (under this vault's suffix) are not listed as objects of
        their own: they show as the `location` of the object they belong to. A key
        ending in the suffix whose object does not exist is listed as what it is.
        """
        entries = self.remote.list(bucket, prefix, recursive=recursive)
        with ThreadPoolExecutor(max_workers=LIST_WORKERS, thread_name_prefix="s3-head") as pool:
            for batch in _batches(entries, 256):
                keys = {e.key for e in batch if isinstance(e, ObjectSummary)}
                heads: list[PrefixEntry | Future[ObjectInfo | None]] = []
                for entry in batch:
                    if isinstance(entry, str):
                        heads.append(PrefixEntry(bucket, entry))
                    elif self.is_instruction_key(entry.key):
                        base = entry.key[: -len(self.instruction_suffix)]
                        if base not in keys:
                            # Its object may sit in an earlier batch of the listing.
                            heads.append(pool.submit(self._orphan_info, bucket, entry, base))
                    else:
                        heads.append(pool.submit(self._summary_info, bucket, entry))
                for item in heads:
                    if isinstance(item, PrefixEntry):
                        yield item
                    elif (info := item.result()) is not None:
                        yield info

    def _orphan_info(self, bucket: str, entry: ObjectSummary, base: str) -> ObjectInfo | None:
        """None when ``entry`` is the instruction file of object ``base``, else its info."""
        if self.remote.exists(bucket, base):
            return None
        return self._summary_info(bucket, entry)

    def _summary_info(self, bucket: str, entry: ObjectSummary) -> ObjectInfo:
        try:
            head = self.remote.head(bucket, entry.key)
        except NotFoundError:
            # Deleted between LIST and HEAD: show what the listing said.
            head = ObjectHead(bucket, entry.key, entry.size, entry.etag, entry.last_modified, {})
        return self._info_or_error(head)

    # ---- delete --------------------------------------------------------------------

    def delete(self, bucket: str, key: str) -> bool:
        """Delete an object and its instruction file; NotFoundError if neither existed."""
        existed = self.remote.exists(bucket, key)
        instruction = self.instruction_key(key)
        has_instruction = self.remote.exists(bucket, instruction)
        if not existed and not has_instruction:
            raise NotFoundError(f"{s3_url(bucket, key)} does not exist")
        if existed:
            self.remote.delete(bucket, key)
        if has_instruction:
            self.remote.delete(bucket, instruction)
        return True

    def delete_instruction_file(self, bucket: str, key: str) -> bool:
        """Delete the instruction file of ``key`` (its object already gone); False if none."""
        instruction = self.instruction_key(key)
        if not self.remote.exists(bucket, instruction):
            return False
        self.remote.delete(bucket, instruction)
        return True

    # ---- copy ----------------------------------------------------------------------

    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_match: str, size: int) -> Written:
        """Copy an object server-side, its instruction file with it (after the object).

        ``if_match`` pins the source's ETag (ConflictError if it changed); ``size`` is
        its stored size, which decides between a single and a multipart copy. An object
        whose envelope should be in an instruction file that is not there under this
        vault's suffix is refused (FormatError) rather than copied without its envelope.
        """
        # The source's metadata says whether its envelope is in an instruction file:
        # then that file is read first, so a missing one stops the copy before it starts.
        envelope_file: bytes | None = None
        if needs_instruction_file(self.remote.head(bucket, src_key).metadata):
            src_instruction = self.instruction_key(src_key)
            try:
                envelope_file = self.remote.get_bytes(bucket, src_instruction)
            except NotFoundError:
                raise envelope_not_found(bucket, src_key, src_instruction, "not copied") from None
        written = self.remote.copy_object(bucket, src_key, dst_key, if_match=if_match, size=size)
        if envelope_file is not None:
            self.remote.put_bytes(bucket, self.instruction_key(dst_key), envelope_file, {})
        return written

    def _check_object_key(self, key: str, location: Location) -> None:
        """Refuse a key that names an instruction file, or is too long to have one."""
        if self.is_instruction_key(key):
            raise UsageError(
                f"object keys ending in {self.instruction_suffix!r} are reserved for "
                "instruction files (the envelopes of other objects)",
                hint="Choose another name, or another suffix with --instruction-suffix.",
            )
        longest = self.instruction_key(key) if location is Location.INSTRUCTION_FILE else key
        if len(longest.encode("utf-8")) > MAX_KEY_BYTES:
            raise UsageError(
                f"the key {longest!r} is longer than the {MAX_KEY_BYTES} bytes S3 allows"
            )


# ---- helpers ---------------------------------------------------------------------


def envelope_not_found(bucket: str, key: str, where: str, outcome: str = "") -> FormatError:
    """The error for an object whose envelope is neither in its metadata nor at ``where``
    (its instruction file under the suffix in use), e.g. written under another suffix."""
    message = (
        f"{s3_url(bucket, key)} has no envelope in its metadata, and its instruction file "
        f"{s3_url(bucket, where)} does not exist"
    )
    return FormatError(
        f"{message}: {outcome}" if outcome else message,
        hint="If its writer keeps envelopes under another suffix, name it with "
        "--instruction-suffix (or defaults.instruction_suffix in the config).",
    )


@contextmanager
def _open_regular_file(path: Path) -> Iterator[tuple[io.BufferedReader, int]]:
    """Open a local file for reading, with errors a user can act on."""
    try:
        # stat first: opening a FIFO (or a device) for reading could block forever.
        if not stat.S_ISREG(path.stat().st_mode):
            raise UsageError(f"{path} is not a regular file")
        source = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist") from None
    except OSError as exc:
        raise local_error(exc, "read", path) from None
    with source:
        yield source, os.fstat(source.fileno()).st_size


def _add_extra_metadata(metadata: dict[str, str], extra: Mapping[str, str] | None) -> None:
    """Add user metadata beside the envelope; never let it replace an envelope entry."""
    for name, value in (extra or {}).items():
        lowered = name.lower()
        if lowered.startswith("x-amz-") or lowered in metadata:
            raise UsageError(f"metadata name {name!r} is reserved for the envelope")
        metadata[lowered] = value


def _check_unchanged(path: Path, before: os.stat_result) -> None:
    try:
        after = path.stat()
    except FileNotFoundError:
        raise ConflictError(f"{path} was removed while it was being uploaded") from None
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    ):
        raise ConflictError(
            f"{path} changed while it was being uploaded; nothing was stored",
            hint="Upload it again once the file is no longer changing.",
        )


def _batches(
    items: Iterator[ObjectSummary | str], size: int
) -> Iterator[list[ObjectSummary | str]]:
    batch: list[ObjectSummary | str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
