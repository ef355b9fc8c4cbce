"""The new ciphertext of an object, made from its old ciphertext as that streams in.

Re-encryption never holds a whole object, and never writes plaintext anywhere: the old
body is decrypted and encrypted again chunk by chunk, as the upload reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from s3vault.crypto.content import ContentDecryptor, ContentEncryptor
from s3vault.errors import IntegrityError


class ReencryptingReader:
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
