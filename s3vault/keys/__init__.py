"""Master keys: values (`material`), the key store (`store`) over the OS keyring
(`keyring_storage`) or an encrypted file (`file_storage`), chosen by the config
(`open`), AWS KMS calls (`kms`) and the key provider that chooses a key per object
(`provider`).

The provider is imported from `s3vault.keys.provider` directly: it pulls in the
envelope format, which `s3vault key list` does not need.
"""

from s3vault.keys.material import AesKey, KmsKey, MasterKey, RsaKey
from s3vault.keys.store import KeyInfo, KeyStore

__all__ = ["AesKey", "KeyInfo", "KeyStore", "KmsKey", "MasterKey", "RsaKey"]
