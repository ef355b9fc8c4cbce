"""Which client reads an object's body for `Vault.get` (and so for restore).

Small objects (below ``transfer.multipart_threshold``): one boto3 GetObject, and
obstore is not even imported. Larger ones: parallel ranged GETs through obstore
(`remote.native_get`), which costs the client far less CPU per byte than botocore,
unless obstore cannot address the key exactly (`supports_key`), then boto3's ranges.
Both honour the ETag HEAD saw, the bandwidth limit and the memory bound.
"""

from __future__ import annotations

from s3vault.remote.download import Chunks
from s3vault.remote.objects import ObjectHead, Progress
from s3vault.remote.s3 import S3Remote


def open_object(remote: S3Remote, head: ObjectHead, *, progress: Progress | None = None) -> Chunks:
    """The object's body in order (`Chunks`: `start` it early, close it after)."""
    if head.size >= remote.transfer.multipart_threshold:
        from s3vault.remote.native import supports_key  # obstore: large objects only

        if supports_key(head.key):
            from s3vault.remote.native_get import open_ranges

            return open_ranges(
                remote.session,
                head,
                transfer=remote.transfer,
                progress=progress,
                throttle=remote.throttle,
            )
    return remote.iter_object(head, progress=progress)
