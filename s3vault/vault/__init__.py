"""The encryption client: put / get / inspect / list / copy / delete encrypted objects.

`Vault` is the one door to S3 for everything above it (the sync engine, restore,
rotation, the CLI, the desktop app); the names here are the types its methods take
and return, so that callers need neither `s3vault.crypto` nor `s3vault.remote`.
"""

from s3vault.crypto.envelope import Location, Version
from s3vault.remote.objects import ObjectHead, ObjectSummary, Written
from s3vault.vault.key_check import KeyIdentity
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.results import GetResult, PrefixEntry, PutResult, SealedObject
from s3vault.vault.sealed_puts import SealedOutcome, SealedPut
from s3vault.vault.vault import Vault

__all__ = [
    "GetResult",
    "KeyIdentity",
    "Location",
    "ObjectHead",
    "ObjectInfo",
    "ObjectSummary",
    "PrefixEntry",
    "PutResult",
    "SealedObject",
    "SealedOutcome",
    "SealedPut",
    "Vault",
    "Version",
    "Written",
]
