"""Reading a rotated object back: the new key opens it, the old one does not, the content fits.

A rotation is reported done only once what S3 now holds was read again and checked:
the envelope is the one written, the target key opens it and yields the expected data
key, the old raw key no longer opens it, and (V3) the key commitment still derives from
that data key and the message id, which proves without a download that the data key
still belongs to the body. A re-wrap must also have changed nothing but the data-key
part. With ``verify_content`` the body is downloaded and its tag checked as well.
"""

from __future__ import annotations

import hmac

from s3vault.crypto.content import start_decryption
from s3vault.crypto.edit import user_entries
from s3vault.crypto.envelope import Envelope, Version
from s3vault.crypto.kdf import derive_v3_keys
from s3vault.errors import ConflictError, IntegrityError
from s3vault.keys.material import ResolvedKey
from s3vault.vault.rotation.opening import Opened
from s3vault.vault.rotation.snapshot import Snapshot, read_snapshot
from s3vault.vault.vault import Vault


class Verifier:
    """Checks what a rotation to ``target`` wrote; ``verify_content`` also reads the body."""

    def __init__(self, vault: Vault, target: ResolvedKey, *, verify_content: bool) -> None:
        self.vault = vault
        self.target = target
        self.verify_content = verify_content

    def verify(
        self,
        before: Snapshot,
        expected: Envelope,
        opened: Opened,
        *,
        rewrap_of: Envelope | None = None,
        data_key: bytes | None = None,
    ) -> bool:
        """Read the object back: NEW opens it, OLD does not, the content still matches.

        ``rewrap_of`` is the envelope a re-wrap replaced (then only its data-key part may
        differ); ``data_key`` the new data key of a re-encryption (default: the one
        ``opened``). Returns whether the body itself was downloaded and authenticated.
        ConflictError if another writer replaced the object meanwhile, IntegrityError
        (or the key provider's errors) if what was written does not verify.
        """
        data_key = opened.data_key if data_key is None else data_key
        after = read_snapshot(self.vault, before.bucket, before.key)
        env = after.envelope
        if env is None or env.encrypted_data_key != expected.encrypted_data_key:
            raise ConflictError(
                f"{before.url} changed right after it was rotated: another writer replaced "
                "it, and its content was left as it is",
                hint="Run the rotation again to rotate the new content.",
            )
        if env.location is not expected.location:
            raise IntegrityError(f"the envelope of {before.url} is not where it was written")
        keys = self.vault.keys
        opened_now = keys.open_with(self.target, env)
        if opened_now is None or not hmac.compare_digest(opened_now, data_key):
            raise IntegrityError(f"the new envelope of {before.url} does not open with the new key")
        old = opened.raw_key
        if old is not None and not opened.on_target and keys.unwrap_with(old, env):
            raise IntegrityError(f"the new envelope of {before.url} still opens with the old key")
        if env.version is Version.V3:
            _check_commitment(env, data_key, before.url)
        if rewrap_of is not None:
            _check_same_content(before, after, rewrap_of, env)
        if not self.verify_content:
            return False
        self._authenticate_body(after, env, data_key)
        return True

    def _authenticate_body(self, snap: Snapshot, env: Envelope, data_key: bytes) -> None:
        decryptor = start_decryption(env, data_key)
        for chunk in self.vault.remote.iter_object(snap.stored.head):
            decryptor.update(chunk)
        decryptor.finalize()


def _check_commitment(env: Envelope, data_key: bytes, url: str) -> None:
    assert env.message_id is not None and env.commitment is not None
    _, commitment = derive_v3_keys(data_key, env.message_id)
    if not hmac.compare_digest(commitment, env.commitment):
        raise IntegrityError(f"the key commitment of {url} does not match its data key")


def _check_same_content(before: Snapshot, after: Snapshot, old: Envelope, new: Envelope) -> None:
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
