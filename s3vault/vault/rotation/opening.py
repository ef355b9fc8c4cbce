"""Which master key opens an object's data key, in a rotation's terms.

Rotation needs more than the data key `KeyProvider.decrypt_data_key` gives `get`: it
must know whether the key that opened it is the target (nothing to do), the
``--from-key`` (rotate) or another key (skip when ``--from-key`` is given). And it opens
thousands of objects, so it tries the likely keys first and reads each key from the
keyring once per run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from s3vault.crypto.constants import AUTHENTICATED_RAW_WRAPS
from s3vault.crypto.envelope import Envelope
from s3vault.errors import KeyMissingError, LegacyFormatError
from s3vault.keys.material import MasterKey, ResolvedKey
from s3vault.keys.provider import DESCRIPTION_KEY, KeyProvider


@dataclass(frozen=True)
class Opened:
    """The data key of one object and the master key that opened it."""

    data_key: bytes = field(repr=False)
    by: str  # for the report: a key name, or kms:ARN
    raw_key: MasterKey | None  # the raw key that opened it: after a rotation it must not
    on_target: bool  # opened by the key rotated to: nothing to re-wrap


class DataKeyOpener:
    """Opens data keys for one run: the target key, ``--from-key`` and the keyring's keys.

    Thread-safe. The keyring's connection is not, so every keyring read goes through
    one lock, and each raw key is read at most once per opener (one run).
    """

    def __init__(
        self,
        keys: KeyProvider,
        target: ResolvedKey,
        source: ResolvedKey | None,
        *,
        allow_legacy: bool,
    ) -> None:
        self.keys = keys
        self.target = target
        self.source = source
        self.allow_legacy = allow_legacy
        self._lock = threading.Lock()
        self._raw_keys: dict[str, MasterKey | None] = {
            resolved.key.name: resolved.key
            for resolved in (target, source)
            if resolved is not None and not resolved.is_kms
        }

    def open(self, env: Envelope) -> Opened | None:
        """The data key and the key that opened it; None if ``--from-key`` does not wrap it.

        LegacyFormatError for a legacy format or wrap without ``allow_legacy``;
        KeyMissingError or IntegrityError when no key of the keyring opens it.
        """
        if env.is_legacy and not self.allow_legacy:
            raise LegacyFormatError(
                "this object uses a legacy format or key wrap",
                hint="Add --allow-legacy (and --reencrypt for V1 or AES/CBC content) "
                "to rotate it into the current format.",
            )
        if env.is_kms:
            return self._open_kms(env)
        if env.wrap_algorithm in AUTHENTICATED_RAW_WRAPS:
            return self._open_raw(env)
        return self._open_legacy_raw(env)

    def _open_kms(self, env: Envelope) -> Opened | None:
        source, target = self.source, self.target
        if source is not None and not source.is_kms and not target.is_kms:
            return None  # neither key can be the KMS key that wraps it: no KMS call
        data_key, arn = self.keys.decrypt_kms_data_key(env)
        on_target = arn == target.arn
        if source is not None and not on_target and arn != source.arn:
            return None
        by = source.name if source is not None and arn == source.arn else f"kms:{arn}"
        return Opened(data_key, target.name if on_target else by, None, on_target)

    def _open_raw(self, env: Envelope) -> Opened | None:
        # The described key first (usually the one that opens it), then --from-key and
        # the target: one unwrap per object in the common case, no keyring round trip.
        candidates: list[MasterKey] = []
        described = env.description.get(DESCRIPTION_KEY)
        if isinstance(described, str):
            stored = self._raw_key(described)
            if stored is not None:
                candidates.append(stored)
        for ref in (self.source, self.target):
            if ref is not None and not ref.is_kms:
                candidates.append(ref.key)
        opener: MasterKey | None = None
        data_key: bytes | None = None
        seen: set[str] = set()
        for key in candidates:
            if key.name in seen:
                continue
            seen.add(key.name)
            data_key = self.keys.unwrap_with(key, env)
            if data_key is not None:
                opener = key
                break
        if opener is None or data_key is None:
            if self.source is not None:
                return None
            data_key, opener = self._open_with_any_key(env)
        return self._opened_raw(data_key, opener)

    def _open_legacy_raw(self, env: Envelope) -> Opened | None:
        # Unauthenticated wraps are never guessed: the description's key, or --from-key.
        source = self.source
        if source is not None and source.is_kms:
            return None
        data_key, opener = self._open_with_any_key(env, source.name if source else None)
        return self._opened_raw(data_key, opener)

    def _opened_raw(self, data_key: bytes, opener: MasterKey) -> Opened | None:
        on_target = not self.target.is_kms and opener.name == self.target.name
        source = self.source
        if source is not None and not on_target and opener.name != source.name:
            return None
        return Opened(data_key, opener.name, opener, on_target)

    def _open_with_any_key(
        self, env: Envelope, key_name: str | None = None
    ) -> tuple[bytes, MasterKey]:
        """The key provider's full search (every raw key in the keyring), serialised."""
        with self._lock:
            data_key, name = self.keys.decrypt_data_key(
                env, key_name=key_name, allow_legacy=self.allow_legacy
            )
        opener = self._raw_key(name) if name else None
        if opener is None:  # cannot happen for raw wraps: the provider names the key
            raise KeyMissingError("the key that opened this object is not in the key store")
        return data_key, opener

    def _raw_key(self, name: str) -> MasterKey | None:
        """A raw key of the keyring by name, read once per run (None if there is none)."""
        with self._lock:
            if name not in self._raw_keys:
                self._raw_keys[name] = self.keys.raw_key(name)
            return self._raw_keys[name]
