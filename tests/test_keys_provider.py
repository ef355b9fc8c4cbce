"""KeyProvider: real keyring, moto's KMS endpoint, and objects written by the Ruby client."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backends import fail

from s3vault.crypto.constants import (
    CEK_CBC,
    CEK_GCM,
    RESERVED_CONTEXT_KEY,
    SUITE_V3,
    WRAP_AES_GCM,
    WRAP_KMS_CONTEXT,
    WRAP_KMS_LEGACY,
    WRAP_RSA_OAEP_SHA1,
)
from s3vault.crypto.envelope import Envelope, Location, Version, parse_envelope
from s3vault.crypto.wrap import aes_gcm_unwrap
from s3vault.errors import (
    AccessDeniedError,
    FormatError,
    IntegrityError,
    KeyMissingError,
    LegacyFormatError,
    UnreachableError,
    UsageError,
)
from s3vault.keys.kms import KmsClient
from s3vault.keys.material import AesKey, KmsKey, RsaKey, generate_key, parse_aes, parse_rsa
from s3vault.keys.provider import EncryptionMaterials, KeyProvider
from s3vault.keys.store import KeyStore

VERSION_OF = {CEK_GCM: Version.V2, SUITE_V3: Version.V3}


@pytest.fixture(scope="module")
def rsa_key() -> RsaKey:
    key = generate_key("rsa", "rsa2048")
    assert isinstance(key, RsaKey)
    return key


@pytest.fixture
def store(keyring_service: str) -> KeyStore:
    return KeyStore(keyring_service)


@pytest.fixture
def provider(store: KeyStore, kms_client: Any) -> KeyProvider:
    return KeyProvider(store, kms_client=lambda: kms_client)


def envelope_of(materials: EncryptionMaterials, content_cipher: str) -> Envelope:
    """The envelope a writer would store for these materials (content fields dummy)."""
    return Envelope(
        version=VERSION_OF[content_cipher],
        location=Location.METADATA,
        content_cipher=content_cipher,
        wrap_algorithm=materials.wrap_algorithm,
        encrypted_data_key=materials.encrypted_data_key,
        description=dict(materials.description),
        iv=bytes(12) if content_cipher == CEK_GCM else None,
        message_id=bytes(28) if content_cipher == SUITE_V3 else None,
        commitment=bytes(28) if content_cipher == SUITE_V3 else None,
        tag_length=128,
    )


# --- raw keys: round trips -----------------------------------------------------------


@pytest.mark.parametrize("content_cipher", [CEK_GCM, SUITE_V3])
@pytest.mark.parametrize("kind", ["aes", "rsa"])
def test_raw_key_round_trip(
    provider: KeyProvider, store: KeyStore, rsa_key: RsaKey, kind: str, content_cipher: str
) -> None:
    key = AesKey("k", os.urandom(32)) if kind == "aes" else RsaKey("k", rsa_key.private_pem)
    store.put(key)
    materials = provider.encryption_materials(content_cipher, key_name="k", context={"a": "b"})
    assert len(materials.data_key) == 32
    assert materials.key_name == "k"
    assert materials.description == {"s3vault-key": "k", "a": "b"}
    assert materials.wrap_algorithm == (WRAP_AES_GCM if kind == "aes" else WRAP_RSA_OAEP_SHA1)
    if kind == "aes":
        assert len(materials.encrypted_data_key) == 60
    assert materials.data_key.hex() not in repr(materials)
    envelope = envelope_of(materials, content_cipher)
    assert provider.decrypt_data_key(envelope) == (materials.data_key, "k")
    assert provider.described_key(envelope.description) == key


@pytest.mark.parametrize("kind", ["aes", "rsa"])
def test_a_v2_wrap_does_not_open_as_v3(
    provider: KeyProvider, store: KeyStore, rsa_key: RsaKey, kind: str
) -> None:
    store.put(AesKey("k", os.urandom(32)) if kind == "aes" else RsaKey("k", rsa_key.private_pem))
    materials = provider.encryption_materials(CEK_GCM, key_name="k")
    envelope = replace(envelope_of(materials, CEK_GCM), content_cipher=SUITE_V3)
    with pytest.raises(IntegrityError, match="key 'k' did not open"):
        provider.decrypt_data_key(envelope)


def test_the_current_key_encrypts_when_none_is_named(store: KeyStore, kms_client: Any) -> None:
    provider = KeyProvider(lambda: store, kms_client=lambda: kms_client)
    with pytest.raises(KeyMissingError) as raised:
        provider.encryption_materials(CEK_GCM)
    assert "s3vault key generate" in (raised.value.hint or "")
    store.put(AesKey("first", os.urandom(32)))
    store.put(AesKey("second", os.urandom(32)))
    assert provider.encryption_materials(CEK_GCM).key_name == "first"
    store.set_current("second")
    assert provider.encryption_materials(SUITE_V3).key_name == "second"
    configured = KeyProvider(store, kms_client=lambda: kms_client, default_key="first")
    assert configured.encryption_materials(CEK_GCM).key_name == "first"
    assert configured.encryption_materials(CEK_GCM, key_name="second").key_name == "second"
    with pytest.raises(KeyMissingError):
        provider.encryption_materials(CEK_GCM, key_name="third")


def test_reserved_description_keys_are_refused(provider: KeyProvider, store: KeyStore) -> None:
    store.put(AesKey("k", os.urandom(32)))
    for reserved in ("s3vault-key", RESERVED_CONTEXT_KEY):
        with pytest.raises(UsageError):
            provider.encryption_materials(CEK_GCM, key_name="k", context={reserved: "x"})


# --- raw keys: which key opens an object -----------------------------------------------


def test_the_key_named_by_the_description_is_tried_first(
    provider: KeyProvider, store: KeyStore
) -> None:
    store.put(AesKey("a", os.urandom(32)))
    store.put(AesKey("b", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="b")
    assert provider.decrypt_data_key(envelope_of(materials, CEK_GCM))[1] == "b"


def test_other_keys_of_the_type_are_tried_for_authenticated_wraps(
    provider: KeyProvider, store: KeyStore, rsa_key: RsaKey
) -> None:
    secret = os.urandom(32)
    store.put(AesKey("writer", secret))
    materials = provider.encryption_materials(CEK_GCM, key_name="writer")
    store.delete("writer")
    store.put(RsaKey("rsa", rsa_key.private_pem))
    store.put(AesKey("other", os.urandom(32)))
    store.put(AesKey("same-material", secret))
    envelope = envelope_of(materials, CEK_GCM)
    assert provider.decrypt_data_key(envelope) == (materials.data_key, "same-material")
    # Also with no description at all (the Ruby and Java writers store {}).
    bare = replace(envelope, description={})
    assert provider.decrypt_data_key(bare) == (materials.data_key, "same-material")


def test_no_key_opens_is_key_missing(provider: KeyProvider, store: KeyStore) -> None:
    store.put(AesKey("writer", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="writer", context={"p": "q"})
    store.delete("writer")
    store.put(AesKey("other", os.urandom(32)))
    envelope = envelope_of(materials, CEK_GCM)
    with pytest.raises(KeyMissingError, match="it names key 'writer'"):
        provider.decrypt_data_key(envelope)
    with pytest.raises(KeyMissingError, match=re.escape('its description is {"p": "q"}')):
        provider.decrypt_data_key(replace(envelope, description={"p": "q"}))
    assert provider.described_key(envelope.description) is None


def test_the_named_key_with_other_material_is_an_integrity_error(
    provider: KeyProvider, store: KeyStore
) -> None:
    store.put(AesKey("k", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="k")
    store.put(AesKey("k", os.urandom(32)), force=True)
    store.put(AesKey("unrelated", os.urandom(32)))
    with pytest.raises(IntegrityError) as raised:
        provider.decrypt_data_key(envelope_of(materials, CEK_GCM))
    assert "'k'" in raised.value.message
    assert not isinstance(raised.value, KeyMissingError)


def test_a_tampered_edk_is_an_integrity_error(provider: KeyProvider, store: KeyStore) -> None:
    store.put(AesKey("k", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="k")
    edk = bytearray(materials.encrypted_data_key)
    edk[20] ^= 1
    envelope = replace(envelope_of(materials, CEK_GCM), encrypted_data_key=bytes(edk))
    with pytest.raises(IntegrityError):
        provider.decrypt_data_key(envelope)


def test_the_user_named_key_opens_an_object_that_names_none(
    provider: KeyProvider, store: KeyStore, rsa_key: RsaKey
) -> None:
    store.put(AesKey("k", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="k")
    envelope = replace(envelope_of(materials, CEK_GCM), description={})
    assert provider.decrypt_data_key(envelope, key_name="k") == (materials.data_key, "k")
    store.put(RsaKey("rsa", rsa_key.private_pem))
    # The user named a key of the wrong type: still found by trying the AES keys.
    assert provider.decrypt_data_key(envelope, key_name="rsa")[1] == "k"
    store.delete("k")
    with pytest.raises(KeyMissingError, match="'rsa' cannot open"):
        provider.decrypt_data_key(envelope, key_name="rsa")
    with pytest.raises(KeyMissingError, match="no key named 'nope'"):
        provider.decrypt_data_key(envelope, key_name="nope")


@pytest.mark.parametrize("name", ["../etc/passwd", "kms:alias/x", "__index__", "", "x" * 500])
def test_a_hostile_description_name_is_no_match(
    provider: KeyProvider, store: KeyStore, name: str
) -> None:
    store.put(AesKey("k", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name="k")
    envelope = replace(envelope_of(materials, CEK_GCM), description={"s3vault-key": name})
    assert provider.described_key(envelope.description) is None
    assert provider.decrypt_data_key(envelope)[1] == "k"


# --- objects written by the official Ruby client (tests/vectors) --------------------------


def vector(vectors_dir: Path, name: str) -> tuple[Envelope, bytes, bytes]:
    """(envelope, body, plaintext) of one vector object."""
    entry = {e["name"]: e for e in json.loads((vectors_dir / "manifest.json").read_text())}[name]
    folder = vectors_dir / "objects" / name
    metadata = json.loads((folder / "metadata.json").read_text())
    instruction = None
    if (folder / "instruction.json").exists():
        instruction = json.loads((folder / "instruction.json").read_text())
    envelope = parse_envelope(metadata, instruction)
    body = (folder / "body.bin").read_bytes()
    return envelope, body, (vectors_dir / entry["plaintext"]).read_bytes()


def decrypt_body(envelope: Envelope, data_key: bytes, body: bytes) -> bytes:
    assert envelope.iv is not None
    if envelope.content_cipher == CEK_GCM:
        return AESGCM(data_key).decrypt(envelope.iv, body, None)
    decryptor = Cipher(algorithms.AES(data_key), modes.CBC(envelope.iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(body) + decryptor.finalize()) + unpadder.finalize()


@pytest.fixture
def vector_keys(store: KeyStore, vectors_dir: Path) -> KeyStore:
    for stem in ("aes256-a", "aes256-b", "aes128-a"):
        store.put(parse_aes(stem, (vectors_dir / "keys" / f"{stem}.key").read_bytes())[0])
    for stem in ("rsa2048-a", "rsa2048-b"):
        store.put(parse_rsa(stem, (vectors_dir / "keys" / f"{stem}.pem").read_bytes()))
    return store


@pytest.mark.parametrize(
    ("name", "opener"),
    [
        ("v2-aesgcm-aes256a-meta--p17", "aes256-a"),
        ("v2-aesgcm-aes256a-instr--utf8-1000", "aes256-a"),
        ("v2-aesgcm-aes128a-meta--p15", "aes128-a"),
        ("v2-aesgcm-keyprovider-aes256b-meta--p16", "aes256-b"),
        ("v2-rsaoaep-rsa2048a-meta--p16", "rsa2048-a"),
        ("v2-rsaoaep-rsa2048a-instr--one", "rsa2048-a"),
    ],
)
def test_ruby_v2_objects_open_by_trying_your_keys(
    provider: KeyProvider, vector_keys: KeyStore, vectors_dir: Path, name: str, opener: str
) -> None:
    envelope, body, plaintext = vector(vectors_dir, name)
    data_key, opened_by = provider.decrypt_data_key(envelope)
    assert opened_by == opener
    assert decrypt_body(envelope, data_key, body) == plaintext


@pytest.mark.parametrize(
    ("name", "right", "wrong"),
    [
        ("v1-aesecb-aes256a-meta--p16", "aes256-a", "aes256-b"),
        ("v1-aesecb-aes256a-instr--p17", "aes256-a", "aes128-a"),
        ("v1-rsapkcs1-rsa2048a-meta--p16", "rsa2048-a", "rsa2048-b"),
    ],
)
def test_legacy_v1_objects_need_the_opt_in_and_a_named_key(
    provider: KeyProvider,
    vector_keys: KeyStore,
    vectors_dir: Path,
    name: str,
    right: str,
    wrong: str,
) -> None:
    envelope, body, plaintext = vector(vectors_dir, name)
    with pytest.raises(LegacyFormatError, match="--allow-legacy"):
        provider.decrypt_data_key(envelope, key_name=right)
    # Never guessed, although the right key is in the store.
    with pytest.raises(KeyMissingError, match="--key"):
        provider.decrypt_data_key(envelope, allow_legacy=True)
    with pytest.raises(IntegrityError):
        provider.decrypt_data_key(envelope, key_name=wrong, allow_legacy=True)
    data_key, opened_by = provider.decrypt_data_key(envelope, key_name=right, allow_legacy=True)
    assert opened_by == right
    assert decrypt_body(envelope, data_key, body) == plaintext


# --- KMS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_cipher", [CEK_GCM, SUITE_V3])
def test_kms_round_trip_with_context(
    provider: KeyProvider, store: KeyStore, kms_key_id: str, content_cipher: str
) -> None:
    store.put(KmsKey("prod", kms_key_id))
    materials = provider.encryption_materials(
        content_cipher, key_name="prod", context={"project": "atlas"}
    )
    assert materials.wrap_algorithm == WRAP_KMS_CONTEXT
    assert materials.description == {"project": "atlas", RESERVED_CONTEXT_KEY: content_cipher}
    envelope = envelope_of(materials, content_cipher)
    assert provider.decrypt_data_key(envelope) == (materials.data_key, None)
    assert provider.decrypt_data_key(envelope, context={"project": "atlas"})[0] == (
        materials.data_key
    )
    assert provider.decrypt_data_key(envelope, key_name="prod") == (materials.data_key, "prod")
    with pytest.raises(IntegrityError) as raised:
        provider.decrypt_data_key(envelope, context={"project": "other"})
    assert '"project": "atlas"' in raised.value.message
    with pytest.raises(IntegrityError):
        provider.decrypt_data_key(envelope, context={})


def test_kms_refuses_an_altered_stored_context(provider: KeyProvider, kms_key_id: str) -> None:
    materials = provider.encryption_materials(CEK_GCM, key_name=f"kms:{kms_key_id}")
    envelope = envelope_of(materials, CEK_GCM)
    altered = replace(envelope, description={**envelope.description, "extra": "x"})
    with pytest.raises(IntegrityError, match="encryption context"):
        provider.decrypt_data_key(altered)
    downgraded = replace(envelope, content_cipher=CEK_CBC)
    with pytest.raises(FormatError, match="content cipher"):
        provider.decrypt_data_key(downgraded, allow_legacy=True)


def test_kms_keys_given_as_kms_id_need_no_keyring(
    keyring_service: str, kms_client: Any, kms_key_id: str
) -> None:
    no_keyring = KeyStore(keyring_service, backend=fail.Keyring())
    provider = KeyProvider(no_keyring, kms_client=lambda: kms_client)
    materials = provider.encryption_materials(SUITE_V3, key_name=f"kms:{kms_key_id}")
    assert materials.key_name == f"kms:{kms_key_id}"
    envelope = envelope_of(materials, SUITE_V3)
    assert provider.decrypt_data_key(envelope) == (materials.data_key, None)
    assert provider.decrypt_data_key(envelope, key_name=f"kms:{kms_key_id}")[0] == (
        materials.data_key
    )


def test_kms_with_another_kms_key_named(
    provider: KeyProvider, kms_client: Any, kms_key_id: str
) -> None:
    other = kms_client.create_key()["KeyMetadata"]["KeyId"]
    materials = provider.encryption_materials(CEK_GCM, key_name=f"kms:{kms_key_id}")
    # AWS answers IncorrectKeyException (KeyMissingError); moto AccessDeniedException.
    with pytest.raises((KeyMissingError, AccessDeniedError)):
        provider.decrypt_data_key(envelope_of(materials, CEK_GCM), key_name=f"kms:{other}")


def test_a_raw_key_cannot_open_a_kms_object(
    provider: KeyProvider, store: KeyStore, kms_key_id: str
) -> None:
    store.put(AesKey("aes", os.urandom(32)))
    materials = provider.encryption_materials(CEK_GCM, key_name=f"kms:{kms_key_id}")
    with pytest.raises(UsageError, match="AWS KMS"):
        provider.decrypt_data_key(envelope_of(materials, CEK_GCM), key_name="aes")


def test_kms_reserved_context_keys_are_refused(provider: KeyProvider, kms_key_id: str) -> None:
    with pytest.raises(UsageError, match="reserved"):
        provider.encryption_materials(
            CEK_GCM, key_name=f"kms:{kms_key_id}", context={RESERVED_CONTEXT_KEY: "x"}
        )


def test_an_unknown_kms_key_is_key_missing(provider: KeyProvider) -> None:
    with pytest.raises(KeyMissingError, match="does not exist"):
        provider.encryption_materials(CEK_GCM, key_name="kms:11111111-2222-3333-4444-555555555555")


def test_legacy_kms_wrap_needs_the_opt_in(
    provider: KeyProvider, kms_client: Any, kms_key_id: str
) -> None:
    data_key = os.urandom(32)
    context = {"kms_cmk_id": kms_key_id}
    blob = kms_client.encrypt(KeyId=kms_key_id, Plaintext=data_key, EncryptionContext=context)
    envelope = Envelope(
        version=Version.V2,
        location=Location.METADATA,
        content_cipher=CEK_CBC,
        wrap_algorithm=WRAP_KMS_LEGACY,
        encrypted_data_key=blob["CiphertextBlob"],
        description=context,
        iv=bytes(16),
    )
    with pytest.raises(LegacyFormatError, match="legacy kms key wrap"):
        provider.decrypt_data_key(envelope)
    assert provider.decrypt_data_key(envelope, allow_legacy=True) == (data_key, None)


def test_an_unreachable_kms_is_reported(store: KeyStore) -> None:
    def client() -> Any:
        return boto3.client(
            "kms",
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=2),
        )

    provider = KeyProvider(store, kms_client=client)
    with pytest.raises(UnreachableError, match="cannot reach KMS"):
        provider.encryption_materials(CEK_GCM, key_name="kms:alias/anything")


def test_kms_client_wrapper_round_trip(kms_client: Any, kms_key_id: str) -> None:
    kms = KmsClient(lambda: kms_client)
    data_key, blob = kms.generate_data_key(kms_key_id, {"a": "b"})
    assert kms.decrypt(blob, {"a": "b"}) == data_key
    assert kms.decrypt(blob, {"a": "b"}, key_id=kms_key_id) == data_key
    rewrapped = kms.encrypt(kms_key_id, data_key, {"c": "d"})
    assert kms.decrypt(rewrapped, {"c": "d"}) == data_key
    with pytest.raises(IntegrityError):
        kms.decrypt(blob, {"a": "c"})
    assert base64.b64encode(data_key).decode() not in repr(kms)


# ---- the lookups key rotation uses ------------------------------------------------------


def test_raw_key_is_a_stored_raw_key_or_none(
    provider: KeyProvider, store: KeyStore, kms_key_id: str
) -> None:
    key = AesKey("laptop", os.urandom(32))
    store.put(key)
    store.put(KmsKey("prod", kms_key_id))
    assert provider.raw_key("laptop") == key
    # Names from a description are whatever the writer chose: no match, no error.
    for name in ("prod", "missing", "../../etc", "", 42, None):
        assert provider.raw_key(name) is None


def test_resolve_key_tells_kms_keys_apart_by_arn(
    provider: KeyProvider, store: KeyStore, kms_client: Any, kms_key_id: str
) -> None:
    arn = kms_client.describe_key(KeyId=kms_key_id)["KeyMetadata"]["Arn"]
    alias = f"alias/rotation-{os.urandom(4).hex()}"
    kms_client.create_alias(AliasName=alias, TargetKeyId=kms_key_id)
    other = kms_client.create_key()["KeyMetadata"]["KeyId"]
    store.put(KmsKey("prod", kms_key_id))
    store.put(AesKey("a", os.urandom(32)))
    store.put(AesKey("b", os.urandom(32)))

    names = ("prod", f"kms:{kms_key_id}", f"kms:{alias}", f"kms:{arn}")
    resolved = [provider.resolve_key(name) for name in names]
    assert [r.name for r in resolved] == list(names)
    assert all(r.is_kms and r.arn == arn for r in resolved)
    assert all(r.same_key_as(resolved[0]) for r in resolved)
    assert not provider.resolve_key(f"kms:{other}").same_key_as(resolved[0])

    a = provider.resolve_key("a")
    assert not a.is_kms and a.arn is None and a.key == store.get("a")
    assert a.same_key_as(provider.resolve_key("a"))
    assert not a.same_key_as(provider.resolve_key("b"))
    assert not a.same_key_as(resolved[0]) and not resolved[0].same_key_as(a)
    with pytest.raises(KeyMissingError):
        provider.resolve_key("missing")


def test_open_with_opens_only_with_exactly_that_key(
    provider: KeyProvider, store: KeyStore, kms_client: Any, kms_key_id: str, rsa_key: RsaKey
) -> None:
    store.put(AesKey("a", os.urandom(32)))
    store.put(AesKey("b", os.urandom(32)))
    store.put(RsaKey("r", rsa_key.private_pem))
    other = kms_client.create_key()["KeyMetadata"]["KeyId"]
    a, b, r = (provider.resolve_key(name) for name in ("a", "b", "r"))
    kms, kms_other = provider.resolve_key(f"kms:{kms_key_id}"), provider.resolve_key(f"kms:{other}")

    raw = provider.encryption_materials(SUITE_V3, key_name="a")
    raw_envelope = envelope_of(raw, SUITE_V3)
    assert provider.open_with(a, raw_envelope) == raw.data_key
    for not_it in (b, r, kms):
        assert provider.open_with(not_it, raw_envelope) is None

    wrapped = provider.encryption_materials(CEK_GCM, key_name=f"kms:{kms_key_id}")
    kms_envelope = envelope_of(wrapped, CEK_GCM)
    assert provider.open_with(kms, kms_envelope) == wrapped.data_key
    for not_it in (kms_other, a, r):
        assert provider.open_with(not_it, kms_envelope) is None


def test_context_of_is_what_the_writer_gave_and_a_rewrap_keeps_it(
    provider: KeyProvider, store: KeyStore, kms_key_id: str
) -> None:
    store.put(AesKey("a", os.urandom(32)))
    context = {"project": "atlas", "n": "ü"}
    for cipher, key_name in ((SUITE_V3, "a"), (CEK_GCM, f"kms:{kms_key_id}")):
        materials = provider.encryption_materials(cipher, key_name=key_name, context=context)
        envelope = envelope_of(materials, cipher)
        assert provider.context_of(envelope) == context
        again = provider.wrap_data_key(
            materials.data_key,
            cipher,
            provider.named_key(key_name),
            context=provider.context_of(envelope),
        )
        assert again.description == materials.description
    assert provider.context_of(replace(envelope, description={})) == {}


# ---- remembering keys for a run ---------------------------------------------------------


def test_a_run_reads_each_key_from_the_keyring_once(
    provider: KeyProvider, store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(AesKey("run", os.urandom(32)))
    reads: list[str] = []
    real_get = store.get

    def counting_get(name: str) -> Any:
        reads.append(name)
        return real_get(name)

    monkeypatch.setattr(store, "get", counting_get)
    with provider.remembering_keys():
        wraps = [provider.encryption_materials(SUITE_V3, key_name="run") for _ in range(20)]
    assert reads == ["run"]
    # Each object still gets its own data key.
    assert len({m.data_key for m in wraps}) == 20
    # Outside a block nothing is remembered.
    provider.encryption_materials(SUITE_V3, key_name="run")
    provider.encryption_materials(SUITE_V3, key_name="run")
    assert reads == ["run"] * 3


def test_a_key_replaced_between_runs_is_used_by_the_next_run(
    provider: KeyProvider, store: KeyStore
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    store.put(AesKey("agent", old))
    with provider.remembering_keys():
        first = provider.encryption_materials(SUITE_V3, key_name="agent")
        store.put(AesKey("agent", new), force=True)
        # Within the run the key read at its start stays in use...
        same_run = provider.encryption_materials(SUITE_V3, key_name="agent")
    # ...and the next run reads the replacement.
    with provider.remembering_keys():
        next_run = provider.encryption_materials(SUITE_V3, key_name="agent")
    assert aes_gcm_unwrap(old, first.encrypted_data_key, SUITE_V3) == first.data_key
    assert aes_gcm_unwrap(old, same_run.encrypted_data_key, SUITE_V3) == same_run.data_key
    assert aes_gcm_unwrap(new, next_run.encrypted_data_key, SUITE_V3) == next_run.data_key


def test_the_current_key_is_read_again_on_the_next_run(
    provider: KeyProvider, store: KeyStore
) -> None:
    store.put(AesKey("one", os.urandom(32)))
    store.put(AesKey("two", os.urandom(32)))
    store.set_current("one")
    with provider.remembering_keys():
        assert provider.encryption_materials(SUITE_V3).key_name == "one"
        store.set_current("two")
        assert provider.encryption_materials(SUITE_V3).key_name == "one"
    with provider.remembering_keys():
        assert provider.encryption_materials(SUITE_V3).key_name == "two"
