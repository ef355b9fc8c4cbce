"""The file keystore's format: a JSON header line, then one AES-256-GCM ciphertext.

::

    {"format":"s3vault-keystore","version":1,"kdf":{...},"check":B64,"nonce":B64}\\n
    CIPHERTEXT (binary, GCM tag at the end)

The header is the GCM associated data, so a changed header fails like a changed
ciphertext. The plaintext is the JSON of every record (``{"v": 1, "entries": {NAME:
record, "__index__": index}}``).

The key: Argon2id (RFC 9106's second recommended parameters: 64 MiB, 3 passes, 4 lanes;
about 0.15 s here) stretches the passphrase with the header's salt into 64 bytes; the
encryption key and a *check* value are derived from those with HMAC-SHA256 under
distinct labels. The check, stored in the header, tells a wrong passphrase (exit 5)
from a damaged file (exit 4); it reveals nothing the GCM tag would not (both let an
attacker test a guess, at the cost of one Argon2id run).

Pure: no I/O. A derived key is cached per process (by path, salt and parameters, and
the passphrase *source*: a variable's name, a file's path, a command) so that a process
reads the passphrase and runs the KDF once per file; only a key whose check matched is
cached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from s3vault.errors import IntegrityError, KeyMissingError

FORMAT = "s3vault-keystore"
VERSION = 1
KDF_PARAMS = {"name": "argon2id", "memory_cost": 65536, "iterations": 3, "lanes": 4}
# Bounds on what a header may ask for: a crafted file must not make us allocate
# gigabytes or loop for minutes before the check fails.
_MAX_MEMORY_KIB = 4 * 1024 * 1024
_MAX_ITERATIONS = 64
_MAX_LANES = 64


class WrongPassphraseError(KeyMissingError):
    """The passphrase does not open the file keystore (exit 5: its keys are not available)."""

    title = "Wrong passphrase"


class DamagedKeystoreError(IntegrityError):
    """The file keystore is not what s3vault wrote (exit 4): truncated, edited, not ours."""

    title = "Damaged keystore"


@dataclass(frozen=True)
class Header:
    kdf: dict[str, Any]
    check: bytes
    nonce: bytes

    @property
    def salt(self) -> bytes:
        return base64.b64decode(self.kdf["salt"])

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "kdf": self.kdf,
                "check": _b64(self.check),
                "cipher": "AES-256-GCM",
                "nonce": _b64(self.nonce),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class FileKey:
    """What a passphrase gives for one file: the encryption key and the check value."""

    kdf: dict[str, Any]
    aes_key: bytes
    check: bytes


_CACHE: dict[tuple[str, str, str], FileKey] = {}
_CACHE_LOCK = threading.Lock()


def new_file_key(place: str, source: str, passphrase: str) -> FileKey:
    """A key for a new file at ``place`` (fresh salt, default parameters); ``source``
    names where the passphrase came from (for the cache)."""
    kdf = dict(KDF_PARAMS, salt=_b64(os.urandom(16)))
    key = _derive(kdf, passphrase)
    with _CACHE_LOCK:
        _CACHE[(place, _params_id(kdf), source)] = key
    return key


def file_key(
    place: str, header: Header, source: str, passphrase: Callable[[], str], *, where: str
) -> FileKey:
    """The key that opens ``header``'s file: cached, or derived from ``passphrase()``.

    WrongPassphraseError if the passphrase's check value differs from the header's.
    """
    cache_id = (place, _params_id(header.kdf), source)
    with _CACHE_LOCK:
        cached = _CACHE.get(cache_id)
    if cached is not None and hmac.compare_digest(cached.check, header.check):
        return cached
    key = _derive(header.kdf, passphrase())
    if not hmac.compare_digest(key.check, header.check):
        raise WrongPassphraseError(
            f"the passphrase does not open {where}",
            hint="Check the passphrase source in the config (keystore.passphrase_env, "
            "keystore.passphrase_file or keystore.passphrase_command), or restore the "
            "file from a backup.",
        )
    with _CACHE_LOCK:
        _CACHE[cache_id] = key
    return key


def seal(key: FileKey, plaintext: bytes) -> bytes:
    """The file's bytes for ``plaintext`` under ``key``, with a fresh nonce."""
    nonce = os.urandom(12)
    header = Header(key.kdf, key.check, nonce).encode()
    return header + b"\n" + AESGCM(key.aes_key).encrypt(nonce, plaintext, header)


def read_header(data: bytes, *, where: str) -> tuple[Header, bytes, bytes]:
    """The header, its bytes (the AAD) and the ciphertext; DamagedKeystoreError if none."""
    raw, newline, ciphertext = data.partition(b"\n")
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            raise ValueError("not a keystore")
        if fields.get("version") != VERSION:
            raise DamagedKeystoreError(
                f"{where} has format version {fields.get('version')!r}, which this "
                f"s3vault does not read (it reads version {VERSION})",
                hint="Use the s3vault version that wrote it.",
            )
        kdf = fields["kdf"]
        header = Header(kdf, _unb64(fields["check"]), _unb64(fields["nonce"]))
        _check_kdf(kdf)
        if not newline or len(header.nonce) != 12 or len(header.salt) < 16:
            raise ValueError("bad sizes")
    except (ValueError, KeyError, TypeError):
        raise damaged(where, "its header is unreadable") from None
    return header, raw, ciphertext


def unseal(key: FileKey, header: Header, aad: bytes, ciphertext: bytes, *, where: str) -> bytes:
    """The plaintext; DamagedKeystoreError if the ciphertext or header was changed."""
    try:
        return AESGCM(key.aes_key).decrypt(header.nonce, ciphertext, aad)
    except InvalidTag:
        raise damaged(where, "its content does not authenticate") from None


def damaged(where: str, why: str) -> DamagedKeystoreError:
    return DamagedKeystoreError(
        f"{where} is damaged: {why} (truncated, or edited outside s3vault)",
        hint="Restore it from a backup, or re-import your keys from their backups into a "
        "new keystore file.",
    )


def _derive(kdf: dict[str, Any], passphrase: str) -> FileKey:
    stretched = Argon2id(
        salt=base64.b64decode(kdf["salt"]),
        length=64,
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
        memory_cost=int(kdf["memory_cost"]),
    ).derive(passphrase.encode())

    def label(name: bytes) -> bytes:
        return hmac.new(stretched, b"s3vault-keystore " + name, hashlib.sha256).digest()

    return FileKey(kdf=dict(kdf), aes_key=label(b"encryption key"), check=label(b"check")[:16])


def _check_kdf(kdf: Any) -> None:
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        raise ValueError("unknown KDF")
    memory, iterations, lanes = (int(kdf[k]) for k in ("memory_cost", "iterations", "lanes"))
    if not (1 <= lanes <= _MAX_LANES and 1 <= iterations <= _MAX_ITERATIONS):
        raise ValueError("KDF parameters out of range")
    if not 8 * lanes <= memory <= _MAX_MEMORY_KIB:
        raise ValueError("KDF parameters out of range")
    base64.b64decode(kdf["salt"], validate=True)


def _params_id(kdf: dict[str, Any]) -> str:
    return json.dumps(kdf, sort_keys=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64")
    return base64.b64decode(text, validate=True)
