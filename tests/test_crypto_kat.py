"""Known-answer values of FORMAT.md §5: the format is what these bytes say it is."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from s3vault.crypto import (
    CEK_GCM,
    SUITE_V3,
    WRAP_AES_GCM,
    Envelope,
    Location,
    Version,
    aes_gcm_unwrap,
    aes_gcm_wrap,
    derive_v3_keys,
    parse_envelope,
    render_envelope,
    rsa_oaep_unwrap,
    rsa_oaep_wrap,
    start_decryption,
    start_encryption,
)

PDK = bytes(range(0x00, 0x20))
MESSAGE_ID = bytes(range(0x20, 0x3C))
V2_IV = bytes(range(0x40, 0x4C))
PLAINTEXT = b"Hello, s3vault!\n"

V3_MESSAGE_ID_B64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ow=="
V3_DEK = bytes.fromhex("08b9e427142f34dcdb3360db13f3d10e5499b1d89313d88adcdb8cb9c55188f4")
V3_COMMITMENT_B64 = "VosJl07PIgE1Pm++NwjXrGG85dMyJBXZ8Kiu5Q=="
V3_BODY = bytes.fromhex("b3ccf3ebf33e1e979d42900bd9de26c79a5cee8a1568e114fbf9f205aab1e139")
V2_IV_B64 = "QEFCQ0RFRkdISUpL"
V2_BODY = bytes.fromhex("aadcc24f4910a770feb27643f710325188f95a89d1a9224bde1398b78f13ad70")

KEK = b"\xaa" * 32
WRAP_IV = b"\xbb" * 12
WRAP_V2_B64 = "u7u7u7u7u7u7u7u7yhBJpXIYXN84naeW4WjUFaWR5SidJXua8GKhOGzDM7BMFLdldA0tNnN9qV4qVjdl"
WRAP_V3_B64 = "u7u7u7u7u7u7u7u7yhBJpXIYXN84naeW4WjUFaWR5SidJXua8GKhOGzDM7DfvKgyG7ed31HWcNPtczst"


def test_message_id_encoding() -> None:
    assert base64.b64encode(MESSAGE_ID).decode() == V3_MESSAGE_ID_B64
    assert base64.b64encode(V2_IV).decode() == V2_IV_B64


def test_v3_key_derivation() -> None:
    dek, commitment = derive_v3_keys(PDK, MESSAGE_ID)
    assert dek == V3_DEK
    assert base64.b64encode(commitment).decode() == V3_COMMITMENT_B64


def test_v3_body() -> None:
    enc = start_encryption(Version.V3, PDK, message_id=MESSAGE_ID)
    assert enc.content_cipher == SUITE_V3
    assert enc.iv is None
    assert enc.message_id == MESSAGE_ID
    assert enc.commitment is not None
    assert base64.b64encode(enc.commitment).decode() == V3_COMMITMENT_B64
    assert enc.update(PLAINTEXT) + enc.finalize() == V3_BODY


def test_v2_body() -> None:
    enc = start_encryption(Version.V2, PDK, iv=V2_IV)
    assert enc.content_cipher == CEK_GCM
    assert enc.iv == V2_IV
    assert enc.update(PLAINTEXT) + enc.finalize() == V2_BODY


@pytest.mark.parametrize(
    ("content_cipher", "expected"), [(CEK_GCM, WRAP_V2_B64), (SUITE_V3, WRAP_V3_B64)]
)
def test_aes_gcm_wrap(content_cipher: str, expected: str) -> None:
    edk = aes_gcm_wrap(KEK, PDK, content_cipher, iv=WRAP_IV)
    assert base64.b64encode(edk).decode() == expected
    assert aes_gcm_unwrap(KEK, base64.b64decode(expected), content_cipher) == PDK


def test_v3_known_envelope_decrypts() -> None:
    """The §5 values as a reader meets them: parsed from metadata, then decrypted."""
    metadata = {
        "x-amz-c": "115",
        "x-amz-3": WRAP_V3_B64,
        "x-amz-w": "02",
        "x-amz-m": "{}",
        "x-amz-d": V3_COMMITMENT_B64,
        "x-amz-i": V3_MESSAGE_ID_B64,
    }
    env = parse_envelope(metadata)
    data_key = aes_gcm_unwrap(KEK, env.encrypted_data_key, env.content_cipher)
    dec = start_decryption(env, data_key)
    assert dec.update(V3_BODY) + dec.finalize() == PLAINTEXT
    assert render_envelope(env) == (metadata, None)


def test_v2_known_envelope_renders() -> None:
    env = Envelope(
        version=Version.V2,
        location=Location.METADATA,
        content_cipher=CEK_GCM,
        wrap_algorithm=WRAP_AES_GCM,
        encrypted_data_key=base64.b64decode(WRAP_V2_B64),
        description={},
        iv=V2_IV,
        tag_length=128,
    )
    metadata, instruction = render_envelope(env)
    assert instruction is None
    assert metadata == {
        "x-amz-key-v2": WRAP_V2_B64,
        "x-amz-iv": V2_IV_B64,
        "x-amz-cek-alg": "AES/GCM/NoPadding",
        "x-amz-wrap-alg": "AES/GCM",
        "x-amz-matdesc": "{}",
        "x-amz-tag-len": "128",
    }
    dec = start_decryption(parse_envelope(metadata), PDK)
    assert dec.update(V2_BODY) + dec.finalize() == PLAINTEXT


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("content_cipher", "pre_image"),
    [
        (CEK_GCM, b"\x20" + PDK + b"AES/GCM/NoPadding"),
        (SUITE_V3, b"\x20" + PDK + b"115"),
    ],
)
def test_rsa_oaep_pre_image(
    rsa_key: rsa.RSAPrivateKey, content_cipher: str, pre_image: bytes
) -> None:
    edk = rsa_oaep_wrap(rsa_key.public_key(), PDK, content_cipher)
    oaep_sha1 = padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303 - fixed by the wire format
        algorithm=hashes.SHA1(),  # noqa: S303
        label=None,
    )
    assert rsa_key.decrypt(edk, oaep_sha1) == pre_image
    assert rsa_oaep_unwrap(rsa_key, edk, content_cipher) == PDK
