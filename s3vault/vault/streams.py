"""Byte streams between local files and the envelope format, in bounded memory.

- `EncryptingReader` turns a local file into the object body (ciphertext ‖ tag),
  read in order by the S3 layer, and notices a file that changes while it is read.
- `decrypt_to_file` writes plaintext to a temporary file beside the target and moves
  it into place only after the tag verified: no unauthenticated byte is ever visible
  under the target's name.
- `decrypt_to_stream` (for `get ... -`) spools the *ciphertext* to an anonymous temp
  file, verifies it, then decrypts it again to the stream: plaintext never touches
  the disk and nothing unverified reaches the reader.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from s3vault.crypto.content import ContentDecryptor, ContentEncryptor
from s3vault.errors import ConflictError

SPOOL_CHUNK = 1024 * 1024


class EncryptingReader:
    """``read(n)`` returns the next ``n`` bytes of ciphertext for a local file.

    The ciphertext is the plaintext's length plus the GCM tag, so the caller knows
    the body size up front and can choose single or multipart upload.
    """

    def __init__(self, source: BinaryIO, size: int, encryptor: ContentEncryptor) -> None:
        self._source = source
        self._remaining = size
        self._encryptor = encryptor
        self._tail = b""  # ciphertext produced but not yet handed out (the tag)
        self._finished = False

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        wanted = n
        if self._tail:
            piece, self._tail = self._tail[:wanted], self._tail[wanted:]
            out.append(piece)
            wanted -= len(piece)
        if wanted and self._remaining:
            chunk = self._source.read(min(wanted, self._remaining))
            if not chunk:
                raise ConflictError(
                    "the file became shorter while it was being encrypted",
                    hint="Nothing was uploaded; try again once the file is no longer changing.",
                )
            self._remaining -= len(chunk)
            out.append(self._encryptor.update(chunk))
            wanted -= len(chunk)
        if wanted and not self._remaining and not self._finished:
            self._finished = True
            final = self._encryptor.finalize()
            out.append(final[:wanted])
            self._tail = final[wanted:]
        return b"".join(out) if len(out) != 1 else out[0]


def decrypt_to_file(chunks: Iterable[bytes], decryptor: ContentDecryptor, target: Path) -> int:
    """Decrypt into a temp file beside ``target``, verify, then rename into place.

    Returns the plaintext size. On any failure the temp file is removed and
    ``target`` is untouched.
    """
    target = target.absolute()
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".s3vault-part", dir=target.parent
    )
    tmp = Path(tmp_name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                plain = decryptor.update(chunk)
                out.write(plain)
                size += len(plain)
            last = decryptor.finalize()  # raises IntegrityError on any tampering
            out.write(last)
            size += len(last)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp made it 0600; give the result the permissions a new file normally gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return size


def decrypt_to_stream(
    chunks: Iterable[bytes],
    decryptor: ContentDecryptor,
    second: ContentDecryptor,
    out: BinaryIO,
) -> int:
    """Verify the whole object first, then stream its plaintext to ``out``.

    ``decryptor`` and ``second`` are two fresh decryptors for the same envelope:
    the first authenticates while the ciphertext is spooled, the second produces
    the output from the verified spool.
    """
    with tempfile.TemporaryFile(prefix="s3vault-spool-") as spool:
        for chunk in chunks:
            spool.write(chunk)
            decryptor.update(chunk)
        decryptor.finalize()  # raises before a single byte is written to `out`
        spool.seek(0)
        size = 0
        while chunk := spool.read(SPOOL_CHUNK):
            plain = second.update(chunk)
            out.write(plain)
            size += len(plain)
        last = second.finalize()
        out.write(last)
        out.flush()
        return size + len(last)
