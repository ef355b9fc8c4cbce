"""Streaming encryption and decryption of an object's body (FORMAT.md §4).

Bodies are one AES-GCM stream with the 16-byte tag at the end, no header and no
framing, so memory stays constant whatever the object size. Decryption output is
NOT authenticated until `ContentDecryptor.finalize` returns: the caller must hold
every byte back (temporary file, spool) until then.
"""

from __future__ import annotations

import hmac
import os
from abc import ABC, abstractmethod
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    AEADEncryptionContext,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from s3vault.crypto.constants import (
    AES_KEY_SIZES,
    CBC_IV_BYTES,
    CEK_CBC,
    CEK_GCM,
    DATA_KEY_BYTES,
    GCM_IV_BYTES,
    GCM_MAX_PLAINTEXT,
    GCM_TAG_BITS,
    GCM_TAG_BYTES,
    MESSAGE_ID_BYTES,
    SUITE_V3,
    V3_CONTENT_IV,
    V3_SUITE_ID_BYTES,
)
from s3vault.crypto.envelope import Envelope, Version
from s3vault.crypto.kdf import derive_v3_keys
from s3vault.errors import FormatError, IntegrityError, LegacyFormatError, RefusedError

_CBC_BLOCK = algorithms.AES.block_size // 8


def ciphertext_length(plaintext_length: int, content_cipher: str) -> int:
    """The body size for a plaintext size: +16 for GCM and V3, padded up for CBC."""
    if content_cipher in (CEK_GCM, SUITE_V3):
        return plaintext_length + GCM_TAG_BYTES
    if content_cipher == CEK_CBC:
        # PKCS#5 always pads: a full block when the length is already a multiple.
        return (plaintext_length // _CBC_BLOCK + 1) * _CBC_BLOCK
    raise ValueError(f"unknown content cipher {content_cipher!r}")


def plaintext_length(ciphertext_length: int, envelope: Envelope) -> int | None:
    """The plaintext size of a body, or None when the sizes cannot tell it.

    GCM and V3: the body minus the tag (None for a body shorter than a tag, which
    can only be a truncated object). CBC: x-amz-unencrypted-content-length if stored.
    """
    if envelope.tag_bytes:
        size = ciphertext_length - envelope.tag_bytes
        return size if size >= 0 else None
    return envelope.unencrypted_content_length


_UPDATE_SLACK = algorithms.AES.block_size // 8 - 1
"""Bytes ``update_into`` needs past the output of a chunk (a partial block)."""


class _OutputBuffer:
    """Runs a cipher context into one reused buffer and returns the output as bytes.

    cryptography's ``update()`` returns a freshly allocated buffer per call; for
    MiB-sized chunks that measured 3-5 times slower here than ``update_into`` a
    buffer that is kept (page faults on every call). Memory stays at one chunk.
    """

    _SLACK = _UPDATE_SLACK

    def __init__(self) -> None:
        self._buf = bytearray()

    def run(self, ctx: CipherContext, *pieces: bytes | memoryview) -> bytes:
        """Feed ``pieces`` to ``ctx`` in order; their joined output, copied once."""
        need = sum(len(piece) for piece in pieces) + self._SLACK
        if len(self._buf) < need:
            self._buf = bytearray(need)
        with memoryview(self._buf) as view:
            done = 0
            for piece in pieces:
                if piece:
                    done += ctx.update_into(piece, view[done:])
            return bytes(view[:done])

    def run_view(self, ctx: CipherContext, *pieces: bytes | memoryview) -> memoryview:
        """Like `run`, without the copy: a view valid until the next call."""
        need = sum(len(piece) for piece in pieces) + self._SLACK
        if len(self._buf) < need:
            self._buf = bytearray(need)
        view = memoryview(self._buf)
        done = 0
        for piece in pieces:
            if piece:
                done += ctx.update_into(piece, view[done:])
        return view[:done]


class ContentEncryptor:
    """Encrypts one body: made by `start_encryption`; `update` as often as needed, then `finalize`.

    The envelope fields come from its attributes: ``iv`` (V2), ``message_id`` and
    ``commitment`` (V3); ``content_cipher`` is x-amz-cek-alg / x-amz-c.
    """

    def __init__(
        self,
        version: Version,
        key: bytes,
        iv: bytes,
        aad: bytes | None,
        *,
        message_id: bytes | None = None,
        commitment: bytes | None = None,
    ) -> None:
        self.version = version
        self.content_cipher = SUITE_V3 if version is Version.V3 else CEK_GCM
        self.iv: bytes | None = None if version is Version.V3 else iv
        self.message_id = message_id
        self.commitment = commitment
        self._key, self._nonce, self._aad = key, iv, aad
        # Made on the first `update`: a body sealed whole (`encrypt_whole`) never
        # needs this streaming context, and building one costs more than a 4 KiB
        # file's encryption.
        self._context: AEADEncryptionContext | None = None
        self._sealed_whole = False  # its key and IV are used: never again
        self._pushed = 0
        self._out: _OutputBuffer | None = None

    @property
    def _ctx(self) -> AEADEncryptionContext:
        if self._context is None:
            if self._sealed_whole:
                raise ValueError("this encryptor sealed its whole body already")
            self._context = Cipher(algorithms.AES(self._key), modes.GCM(self._nonce)).encryptor()
            if self._aad is not None:
                self._context.authenticate_additional_data(self._aad)
            self._out = _OutputBuffer()
        return self._context

    def encrypt_whole(self, data: bytes) -> bytes:
        """The whole body at once: ciphertext of ``data`` then the tag, as `update`
        then `finalize` would give. Only on an encryptor that has not started."""
        if self._context is not None or self._sealed_whole:
            raise ValueError("encrypt_whole needs an encryptor that has not started")
        self._count(len(data))
        self._sealed_whole = True
        return AESGCM(self._key).encrypt(self._nonce, data, self._aad)

    def update(self, data: bytes) -> bytes:
        """Ciphertext for ``data`` (same length). RefusedError past the GCM limit."""
        self._count(len(data))
        ctx = self._ctx
        assert self._out is not None  # made with the context
        return self._out.run(ctx, data)

    def encrypt_into(self, data: bytes | bytearray | memoryview, out: memoryview) -> None:
        """Write the ciphertext of ``data`` into ``out[:len(data)]``, with no allocation.

        For streaming into pooled, exactly sized part buffers: cryptography's
        ``update_into`` wants 15 bytes of slack past the output, so the last block's
        worth is encrypted separately and copied in (GCM output length equals input).
        """
        data = memoryview(data)  # slices below must not copy
        n = len(data)
        if len(out) < n:
            raise ValueError("the output buffer is smaller than the input")
        self._count(n)
        split = max(n - GCM_TAG_BYTES, 0)
        if split:
            self._ctx.update_into(data[:split], out[: split + _UPDATE_SLACK])
        out[split:n] = self._ctx.update(data[split:n])

    def _count(self, n: int) -> None:
        self._pushed += n
        if self._pushed > GCM_MAX_PLAINTEXT:
            raise RefusedError(
                f"the object is larger than the {GCM_MAX_PLAINTEXT} bytes AES-GCM "
                "can encrypt under one key and IV",
                hint="Split the file into parts below about 64 GiB.",
            )

    def finalize(self) -> bytes:
        """The remaining ciphertext (none for GCM) followed by the 16-byte tag."""
        rest = self._ctx.finalize()
        return rest + self._ctx.tag


def start_encryption(
    version: Version,
    data_key: bytes,
    *,
    iv: bytes | None = None,
    message_id: bytes | None = None,
) -> ContentEncryptor:
    """Begin a V2 (AES-256-GCM, random IV) or V3 (suite 115, random message id) body.

    ``iv`` / ``message_id`` are random unless given, which only known-answer tests
    should do: reusing one with the same data key breaks GCM.
    """
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"the data key must be {DATA_KEY_BYTES} bytes, not {len(data_key)}")
    if version is Version.V2:
        iv = os.urandom(GCM_IV_BYTES) if iv is None else iv
        if len(iv) != GCM_IV_BYTES:
            raise ValueError(f"a V2 IV must be {GCM_IV_BYTES} bytes")
        return ContentEncryptor(version, data_key, iv, None)
    if version is Version.V3:
        message_id = os.urandom(MESSAGE_ID_BYTES) if message_id is None else message_id
        dek, commitment = derive_v3_keys(data_key, message_id)
        return ContentEncryptor(
            version,
            dek,
            V3_CONTENT_IV,
            V3_SUITE_ID_BYTES,
            message_id=message_id,
            commitment=commitment,
        )
    raise ValueError(f"s3vault does not write {version.value} objects")


class ContentDecryptor(ABC):
    """Decrypts one body fed in chunks of any size.

    `update` output is NOT yet authenticated: release nothing before `finalize`
    returns. `finalize` raises `IntegrityError` for a modified or truncated body.
    """

    @abstractmethod
    def update(self, data: bytes) -> bytes:
        """Plaintext for as much of ``data`` as can be decrypted yet (unauthenticated)."""

    @abstractmethod
    def finalize(self) -> bytes:
        """Verify the body; return the plaintext not yet returned by `update`."""

    def update_view(self, data: bytes) -> bytes | memoryview:
        """Like `update`, but may return a view that is valid only until the next call.

        Lets a caller that writes the output at once skip one copy per chunk.
        """
        return self.update(data)


class _GcmDecryptor(ContentDecryptor):
    def __init__(self, ctx: AEADDecryptionContext) -> None:
        self._ctx = ctx
        # The last 16 bytes seen so far: they may be the tag, so they are not
        # decrypted until more data shows they are not.
        self._held = b""
        self._out = _OutputBuffer()

    def update(self, data: bytes) -> bytes:
        return bytes(self.update_view(data))

    def update_view(self, data: bytes) -> memoryview:
        if len(data) >= GCM_TAG_BYTES:
            # The held bytes are ciphertext after all; the new chunk's last 16 are
            # held instead. The chunk is read through a view, never copied.
            view = memoryview(data)
            out = self._out.run_view(self._ctx, self._held, view[:-GCM_TAG_BYTES])
            self._held = bytes(view[-GCM_TAG_BYTES:])
            return out
        joined = self._held + data
        cut = max(len(joined) - GCM_TAG_BYTES, 0)
        self._held = joined[cut:]
        return self._out.run_view(self._ctx, joined[:cut])

    def finalize(self) -> bytes:
        if len(self._held) < GCM_TAG_BYTES:
            _content_failed()
        try:
            return self._ctx.finalize_with_tag(self._held)
        except InvalidTag:
            _content_failed()


class _CbcDecryptor(ContentDecryptor):
    def __init__(self, ctx: CipherContext) -> None:
        self._ctx = ctx
        self._unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()

    def update(self, data: bytes) -> bytes:
        return self._unpadder.update(self._ctx.update(data))

    def finalize(self) -> bytes:
        # A wrong key or a modified body shows only as bad padding here (CBC has no
        # tag); a truncated body as a partial block.
        try:
            return self._unpadder.update(self._ctx.finalize()) + self._unpadder.finalize()
        except ValueError:
            _content_failed()


def start_decryption(
    envelope: Envelope, data_key: bytes, *, allow_legacy: bool = False
) -> ContentDecryptor:
    """Begin decrypting the body of ``envelope`` with its unwrapped data key.

    V3: the key commitment is checked before the derived key is used
    (`IntegrityError` "key commitment mismatch"). CBC content (V1, or V2 with
    AES/CBC/PKCS5Padding) raises `LegacyFormatError` unless ``allow_legacy``.
    Legacy wraps are the caller's to gate; this only sees the content cipher.
    """
    cipher = envelope.content_cipher
    if cipher == SUITE_V3:
        if envelope.message_id is None or envelope.commitment is None:
            raise FormatError("invalid envelope: V3 needs x-amz-i and x-amz-d")
        _check_gcm_data_key(data_key)
        dek, commitment = derive_v3_keys(data_key, envelope.message_id)
        if not hmac.compare_digest(commitment, envelope.commitment):
            raise IntegrityError(
                "key commitment mismatch: the data key does not belong to this object",
                hint="The object's envelope was modified or the wrong data key was supplied.",
            )
        ctx = Cipher(algorithms.AES(dek), modes.GCM(V3_CONTENT_IV)).decryptor()
        ctx.authenticate_additional_data(V3_SUITE_ID_BYTES)
        return _GcmDecryptor(ctx)
    if cipher == CEK_GCM:
        if envelope.iv is None or len(envelope.iv) != GCM_IV_BYTES:
            raise FormatError(f"invalid envelope: x-amz-iv must be {GCM_IV_BYTES} bytes for GCM")
        if envelope.tag_length != GCM_TAG_BITS:
            raise FormatError(f"invalid envelope: x-amz-tag-len must be {GCM_TAG_BITS}")
        _check_gcm_data_key(data_key)
        ctx = Cipher(algorithms.AES(data_key), modes.GCM(envelope.iv)).decryptor()
        return _GcmDecryptor(ctx)
    if cipher == CEK_CBC:
        if not allow_legacy:
            raise LegacyFormatError(
                "the object was written in the legacy AES/CBC format, which is not "
                "authenticated; re-run with --allow-legacy to read it",
                hint="Re-upload it afterwards to store it in the authenticated format.",
            )
        if envelope.iv is None or len(envelope.iv) != CBC_IV_BYTES:
            raise FormatError(f"invalid envelope: x-amz-iv must be {CBC_IV_BYTES} bytes for CBC")
        if len(data_key) not in AES_KEY_SIZES:
            _content_failed()
        return _CbcDecryptor(Cipher(algorithms.AES(data_key), modes.CBC(envelope.iv)).decryptor())
    raise FormatError(f"invalid envelope: unknown content cipher {cipher!r}")


def _check_gcm_data_key(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_BYTES:
        _content_failed()


def _content_failed() -> NoReturn:
    raise IntegrityError(
        "content did not authenticate: the object was modified or truncated",
        hint="Nothing was written. Download it again; if this persists, the stored "
        "object or its envelope is damaged.",
    ) from None
