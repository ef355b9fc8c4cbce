"""Property-based fuzzing (hypothesis) of stored objects: metadata, instruction files
and bodies of genuine V1/V2/V3 objects, mutated and stored in SeaweedFS as written.

Mutations: bodies truncated, extended, bit-flipped or replaced; envelope fields
deleted, bit-flipped or replaced by absurd values (negative, huge or malformed sizes
and tag lengths, non-ASCII, RFC 2047 words, deeply nested or huge JSON); fields of
another format version mixed in; the whole envelope swapped in from another object;
instruction files truncated, bit-flipped, not JSON, not UTF-8, nested 100,000 deep,
megabytes long, holding fields of the wrong version.

Properties, checked in process through `Vault` for every example (the bulk), and for
one example of each kind through the real command line:
- `get` (to a file, to a stream) ends in a clean error with a documented exit code
  and leaves no file, or releases exactly the true plaintext;
- `inspect` (text and JSON) and `ls` never crash;
- `rotate` never destroys an object, and never turns one that does not open into one
  that does (nor the reverse);
- `restore` of the whole prefix of hostile objects reports the bad ones and restores
  the rest; the sync engine syncs beside them and changes none.

Examples are derandomized (the same inputs every run: a CI failure reproduces);
`--soak` runs many more.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.handlers
import pytest
from hostile_helpers import (
    AES_KEY,
    HOSTILE_CODES,
    MANIFEST,
    RSA_KEY,
    HostileKeys,
    StoredParts,
    assert_clean_failure,
    check_get,
    check_get_stream,
    check_inspect,
    make_hostile_keys,
    read_parts,
    run_cli,
    vector_object,
    vector_plaintext,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_report import ReliabilityReport
from rotation_helpers import rotate

from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import (
    Location,
    Version,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
)
from s3vault.errors import ExitCode, S3VaultError
from s3vault.remote.objects import ObjectHead
from s3vault.sync.engine import SyncEngine
from s3vault.sync.restore import restore
from s3vault.sync.state import StateDB
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "fuzz/"
CI_EXAMPLES = 100
CI_ROTATIONS = 30
SOAK_FACTOR = 40

# ---- the genuine objects the mutations start from -------------------------------------


@dataclass(frozen=True)
class Genuine:
    label: str
    parts: StoredParts
    plaintext: bytes


V1_VECTORS = ("v1-aesecb-aes256a-meta--p17", "v1-aesecb-aes256a-instr--utf8-1000")
V2_VECTORS = ("v2-aesgcm-aes256a-instr--p16",)


def make_genuine(vault: Vault) -> list[Genuine]:
    """V2 and V3, metadata and instruction file, AES and RSA wraps (sealed here), and
    V1 and instruction-file objects written by the official Ruby client."""
    made = []
    for version in (Version.V2, Version.V3):
        for location in (Location.METADATA, Location.INSTRUCTION_FILE):
            for key_name in (AES_KEY, RSA_KEY):
                plaintext = f"{version}/{location}/{key_name} ".encode() * 7
                sealed = vault.seal(
                    plaintext,
                    "genuine",
                    key_name=key_name,
                    version=version,
                    location=location,
                    extra_metadata={"s3vault-mtime": "1600000000000000000"},
                )
                parts = StoredParts(sealed.body, dict(sealed.metadata), sealed.instruction)
                made.append(Genuine(f"{version}-{location}-{key_name}", parts, plaintext))
    for name in (*V1_VECTORS, *V2_VECTORS):
        entry = next(e for e in MANIFEST if e["name"] == name)
        made.append(Genuine(name, vector_object(entry), vector_plaintext(entry)))
    return made


# ---- mutations --------------------------------------------------------------------------

ENVELOPE_FIELDS = (
    "x-amz-key",
    "x-amz-key-v2",
    "x-amz-3",
    "x-amz-iv",
    "x-amz-matdesc",
    "x-amz-wrap-alg",
    "x-amz-cek-alg",
    "x-amz-tag-len",
    "x-amz-c",
    "x-amz-w",
    "x-amz-m",
    "x-amz-t",
    "x-amz-d",
    "x-amz-i",
    "x-amz-unencrypted-content-length",
    "s3vault-mtime",
)
ABSURD_VALUES = (
    "",
    "-1",
    "-0",
    "0",
    "1e3",
    " 7",
    "0x10",
    "NaN",
    "99999999999999999999999999999999999999",
    str(2**64),
    str(2**63 - 1),
    "96",
    "120",
    "-128",
    "1280",
    "AES/GCM",
    "AES/CBC/PKCS5Padding",
    "AES/GCM/NoPadding",
    "kms",
    "kms+context",
    "AESWrap",
    "RSA/ECB/OAEPWithSHA-256AndMGF1Padding",
    "115",
    "02",
    "12",
    "22",
    "{}",
    "[]",
    "null",
    '{"a":1}',
    '{"s3vault-key":"no-such-key"}',
    '{"s3vault-key":"hostile-rsa"}',
    '{"a":"b","a":"c"}',
    "=?UTF-8?B?A?=",
    "=?UTF-8?B?e30=?=",
    "=?UTF-8?Q?=7B=7D?=",
    "=?nope?B?e30=?=",
    "=?UTF-8?X?e30=?=",
    "AAAA",
    "AA==",
    "====",
    "not base64!",
)


HUGE = b"<3 MB of JSON>"  # made when stored: hypothesis need not show or shrink it


def nested_json(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + '""' + "}" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)

metadata_values = st.one_of(
    st.sampled_from(ABSURD_VALUES),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), min_size=1, max_size=20),
    st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
    st.builds(nested_json, st.sampled_from([2, 50, 1000, 3000]), st.sampled_from(["list", "map"])),
    json_values.map(json.dumps),
)

instruction_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), metadata_values, max_size=8).map(
        lambda d: json.dumps(d).encode()
    ),
    st.builds(
        lambda depth, kind: nested_json(depth, kind).encode(),
        st.sampled_from([100, 5000, 100_000]),
        st.sampled_from(["list", "map"]),
    ),
    st.sampled_from(
        [
            b"\xef\xbb\xbf{}",
            b'{"x-amz-key-v2":"AA==","x-amz-key-v2":"AA=="}',
            b"\xff\xfe{\x00}\x00",
            b"[]",
            b"null",
            b'"x-amz-key-v2"',
            HUGE,  # megabytes of JSON
        ]
    ),
)


@dataclass(frozen=True)
class Mutation:
    """One way to make a genuine object hostile: ``kind`` (for the report) and the
    change, as data, so hypothesis shows and shrinks it readably."""

    kind: str
    source: int
    params: tuple[Any, ...]

    def apply(self, genuine: list[Genuine]) -> StoredParts:
        parts = genuine[self.source % len(genuine)].parts
        return MUTATORS[self.kind](parts, genuine, *self.params)


def _flip(data: bytes, position: int, bit: int) -> bytes:
    if not data:
        return b"\x01"
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def body_truncated(p: StoredParts, g: list[Genuine], cut: int) -> StoredParts:
    return replace(p, body=p.body[: cut % max(len(p.body), 1)])


def body_extended(p: StoredParts, g: list[Genuine], extra: bytes) -> StoredParts:
    return replace(p, body=p.body + extra)


def body_bitflip(p: StoredParts, g: list[Genuine], position: int, bit: int) -> StoredParts:
    return replace(p, body=_flip(p.body, position, bit))


def body_replaced(p: StoredParts, g: list[Genuine], body: bytes) -> StoredParts:
    return replace(p, body=body)


def field_deleted(p: StoredParts, g: list[Genuine], index: int) -> StoredParts:
    fields = sorted(p.metadata)
    if not fields:
        return p
    metadata = dict(p.metadata)
    del metadata[fields[index % len(fields)]]
    return replace(p, metadata=metadata)


def field_set(p: StoredParts, g: list[Genuine], name: str, value: str) -> StoredParts:
    return replace(p, metadata={**p.metadata, name: value})


def field_bitflip(p: StoredParts, g: list[Genuine], index: int, position: int) -> StoredParts:
    """A bit of a base64 field's decoded bytes flipped (the encoding stays valid)."""
    fields = sorted(
        n
        for n in p.metadata
        if n in ("x-amz-key-v2", "x-amz-3", "x-amz-iv", "x-amz-key", "x-amz-d", "x-amz-i")
    )
    if not fields:
        return body_bitflip(p, g, position, 0)
    name = fields[index % len(fields)]
    raw = base64.b64decode(p.metadata[name])
    flipped = _flip(raw, position // 8, position % 8)
    return replace(p, metadata={**p.metadata, name: base64.b64encode(flipped).decode()})


def versions_mixed(p: StoredParts, g: list[Genuine], other: int, mask: int) -> StoredParts:
    """Some envelope fields of another object (maybe another version) added."""
    donor = g[other % len(g)].parts
    fields = {**donor.metadata, **_instruction_fields(donor)}
    names = sorted(n for n in fields if n.startswith("x-amz-"))
    chosen = {n: fields[n] for i, n in enumerate(names) if mask >> i & 1}
    return replace(p, metadata={**p.metadata, **chosen})


def envelope_swapped(p: StoredParts, g: list[Genuine], other: int) -> StoredParts:
    """Another object's whole envelope (metadata and instruction file) on this body."""
    donor = g[other % len(g)].parts
    return StoredParts(p.body, dict(donor.metadata), donor.instruction)


def instruction_replaced(p: StoredParts, g: list[Genuine], body: bytes, strip: bool) -> StoredParts:
    """A hostile instruction file; ``strip``: the envelope leaves the metadata too, so
    the instruction file is read even for a metadata object."""
    metadata = p.metadata
    if body == HUGE:
        body = b'{"a":"' + b"x" * 3_000_000 + b'"}'
    if strip:
        metadata = {k: v for k, v in metadata.items() if not k.startswith("x-amz-")}
        metadata["x-amz-unencrypted-content-length"] = "1"
    return StoredParts(p.body, metadata, body)


def instruction_bitflip(p: StoredParts, g: list[Genuine], position: int, bit: int) -> StoredParts:
    if p.instruction is None:
        return body_bitflip(p, g, position, bit)
    return replace(p, instruction=_flip(p.instruction, position, bit))


def instruction_truncated(p: StoredParts, g: list[Genuine], cut: int) -> StoredParts:
    if p.instruction is None:
        return body_truncated(p, g, cut)
    return replace(p, instruction=p.instruction[: cut % len(p.instruction)])


def instruction_field_set(p: StoredParts, g: list[Genuine], name: str, value: str) -> StoredParts:
    if p.instruction is None:
        return field_set(p, g, name, value)
    fields = {**_instruction_fields(p), name: value}
    return replace(p, instruction=json.dumps(fields).encode())


def _instruction_fields(p: StoredParts) -> dict[str, str]:
    if p.instruction is None:
        return {}
    value = json.loads(p.instruction)
    assert isinstance(value, dict)
    return value


MUTATORS: dict[str, Callable[..., StoredParts]] = {
    "body truncated": body_truncated,
    "body extended": body_extended,
    "body bit-flipped": body_bitflip,
    "body replaced": body_replaced,
    "envelope field deleted": field_deleted,
    "envelope field absurd": field_set,
    "envelope field bit-flipped": field_bitflip,
    "V1/V2/V3 fields mixed": versions_mixed,
    "envelope swapped between objects": envelope_swapped,
    "instruction file hostile": instruction_replaced,
    "instruction file bit-flipped": instruction_bitflip,
    "instruction file truncated": instruction_truncated,
    "instruction file field absurd": instruction_field_set,
}

sources = st.integers(min_value=0, max_value=10_000)
positions = st.integers(min_value=0, max_value=100_000)
bits = st.integers(min_value=0, max_value=7)
field_names = st.sampled_from(ENVELOPE_FIELDS)

_BY_KIND = [
    st.builds(Mutation, st.just("body truncated"), sources, st.tuples(positions)),
    st.builds(
        Mutation, st.just("body extended"), sources, st.tuples(st.binary(min_size=1, max_size=64))
    ),
    st.builds(Mutation, st.just("body bit-flipped"), sources, st.tuples(positions, bits)),
    st.builds(Mutation, st.just("body replaced"), sources, st.tuples(st.binary(max_size=300))),
    st.builds(Mutation, st.just("envelope field deleted"), sources, st.tuples(positions)),
    st.builds(
        Mutation, st.just("envelope field absurd"), sources, st.tuples(field_names, metadata_values)
    ),
    st.builds(
        Mutation, st.just("envelope field bit-flipped"), sources, st.tuples(positions, positions)
    ),
    st.builds(
        Mutation,
        st.just("V1/V2/V3 fields mixed"),
        sources,
        st.tuples(sources, st.integers(min_value=1, max_value=2**12 - 1)),
    ),
    st.builds(Mutation, st.just("envelope swapped between objects"), sources, st.tuples(sources)),
    st.builds(
        Mutation,
        st.just("instruction file hostile"),
        sources,
        st.tuples(instruction_bodies, st.booleans()),
    ),
    st.builds(
        Mutation, st.just("instruction file bit-flipped"), sources, st.tuples(positions, bits)
    ),
    st.builds(Mutation, st.just("instruction file truncated"), sources, st.tuples(positions)),
    st.builds(
        Mutation,
        st.just("instruction file field absurd"),
        sources,
        st.tuples(field_names, metadata_values),
    ),
]
# Each kind equally often (one_of leans to its first branches once examples are
# derandomized).
mutations = st.sampled_from(range(len(_BY_KIND))).flatmap(lambda i: _BY_KIND[i])


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,  # the same examples every run: a CI failure replays as it was
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(session_env: dict[str, str]) -> HostileKeys:
    return make_hostile_keys(session_env)


@pytest.fixture(scope="module")
def vault(keys: HostileKeys) -> Vault:
    return keys.vault()


@pytest.fixture(scope="module")
def genuine(vault: Vault) -> list[Genuine]:
    return make_genuine(vault)


@pytest.fixture(scope="module")
def raw_client(s3_client: S3Client) -> S3Client:
    """A boto3 client that also sends non-ASCII metadata (botocore refuses it by
    default; S3 servers store the UTF-8 bytes): what another client could write."""
    import boto3

    meta = s3_client.meta
    client = boto3.client(
        "s3",
        endpoint_url=meta.endpoint_url,
        region_name=meta.region_name,
        config=meta.config,
    )
    client.meta.events.unregister(
        "before-parameter-build.s3.PutObject", botocore.handlers.validate_ascii_metadata
    )
    return client


@dataclass
class Stored:
    key: str
    mutation: Mutation
    plaintext: bytes
    outcome: str = ""


# ---- the properties ---------------------------------------------------------------------


def test_get_inspect_ls_restore_and_sync_survive_fuzzed_objects(
    bucket: str,
    vault: Vault,
    genuine: list[Genuine],
    raw_client: S3Client,
    s3_client: S3Client,
    keys: HostileKeys,
    tmp_path: Path,
    soak: bool,
    reliability: ReliabilityReport,
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stored: list[Stored] = []
    outcomes: Counter[str] = Counter()

    @fuzz_settings(CI_EXAMPLES * (SOAK_FACTOR if soak else 1))
    @given(mutation=mutations)
    def one(mutation: Mutation) -> None:
        key = f"{PREFIX}{len(stored):05d}"
        source = genuine[mutation.source % len(genuine)]
        mutation.apply(genuine).store(raw_client, bucket, key)
        got = check_get(vault, bucket, key, source.plaintext, out_dir)
        assert check_get_stream(vault, bucket, key, source.plaintext) == got, key
        shown = check_inspect(vault, bucket, key)
        stored.append(Stored(key, mutation, source.plaintext, got))
        outcomes[f"get {got}, inspect {shown}"] += 1

    one()
    assert len(stored) >= CI_EXAMPLES
    print(dict(outcomes))
    # Most mutations must be caught: a fuzzer whose mutations all opened tried nothing.
    assert outcomes.most_common(1)[0][0].startswith("get error")

    listed = [i for i in vault.list(bucket, PREFIX, recursive=True) if isinstance(i, ObjectInfo)]
    assert {i.key for i in listed} == {s.key for s in stored}
    for info in listed:
        json.dumps(info.to_json())

    # Restore of the whole prefix: each bad object reported, the rest restored as it is.
    restored = tmp_path / "restored"
    report = restore(vault, bucket, PREFIX, restored, allow_legacy=True)
    failed = {e.path: e.exit_code for e in report.errors}
    for s in stored:
        rel = s.key[len(PREFIX) :]
        if s.outcome == "error":
            assert failed.get(rel) in HOSTILE_CODES, (s, report.errors)
            assert not (restored / rel).exists()
        else:
            assert (restored / rel).read_bytes() == s.plaintext, s
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        s.key[len(PREFIX) :] for s in stored if s.outcome == "same"
    ), "restore left a temp file or a file of a bad object"

    # The sync engine, whose prefix is full of them: local files of the same names are
    # conflicts (never overwrites), a new file is uploaded, nothing else changes.
    root = tmp_path / "folder"
    root.mkdir()
    clashes = [s.key[len(PREFIX) :] for s in stored[:10]]
    for rel in clashes:
        (root / rel).write_bytes(b"local")
    (root / "new.txt").write_bytes(b"new")
    before = {s.key: read_parts(s3_client, bucket, s.key) for s in stored[:10]}
    folder = FolderSettings(path=root, bucket=bucket, prefix=PREFIX, key=AES_KEY)
    with StateDB(tmp_path / "state.db") as state:
        for _ in range(2):
            sync = SyncEngine(folder, vault, state).reconcile()
            assert sync.errors == []
            assert sorted(c.path for c in sync.conflicts) == sorted(clashes)
    for key, parts in before.items():
        assert read_parts(s3_client, bucket, key) == parts, f"sync changed {key}"

    kinds = Counter(s.mutation.kind for s in stored)
    for kind, n in kinds.items():
        reliability.hostile_input(f"fuzzed object: {kind} (get, get -, inspect)", n)
    reliability.hostile_input("fuzzed object (ls, restore, sync engine)", len(stored))

    # One example of each kind through the real command line: exit codes, no traceback.
    sample = {s.mutation.kind: s for s in stored if s.outcome == "error"}
    tried = 0
    for kind, s in sorted(sample.items())[:: 1 if soak else 5]:
        r = run_cli(keys.env, "get", f"s3://{bucket}/{s.key}", out_dir / "x", cwd=tmp_path)
        assert_clean_failure(r, set(HOSTILE_CODES))
        assert list(out_dir.iterdir()) == [], kind
        r = run_cli(keys.env, "inspect", f"s3://{bucket}/{s.key}", "--json", cwd=tmp_path)
        assert b"Traceback" not in r.stderr, r.stderr.decode()
        assert r.returncode in {0, *HOSTILE_CODES}, (kind, r.returncode, r.stderr.decode())
        tried += 1
    assert tried >= 2
    reliability.hostile_input("fuzzed object (CLI get and inspect)", 2 * tried)


def test_rotate_never_destroys_or_launders_a_fuzzed_object(
    bucket: str,
    vault: Vault,
    genuine: list[Genuine],
    raw_client: S3Client,
    s3_client: S3Client,
    tmp_path: Path,
    soak: bool,
    reliability: ReliabilityReport,
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    kinds: Counter[str] = Counter()

    @fuzz_settings(CI_ROTATIONS * (SOAK_FACTOR if soak else 1))
    @given(mutation=mutations, reencrypt=st.booleans())
    def one(mutation: Mutation, reencrypt: bool) -> None:
        key = f"{PREFIX}rot"
        source = genuine[mutation.source % len(genuine)]
        mutation.apply(genuine).store(raw_client, bucket, key)
        before = read_parts(s3_client, bucket, key)
        opened = check_get(vault, bucket, key, source.plaintext, out_dir)
        report = rotate(vault, bucket, key, to_key=AES_KEY, reencrypt=reencrypt, allow_legacy=True)
        after = read_parts(s3_client, bucket, key)
        if report.failed:
            (failed,) = report.failed
            assert failed.exit_code in {*HOSTILE_CODES, ExitCode.NOT_FOUND}, failed
            assert after == before, "a failed rotation changed the object"
        elif report.rotated and not reencrypt:
            assert after.body == before.body, "a re-wrap changed the body"
        # What opened still opens to the same bytes; what did not still does not.
        assert check_get(vault, bucket, key, source.plaintext, out_dir) == opened
        kinds[mutation.kind] += 1

    one()
    for kind, n in kinds.items():
        reliability.hostile_input(f"fuzzed object: {kind} (rotate)", n)
    assert sum(kinds.values()) >= CI_ROTATIONS


def test_every_absurd_value_in_every_envelope_field_parses_to_a_clean_error(
    vault: Vault, genuine: list[Genuine], reliability: ReliabilityReport
) -> None:
    """Exhaustive where the fuzzer samples: each absurd value in each field of each
    genuine envelope (metadata and instruction file), through the format layer and
    what inspect shows; S3 adds nothing to this, so it runs without it."""
    tried = 0
    for g in genuine:
        for name in ENVELOPE_FIELDS:
            for value in (*ABSURD_VALUES, nested_json(5000, "list"), nested_json(5000, "map")):
                for parts in (
                    field_set(g.parts, genuine, name, value),
                    instruction_field_set(g.parts, genuine, name, value),
                ):
                    try:
                        fields = None
                        if needs_instruction_file(parts.metadata):
                            if parts.instruction is None:
                                continue
                            fields = parse_instruction_file(parts.instruction)
                        env = parse_envelope(parts.metadata, fields)
                        head = ObjectHead("b", "k", len(parts.body), '"e"', None, parts.metadata)
                        json.dumps(ObjectInfo.from_head(head, env).to_json())
                    except S3VaultError as exc:
                        assert exc.exit_code in HOSTILE_CODES, (name, value, exc)
                    tried += 1
    reliability.hostile_input("absurd envelope field value (format layer)", tried)
    bodies = [
        nested_json(100_000, "list").encode(),
        nested_json(100_000, "map").encode(),
        b'{"a":"' + b"x" * 3_000_000 + b'"}',
        b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00",
        b'{"x-amz-key-v2":"AA==","x-amz-key-v2":"AA=="}',
        b"[]",
        b"null",
    ]
    for body in bodies:
        try:
            parse_envelope({}, parse_instruction_file(body))
        except S3VaultError as exc:
            assert exc.exit_code in HOSTILE_CODES, (body[:40], exc)
    reliability.hostile_input("hostile instruction file (format layer)", len(bodies))
