"""Which master key an object's data key is wrapped by, and whether that was confirmed.

`inspect` shows the key an envelope *names* (the ``s3vault-key`` description entry, or
a legacy KMS wrap's ``kms_cmk_id``) without any key. That name is not authenticated,
and a ``kms+context`` envelope names no KMS key at all. `identify_key` goes one step
further: it opens the data key (unwraps it, or asks KMS to decrypt it; no content is
read) and says which key did. Failures — key missing, KMS unreachable — are part of
the answer (``check`` "failed" with a message), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from s3vault.crypto.constants import AUTHENTICATED_RAW_WRAPS, LEGACY_KMS_CONTEXT_KEY
from s3vault.crypto.envelope import Envelope
from s3vault.errors import S3VaultError
from s3vault.keys.provider import DESCRIPTION_KEY, KeyProvider

KeySource = Literal["description", "kms-key-id", "opened"]
KeyCheck = Literal["confirmed", "not-checked", "failed", "unconfirmable"]


@dataclass(frozen=True)
class KeyIdentity:
    """The master key of one envelope, as far as it is known.

    ``key_name``: a key of the local store (or the name the description gives);
    ``key_names``: every local key that refers to the object's KMS key (a KMS key may
    be stored under several names); ``kms_key_id``: the KMS key (its ARN once KMS
    opened the data key); ``source``: where ``key_name``/``kms_key_id`` came from;
    ``check``: whether opening the data key confirmed them, with ``message`` saying
    why not.
    """

    key_name: str | None = None
    key_names: tuple[str, ...] = ()
    kms_key_id: str | None = None
    source: KeySource | None = None
    check: KeyCheck = "not-checked"
    message: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.check == "confirmed"

    def to_json(self) -> dict[str, Any]:
        return {
            "key_name": self.key_name,
            "key_names": list(self.key_names),
            "kms_key_id": self.kms_key_id,
            "key_source": self.source,
            "key_confirmed": self.confirmed,
            "key_check": self.check,
            "key_check_message": self.message,
        }


def named_key(envelope: Envelope) -> KeyIdentity:
    """What the envelope itself names, with no key and no request (`inspect`, `ls`)."""
    if envelope.is_kms:
        cmk = envelope.description.get(LEGACY_KMS_CONTEXT_KEY)
        if cmk:
            return KeyIdentity(kms_key_id=cmk, source="kms-key-id")
        return KeyIdentity()
    name = envelope.description.get(DESCRIPTION_KEY)
    if isinstance(name, str) and name:
        return KeyIdentity(key_name=name, key_names=(name,), source="description")
    return KeyIdentity()


def identify_key(keys: KeyProvider, envelope: Envelope) -> KeyIdentity:
    """Open the data key to learn (and confirm) the master key that wraps it."""
    if envelope.is_kms:
        return _identify_kms(keys, envelope)
    named = named_key(envelope)
    if envelope.wrap_algorithm not in AUTHENTICATED_RAW_WRAPS:
        # AES/ECB, AESWrap-less legacy RSA...: a wrong key can unwrap to bytes that look
        # like a data key, so opening proves nothing without decrypting the content.
        return _with(
            named,
            "unconfirmable",
            "a legacy wrap without authentication: opening "
            "the data key cannot tell the right key from a wrong one",
        )
    try:
        # The described key first, then every stored key of the wrap's type. No content
        # is read, so a legacy content cipher (CBC) is no reason not to open the wrap.
        _data_key, opened_by = keys.decrypt_data_key(envelope, allow_legacy=True)
    except S3VaultError as exc:
        return _with(named, "failed", exc.message)
    source: KeySource = "description" if opened_by == named.key_name else "opened"
    names = (opened_by,) if opened_by else ()
    return KeyIdentity(key_name=opened_by, key_names=names, source=source, check="confirmed")


def _identify_kms(keys: KeyProvider, envelope: Envelope) -> KeyIdentity:
    named = named_key(envelope)
    try:
        _data_key, arn = keys.decrypt_kms_data_key(envelope)
    except S3VaultError as exc:
        return _with(named, "failed", exc.message)
    names = local_kms_names(keys, arn)
    return KeyIdentity(
        key_name=names[0] if names else None,
        key_names=names,
        kms_key_id=arn,
        source="opened",
        check="confirmed",
    )


def local_kms_names(keys: KeyProvider, arn: str) -> tuple[str, ...]:
    """The names of the store's KMS keys that refer to the KMS key ``arn``.

    A stored reference may be a key id, an ARN or an alias: ids and ARNs are compared
    as they are, aliases resolved with DescribeKey. A store or KMS that cannot answer
    gives no names (the ARN is still shown).
    """
    try:
        infos = [i for i in keys.store.list() if i.type == "kms" and i.key_id]
    except S3VaultError:
        return ()
    names: list[str] = []
    for info in infos:
        key_id = str(info.key_id)
        if key_id == arn or arn.endswith(f":key/{key_id}"):
            names.append(info.name)
        elif "alias/" in key_id:
            try:
                if keys.kms.key_arn(key_id) == arn:
                    names.append(info.name)
            except S3VaultError:
                continue
    return tuple(sorted(names))


def _with(named: KeyIdentity, check: KeyCheck, message: str) -> KeyIdentity:
    return KeyIdentity(
        key_name=named.key_name,
        key_names=named.key_names,
        kms_key_id=named.kms_key_id,
        source=named.source,
        check=check,
        message=message,
    )
