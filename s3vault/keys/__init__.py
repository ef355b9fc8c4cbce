"""Master keys: values (`material`), the key store (`store`) over the OS keyring
(`keyring_storage`) or an encrypted file (`file_storage`), chosen by the config
(`open`), AWS KMS calls (`kms`) and the key provider that chooses a key per object
(`provider`).

The provider is imported from `s3vault.keys.provider` directly: it pulls in the
envelope format, which `s3vault key list` does not need. The names below are loaded
on first use (PEP 562), so that importing one submodule does not import the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s3vault.keys.material import AesKey, KmsKey, MasterKey, RsaKey
    from s3vault.keys.store import KeyInfo, KeyStore

__all__ = ["AesKey", "KeyInfo", "KeyStore", "KmsKey", "MasterKey", "RsaKey"]

_WHERE = {
    "AesKey": "material",
    "KmsKey": "material",
    "MasterKey": "material",
    "RsaKey": "material",
    "KeyInfo": "store",
    "KeyStore": "store",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
