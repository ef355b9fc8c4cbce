"""Re-encrypt: a new data key for an object, its body streamed through decrypt and encrypt.

For a data key that may have leaked, or to move V2 (or legacy) objects to V3. The new
body is written by one conditional PUT or multipart upload (If-Match on the ETag read),
committed only after the old body authenticated. User metadata, headers and tags stay.

An object whose envelope lives in an instruction file is rewritten in three steps, each
leaving an object every client opens: the new object with its whole envelope in
metadata (readers ignore the stale instruction file), then the new instruction file,
then the data-key part leaves the metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from s3vault.crypto.constants import GCM_MAX_PLAINTEXT, META_UNENCRYPTED_LENGTH
from s3vault.crypto.content import ciphertext_length, plaintext_length, start_decryption
from s3vault.crypto.edit import user_entries
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    check_metadata_size,
    instruction_file_body,
    render_envelope,
)
from s3vault.errors import RefusedError
from s3vault.keys.material import ResolvedKey
from s3vault.remote.s3 import Written
from s3vault.vault.envelopes import content_cipher_for, new_envelope
from s3vault.vault.rotation.opening import Opened
from s3vault.vault.rotation.reader import ReencryptingReader
from s3vault.vault.rotation.snapshot import (
    Rewritten,
    Snapshot,
    conflict_means_changed,
    write_instruction_file,
)
from s3vault.vault.rotation.verify import Verifier
from s3vault.vault.vault import Vault


class Reencryptor:
    """Re-encrypts objects under new data keys wrapped by ``target``; verifies each."""

    def __init__(
        self, vault: Vault, target: ResolvedKey, verifier: Verifier, *, allow_legacy: bool
    ) -> None:
        self.vault = vault
        self.target = target
        self.verifier = verifier
        self.allow_legacy = allow_legacy

    def reencrypt(
        self,
        snap: Snapshot,
        env: Envelope,
        opened: Opened,
        version: Version,
        context: Mapping[str, str],
    ) -> Rewritten:
        """Write the object again in ``version`` under a new data key (``context`` in its
        wrap), conditional on the ETag read; then read it back and verify it."""
        remote = self.vault.remote
        head = snap.stored.head
        size = plaintext_length(head.size, env)
        if size is None or size > GCM_MAX_PLAINTEXT:
            raise RefusedError(
                f"the plaintext size of {snap.url} is unknown or too large to re-encrypt "
                "it as one AES-GCM object",
                hint="Download it with `s3vault get --allow-legacy` and upload it again.",
            )
        cipher = content_cipher_for(version)
        materials = self.vault.keys.new_materials(self.target.key, cipher, context=context)
        new_env, encryptor = new_envelope(version, env.location, materials)
        user_metadata = user_entries(head.metadata)
        user_metadata[META_UNENCRYPTED_LENGTH] = str(size)
        # Written with the whole envelope in metadata first, also for an instruction-file
        # object: then every step leaves a readable object (see move_to_instruction_file).
        full, _ = render_envelope(dataclasses.replace(new_env, location=Location.METADATA))
        metadata = {**user_metadata, **full}
        _check_size(metadata, env.location)
        reader = ReencryptingReader(
            remote.iter_object(head),
            start_decryption(env, opened.data_key, allow_legacy=self.allow_legacy),
            encryptor,
            size,
        )
        headers = dict(snap.stored.headers)
        if snap.stored.tag_count:
            tagging = remote.tagging_header(snap.bucket, snap.key)
            if tagging:
                headers["Tagging"] = tagging
        with conflict_means_changed(snap.url):
            written = remote.put_stream(
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
            written = self.move_to_instruction_file(snap, new_env, user_metadata, written)
        verified = self.verifier.verify(snap, new_env, opened, data_key=materials.data_key)
        return Rewritten(new_env, written, verified)

    def move_to_instruction_file(
        self,
        snap: Snapshot,
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
        assert snap.instruction is not None
        content_part, instruction = render_envelope(new_env)
        assert instruction is not None
        with conflict_means_changed(snap.url):
            write_instruction_file(
                self.vault,
                snap,
                instruction_file_body(instruction),
                if_match=snap.instruction.stored.head.etag,
            )
        remote = self.vault.remote
        current = remote.head_stored(snap.bucket, snap.key)
        with conflict_means_changed(snap.url):
            return remote.copy_replace_metadata(
                current, {**user_metadata, **content_part}, if_match=written.etag
            )


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
