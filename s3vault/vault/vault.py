"""The encryption client: one facade the CLI, the GUI and the sync engine all use.

`Vault` joins a key provider (which master key wraps which data key), the envelope
format (s3vault.crypto) and S3 (s3vault.remote). It never releases plaintext that
did not authenticate, and never holds a whole object in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from s3vault.config.model import DefaultsSettings
from s3vault.config.suffix import check_instruction_suffix
from s3vault.crypto.constants import GCM_MAX_PLAINTEXT, GCM_TAG_BYTES
from s3vault.crypto.content import (
    ContentDecryptor,
    ciphertext_length,
    start_decryption,
)
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    expects_instruction_file,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
)
from s3vault.errors import (
    NotEncryptedError,
    NotFoundError,
    RefusedError,
    S3VaultError,
    UsageError,
)
from s3vault.keys.provider import KeyProvider
from s3vault.remote.objects import ObjectHead, ObjectSummary, Progress, Written, s3_url
from s3vault.remote.s3 import S3Remote
from s3vault.vault.envelopes import (
    InstructionFile,
    NewObject,
    content_cipher_for,
    envelope_not_found,
    new_object,
)
from s3vault.vault.fetch import open_object
from s3vault.vault.key_check import identify_key, named_key
from s3vault.vault.listing import list_with_envelopes
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.results import GetResult, PrefixEntry, PutResult, SealedObject
from s3vault.vault.sealed_puts import SealedOutcome, SealedPut, put_sealed_many
from s3vault.vault.streams import (
    EncryptingReader,
    check_unchanged,
    decrypt_to_file,
    decrypt_to_stream,
    open_regular_file,
)

MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8


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
        with open_regular_file(local) as (source, size):
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
                before_commit=lambda: check_unchanged(local, before),
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
        body is in memory: meant for small files (the sync engine's small-file path).
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
        body = new.encryptor.encrypt_whole(plaintext)
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
    ) -> NewObject:
        """A fresh data key, its cipher and the envelope of an object of ``size`` bytes."""
        materials = self.keys.encryption_materials(
            content_cipher_for(version),
            key_name=key_name or self.defaults.key,
            context=context or {},
        )
        return new_object(materials, size, version, location, extra_metadata)

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
        with open_object(self.remote, head, progress=progress) as chunks:
            chunks.start()  # the first ranges travel while the data key is unwrapped
            data_key, opened_by = self.keys.decrypt_data_key(
                envelope, key_name=key_name, context=context, allow_legacy=allow_legacy
            )
            if on_size:
                on_size(head.size)

            def decryptor() -> ContentDecryptor:
                return start_decryption(envelope, data_key, allow_legacy=allow_legacy)

            if isinstance(destination, Path):
                size, where = decrypt_to_file(chunks, decryptor(), destination), str(destination)
            else:
                size, where = decrypt_to_stream(chunks, decryptor(), decryptor(), destination), "-"
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
        """The object's envelope, from its metadata or its instruction file (None: plain)."""
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

    def inspect(self, bucket: str, key: str, *, confirm_key: bool = False) -> ObjectInfo:
        """The object's facts and envelope; ``confirm_key``: `identify_key` too."""
        head = self.remote.head(bucket, key)
        info = self._info(head, self.read_envelope(head))
        return self.identify_key(info) if confirm_key else info

    def identify_key(self, info: ObjectInfo) -> ObjectInfo:
        """``info`` with its master key confirmed by opening the data key (no content is
        read; a missing key or KMS failure shows in `KeyIdentity.check`, never raised)."""
        env = info.envelope
        return info if env is None else info.with_checked_key(identify_key(self.keys, env))

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
        return list_with_envelopes(
            self.remote,
            bucket,
            prefix,
            recursive=recursive,
            instruction_suffix=self.instruction_suffix,
            is_instruction_key=self.is_instruction_key,
            info_of=self._info_or_error,
        )

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

    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_match: str) -> Written:
        """Copy an object server-side, its instruction file with it (after the object).

        ``if_match`` pins the source's ETag (ConflictError if it changed); its size, from
        the HEAD, decides between a single and a multipart copy. An object
        whose envelope should be in an instruction file that is not there under this
        vault's suffix is refused (FormatError) rather than copied without its envelope.
        """
        # The source's metadata says whether its envelope is in an instruction file:
        # then that file is read first, so a missing one stops the copy before it starts.
        envelope_file: bytes | None = None
        source = self.remote.head(bucket, src_key)
        if needs_instruction_file(source.metadata):
            src_instruction = self.instruction_key(src_key)
            try:
                envelope_file = self.remote.get_bytes(bucket, src_instruction)
            except NotFoundError:
                raise envelope_not_found(bucket, src_key, src_instruction, "not copied") from None
        written = self.remote.copy_object(
            bucket, src_key, dst_key, if_match=if_match, size=source.size
        )
        if envelope_file is not None:
            self.remote.put_bytes(bucket, self.instruction_key(dst_key), envelope_file, {})
        return written

    # ---- what the sync engine needs -------------------------------------------------

    @contextmanager
    def remembering_keys(self) -> Iterator[None]:
        """Read each master key from the keyring once inside this block (a sync run)."""
        with self.keys.remembering_keys():
            yield

    def head(self, bucket: str, key: str) -> ObjectHead:
        """The object's size, ETag, version and metadata (NotFoundError if none)."""
        return self.remote.head(bucket, key)

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectSummary]:
        """Every key under ``prefix`` (recursive), as listed: no envelopes are read.

        Instruction files are listed too; `is_instruction_key` tells them apart.
        """
        for entry in self.remote.list(bucket, prefix, recursive=True):
            if isinstance(entry, ObjectSummary):
                yield entry

    def master_key_name(self, head: ObjectHead) -> str | None:
        """The master key named by an envelope in ``head``'s metadata (no request); None
        for an instruction-file envelope, a KMS key or metadata that is no envelope."""
        try:
            return named_key(parse_envelope(head.metadata)).key_name
        except S3VaultError:
            return None

    def sealed_plaintext_size(self, head: ObjectHead) -> int:
        """The plaintext size of an object this vault sealed (AES-GCM: its size less
        the tag), from its HEAD alone."""
        return max(head.size - GCM_TAG_BYTES, 0)

    def delete_if_match(self, bucket: str, key: str, etag: str) -> bool:
        """Delete an object only while its ETag is ``etag``, then its instruction file.

        ConflictError (and nothing deleted) if the object changed; False if it was
        gone already (its instruction file, if left over, is deleted all the same).
        Safe to call again after a failure part way.
        """
        deleted = self.remote.delete_if_match(bucket, key, etag)
        self.delete_instruction_file(bucket, key)
        return deleted

    def abort_unfinished_uploads(self, bucket: str, key: str, started_before: datetime) -> int:
        """Abort the multipart uploads to exactly ``key`` begun before ``started_before``
        (an interrupted upload's parts); how many there were."""
        aborted = 0
        for found, upload_id, initiated in self.remote.multipart_uploads(bucket, key):
            if found == key and initiated <= started_before:
                self.remote.abort_upload(bucket, key, upload_id)
                aborted += 1
        return aborted

    def can_put_sealed(self, key: str) -> bool:
        """Whether `put_sealed_many` can store an object at ``key`` (else use `put`)."""
        from s3vault.remote.native import supports_key  # obstore: only when sync asks

        return supports_key(key)

    def put_sealed_many(
        self,
        puts: Iterable[SealedPut],
        on_done: Callable[[SealedOutcome], None],
        *,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        """Store many objects from `seal`, many requests in flight (the native path).

        Blocks until all are done; ``on_done`` learns each outcome on this thread, in
        the order they finish. A put that finds S3 unreachable is tried ``attempts``
        times, after pauses of ``backoff``, 2 × ``backoff``, ... See `sealed_puts`.
        """
        put_sealed_many(self.remote, puts, on_done, attempts=attempts, backoff=backoff)

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
