"""Key rotation: give objects a new master key without moving their data, or re-encrypt them.

Per object: read the envelope and the ETags it was read at -> find the master key that
opens the data key and decide (already on the target key, not wrapped by ``--from-key``,
not encrypted: skip) -> re-wrap or re-encrypt -> verify what was written.

- *Re-wrap* keeps the data key and wraps it with the new master key. An envelope in
  object metadata is rewritten by a server-side copy of the object onto itself
  (no body byte passes through this client); an envelope in an instruction file by
  rewriting only that file. V3's message id and key commitment stay as they were.
- *Re-encrypt* makes a new data key and streams the body through decryption and
  encryption (a leaked data key, or V2 -> V3).

Every write is conditional on the ETag read first, so a concurrent change makes that
object's rotation fail (ConflictError) and never overwrites the other writer's content.
Nothing here prints: the CLI (and later the GUI) render the `RotationReport`.

The modules, each one step:

- `report`: the options of a run and its report (what the CLI builds and prints);
- `rotator`: `Rotator`, one object or a whole prefix on a bounded pool (`pool`);
- `snapshot`: an object as read, and the ETag conditions every write is held to;
- `opening`: which master key opens an object's data key;
- `rewrap` / `reencrypt` (with `reader`, the re-encrypting stream): the two ways to
  rotate an object;
- `verify`: reading a rotated object back before it counts as done;
- `versions`: non-current versions that still hold an old wrap.

Reading envelopes and building new ones is the vault's (`Vault.read_envelope_and_file`,
`vault.envelopes.new_envelope`), editing them the format's (`crypto.edit`), finding keys
the key provider's (`KeyProvider.resolve_key`, `raw_key`, `open_with`).
"""

from s3vault.vault.rotation.report import (
    Action,
    Failed,
    Outcome,
    Rotated,
    RotationOptions,
    RotationReport,
    Skipped,
    SkipReason,
)
from s3vault.vault.rotation.rotator import DEFAULT_WORKERS, Rotator

__all__ = [
    "DEFAULT_WORKERS",
    "Action",
    "Failed",
    "Outcome",
    "Rotated",
    "RotationOptions",
    "RotationReport",
    "Rotator",
    "SkipReason",
    "Skipped",
]
