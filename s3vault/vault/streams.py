"""Byte streams between local files and the envelope format, in bounded memory.

- `EncryptingReader` turns a local file into the object body (ciphertext ‖ tag),
  read in order by the S3 layer, and notices a file that changes while it is read.
- `decrypt_to_file` writes plaintext to a temporary file beside the target and moves
  it into place only after the tag verified: no unauthenticated byte is ever visible
  under the target's name. `remove_leftover_parts` removes the temp files a killed
  process left behind.
- `decrypt_to_stream` (for `get ... -`) spools the *ciphertext* to an anonymous temp
  file, verifies it, then decrypts it again to the stream: plaintext never touches
  the disk and nothing unverified reaches the reader.
- `open_regular_file` and `check_unchanged`: a local file opened with errors a user
  can act on, and refused if it changed between its open and the commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from s3vault.crypto.content import ContentDecryptor, ContentEncryptor
from s3vault.errors import (
    ConflictError,
    LocalFileError,
    NotFoundError,
    UsageError,
    local_error,
)
from s3vault.localfile import same_file_state

SPOOL_CHUNK = 1024 * 1024
WRITEBACK_EVERY = 32 * 1024 * 1024
"""Bytes written between two early writebacks of a downloaded file (`_EarlyWriteback`)."""


class EncryptingReader:
    """The object body (ciphertext ‖ tag) of a local file, produced in order.

    The ciphertext is the plaintext's length plus the GCM tag, so the caller knows
    the body size up front and can choose single or multipart upload. `readinto`
    encrypts straight into the caller's (pooled) buffer through one reused
    plaintext buffer: a multipart upload allocates nothing per part.
    """

    def __init__(self, source: io.BufferedIOBase, size: int, encryptor: ContentEncryptor) -> None:
        self._source = source
        self._remaining = size
        self._encryptor = encryptor
        self._tail = b""  # ciphertext produced but not yet handed out (the tag)
        self._finished = False
        self._plain = bytearray()

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes of the body (fewer only at its end)."""
        buffer = bytearray(n)
        got = self.readinto(memoryview(buffer))
        del buffer[got:]
        return bytes(buffer)

    def readinto(self, out: memoryview) -> int:
        """Fill ``out`` with the next bytes of the body; fewer only at its end."""
        want, done = len(out), 0
        if self._tail:
            done = min(want, len(self._tail))
            out[:done] = self._tail[:done]
            self._tail = self._tail[done:]
        if done < want and self._remaining:
            n = min(want - done, self._remaining)
            plain = self._read_plaintext(n)
            self._encryptor.encrypt_into(plain, out[done : done + n])
            self._remaining -= n
            done += n
        if done < want and not self._remaining and not self._finished:
            self._finished = True
            final = self._encryptor.finalize()
            k = min(want - done, len(final))
            out[done : done + k] = final[:k]
            self._tail = final[k:]
            done += k
        return done

    def _read_plaintext(self, n: int) -> memoryview:
        if len(self._plain) < n:
            self._plain = bytearray(n)
        view = memoryview(self._plain)[:n]
        got = 0
        while got < n:
            k = self._source.readinto(view[got:])
            if not k:
                raise ConflictError(
                    "the file became shorter while it was being encrypted",
                    hint="Nothing was stored; try again once the file is no longer changing.",
                )
            got += k
        return view


PART_SUFFIX = ".s3vault-part"
"""`decrypt_to_file`'s temp files are ``.NAME.RANDOM.s3vault-part`` beside the target."""


def decrypt_to_file(chunks: Iterable[bytes], decryptor: ContentDecryptor, target: Path) -> int:
    """Decrypt into a temp file beside ``target``, verify, then rename into place.

    Returns the plaintext size. On any failure the temp file is removed and
    ``target`` is untouched.
    """
    target = target.absolute()
    _refuse_special(target)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{_short_name(target.name)}.", suffix=PART_SUFFIX, dir=target.parent
        )
    except OSError as exc:
        raise local_error(exc, "write into", target.parent) from None
    tmp = Path(tmp_name)
    # Locked while this process lives, until the rename (a dup keeps the lock after
    # the file is closed): `remove_leftover_parts` leaves a locked temp file alone.
    with contextlib.suppress(OSError):  # a file system without locks: it keeps them all
        fcntl.flock(fd, fcntl.LOCK_EX)
    lock = os.dup(fd)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, _EarlyWriteback(fd) as writeback:
            for chunk in chunks:
                plain = decryptor.update_view(chunk)
                out.write(plain)
                size += len(plain)
                writeback.wrote(len(plain))
            last = decryptor.finalize()  # raises IntegrityError on any tampering
            out.write(last)
            size += len(last)
            out.flush()
            writeback.finish()
            os.fsync(fd)
        # mkstemp made it 0600; give the result the permissions a new file normally gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise local_error(exc, "write", target) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        os.close(lock)
    return size


def _short_name(name: str, limit: int = 100) -> str:
    """``name`` cut to at most ``limit`` bytes (whole characters), for the temp file's
    name: the target's own may be up to 255 bytes, and the temp file adds 23."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


def remove_leftover_parts(folder: Path) -> int:
    """Remove the temp files of `decrypt_to_file` left anywhere under ``folder`` by a
    process that was killed (kill -9, a power cut): unverified plaintext that no one
    will finish. A temp file a live process is writing is locked, and kept. Returns
    how many were removed."""
    removed = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and name.endswith(PART_SUFFIX):
                removed += _remove_if_abandoned(Path(dirpath, name))
    return removed


def _remove_if_abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live one
        path.unlink()  # under the lock: its writer is gone
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class _EarlyWriteback:
    """Has the kernel write the file to disk while the download goes on.

    Every `WRITEBACK_EVERY` bytes a helper thread calls ``fdatasync``, so the fsync
    before the rename waits for the last stretch only, not for the whole file. The
    data is the unverified plaintext in the temp file (0600) that is removed if the
    tag does not verify: nothing is released earlier than before.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = 0
        self._wanted = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None

    def wrote(self, n: int) -> None:
        self._pending += n
        if self._pending < WRITEBACK_EVERY:
            return
        self._pending = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="writeback", daemon=True)
            self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._done:
                return
            with contextlib.suppress(OSError):  # the final fsync reports any failure
                os.fdatasync(self._fd)

    def finish(self) -> None:
        """Wait for the helper (before the file is fsynced, closed or removed)."""
        self._done = True
        if self._thread is not None:
            self._wanted.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> _EarlyWriteback:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()


def _refuse_special(target: Path) -> None:
    """A device, FIFO or socket at ``target`` is never replaced by a file (as root,
    rename would replace /dev/null itself); such targets are written into as streams."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise local_error(exc, "write", target) from None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise LocalFileError(f"{target} is a device, FIFO or socket, not a file: not replaced")


def _remove(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


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
            plain = second.update_view(chunk)
            out.write(plain)
            size += len(plain)
        last = second.finalize()
        out.write(last)
        out.flush()
        return size + len(last)


# ---- the local file -------------------------------------------------------------


@contextmanager
def open_regular_file(path: Path) -> Iterator[tuple[io.BufferedReader, int]]:
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


def check_unchanged(path: Path, before: os.stat_result) -> None:
    """ConflictError if the file is not the one ``before`` describes (changed, gone)."""
    try:
        after = path.stat()
    except FileNotFoundError:
        raise ConflictError(f"{path} was removed while it was being uploaded") from None
    if not same_file_state(before, after):
        raise ConflictError(
            f"{path} changed while it was being uploaded; nothing was stored",
            hint="Upload it again once the file is no longer changing.",
        )
