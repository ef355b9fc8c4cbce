"""Re-wrap: the same data key under a new master key, and only the envelope rewritten.

An envelope in object metadata is rewritten by a server-side copy of the object onto
itself (MetadataDirective=REPLACE, conditional on the ETag read): no byte of the body
passes through this client. An envelope in an instruction file is rewritten by a
conditional PUT of that file alone, after a HEAD confirmed the object is still the one
it belongs to. If the new envelope does not verify, the previous one is put back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from s3vault.crypto.edit import replace_data_key
from s3vault.crypto.envelope import Envelope, Location, check_metadata_size, instruction_file_body
from s3vault.errors import ConflictError, S3VaultError
from s3vault.keys.material import ResolvedKey
from s3vault.remote.s3 import Written
from s3vault.vault.rotation.opening import Opened
from s3vault.vault.rotation.snapshot import (
    Rewritten,
    Snapshot,
    check_object_etag_unchanged,
    conflict_means_changed,
    write_instruction_file,
)
from s3vault.vault.rotation.verify import Verifier
from s3vault.vault.vault import Vault


class Rewrapper:
    """Re-wraps objects' data keys with ``target`` and verifies each with ``verifier``."""

    def __init__(self, vault: Vault, target: ResolvedKey, verifier: Verifier) -> None:
        self.vault = vault
        self.target = target
        self.verifier = verifier

    def rewrap(
        self, snap: Snapshot, env: Envelope, opened: Opened, context: Mapping[str, str]
    ) -> Rewritten:
        """Wrap ``opened``'s data key with the target (``context`` in the new wrap), write
        the envelope, verify it; put the previous envelope back if it does not verify."""
        materials = self.vault.keys.wrap_data_key(
            opened.data_key, env.content_cipher, self.target.key, context=context
        )
        new_env = dataclasses.replace(
            env,
            wrap_algorithm=materials.wrap_algorithm,
            encrypted_data_key=materials.encrypted_data_key,
            description=dict(materials.description),
        )
        written = self._write(snap, env, new_env)
        try:
            verified = self.verifier.verify(snap, new_env, opened, rewrap_of=env)
        except ConflictError:
            raise  # someone else wrote since: their object is not ours to put back
        except S3VaultError as exc:
            raise self._put_back(snap, written, exc) from None
        return Rewritten(new_env, written, verified)

    def _write(self, snap: Snapshot, env: Envelope, new_env: Envelope) -> Written:
        remote = self.vault.remote
        if env.location is Location.METADATA:
            metadata = replace_data_key(snap.stored.head.metadata, new_env)
            check_metadata_size(metadata)
            with conflict_means_changed(snap.url):
                return remote.copy_replace_metadata(snap.stored, metadata, if_match=snap.etag)
        assert snap.instruction is not None
        fields = replace_data_key(snap.instruction.fields, new_env)
        # A new instruction file must never be paired with other object content.
        check_object_etag_unchanged(self.vault, snap)
        with conflict_means_changed(snap.url):
            return write_instruction_file(
                self.vault,
                snap,
                instruction_file_body(fields),
                if_match=snap.instruction.stored.head.etag,
            )

    def _put_back(self, snap: Snapshot, written: Written, failure: S3VaultError) -> S3VaultError:
        """After a failed verification, restore the previous envelope if nothing else wrote."""
        what = snap.url
        remote = self.vault.remote
        try:
            if snap.instruction is None:
                current = remote.head_stored(snap.bucket, snap.key)
                remote.copy_replace_metadata(
                    current, dict(snap.stored.head.metadata), if_match=written.etag
                )
            else:
                write_instruction_file(
                    self.vault, snap, snap.instruction.body, if_match=written.etag
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
