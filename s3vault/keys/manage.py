"""What managing keys means, for every face (the `s3vault key` commands, the app):
creating a key under a free name, reading an import, the text an export writes, and
writing that text to a private file.

Secrets come in as bytes (a file, stdin, pasted text) and go out only as the export
text; nothing here logs them or puts them in an error message.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from s3vault.errors import (
    ConflictError,
    IntegrityError,
    KeyMissingError,
    NotFoundError,
    UsageError,
    local_error,
)
from s3vault.keys.material import (
    AesKey,
    GenerateType,
    KmsKey,
    MasterKey,
    generate_key,
    parse_aes,
    parse_rsa,
    same_material,
    validate_name,
)
from s3vault.keys.recovery import encode as encode_recovery_kit
from s3vault.keys.store import KeyInfo, KeyStore, PutResult

# A PEM RSA-4096 key is about 3.3 KB; anything far bigger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024

ImportType = Literal["aes", "rsa"]


def describe(type_: str, bits: int | None, key_id: str | None = None) -> str:
    """A key's kind in words: "AES-256", "RSA-4096", "KMS key alias/x"."""
    if type_ == "kms":
        return f"KMS key {key_id}"
    return f"{type_.upper()}-{bits}"


def describe_key(key: MasterKey) -> str:
    return describe(key.type, key.bits, key.key_id if isinstance(key, KmsKey) else None)


Warn = Callable[[str], None]
"""Where a face shows a warning before a step it cannot undo (stderr, a dialog)."""


def existing_key(store: KeyStore, name: str) -> MasterKey | None:
    """The key named ``name``, or None if there is none.

    A damaged record (IntegrityError) is raised: only a replacement (--force) may
    write over a key nobody can read, and `replace_warning` says so first.
    """
    try:
        return store.get(name)
    except KeyMissingError:
        return None


def generates(key: MasterKey, kind: GenerateType) -> bool:
    """Whether ``key`` is of the kind `generate_key` makes for ``kind`` (type and size)."""
    return f"{key.type}{key.bits}" == kind


def generate_new(
    store: KeyStore,
    name: str,
    kind: GenerateType,
    *,
    if_missing: bool = False,
    force: bool = False,
    warn: Warn | None = None,
) -> tuple[MasterKey, PutResult]:
    """A new random key stored as ``name``, and "created" or "replaced".

    A taken name is a ConflictError, except: with ``if_missing`` an existing key of
    the wanted kind is returned as "unchanged" (nothing generated); with ``force``
    the old key is replaced, after ``warn``.
    """
    validate_name(name)
    try:
        old = existing_key(store, name)
    except IntegrityError:
        if not force:
            raise
        old = None
        _warn(warn, replace_warning(name, None))
    if old is not None:
        if if_missing and generates(old, kind):
            return old, "unchanged"
        if not force:
            wanted = describe(kind[:3], int(kind[3:]))
            raise ConflictError(
                f"a key named '{name}' already exists ({describe_key(old)})"
                + (f", not {wanted}" if if_missing else ""),
                hint="Choose another name, or pass --force to replace it with a new "
                "key (objects wrapped by the old key then need a copy of it to be read).",
            )
        _warn(warn, replace_warning(name, old))
    key = generate_key(name, kind)
    return key, store.put(key, force=force)


def import_key(
    store: KeyStore,
    key: MasterKey,
    *,
    force: bool = False,
    warn: Warn | None = None,
    created: str | None = None,
) -> PutResult:
    """Store ``key``: "created", "unchanged" (the same key is there already) or, with
    ``force``, "replaced" after ``warn``; ConflictError for other material without it.
    ``created``: when the key was first made (a recovery kit says), default now."""
    if force:
        try:
            old = existing_key(store, key.name)
        except IntegrityError:
            _warn(warn, replace_warning(key.name, None))
        else:
            if old is not None and not same_material(old, key):
                _warn(warn, replace_warning(key.name, old))
    return store.put(key, force=force, created=created)


def replace_warning(name: str, old: MasterKey | None) -> str:
    """What is lost when key ``name`` (``old``: None if unreadable) is replaced."""
    what = (
        f"{describe_key(old)}, fingerprint {old.fingerprint}"
        if old is not None
        else "damaged, unreadable"
    )
    return (
        f"replacing key '{name}' ({what}): objects it wrapped can be read only with a "
        "copy of the old key"
    )


def _warn(warn: Warn | None, text: str) -> None:
    if warn is not None:
        warn(text)


def use_key(store: KeyStore, name: str) -> tuple[MasterKey, str | None]:
    """Make ``name`` the current key; the key and the one current before (which is
    ``name`` itself when nothing changed)."""
    key = store.get(name)  # must exist and be readable, even when already current
    previous = store.current()
    if previous != name:
        store.set_current(name)
    return key, previous


def check_key_input(data: bytes) -> bytes:
    """``data`` if it can be a key file: not empty, not larger than any key file."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"the key input is larger than {MAX_KEY_FILE_BYTES} bytes: not a key")
    if not data:
        raise UsageError("the key input is empty")
    return data


def read_key_file(path: str | Path) -> bytes:
    """The bytes of a key file (bounded: a huge file is refused, not read)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise NotFoundError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror}") from None
    return check_key_input(data)


def detect_import_type(data: bytes) -> ImportType:
    """RSA for a PEM file (it always has a BEGIN line), else AES (raw, hex or base64)."""
    return "rsa" if b"-----BEGIN" in data else "aes"


def parse_import(name: str, kind: ImportType, data: bytes) -> tuple[MasterKey, str]:
    """The key in ``data`` (AES: raw, hex or base64; RSA: PEM) and a note on how it
    was read (", read as base64"; "" for RSA)."""
    validate_name(name)
    check_key_input(data)
    if kind == "aes":
        key, encoding = parse_aes(name, data)
        return key, f", read as {encoding}"
    return parse_rsa(name, data), ""


def export_text(key: MasterKey) -> bytes:
    """What an export writes: AES as one line of base64, RSA as a PKCS#8 PEM private
    key, KMS as its key id (the only one that is not a secret)."""
    if isinstance(key, KmsKey):
        return (key.key_id + "\n").encode()
    if isinstance(key, AesKey):
        return base64.b64encode(key.secret) + b"\n"
    return key.private_pem


def write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to a new 0600 file, then move it into place.

    Writing a fresh file (O_EXCL) and renaming it means an existing file's looser mode
    or another owner never applies to the secret, and no partial file is left.
    ConflictError if ``path`` exists and not ``overwrite``.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Never a device, FIFO or link: as root, the rename below would replace
        # /dev/null itself with a file holding the key.
        raise UsageError(
            f"{path} is not a regular file: the key is written only to a file",
            hint="Choose a file name (on the command line, leave out --file to print the "
            "key on stdout).",
        )
    if path.exists() and not overwrite:
        raise ConflictError(
            f"{path} already exists",
            hint="Choose another file, or allow replacing it (--yes on the command line).",
        )
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


def export_key(store: KeyStore, name: str, path: Path, *, overwrite: bool = False) -> Path:
    """Write key ``name`` of ``store`` to ``path`` (mode 0600, a backup that
    `import_key_file` and `s3vault key import` read back); the path written."""
    validate_name(name)
    write_private_file(path, export_text(store.get(name)), overwrite=overwrite)
    return path


def recovery_kit(store: KeyStore, name: str) -> tuple[MasterKey, str]:
    """Key ``name`` and its recovery kit (keys/recovery.py), with its creation date."""
    validate_name(name)
    key = store.get(name)
    info = key_info(store, name)
    return key, encode_recovery_kit(key, created=info.created if info else None)


def export_bytes(store: KeyStore, name: str, *, recovery: bool) -> tuple[MasterKey, bytes]:
    """Key ``name`` and what an export of it writes: its recovery kit, or `export_text`."""
    if recovery:
        key, kit = recovery_kit(store, name)
        return key, kit.encode("ascii")
    validate_name(name)
    key = store.get(name)
    return key, export_text(key)


def import_key_file(
    store: KeyStore, name: str, kind: ImportType, path: Path
) -> tuple[MasterKey, PutResult]:
    """Read a key file (an export, or raw/hex/base64 AES, PEM RSA) into ``store`` as
    ``name``; the key and "created" or "unchanged" (ConflictError: other material)."""
    key, _ = parse_import(name, kind, read_key_file(path))
    return key, import_key(store, key)


def key_info(store: KeyStore, name: str) -> KeyInfo | None:
    """The listed info of ``name``; KeyMissingError if the keyring has no such key
    (None: the key exists but the index lost it, after an interrupted write)."""
    for info in store.list():
        if info.name == name:
            return info
    store.get(name)
    return None
