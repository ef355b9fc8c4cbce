"""Envelope reading and writing: round trips, strictness, format confusion, size limit."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from s3vault.crypto import (
    CEK_CBC,
    CEK_GCM,
    SUITE_V3,
    WRAP_AES_GCM,
    WRAP_KMS_CONTEXT,
    WRAP_KMS_LEGACY,
    WRAP_RSA_OAEP_SHA1,
    Envelope,
    Location,
    Version,
    check_metadata_size,
    instruction_file_body,
    metadata_size,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
    render_envelope,
)
from s3vault.errors import FormatError, RefusedError

# What FORMAT.md allows in an instruction file (the official Python client rejects others).
INSTRUCTION_ALLOWED = {
    "x-amz-key",
    "x-amz-key-v2",
    "x-amz-wrap-alg",
    "x-amz-matdesc",
    "x-amz-iv",
    "x-amz-cek-alg",
    "x-amz-tag-len",
    "x-amz-crypto-instr-file",
    "x-amz-3",
    "x-amz-w",
    "x-amz-m",
    "x-amz-t",
}

DESCRIPTIONS = {
    WRAP_AES_GCM: {"s3vault-key": "laptop-2026"},
    WRAP_RSA_OAEP_SHA1: {"s3vault-key": "team-rsa", "note": "naïve ✓"},
    WRAP_KMS_CONTEXT: {"project": "x", "aws:x-amz-cek-alg": "115"},
}
EDK_SIZES = {WRAP_AES_GCM: 60, WRAP_RSA_OAEP_SHA1: 256, WRAP_KMS_CONTEXT: 184}


def make_envelope(version: Version, location: Location, wrap: str) -> Envelope:
    v3 = version is Version.V3
    return Envelope(
        version=version,
        location=location,
        content_cipher=SUITE_V3 if v3 else CEK_GCM,
        wrap_algorithm=wrap,
        encrypted_data_key=bytes(range(256))[: EDK_SIZES[wrap]],
        description=DESCRIPTIONS[wrap],
        iv=None if v3 else b"\x07" * 12,
        message_id=b"\x01" * 28 if v3 else None,
        commitment=b"\x02" * 28 if v3 else None,
        tag_length=128,
    )


def v2_metadata(**changes: str | None) -> dict[str, str]:
    metadata = {
        "x-amz-key-v2": base64.b64encode(b"k" * 60).decode(),
        "x-amz-iv": base64.b64encode(b"i" * 12).decode(),
        "x-amz-cek-alg": "AES/GCM/NoPadding",
        "x-amz-wrap-alg": "AES/GCM",
        "x-amz-matdesc": "{}",
        "x-amz-tag-len": "128",
    }
    return _changed(metadata, changes)


def v3_metadata(**changes: str | None) -> dict[str, str]:
    metadata = {
        "x-amz-c": "115",
        "x-amz-3": base64.b64encode(b"k" * 60).decode(),
        "x-amz-w": "02",
        "x-amz-m": '{"s3vault-key":"a"}',
        "x-amz-d": base64.b64encode(b"d" * 28).decode(),
        "x-amz-i": base64.b64encode(b"i" * 28).decode(),
    }
    return _changed(metadata, changes)


def _changed(metadata: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
    return metadata


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("location", list(Location))
@pytest.mark.parametrize("wrap", [WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1, WRAP_KMS_CONTEXT])
def test_round_trip(version: Version, location: Location, wrap: str) -> None:
    env = make_envelope(version, location, wrap)
    metadata, instruction = render_envelope(env)
    assert all(isinstance(v, str) and v.isascii() for v in metadata.values())
    if location is Location.METADATA:
        assert instruction is None
        assert not needs_instruction_file(metadata)
        assert parse_envelope(metadata) == env
    else:
        assert instruction is not None
        assert set(instruction) <= INSTRUCTION_ALLOWED
        assert needs_instruction_file(metadata)
        stored = parse_instruction_file(instruction_file_body(instruction))
        assert stored == instruction
        assert parse_envelope(metadata, stored) == env
    if version is Version.V3:
        assert {"x-amz-c", "x-amz-d", "x-amz-i"} <= set(metadata)
        description_key = "x-amz-t" if wrap == WRAP_KMS_CONTEXT else "x-amz-m"
        assert description_key in (instruction or metadata)


def test_v2_instruction_file_holds_everything() -> None:
    env = make_envelope(Version.V2, Location.INSTRUCTION_FILE, WRAP_AES_GCM)
    metadata, instruction = render_envelope(env)
    assert metadata == {}
    assert instruction is not None
    assert set(instruction) == {
        "x-amz-key-v2",
        "x-amz-iv",
        "x-amz-cek-alg",
        "x-amz-wrap-alg",
        "x-amz-matdesc",
        "x-amz-tag-len",
    }


def test_v3_instruction_file_split() -> None:
    env = make_envelope(Version.V3, Location.INSTRUCTION_FILE, WRAP_KMS_CONTEXT)
    metadata, instruction = render_envelope(env)
    assert set(metadata) == {"x-amz-c", "x-amz-d", "x-amz-i"}
    assert instruction is not None
    assert set(instruction) == {"x-amz-3", "x-amz-w", "x-amz-t"}
    assert instruction["x-amz-w"] == "12"


def test_maps_are_compact_ascii_json() -> None:
    env = make_envelope(Version.V2, Location.METADATA, WRAP_RSA_OAEP_SHA1)
    metadata, _ = render_envelope(env)
    # Compact separators; non-ASCII as \u escapes so S3 never has to re-encode it.
    expected = '{"s3vault-key":"team-rsa","note":"na\\u00efve \\u2713"}'
    assert metadata["x-amz-matdesc"] == expected


def test_instruction_file_body_is_compact_json() -> None:
    body = instruction_file_body({"x-amz-3": "AAAA", "x-amz-w": "02"})
    assert body == b'{"x-amz-3":"AAAA","x-amz-w":"02"}'


def test_json_spacing_accepted() -> None:
    # Python's json.dumps writes {"a": "b"}; Ruby, Java and Go write {"a":"b"}.
    spaced = v2_metadata(x_amz_matdesc='{"s3vault-key": "a", "b": "c"}')
    assert parse_envelope(spaced).description == {"s3vault-key": "a", "b": "c"}
    meta = v2_metadata()
    body = json.dumps(meta, indent=2).encode()  # spaces and newlines
    from_file = parse_envelope({}, parse_instruction_file(body))
    assert from_file == replace(parse_envelope(meta), location=Location.INSTRUCTION_FILE)


def test_s3_double_encoded_description() -> None:
    # S3 returns non-ASCII metadata values as RFC 2047 encoded words.
    raw = json.dumps({"owner": "Zoë"}, ensure_ascii=False).encode()
    encoded = "=?UTF-8?B?" + base64.b64encode(raw).decode() + "?="
    assert parse_envelope(v2_metadata(x_amz_matdesc=encoded)).description == {"owner": "Zoë"}


def test_unknown_keys_ignored_and_length_read() -> None:
    meta = v2_metadata(x_amz_unencrypted_content_length="1000", x_amz_foo="bar")
    meta["content-type-hint"] = "x"
    env = parse_envelope(meta)
    assert env.unencrypted_content_length == 1000
    assert env.location is Location.METADATA


def test_unencrypted_length_from_instruction_file() -> None:
    # Go writes it into the instruction file; Ruby into the metadata.
    env = parse_envelope({}, v2_metadata(x_amz_unencrypted_content_length="7"))
    assert env.unencrypted_content_length == 7


def test_missing_description_is_empty() -> None:
    assert parse_envelope(v2_metadata(x_amz_matdesc=None)).description == {}
    assert parse_envelope(v3_metadata(x_amz_m=None)).description == {}


def test_v3_kms_uses_context_not_matdesc() -> None:
    meta = v3_metadata(x_amz_w="12", x_amz_t='{"aws:x-amz-cek-alg":"115"}')
    env = parse_envelope(meta)
    assert env.wrap_algorithm == WRAP_KMS_CONTEXT
    assert env.is_kms
    assert env.description == {"aws:x-amz-cek-alg": "115"}


def test_v1_envelope() -> None:
    meta = {
        "x-amz-key": base64.b64encode(b"k" * 48).decode(),
        "x-amz-iv": base64.b64encode(b"i" * 16).decode(),
        "x-amz-matdesc": "{}",
        "x-amz-unencrypted-content-length": "16",
    }
    env = parse_envelope(meta)
    assert env.version is Version.V1
    assert env.content_cipher == CEK_CBC
    assert env.wrap_algorithm is None
    assert env.tag_length is None
    assert env.is_legacy
    assert env.tag_bytes == 0
    with pytest.raises(ValueError, match="v1"):
        render_envelope(env)


def test_v2_legacy_kms_cbc() -> None:
    meta = v2_metadata(
        x_amz_cek_alg=CEK_CBC,
        x_amz_wrap_alg=WRAP_KMS_LEGACY,
        x_amz_iv=base64.b64encode(b"i" * 16).decode(),
        x_amz_tag_len=None,
        x_amz_matdesc='{"kms_cmk_id":"alias/x"}',
    )
    env = parse_envelope(meta)
    assert env.is_legacy and env.is_kms
    assert env.tag_length is None
    with pytest.raises(ValueError):
        render_envelope(env)


def test_properties() -> None:
    env = make_envelope(Version.V3, Location.METADATA, WRAP_AES_GCM)
    assert not env.is_kms and not env.is_legacy and env.tag_bytes == 16


# --- format confusion ----------------------------------------------------------------

V1_KEY = {"x-amz-key": base64.b64encode(b"k" * 48).decode()}
V2_KEY = {"x-amz-key-v2": base64.b64encode(b"k" * 60).decode()}
V3_KEY = {"x-amz-3": base64.b64encode(b"k" * 60).decode()}


@pytest.mark.parametrize(
    "keys",
    [*itertools.combinations([V1_KEY, V2_KEY, V3_KEY], 2), (V1_KEY, V2_KEY, V3_KEY)],
    ids=["v1+v2", "v1+v3", "v2+v3", "all"],
)
def test_format_confusion_in_metadata(keys: tuple[dict[str, str], ...]) -> None:
    meta = {**v2_metadata(x_amz_key_v2=None), **v3_metadata(x_amz_3=None)}
    for key in keys:
        meta.update(key)
    with pytest.raises(FormatError, match="format confusion"):
        needs_instruction_file(meta)
    with pytest.raises(FormatError, match="format confusion"):
        parse_envelope(meta)


@pytest.mark.parametrize(
    ("in_metadata", "in_file"),
    [(V1_KEY, V2_KEY), (V2_KEY, V1_KEY), (V1_KEY, V3_KEY), (V3_KEY, V2_KEY)],
)
def test_format_confusion_across_metadata_and_file(
    in_metadata: dict[str, str], in_file: dict[str, str]
) -> None:
    meta = {"x-amz-iv": base64.b64encode(b"i" * 12).decode(), **in_metadata}
    with pytest.raises(FormatError):
        parse_envelope(meta, {**v2_metadata(x_amz_key_v2=None, x_amz_iv=None), **in_file})


def test_v2_instruction_file_under_v3_metadata_rejected() -> None:
    # The instruction-file injection: V3 content keys stay, a V2 envelope is slipped in.
    meta = {k: v for k, v in v3_metadata().items() if k in ("x-amz-c", "x-amz-d", "x-amz-i")}
    assert needs_instruction_file(meta)
    with pytest.raises(FormatError, match="format confusion"):
        parse_envelope(meta, v2_metadata())


@pytest.mark.parametrize("moved", ["x-amz-c", "x-amz-d", "x-amz-i"])
def test_v3_content_keys_in_instruction_file_rejected(moved: str) -> None:
    full = v3_metadata()
    file_keys = ("x-amz-3", "x-amz-w", "x-amz-m")
    meta = {k: v for k, v in full.items() if k not in file_keys}
    instruction = {k: full[k] for k in file_keys}
    assert parse_envelope(meta, instruction).location is Location.INSTRUCTION_FILE
    instruction[moved] = full[moved]
    with pytest.raises(FormatError, match=moved):
        parse_envelope(meta, instruction)
    del meta[moved]  # only in the file now: still refused
    with pytest.raises(FormatError, match=moved):
        parse_envelope(meta, instruction)


def test_v3_data_key_part_in_both_places_rejected() -> None:
    full = v3_metadata()
    instruction = {k: full[k] for k in ("x-amz-3", "x-amz-w", "x-amz-m")}
    with pytest.raises(FormatError, match="x-amz-3"):
        parse_envelope(full, instruction)


@pytest.mark.parametrize("left", ["x-amz-iv", "x-amz-cek-alg", "x-amz-wrap-alg", "x-amz-key-v2"])
def test_v2_envelope_left_in_metadata_with_instruction_file(left: str) -> None:
    full = v2_metadata()
    with pytest.raises(FormatError, match=left):
        parse_envelope({left: full[left]}, full)


# --- needs_instruction_file ----------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, True),
        ({"x-amz-unencrypted-content-length": "3"}, True),
        ({"x-amz-c": "115", "x-amz-d": "x", "x-amz-i": "y"}, True),
        (V1_KEY, False),
        (V2_KEY, False),
        (V3_KEY, False),
    ],
)
def test_needs_instruction_file(metadata: dict[str, str], expected: bool) -> None:
    assert needs_instruction_file(metadata) is expected


def test_no_envelope_at_all() -> None:
    with pytest.raises(FormatError, match="no encryption envelope"):
        parse_envelope({"x-amz-unencrypted-content-length": "3"}, {})


# --- strictness ----------------------------------------------------------------------

Bad = Callable[[], dict[str, str]]

BAD_ENVELOPES: dict[str, tuple[Bad, str]] = {
    "edk not base64": (lambda: v2_metadata(x_amz_key_v2="not base64!"), "x-amz-key-v2"),
    "edk missing padding": (lambda: v2_metadata(x_amz_key_v2="QUJ"), "x-amz-key-v2"),
    "edk url-safe": (lambda: v2_metadata(x_amz_key_v2="ab-_" * 4), "x-amz-key-v2"),
    "edk with newline": (lambda: v2_metadata(x_amz_key_v2="QUJD\nQUJD"), "x-amz-key-v2"),
    "edk empty": (lambda: v2_metadata(x_amz_key_v2=""), "x-amz-key-v2"),
    "v3 edk empty": (lambda: v3_metadata(x_amz_3=""), "x-amz-3"),
    "iv 16 for gcm": (
        lambda: v2_metadata(x_amz_iv=base64.b64encode(b"i" * 16).decode()),
        "x-amz-iv",
    ),
    "iv 11": (lambda: v2_metadata(x_amz_iv=base64.b64encode(b"i" * 11).decode()), "x-amz-iv"),
    "iv missing": (lambda: v2_metadata(x_amz_iv=None), "x-amz-iv"),
    "unknown cek alg": (lambda: v2_metadata(x_amz_cek_alg="AES/CTR/NoPadding"), "x-amz-cek-alg"),
    "cek alg missing": (lambda: v2_metadata(x_amz_cek_alg=None), "x-amz-cek-alg"),
    "unknown wrap": (lambda: v2_metadata(x_amz_wrap_alg="ROT13"), "x-amz-wrap-alg"),
    "wrap missing": (lambda: v2_metadata(x_amz_wrap_alg=None), "x-amz-wrap-alg"),
    "tag len 96": (lambda: v2_metadata(x_amz_tag_len="96"), "x-amz-tag-len"),
    "tag len missing": (lambda: v2_metadata(x_amz_tag_len=None), "x-amz-tag-len"),
    "cbc downgrade": (
        lambda: v2_metadata(x_amz_cek_alg=CEK_CBC, x_amz_iv=base64.b64encode(b"i" * 16).decode()),
        "x-amz-cek-alg",
    ),
    "cbc with tag len": (
        lambda: v2_metadata(
            x_amz_cek_alg=CEK_CBC,
            x_amz_wrap_alg="kms",
            x_amz_iv=base64.b64encode(b"i" * 16).decode(),
        ),
        "x-amz-tag-len",
    ),
    "matdesc not json": (lambda: v2_metadata(x_amz_matdesc="{nope"), "x-amz-matdesc"),
    "matdesc a list": (lambda: v2_metadata(x_amz_matdesc='["a"]'), "x-amz-matdesc"),
    "matdesc nested": (lambda: v2_metadata(x_amz_matdesc='{"a":{"b":"c"}}'), "x-amz-matdesc"),
    "matdesc number": (lambda: v2_metadata(x_amz_matdesc='{"a":1}'), "x-amz-matdesc"),
    "matdesc duplicate": (lambda: v2_metadata(x_amz_matdesc='{"a":"1","a":"2"}'), "x-amz-matdesc"),
    "v3 unknown suite": (lambda: v3_metadata(x_amz_c="114"), "x-amz-c"),
    "v3 unknown wrap code": (lambda: v3_metadata(x_amz_w="32"), "x-amz-w"),
    "v3 wrap code missing": (lambda: v3_metadata(x_amz_w=None), "x-amz-w"),
    "v3 legacy wrap name": (lambda: v3_metadata(x_amz_w="AES/GCM"), "x-amz-w"),
    "v3 message id 27": (
        lambda: v3_metadata(x_amz_i=base64.b64encode(b"i" * 27).decode()),
        "x-amz-i",
    ),
    "v3 commitment 32": (
        lambda: v3_metadata(x_amz_d=base64.b64encode(b"d" * 32).decode()),
        "x-amz-d",
    ),
    "v3 commitment missing": (lambda: v3_metadata(x_amz_d=None), "x-amz-d"),
    "v3 m not json": (lambda: v3_metadata(x_amz_m="nope"), "x-amz-m"),
    "v1 iv 12": (
        lambda: {
            "x-amz-key": base64.b64encode(b"k" * 48).decode(),
            "x-amz-iv": base64.b64encode(b"i" * 12).decode(),
        },
        "x-amz-iv",
    ),
    "length not a number": (
        lambda: v2_metadata(x_amz_unencrypted_content_length="-1"),
        "x-amz-unencrypted-content-length",
    ),
}


@pytest.mark.parametrize("case", BAD_ENVELOPES, ids=list(BAD_ENVELOPES))
def test_malformed_envelope_rejected(case: str) -> None:
    build, field = BAD_ENVELOPES[case]
    with pytest.raises(FormatError) as info:
        parse_envelope(build())
    assert field in str(info.value)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"a": 1}', b'{"a": {"b": "c"}}', b'{"a":"1","a":"2"}', b"\xff"],
)
def test_malformed_instruction_file_rejected(body: bytes) -> None:
    with pytest.raises(FormatError, match="instruction file"):
        parse_instruction_file(body)


def test_render_refuses_what_s3vault_never_writes() -> None:
    env = make_envelope(Version.V2, Location.METADATA, WRAP_AES_GCM)
    v3 = make_envelope(Version.V3, Location.METADATA, WRAP_AES_GCM)
    bad = [
        replace(env, content_cipher=CEK_CBC),
        replace(env, wrap_algorithm=WRAP_KMS_LEGACY),
        replace(env, iv=b"short"),
        replace(v3, commitment=None),
        replace(v3, message_id=b"short"),
        replace(v3, wrap_algorithm=WRAP_KMS_LEGACY),
    ]
    for env_bad in bad:
        with pytest.raises(ValueError):
            render_envelope(env_bad)


# --- metadata size -------------------------------------------------------------------


def test_metadata_size_counts_utf8_bytes() -> None:
    assert metadata_size({"ab": "cd", "é": "€"}) == 4 + 2 + 3


def test_typical_envelopes_fit() -> None:
    for version, wrap in itertools.product([Version.V2, Version.V3], DESCRIPTIONS):
        metadata, _ = render_envelope(make_envelope(version, Location.METADATA, wrap))
        check_metadata_size(metadata)


def test_metadata_limit() -> None:
    env = make_envelope(Version.V2, Location.METADATA, WRAP_AES_GCM)
    long = replace(env, description={"note": "x" * 2000})
    metadata, _ = render_envelope(long)
    assert metadata_size(metadata) > 2048
    with pytest.raises(RefusedError) as info:
        check_metadata_size(metadata)
    assert "instruction-file" in str(info.value)
    # The same envelope in an instruction file leaves the metadata small.
    small, instruction = render_envelope(replace(long, location=Location.INSTRUCTION_FILE))
    check_metadata_size(small)
    assert instruction is not None
    check_metadata_size({"k": "v" * 2046})
    with pytest.raises(RefusedError):
        check_metadata_size({"k": "v" * 2048})
