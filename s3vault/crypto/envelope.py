"""The envelope: what an S3EC object stores beside its body to be decrypted.

Reads V1, V2 and V3 envelopes from object metadata and instruction files, strictly
(FORMAT.md §1-§2), and writes V2 and V3. Metadata maps are as boto3 shows them:
lower-case keys without S3's ``x-amz-meta-`` prefix. Every malformed, ambiguous or
inconsistent envelope raises `FormatError` naming the field; nothing here decides
which key opens an object.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from s3vault.crypto.constants import (
    CBC_IV_BYTES,
    CEK_CBC,
    CEK_GCM,
    COMMITMENT_BYTES,
    GCM_IV_BYTES,
    GCM_TAG_BITS,
    GCM_TAG_BYTES,
    KMS_WRAPS,
    LEGACY_WRAPS,
    MESSAGE_ID_BYTES,
    META_CEK_ALG,
    META_COMMITMENT_V3,
    META_CONTENT_CIPHER_V3,
    META_CONTEXT_V3,
    META_IV,
    META_KEY_V1,
    META_KEY_V2,
    META_KEY_V3,
    META_MATDESC,
    META_MATDESC_V3,
    META_MESSAGE_ID_V3,
    META_TAG_LEN,
    META_UNENCRYPTED_LENGTH,
    META_WRAP_ALG,
    META_WRAP_V3,
    METADATA_LIMIT_BYTES,
    SUITE_V3,
    V2_WRAPS,
    V3_DATA_KEY_ENTRIES,
    V3_WRAP_CODES,
    V3_WRAP_NAMES,
    WRAP_AES_GCM,
    WRAP_KMS_CONTEXT,
    WRAP_RSA_OAEP_SHA1,
)
from s3vault.errors import FormatError, RefusedError


class Version(StrEnum):
    V1 = "v1"
    V2 = "v2"
    V3 = "v3"


class Location(StrEnum):
    METADATA = "metadata"
    INSTRUCTION_FILE = "instruction-file"


@dataclass(frozen=True)
class Envelope:
    """One object's envelope, decoded.

    ``wrap_algorithm`` is the canonical V2 name also for V3 (code ``02`` is
    ``AES/GCM``) and None for V1, whose wrap follows from the master key's type
    (AES key: AES/ECB, RSA key: PKCS#1 v1.5). ``description`` is the material
    description for raw-key wraps and the whole stored encryption context for KMS
    wraps. ``tag_length`` is in bits (128 for GCM and V3, None for CBC).
    """

    version: Version
    location: Location
    content_cipher: str
    wrap_algorithm: str | None
    encrypted_data_key: bytes
    description: dict[str, str]
    iv: bytes | None = None
    message_id: bytes | None = None
    commitment: bytes | None = None
    tag_length: int | None = None
    unencrypted_content_length: int | None = None

    @property
    def is_kms(self) -> bool:
        return self.wrap_algorithm in KMS_WRAPS

    @property
    def is_legacy(self) -> bool:
        """True for what must stay behind the legacy opt-in: V1, CBC or a legacy wrap."""
        return (
            self.version is Version.V1
            or self.content_cipher == CEK_CBC
            or self.wrap_algorithm in LEGACY_WRAPS
        )

    @property
    def tag_bytes(self) -> int:
        return GCM_TAG_BYTES if self.content_cipher in (CEK_GCM, SUITE_V3) else 0


# The map keys that decide the format version; more than one is format confusion.
_DATA_KEY_FIELDS = (META_KEY_V1, META_KEY_V2, META_KEY_V3)
# V3 content keys: always in object metadata, never in an instruction file.
_V3_METADATA_ONLY = (META_CONTENT_CIPHER_V3, META_COMMITMENT_V3, META_MESSAGE_ID_V3)
# V3 keys that move to the instruction file (the data-key part, for re-wrapping).
_V3_INSTRUCTION_KEYS = V3_DATA_KEY_ENTRIES
# V1/V2 keys that must not be left in metadata when an instruction file holds the envelope.
_V2_ENVELOPE_KEYS = (META_KEY_V1, META_KEY_V2, META_IV, META_CEK_ALG, META_WRAP_ALG, META_TAG_LEN)
_COMPACT = (",", ":")


def needs_instruction_file(metadata: Mapping[str, str]) -> bool:
    """True when the envelope (or V3's data-key part) must be read from an instruction file.

    Also True for an object with no envelope keys at all: the caller then looks for
    the instruction file and, if there is none, the object is not encrypted.
    Raises `FormatError` when more than one data-key field is present.
    """
    return _check_confusion(metadata) is None


def expects_instruction_file(metadata: Mapping[str, str]) -> bool:
    """True when metadata without an envelope still shows an encryption client wrote it.

    V3's content part (x-amz-c/d/i) or x-amz-unencrypted-content-length, which the
    official clients add to every object and leave as the only entry when the envelope
    is in an instruction file. Such an object without its instruction file is an
    encrypted object whose envelope was not found, never a plain one.
    """
    return META_UNENCRYPTED_LENGTH in metadata or any(k in metadata for k in _V3_METADATA_ONLY)


def parse_envelope(
    metadata: Mapping[str, str], instruction: Mapping[str, str] | None = None
) -> Envelope:
    """Decode and check the envelope of one object.

    ``instruction`` is the parsed KEY.instruction content when the envelope lives
    there (see `needs_instruction_file`); the two maps are checked together for
    format confusion. With an instruction file, V1/V2 envelope fields must not also
    be in the metadata; V3's x-amz-c/d/i must be in the metadata and not in the file.
    Unknown extra keys are ignored.
    """
    combined = dict(metadata)
    if instruction is not None:
        combined.update(instruction)
    present = _check_confusion(combined)
    if present is None:
        raise FormatError(
            "no encryption envelope: none of x-amz-key, x-amz-key-v2 or x-amz-3 is present",
            hint="The object was not written by an S3 Encryption Client, "
            "or its instruction file is missing.",
        )

    if instruction is None:
        fields: Mapping[str, str] = metadata
        location = Location.METADATA
    else:
        location = Location.INSTRUCTION_FILE
        if present == META_KEY_V3:
            _forbid(instruction, _V3_METADATA_ONLY, "in the instruction file of a V3 object")
            _forbid(
                metadata,
                _V3_INSTRUCTION_KEYS,
                "in object metadata when an instruction file is used",
            )
        else:
            _forbid(
                metadata, _V2_ENVELOPE_KEYS, "in object metadata when an instruction file is used"
            )
        fields = combined

    length = _unencrypted_length(metadata, instruction)
    if present == META_KEY_V3:
        return _parse_v3(fields, location, length)
    if present == META_KEY_V2:
        return _parse_v2(fields, location, length)
    return _parse_v1(fields, location, length)


def render_envelope(env: Envelope) -> tuple[dict[str, str], dict[str, str] | None]:
    """Encode a V2 or V3 envelope: (object metadata entries, instruction-file content or None).

    For the instruction-file location V2 puts everything in the file and V3 keeps
    x-amz-c/d/i in the metadata. Only the keys of FORMAT.md go in an instruction file
    (the official Python client rejects any other); x-amz-unencrypted-content-length
    is left to the caller. Raises ValueError for V1, legacy wraps or CBC content,
    which s3vault never writes.
    """
    if env.version is Version.V2:
        entries = _render_v2(env)
        if env.location is Location.METADATA:
            return entries, None
        return {}, entries
    if env.version is Version.V3:
        content, data_key = _render_v3(env)
        if env.location is Location.METADATA:
            return {**content, **data_key}, None
        return content, data_key
    raise ValueError(f"s3vault does not write {env.version.value} envelopes")


def metadata_size(metadata: Mapping[str, str]) -> int:
    """Bytes S3 counts against its user-metadata limit: UTF-8 keys plus values."""
    return len("".join(metadata).encode()) + len("".join(metadata.values()).encode())


def check_metadata_size(metadata: Mapping[str, str]) -> None:
    """Raise `RefusedError` when the metadata would exceed S3's 2 KB limit."""
    size = metadata_size(metadata)
    if size > METADATA_LIMIT_BYTES:
        raise RefusedError(
            f"the envelope needs {size} bytes of object metadata, "
            f"over S3's limit of {METADATA_LIMIT_BYTES}",
            hint="Use --envelope instruction-file, or a shorter key description "
            "or encryption context.",
        )


def parse_instruction_file(body: bytes) -> dict[str, str]:
    """Decode an instruction file: one flat JSON object of string to string."""
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"the instruction file is not valid JSON: {exc}") from exc
    except RecursionError:
        # JSON nested thousands deep (json recurses once per level): hostile, not ours.
        raise FormatError("the instruction file is not valid JSON: nested too deep") from None
    return _string_map(value, "the instruction file")


def instruction_file_body(content: Mapping[str, str]) -> bytes:
    """Encode instruction-file content as compact JSON (ASCII, as every client reads it)."""
    return json.dumps(dict(content), separators=_COMPACT).encode("ascii")


# --- reading -------------------------------------------------------------------------


def _check_confusion(fields: Mapping[str, str]) -> str | None:
    """The one data-key field present (None if none); FormatError if several."""
    present = [name for name in _DATA_KEY_FIELDS if name in fields]
    if len(present) > 1:
        raise FormatError(
            f"ambiguous envelope: {' and '.join(present)} are both present "
            "(format confusion: the object or its instruction file was tampered with)"
        )
    if present and present[0] != META_KEY_V3:
        # V2 metadata carrying V3 content keys is never written by a client: it is
        # what injecting a V2 instruction file under a V3 object looks like.
        _forbid(fields, _V3_METADATA_ONLY, f"beside {present[0]} (format confusion)")
    return present[0] if present else None


def _forbid(fields: Mapping[str, str], names: tuple[str, ...], where: str) -> None:
    found = [name for name in names if name in fields]
    if found:
        raise FormatError(f"invalid envelope: {', '.join(found)} must not be {where}")


def _parse_v1(fields: Mapping[str, str], location: Location, length: int | None) -> Envelope:
    return Envelope(
        version=Version.V1,
        location=location,
        content_cipher=CEK_CBC,
        wrap_algorithm=None,
        encrypted_data_key=_b64_field(fields, META_KEY_V1),
        description=_json_field(fields, META_MATDESC),
        iv=_b64_field(fields, META_IV, size=CBC_IV_BYTES),
        unencrypted_content_length=length,
    )


def _parse_v2(fields: Mapping[str, str], location: Location, length: int | None) -> Envelope:
    cipher = _required(fields, META_CEK_ALG)
    wrap = _required(fields, META_WRAP_ALG)
    if wrap not in V2_WRAPS:
        raise FormatError(f"invalid envelope: unknown x-amz-wrap-alg {wrap!r}")
    tag_length: int | None
    if cipher == CEK_GCM:
        iv = _b64_field(fields, META_IV, size=GCM_IV_BYTES)
        if fields.get(META_TAG_LEN) != str(GCM_TAG_BITS):
            raise FormatError(
                f"invalid envelope: x-amz-tag-len must be {GCM_TAG_BITS} for {CEK_GCM}, "
                f"not {fields.get(META_TAG_LEN)!r}"
            )
        tag_length = GCM_TAG_BITS
    elif cipher == CEK_CBC:
        # CBC (V2) was written only by the first-generation clients, with their wraps;
        # a modern wrap beside CBC content is a downgrade attempt.
        if wrap not in LEGACY_WRAPS:
            raise FormatError(
                f"invalid envelope: x-amz-cek-alg {CEK_CBC} never goes with x-amz-wrap-alg {wrap}"
            )
        iv = _b64_field(fields, META_IV, size=CBC_IV_BYTES)
        if META_TAG_LEN in fields:
            raise FormatError(f"invalid envelope: x-amz-tag-len must not be present for {CEK_CBC}")
        tag_length = None
    else:
        raise FormatError(f"invalid envelope: unknown x-amz-cek-alg {cipher!r}")
    return Envelope(
        version=Version.V2,
        location=location,
        content_cipher=cipher,
        wrap_algorithm=wrap,
        encrypted_data_key=_b64_field(fields, META_KEY_V2),
        description=_json_field(fields, META_MATDESC),
        iv=iv,
        tag_length=tag_length,
        unencrypted_content_length=length,
    )


def _parse_v3(fields: Mapping[str, str], location: Location, length: int | None) -> Envelope:
    cipher = _required(fields, META_CONTENT_CIPHER_V3)
    if cipher != SUITE_V3:
        raise FormatError(f"invalid envelope: unknown x-amz-c {cipher!r}")
    code = _required(fields, META_WRAP_V3)
    wrap = V3_WRAP_CODES.get(code)
    if wrap is None:
        raise FormatError(f"invalid envelope: unknown x-amz-w {code!r}")
    # KMS wraps keep their encryption context in x-amz-t, raw keys their
    # description in x-amz-m; the other one, if present, is not used.
    description_field = META_CONTEXT_V3 if wrap == WRAP_KMS_CONTEXT else META_MATDESC_V3
    return Envelope(
        version=Version.V3,
        location=location,
        content_cipher=cipher,
        wrap_algorithm=wrap,
        encrypted_data_key=_b64_field(fields, META_KEY_V3),
        description=_json_field(fields, description_field),
        message_id=_b64_field(fields, META_MESSAGE_ID_V3, size=MESSAGE_ID_BYTES),
        commitment=_b64_field(fields, META_COMMITMENT_V3, size=COMMITMENT_BYTES),
        tag_length=GCM_TAG_BITS,
        unencrypted_content_length=length,
    )


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise FormatError(f"invalid envelope: {name} is missing")
    if not isinstance(value, str):
        raise FormatError(f"invalid envelope: {name} is not a string")
    return value


def _b64_field(fields: Mapping[str, str], name: str, *, size: int | None = None) -> bytes:
    text = _required(fields, name)
    try:
        # validate=True refuses characters outside the standard alphabet (no
        # URL-safe variant, no whitespace); a missing '=' fails as bad padding.
        value = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise FormatError(f"invalid envelope: {name} is not standard base64") from exc
    if not value:
        raise FormatError(f"invalid envelope: {name} is empty")
    if size is not None and len(value) != size:
        raise FormatError(f"invalid envelope: {name} is {len(value)} bytes, expected {size}")
    return value


def _json_field(fields: Mapping[str, str], name: str) -> dict[str, str]:
    """A JSON map stored as a string; absent means the empty map (as the spec says)."""
    text = fields.get(name)
    if text is None:
        return {}
    if not isinstance(text, str):
        raise FormatError(f"invalid envelope: {name} is not a string")
    try:
        value = json.loads(_decode_s3_double_encoding(text), object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise FormatError(f"invalid envelope: {name} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise FormatError(f"invalid envelope: {name} is not valid JSON: nested too deep") from None
    return _string_map(value, name)


def _decode_s3_double_encoding(text: str) -> str:
    # S3 returns a metadata value holding non-ASCII characters as RFC 2047 encoded
    # words (=?UTF-8?B?...?=); Java and Ruby write such descriptions, s3vault does not.
    if not (text.startswith("=?") and text.endswith("?=")):
        return text
    try:
        parts = email.header.decode_header(text)
        return "".join(
            part.decode(charset or "ascii") if isinstance(part, bytes) else part
            for part, charset in parts
        )
    except (ValueError, LookupError, UnicodeDecodeError, email.errors.HeaderParseError) as exc:
        # HeaderParseError: bad base64 in a "B" word (=?UTF-8?B?A?=).
        raise FormatError(f"invalid envelope: undecodable RFC 2047 value {text!r}") from exc


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _string_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FormatError(f"invalid envelope: {what} must be a JSON object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise FormatError(f"invalid envelope: {what} entry {key!r} must be a string")
    return value


def _unencrypted_length(
    metadata: Mapping[str, str], instruction: Mapping[str, str] | None
) -> int | None:
    # Ruby and Go write it; Ruby keeps it in metadata, Go may put it in the file.
    text = metadata.get(META_UNENCRYPTED_LENGTH)
    if text is None and instruction is not None:
        text = instruction.get(META_UNENCRYPTED_LENGTH)
    if text is None:
        return None
    if not (isinstance(text, str) and text.isascii() and text.isdigit()):
        raise FormatError(f"invalid envelope: {META_UNENCRYPTED_LENGTH} is not a number: {text!r}")
    return int(text)


# --- writing -------------------------------------------------------------------------


def _render_v2(env: Envelope) -> dict[str, str]:
    if env.content_cipher != CEK_GCM:
        raise ValueError(f"s3vault writes V2 only with {CEK_GCM}, not {env.content_cipher}")
    if env.wrap_algorithm not in (WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1, WRAP_KMS_CONTEXT):
        raise ValueError(f"s3vault does not write wrap {env.wrap_algorithm!r}")
    if env.iv is None or len(env.iv) != GCM_IV_BYTES:
        raise ValueError(f"a V2 envelope needs a {GCM_IV_BYTES}-byte IV")
    return {
        META_KEY_V2: _b64(env.encrypted_data_key),
        META_IV: _b64(env.iv),
        META_CEK_ALG: CEK_GCM,
        META_WRAP_ALG: env.wrap_algorithm,
        META_MATDESC: _json(env.description),
        META_TAG_LEN: str(GCM_TAG_BITS),
    }


def _render_v3(env: Envelope) -> tuple[dict[str, str], dict[str, str]]:
    """(content part, always in metadata; data-key part, in metadata or the file)."""
    if env.content_cipher != SUITE_V3:
        raise ValueError(f"a V3 envelope needs content cipher {SUITE_V3}")
    code = V3_WRAP_NAMES.get(env.wrap_algorithm or "")
    if code is None:
        raise ValueError(f"V3 has no code for wrap {env.wrap_algorithm!r}")
    if env.message_id is None or len(env.message_id) != MESSAGE_ID_BYTES:
        raise ValueError(f"a V3 envelope needs a {MESSAGE_ID_BYTES}-byte message id")
    if env.commitment is None or len(env.commitment) != COMMITMENT_BYTES:
        raise ValueError(f"a V3 envelope needs a {COMMITMENT_BYTES}-byte commitment")
    description_field = META_CONTEXT_V3 if env.is_kms else META_MATDESC_V3
    content = {
        META_CONTENT_CIPHER_V3: SUITE_V3,
        META_COMMITMENT_V3: _b64(env.commitment),
        META_MESSAGE_ID_V3: _b64(env.message_id),
    }
    data_key = {
        META_KEY_V3: _b64(env.encrypted_data_key),
        META_WRAP_V3: code,
        description_field: _json(env.description),
    }
    return content, data_key


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _json(value: Mapping[str, str]) -> str:
    # Every object a run writes has the same description: rendered once.
    return _json_of(tuple(value.items()))


@functools.lru_cache(maxsize=64)
def _json_of(items: tuple[tuple[str, str], ...]) -> str:
    # Compact, as Java/Ruby/Go write it (fewer metadata bytes); ensure_ascii keeps
    # non-ASCII descriptions as \\u escapes so S3 never double-encodes them.
    return json.dumps(dict(items), separators=_COMPACT, ensure_ascii=True)
