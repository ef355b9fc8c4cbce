"""Instruction files under any suffix (the Ruby client's ``instruction_file_suffix``).

Against the real services: objects written by the official Ruby client whose envelope
is stored under ``.envelope`` instead of ``.instruction`` (an instruction file is plain
JSON, so the vector's envelope object simply takes another name) are read, inspected,
listed, rotated and deleted; s3vault's own writes under a custom suffix round-trip; the
config's default and a folder's own suffix apply to put, sync, rename, delete, restore
and the `key delete` guard; bad suffixes are refused with a clear error.
"""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cli_checks import fails, ok
from sync_helpers import make_folder_engine, sync_vault, write

from s3vault.config.model import Config
from s3vault.config.suffix import check_instruction_suffix
from s3vault.crypto.envelope import Location, Version
from s3vault.errors import ExitCode, FormatError, UsageError
from s3vault.sync.restore import restore
from s3vault.sync.state import StateDB
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from cli_run import RunCli
    from mypy_boto3_s3 import S3Client

SUFFIX = ".envelope"
AES_VECTOR = "v2-aesgcm-aes256a-instr--utf8-1000"
RSA_VECTOR = "v2-rsaoaep-rsa2048a-instr--random-1mib7"
V1_VECTOR = "v1-aesecb-aes256a-instr--p17"
BAD_SUFFIXES = ["", "   ", "/", ".a/b", ".x\x07", "\t"]


def keys(s3_client: S3Client, bucket: str) -> set[str]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listing}


def store_vector(
    s3_client: S3Client, vectors_dir: Path, name: str, bucket: str, key: str, suffix: str
) -> bytes:
    """Store vector ``name`` at ``key`` with its instruction file at ``key + suffix``,
    byte for byte as the Ruby client wrote them; returns the vector's plaintext."""
    folder = vectors_dir / "objects" / name
    s3_client.put_object(
        Bucket=bucket,
        Key=key,
        Body=(folder / "body.bin").read_bytes(),
        Metadata=json.loads((folder / "metadata.json").read_text(encoding="utf-8")),
    )
    s3_client.put_object(
        Bucket=bucket,
        Key=key + suffix,
        Body=(folder / "instruction.json").read_bytes(),
        Metadata=json.loads((folder / "instruction-metadata.json").read_text(encoding="utf-8")),
    )
    manifest = json.loads((vectors_dir / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = [e for e in manifest if e["name"] == name]
    assert entry["envelope_location"] == "instruction_file"
    return (vectors_dir / entry["plaintext"]).read_bytes()


def import_key(run_cli: RunCli, vectors_dir: Path, name: str) -> None:
    (path,) = (vectors_dir / "keys").glob(f"{name}.*")
    kind = "aes" if path.suffix == ".key" else "rsa"
    ok(run_cli("key", "import", name, "--type", kind, "--file", path))


# ---- objects the Ruby client wrote, under a custom suffix ------------------------------


def test_ruby_vector_under_custom_suffix_is_read_inspected_listed_rotated_and_deleted(
    run_cli: RunCli, bucket: str, s3_client: S3Client, vectors_dir: Path, tmp_path: Path
) -> None:
    import_key(run_cli, vectors_dir, "aes256-a")
    key = "ruby/report.txt"
    url = f"s3://{bucket}/{key}"
    plaintext = store_vector(s3_client, vectors_dir, AES_VECTOR, bucket, key, SUFFIX)
    body_before = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()

    # Read: under the suffix it decrypts; without it, a clear error that names the
    # instruction file looked for and the option, and no output file.
    out = tmp_path / "out.txt"
    ok(run_cli("get", url, out, "--instruction-suffix", SUFFIX))
    assert out.read_bytes() == plaintext
    out.unlink()
    r = fails(run_cli("get", url, out), ExitCode.INTEGRITY)
    assert f"{key}.instruction" in r.stderr.decode() and b"--instruction-suffix" in r.stderr
    assert not out.exists()

    # Inspect: the envelope is found where the suffix says, and shown with its name.
    info = json.loads(ok(run_cli("inspect", url, "--instruction-suffix", SUFFIX, "--json")).stdout)
    assert (info["format"], info["location"]) == ("v2", "instruction-file")
    assert info["instruction_file"] == key + SUFFIX
    assert info["wrap_algorithm"] == "AES/GCM"
    shown = ok(run_cli("inspect", url, "--instruction-suffix", SUFFIX)).stdout.decode()
    (line,) = [row for row in shown.splitlines() if row.startswith("instruction file")]
    assert line.split()[-1] == key + SUFFIX

    # List: the envelope object is not an object of its own under its suffix.
    listed = json.loads(
        ok(run_cli("ls", f"s3://{bucket}/ruby/", "--instruction-suffix", SUFFIX, "--json")).stdout
    )
    assert [(e["key"], e["format"], e["location"]) for e in listed] == [
        (key, "v2", "instruction-file")
    ]
    # Under the default suffix the same listing shows two objects: the encrypted one
    # whose envelope was not found (an error, not "plain"), and a plain JSON object.
    default = json.loads(ok(run_cli("ls", f"s3://{bucket}/ruby/", "--json")).stdout)
    assert {e["key"]: e["format"] for e in default} == {key: "invalid", key + SUFFIX: "plain"}

    # Rotate: the data key is re-wrapped in the .envelope object; the body stays.
    ok(run_cli("key", "generate", "rotated"))
    report = json.loads(
        ok(
            run_cli("rotate", url, "--to-key", "rotated", "--instruction-suffix", SUFFIX, "--json")
        ).stdout
    )
    assert report["rotated"][0]["action"] == "rewrap", report
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == body_before
    envelope = json.loads(s3_client.get_object(Bucket=bucket, Key=key + SUFFIX)["Body"].read())
    assert json.loads(envelope["x-amz-matdesc"]) == {"s3vault-key": "rotated"}
    assert keys(s3_client, bucket) == {key, key + SUFFIX}  # no .instruction object appeared
    ok(run_cli("key", "delete", "aes256-a", "--yes", "--force"))
    got = json.loads(ok(run_cli("get", url, out, "--instruction-suffix", SUFFIX, "--json")).stdout)
    assert got["key_name"] == "rotated" and out.read_bytes() == plaintext

    # Delete: the object and its envelope go together.
    ok(run_cli("rm", url, "--instruction-suffix", SUFFIX))
    assert keys(s3_client, bucket) == set()


def test_ruby_rsa_vector_under_custom_suffix_is_reencrypted_in_place(
    run_cli: RunCli, bucket: str, s3_client: S3Client, vectors_dir: Path, tmp_path: Path
) -> None:
    import_key(run_cli, vectors_dir, "rsa2048-a")
    ok(run_cli("key", "generate", "fresh"))
    key = "ruby/big.bin"
    url = f"s3://{bucket}/{key}"
    plaintext = store_vector(s3_client, vectors_dir, RSA_VECTOR, bucket, key, SUFFIX)
    old_body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()

    ok(run_cli("rotate", url, "--reencrypt", "--to-key", "fresh", "--instruction-suffix", SUFFIX))
    new_body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert new_body != old_body and len(new_body) == len(plaintext) + 16
    metadata = s3_client.head_object(Bucket=bucket, Key=key)["Metadata"]
    assert "x-amz-key-v2" not in metadata, "the envelope must end up in the instruction file"
    envelope = json.loads(s3_client.get_object(Bucket=bucket, Key=key + SUFFIX)["Body"].read())
    assert envelope["x-amz-wrap-alg"] == "AES/GCM"
    assert keys(s3_client, bucket) == {key, key + SUFFIX}
    out = tmp_path / "big.bin"
    ok(run_cli("get", url, out, "--instruction-suffix", SUFFIX))
    assert out.read_bytes() == plaintext


def test_legacy_ruby_vector_under_custom_suffix_reads_with_allow_legacy(
    run_cli: RunCli, bucket: str, s3_client: S3Client, vectors_dir: Path, tmp_path: Path
) -> None:
    import_key(run_cli, vectors_dir, "aes256-a")
    key = "legacy/p17"
    plaintext = store_vector(s3_client, vectors_dir, V1_VECTOR, bucket, key, ".v1env")
    out = tmp_path / "p17"
    url = f"s3://{bucket}/{key}"
    args = ("get", url, out, "--key", "aes256-a", "--instruction-suffix", ".v1env")
    assert b"--allow-legacy" in fails(run_cli(*args), ExitCode.REFUSED).stderr
    ok(run_cli(*args, "--allow-legacy"))
    assert out.read_bytes() == plaintext


# ---- s3vault's own writes ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_put_under_custom_suffix_round_trips(
    run_cli: RunCli, bucket: str, s3_client: S3Client, tmp_path: Path, fmt: str
) -> None:
    ok(run_cli("key", "generate", "mine"))
    source = tmp_path / "db.dump"
    source.write_bytes(b"rows and rows\n" * 1000)
    url = f"s3://{bucket}/db.dump"
    in_env_file = ("--envelope", "instruction-file", "--instruction-suffix", ".env")
    put = ok(run_cli("put", source, url, "--format", fmt, *in_env_file, "--json"))
    assert json.loads(put.stdout)["instruction_file"] == "db.dump.env"
    assert keys(s3_client, bucket) == {"db.dump", "db.dump.env"}
    envelope = json.loads(s3_client.get_object(Bucket=bucket, Key="db.dump.env")["Body"].read())
    assert ("x-amz-key-v2" if fmt == "v2" else "x-amz-3") in envelope
    human = ok(run_cli("put", source, f"s3://{bucket}/copy", *in_env_file))
    assert "envelope in copy.env" in human.stdout.decode()

    out = tmp_path / "back"
    ok(run_cli("get", url, out, "--instruction-suffix", ".env"))
    assert out.read_bytes() == source.read_bytes()
    info = json.loads(ok(run_cli("inspect", url, "--instruction-suffix", ".env", "--json")).stdout)
    assert (info["format"], info["instruction_file"]) == (fmt, "db.dump.env")


def test_keys_ending_in_the_suffix_are_reserved_for_instruction_files(
    run_cli: RunCli, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    ok(run_cli("key", "generate", "mine"))
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    r = fails(
        run_cli("put", source, f"s3://{bucket}/a.txt.env", "--instruction-suffix", ".env"),
        ExitCode.USAGE,
    )
    assert b"reserved for instruction files" in r.stderr and b"'.env'" in r.stderr
    # Under the default suffix that name is an ordinary object key.
    ok(run_cli("put", source, f"s3://{bucket}/a.txt.env"))
    assert keys(s3_client, bucket) == {"a.txt.env"}


@pytest.mark.parametrize("suffix", BAD_SUFFIXES)
def test_bad_suffix_on_the_command_line_is_refused_before_anything_is_written(
    run_cli: RunCli, bucket: str, s3_client: S3Client, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    for args in (
        ("put", source, f"s3://{bucket}/a.txt", "--envelope", "instruction-file"),
        ("ls", f"s3://{bucket}"),
        ("restore", f"s3://{bucket}/", tmp_path / "out"),
    ):
        r = fails(run_cli(*args, "--instruction-suffix", suffix), ExitCode.USAGE)
        message = r.stderr.decode()
        assert "--instruction-suffix" in message and "suffix" in message.split("--", 1)[1]
    assert keys(s3_client, bucket) == set()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("suffix", "why"),
    [("", "own envelope"), ("a/b", "'/'"), (".\x1b", "control character")],
)
def test_bad_suffix_in_the_config_is_a_config_error(
    run_cli: RunCli, tmp_path: Path, suffix: str, why: str
) -> None:
    config = tmp_path / "config.json"
    for document in (
        {"defaults": {"instruction_suffix": suffix}},
        {
            "folders": [
                {
                    "path": str(tmp_path / "docs"),
                    "bucket": "b",
                    "key": "k",
                    "instruction_suffix": suffix,
                }
            ]
        },
    ):
        config.write_text(json.dumps(document))
        r = fails(run_cli("--config", config, "config", "validate"), ExitCode.USAGE)
        assert "instruction_suffix" in r.stderr.decode() and why in r.stderr.decode()


@pytest.mark.parametrize(
    "suffix", [*BAD_SUFFIXES, ".instruction", ".envelope", "-env", " .x", ".ümlaut", ".\x85"]
)
def test_json_schema_pattern_agrees_with_the_config_check(suffix: str) -> None:
    # Ansible and Terraform validate by the schema: it must refuse what s3vault refuses.
    schema = Config.model_json_schema()["$defs"]["DefaultsSettings"]["properties"]
    pattern = schema["instruction_suffix"]["pattern"]
    try:
        check_instruction_suffix(suffix)
        accepted = True
    except ValueError:
        accepted = False
    assert bool(re.fullmatch(pattern, suffix)) is accepted


def test_vault_refuses_a_bad_suffix_and_shares_its_clients_with_a_good_one(
    keyring_service: str,
) -> None:
    vault = sync_vault(keyring_service)
    assert vault.instruction_suffix == ".instruction"
    assert vault.with_instruction_suffix(None) is vault
    other = vault.with_instruction_suffix(".env")
    assert (other.remote, other.keys) == (vault.remote, vault.keys)
    assert other.instruction_key("a") == "a.env" and other.is_instruction_key("a.env")
    assert not other.is_instruction_key(".env")  # the envelope of no object
    assert vault.instruction_suffix == ".instruction"  # the original is unchanged
    for bad in BAD_SUFFIXES:
        with pytest.raises(UsageError, match="suffix"):
            vault.with_instruction_suffix(bad)


# ---- the config's default and a folder's own suffix ------------------------------------


def test_config_default_suffix_and_its_environment_override_apply_to_put_and_get(
    run_cli: RunCli, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    ok(run_cli("key", "generate", "mine"))
    config = tmp_path / "config.yaml"
    config.write_text("defaults:\n  envelope: instruction-file\n  instruction_suffix: .meta\n")
    source = tmp_path / "a.txt"
    source.write_bytes(b"configured")
    env = {"S3VAULT_CONFIG": str(config)}
    ok(run_cli("put", source, f"s3://{bucket}/one", env=env))
    overridden = {**env, "S3VAULT_DEFAULTS_INSTRUCTION_SUFFIX": ".other"}
    ok(run_cli("put", source, f"s3://{bucket}/two", env=overridden))
    ok(run_cli("put", source, f"s3://{bucket}/three", "--instruction-suffix", ".opt", env=env))
    assert keys(s3_client, bucket) == {"one", "one.meta", "two", "two.other", "three", "three.opt"}
    out = tmp_path / "out"
    ok(run_cli("get", f"s3://{bucket}/one", out, env=env))
    assert out.read_bytes() == b"configured"
    # The config's default is where ls looks: "one" is listed with its envelope.
    listed = json.loads(ok(run_cli("ls", f"s3://{bucket}/o", "--json", env=env)).stdout)
    assert [(e["key"], e["instruction_file"]) for e in listed] == [("one", "one.meta")]


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


@pytest.fixture
def state(tmp_path: Path):
    with StateDB(tmp_path / "state.db") as db:
        yield db


def test_folder_suffix_carries_envelopes_through_upload_rename_delete_and_restore(
    vault: Vault, state: StateDB, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    settings = {"envelope": "instruction-file", "format": "v2", "instruction_suffix": ".fenv"}
    engine = make_folder_engine(root, bucket, "scans/", vault, state, **settings)
    write(root, "a.txt", b"alpha")
    write(root, "b.txt", b"bravo")
    big = write(root, "sub/big.bin", bytes(range(256)) * 100_000)  # above the batch size
    write(root, "notes.fenv", b"a file named like an envelope")
    many = {f"many/f{i:02}.txt" for i in range(16)}  # enough small files for the small-file path
    for rel in many:
        write(root, rel, rel.encode())
    boto3_puts: list[str] = []
    vault.remote.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **kw: boto3_puts.append(params["Key"])
    )
    report = engine.reconcile()
    assert report.uploaded == 3 + 16
    assert [(e.path, "reserved" in e.message) for e in report.errors] == [("notes.fenv", True)]
    # The small files went through the batch (obstore), their envelopes too; only the
    # large file's envelope was a boto3 PutObject (the file itself a multipart upload).
    assert boto3_puts == ["scans/sub/big.bin.fenv"]
    objects = {"a.txt", "b.txt", "sub/big.bin", *many}
    assert keys(s3_client, bucket) == {f"scans/{p}{s}" for p in objects for s in ("", ".fenv")}

    (root / "a.txt").rename(root / "renamed.txt")
    (root / "b.txt").unlink()
    (root / "notes.fenv").unlink()
    report = engine.reconcile()
    assert (report.copied, report.deleted, report.errors) == (1, 1, [])
    objects = {"renamed.txt", "sub/big.bin", *many}
    assert keys(s3_client, bucket) == {f"scans/{p}{s}" for p in objects for s in ("", ".fenv")}

    out = tmp_path / "restored"
    restored = restore(vault.with_instruction_suffix(".fenv"), bucket, "scans/", out)
    assert (restored.restored, restored.errors) == (2 + 16, [])
    assert all((out / rel).read_bytes() == rel.encode() for rel in many)
    assert (out / "renamed.txt").read_bytes() == b"alpha"
    assert (out / "sub/big.bin").read_bytes() == big.read_bytes()


def test_rename_never_copies_an_object_without_its_envelope(
    vault: Vault, state: StateDB, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    # Synced with instruction files under .instruction; then the folder's suffix is
    # changed. A rename must not produce a copy whose envelope cannot be found.
    root = tmp_path / "docs"
    first = make_folder_engine(root, bucket, "", vault, state, envelope="instruction-file")
    write(root, "a.txt", b"alpha")
    first.reconcile()
    changed = make_folder_engine(
        root, bucket, "", vault, state, envelope="instruction-file", instruction_suffix=".new"
    )
    (root / "a.txt").rename(root / "b.txt")
    report = changed.reconcile()
    assert report.copied == 0
    assert [e.path for e in report.errors] == ["b.txt"]
    assert "instruction file" in report.errors[0].message
    # The original object and its envelope are untouched and still open.
    assert keys(s3_client, bucket) == {"a.txt", "a.txt.instruction"}
    out = io.BytesIO()
    vault.get(bucket, "a.txt", out)
    assert out.getvalue() == b"alpha"


def test_vault_copy_refuses_an_object_whose_envelope_is_elsewhere(
    vault: Vault, bucket: str, tmp_path: Path, s3_client: S3Client
) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"x")
    put = vault.put(source, bucket, "a", location=Location.INSTRUCTION_FILE, version=Version.V3)
    with pytest.raises(FormatError, match="not copied"):
        vault.with_instruction_suffix(".other").copy(bucket, "a", "b", if_match=put.etag)
    assert keys(s3_client, bucket) == {"a", "a.instruction"}


def test_sync_and_restore_commands_use_the_configured_folders_suffix(
    run_cli: RunCli, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    ok(run_cli("key", "generate", "folder-key"))
    root = tmp_path / "docs"
    write(root, "a.txt", b"alpha")
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "defaults": {"instruction_suffix": ".dflt"},
                "folders": [
                    {
                        "path": str(root),
                        "bucket": bucket,
                        "prefix": "docs",
                        "key": "folder-key",
                        "envelope": "instruction-file",
                        "instruction_suffix": ".fenv",
                    }
                ],
            }
        )
    )
    env = {"S3VAULT_CONFIG": str(config)}
    target = f"s3://{bucket}/docs"
    in_file = ("--key", "folder-key", "--envelope", "instruction-file")
    ok(run_cli("sync", root, target, *in_file, env=env))
    assert keys(s3_client, bucket) == {"docs/a.txt", "docs/a.txt.fenv"}
    restored = json.loads(
        ok(run_cli("restore", target, tmp_path / "out", "--json", env=env)).stdout
    )
    assert restored["restored"] == 1 and (tmp_path / "out/a.txt").read_bytes() == b"alpha"
    # Elsewhere, the config's default applies.
    ok(run_cli("sync", root, f"s3://{bucket}/other", *in_file, env=env))
    assert "other/a.txt.dflt" in keys(s3_client, bucket)


def test_key_delete_checks_each_folder_under_its_suffix(
    run_cli: RunCli, bucket: str, tmp_path: Path
) -> None:
    ok(run_cli("key", "generate", "old"))
    ok(run_cli("key", "generate", "new"))
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    args = ("--envelope", "instruction-file", "--key", "old", "--instruction-suffix", ".fenv")
    ok(run_cli("put", source, f"s3://{bucket}/docs/a.txt", *args))

    # Checked under the default suffix, the object's envelope cannot be read: whether
    # it needs the key is unknown, so the key stays.
    r = fails(
        run_cli("key", "delete", "old", "--yes", "--check", f"s3://{bucket}/"), ExitCode.CONFLICT
    )
    assert b"cannot be read" in r.stderr and f"s3://{bucket}/docs/a.txt".encode() in r.stderr
    # A synced folder there with the suffix: the object is found to need the key.
    config = tmp_path / "config.json"
    folder = {"path": str(tmp_path / "docs"), "bucket": bucket, "prefix": "docs", "key": "new"}
    config.write_text(json.dumps({"folders": [{**folder, "instruction_suffix": ".fenv"}]}))
    r = fails(
        run_cli("key", "delete", "old", "--yes", env={"S3VAULT_CONFIG": str(config)}),
        ExitCode.CONFLICT,
    )
    assert b"still wraps" in r.stderr and f"s3://{bucket}/docs/a.txt".encode() in r.stderr


# ---- listings --------------------------------------------------------------------------


def test_listing_hides_an_envelope_whose_object_came_in_an_earlier_page(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    # "a" < "a-000" … "a-299" < "a.instruction": the listing is handled 256 keys at a
    # time, so the object and its envelope land in different batches.
    source = tmp_path / "a"
    source.write_bytes(b"alpha")
    vault.put(source, bucket, "a", location=Location.INSTRUCTION_FILE)

    def put_plain(i: int) -> None:
        s3_client.put_object(Bucket=bucket, Key=f"a-{i:03}", Body=b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put_plain, range(300)))
    s3_client.put_object(Bucket=bucket, Key="z.instruction", Body=b"{}")  # its object: none
    listed: list[Any] = list(vault.list(bucket, recursive=True))
    names = [e.key for e in listed]
    assert "a.instruction" not in names
    assert names[0] == "a" and listed[0].instruction_file == "a.instruction"
    assert names[-1] == "z.instruction" and len(names) == 302
