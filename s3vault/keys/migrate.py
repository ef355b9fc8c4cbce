"""Move every master key from one key store to another (`s3vault key migrate`).

Copies material, creation time and which key is current; reads each copy back before
the original is deleted, so a failure at any point leaves every key in at least one
store. Idempotent: keys already in the target with the same material are "unchanged",
and a second run finds nothing left to move.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3vault.errors import ConflictError, IntegrityError, KeyMissingError
from s3vault.keys.material import MasterKey, same_material
from s3vault.keys.store import KeyStore, PutResult


@dataclass(frozen=True)
class Migration:
    """What `migrate_keys` did: each key's result, and whether anything changed."""

    keys: list[tuple[str, PutResult]]
    changed: bool


def migrate_keys(source: KeyStore, target: KeyStore, *, keep: bool, force: bool) -> Migration:
    """Copy every key of ``source`` into ``target``, verify, then delete it from ``source``
    unless ``keep``.

    Other material under a name the target already has: ConflictError before anything
    is written, unless ``force`` (the target's key is then replaced).
    """
    infos = source.list()
    keys = [source.get(info.name) for info in infos]
    if not force:
        taken = [key.name for key in keys if _differs(target, key)]
        if taken:
            raise ConflictError(
                f"{target.where} already has other keys under these names: {', '.join(taken)}",
                hint="Rename or delete them there first, or pass --force to replace them "
                "(objects wrapped by the replaced keys then need a copy of them to be read).",
            )
    results: list[tuple[str, PutResult]] = []
    for key, info in zip(keys, infos, strict=True):
        result = target.put(key, force=force, created=info.created)
        if not same_material(target.get(key.name), key):
            raise IntegrityError(
                f"key '{key.name}' did not read back the same from {target.where}; "
                f"it was left in {source.where}",
            )
        results.append((key.name, result))
    changed = any(result != "unchanged" for _, result in results)
    current = source.current()
    if current is not None and target.current() != current:
        target.set_current(current)
        changed = True
    if not keep:
        for info in infos:
            source.delete(info.name)
            changed = True
    return Migration(results, changed)


def _differs(target: KeyStore, key: MasterKey) -> bool:
    try:
        existing = target.get(key.name)
    except KeyMissingError:
        return False
    return not same_material(existing, key)
