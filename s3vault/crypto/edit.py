"""Editing an envelope that exists: what key rotation changes in it, and what it keeps.

A re-wrap replaces only the *data-key part* of an envelope (the wrapped data key, its
wrap algorithm, its description or encryption context) and keeps every other entry
verbatim, so the content part another client wrote (IV, V3 message id and commitment)
stays byte for byte. A re-encryption writes a whole new envelope and keeps only the
user's own metadata entries. Pure: maps in, maps out.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping

from s3vault.crypto.constants import (
    COMMITMENT_BYTES,
    ENVELOPE_ENTRIES,
    MESSAGE_ID_BYTES,
    META_COMMITMENT_V3,
    META_CONTENT_CIPHER_V3,
    META_KEY_V3,
    META_MESSAGE_ID_V3,
    SUITE_V3,
    V2_DATA_KEY_ENTRIES,
    V3_DATA_KEY_ENTRIES,
)
from s3vault.crypto.envelope import Envelope, Location, Version, parse_envelope, render_envelope

_DATA_KEY_ENTRIES = {Version.V2: V2_DATA_KEY_ENTRIES, Version.V3: V3_DATA_KEY_ENTRIES}


def replace_data_key(fields: Mapping[str, str], envelope: Envelope) -> dict[str, str]:
    """``fields`` with its data-key part replaced by ``envelope``'s; every other entry kept.

    ``fields`` is the object metadata or the instruction-file content holding the
    data-key part of an envelope of ``envelope``'s version (V2 or V3). Entries outside
    that part keep their exact strings, also where re-encoding would change them.
    Raises ValueError for what s3vault does not write (V1, legacy wraps, CBC).
    """
    full, _ = render_envelope(dataclasses.replace(envelope, location=Location.METADATA))
    names = _DATA_KEY_ENTRIES[envelope.version]
    kept = {k: v for k, v in fields.items() if k not in names}
    return {**kept, **{k: v for k, v in full.items() if k in names}}


def data_key_envelope(instruction: Mapping[str, str]) -> Envelope:
    """The envelope of an instruction file on its own, to tell which key wraps its data key.

    A V3 file lacks the message id and commitment (they live in its object's metadata,
    which may be of another version): zero placeholders stand in for them, as no wrap
    depends on them. Never decrypt content with the result. Raises FormatError as
    `parse_envelope` does.
    """
    stub: dict[str, str] = {}
    if META_KEY_V3 in instruction:
        stub = {
            META_CONTENT_CIPHER_V3: SUITE_V3,
            META_MESSAGE_ID_V3: base64.b64encode(bytes(MESSAGE_ID_BYTES)).decode(),
            META_COMMITMENT_V3: base64.b64encode(bytes(COMMITMENT_BYTES)).decode(),
        }
    return parse_envelope(stub, instruction)


def user_entries(metadata: Mapping[str, str]) -> dict[str, str]:
    """The object metadata outside any envelope: what a rotation must carry over as is."""
    return {k: v for k, v in metadata.items() if k not in ENVELOPE_ENTRIES}
