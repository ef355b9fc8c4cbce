"""A master key's backup: export it to a private file, import it back from one.

    export_key(KeyStore("s3vault"), "laptop-2026", Path("~/laptop-2026.key").expanduser())
    import_key_file(KeyStore("s3vault"), "laptop-2026", "aes", Path("laptop-2026.key"))

The file holds what `s3vault key export` prints (AES: one line of base64; RSA: a
PKCS#8 PEM private key; KMS: the key id) and `s3vault key import` reads back. It is
created with mode 0600 and moved into place whole, so no partial or world-readable
copy of the secret ever exists.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Literal

from s3vault.errors import ConflictError, NotFoundError, UsageError, local_error
from s3vault.keys.material import AesKey, KmsKey, MasterKey, parse_aes, parse_rsa, validate_name
from s3vault.keys.store import KeyStore, PutResult

# A PEM RSA-4096 key is about 3.3 KB; anything far bigger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024


def export_text(key: MasterKey) -> bytes:
    """What an export writes (a secret, except for a KMS key's id)."""
    if isinstance(key, KmsKey):
        return (key.key_id + "\n").encode()
    if isinstance(key, AesKey):
        return base64.b64encode(key.secret) + b"\n"
    return key.private_pem


def export_key(store: KeyStore, name: str, path: Path, *, overwrite: bool = False) -> Path:
    """Write key ``name`` of ``store`` to ``path`` (mode 0600); the path written.

    ConflictError if ``path`` exists and not ``overwrite``; UsageError if it is not a
    regular file (a link, a device)."""
    validate_name(name)
    key = store.get(name)
    write_private_file(path, export_text(key), overwrite=overwrite)
    return path


def write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to a new 0600 file, then move it into place.

    Writing a fresh file (O_EXCL) and renaming it means an existing file's looser mode
    or another owner never applies to the secret, and no partial file is left.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Never a device, FIFO or link: as root, the rename below would replace
        # /dev/null itself with a file holding the key.
        raise UsageError(
            f"{path} is not a regular file: the key is written only to a file",
            hint="Choose a file name.",
        )
    if path.exists() and not overwrite:
        raise ConflictError(f"{path} already exists", hint="Choose another name.")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise local_error(exc, "create", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise local_error(exc, "write", path) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def import_key_file(
    store: KeyStore, name: str, kind: Literal["aes", "rsa"], path: Path
) -> tuple[MasterKey, PutResult]:
    """Read an AES (raw, hex or base64) or RSA (PEM) key from ``path`` into ``store`` as
    ``name``; the key and "created" or "unchanged" (ConflictError: other material)."""
    validate_name(name)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise NotFoundError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise local_error(exc, "read", path) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    if not data.strip():
        raise UsageError(f"{path} is empty")
    key: MasterKey = parse_aes(name, data)[0] if kind == "aes" else parse_rsa(name, data)
    return key, store.put(key)
