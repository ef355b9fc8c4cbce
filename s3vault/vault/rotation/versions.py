"""Old versions: how many non-current object versions still hold a data key the old key wraps.

In a versioned bucket a rotation writes new versions; the replaced ones keep the old
wrap and stay readable with the old key until they are deleted. This counts them so
the report can say so. Each version is judged on its own: an object version whose
envelope is in metadata, or an instruction-file version (its object's V3 content part
may be in another version, so only its data-key part is read: `data_key_envelope`).
"""

from __future__ import annotations

from s3vault.crypto.constants import AUTHENTICATED_RAW_WRAPS
from s3vault.crypto.edit import data_key_envelope
from s3vault.crypto.envelope import (
    Envelope,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
)
from s3vault.errors import S3VaultError
from s3vault.keys.material import ResolvedKey
from s3vault.keys.provider import DESCRIPTION_KEY
from s3vault.remote.s3 import ObjectVersion
from s3vault.vault.rotation.pool import run_bounded
from s3vault.vault.vault import Vault


class OldVersionCounter:
    """Counts non-current versions wrapped by ``source`` (else by any key but ``target``)."""

    def __init__(self, vault: Vault, target: ResolvedKey, source: ResolvedKey | None) -> None:
        self.vault = vault
        self.target = target
        self.source = source

    def count(self, bucket: str, prefix: str, *, exact: bool, workers: int) -> int | None:
        """How many non-current versions still hold a data key wrapped by the old key.

        A version whose envelope cannot be read or opened counts too (it may well be
        old). None for a bucket that never had versioning. With ``exact``, ``prefix``
        is one object key (its versions and its instruction file's are counted).
        """
        remote = self.vault.remote
        if remote.bucket_versioning(bucket) is None:
            return None
        wanted = {prefix, self.vault.instruction_key(prefix)} if exact else None
        versions = (
            v
            for v in remote.list_versions(bucket, prefix)
            if not v.is_latest and not v.is_delete_marker and (wanted is None or v.key in wanted)
        )
        flags = run_bounded(lambda v: self._has_old_key(bucket, v), versions, workers)
        return sum(1 for flag in flags if flag)

    def _has_old_key(self, bucket: str, version: ObjectVersion) -> bool:
        remote = self.vault.remote
        try:
            if self.vault.is_instruction_key(version.key):
                body, _ = remote.get_small(bucket, version.key, version_id=version.version_id)
                env = data_key_envelope(parse_instruction_file(body))
            else:
                stored = remote.head_stored(bucket, version.key, version_id=version.version_id)
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
        return self.vault.keys.open_with(ref, env) is not None
