"""Every test vector, stored in real S3 (SeaweedFS) and read with `s3vault get`.

The objects in tests/vectors were written by the official Ruby S3 Encryption Client.
Here they go into a bucket byte for byte, with their user metadata and, for
instruction-file objects, their `.instruction` object; then the command line reads
them back with the keys imported into a real keyring. `decrypts` entries must give the
recorded SHA-256 (V1 only behind --allow-legacy); `fails` entries must exit with a
clean error and release nothing: no output file, no temp file.

Each `s3vault` process costs about a second of interpreter start-up, so the bucket is
filled once per module and each keyring namespace gets its keys imported once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3vault.embedded.seaweed import LocalS3
from s3vault.errors import ExitCode

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLI_TIMEOUT = 300.0
INSTRUCTION_SUFFIX = ".instruction"

# Read at collection time to make one test per object. Where the vectors are missing,
# one placeholder entry stands in: its test fails through the `vectors_dir` fixture.
_VECTORS = Path(__file__).parent / "vectors"
MANIFEST: list[dict[str, Any]] = (
    json.loads((_VECTORS / "manifest.json").read_text(encoding="utf-8"))
    if (_VECTORS / "manifest.json").is_file()
    else []
)
_MISSING = {"name": "vectors-missing", "expect": "decrypts", "format": "v2", "key_file": "x"}


def entries(keep: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[Any]:
    chosen = [e for e in MANIFEST if keep(e)] if MANIFEST else [_MISSING]
    return [pytest.param(e, id=e["name"]) for e in chosen]


def key_name(entry: dict[str, Any]) -> str:
    """The key's name in the keyring: the key file's stem (`keys/aes256-a.key` → aes256-a)."""
    return Path(entry["key_file"]).stem


def group(entry: dict[str, Any]) -> str:
    return str(entry["name"]).split("--", 1)[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_SIZES = ["empty", "one", "p15", "p16", "p17", "utf8-1000", "random-1mib7"]


def one_per_group(keep: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """The largest `decrypts` object of each group that ``keep`` selects."""
    largest: dict[str, dict[str, Any]] = {}
    for e in MANIFEST:
        if e["expect"] != "decrypts" or not keep(e):
            continue
        best = largest.get(group(e))
        size = _SIZES.index(e["name"].split("--", 1)[1])
        if best is None or size > _SIZES.index(best["name"].split("--", 1)[1]):
            largest[group(e)] = e
    chosen = [largest[g] for g in sorted(largest)]
    return [pytest.param(e, id=group(e)) for e in chosen] or entries()


KEY_PROVIDER_GROUP = "v2-aesgcm-keyprovider-aes256b-meta"
# The wrong key for each key file (README: aes256-b and rsa2048-b are the wrong keys).
WRONG_KEY = {
    "aes256-a": "aes256-b",
    "aes128-a": "aes256-b",
    "aes256-b": "aes256-a",
    "rsa2048-a": "rsa2048-b",
}


# --- the command line with a keyring namespace of its own ------------------------------


@dataclass(frozen=True)
class Keyring:
    """`python -m s3vault` with its own keyring service: keys imported once, used by many tests."""

    service: str
    env: dict[str, str]

    def run(self, *args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "s3vault", *(os.fspath(a) for a in args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env,
            cwd=cwd,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def import_key(self, path: Path, cwd: Path) -> None:
        kind = "aes" if path.suffix == ".key" else "rsa"
        r = self.run("key", "import", path.stem, "--type", kind, "--file", path, cwd=cwd)
        assert r.returncode == 0, (path, r.returncode, r.stderr.decode())


@pytest.fixture(scope="module")
def keyrings(
    session_env: dict[str, str], vectors_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Keyring]:
    """``keyrings("aes256-a", ...)``: a keyring namespace holding exactly those keys.

    Imported in the order given (the first becomes the current key); the same set of
    names gives the same namespace for the rest of the module.
    """
    made: dict[tuple[str, ...], Keyring] = {}
    cwd = tmp_path_factory.mktemp("keyrings")
    run_id = uuid.uuid4().hex[:8]

    def get(*names: str) -> Keyring:
        if names not in made:
            service = f"s3vault-vectors-{run_id}-{len(made)}"
            keyring = Keyring(service, {**session_env, "S3VAULT_KEYRING_SERVICE": service})
            for name in names:
                (path,) = (vectors_dir / "keys").glob(f"{name}.*")
                keyring.import_key(path, cwd)
            listed = json.loads(keyring.run("key", "list", "--json", cwd=cwd).stdout)
            assert [k["name"] for k in listed] == sorted(names)
            made[names] = keyring
        return made[names]

    return get


@pytest.fixture(scope="module")
def all_keys(keyrings: Callable[..., Keyring], vectors_dir: Path) -> Keyring:
    """Every key of the vectors, the wrong ones (aes256-b, rsa2048-b) included."""
    return keyrings(*sorted(p.stem for p in (vectors_dir / "keys").iterdir()))


# --- the bucket ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vector_bucket(s3: LocalS3, s3_client: S3Client, vectors_dir: Path) -> Iterator[str]:
    """A bucket holding every vector object under its manifest name, stored as written."""
    manifest = json.loads((vectors_dir / "manifest.json").read_text(encoding="utf-8"))
    name = f"vectors-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(name)
    try:
        for entry in manifest:
            folder = vectors_dir / "objects" / entry["name"]
            s3_client.put_object(
                Bucket=name,
                Key=entry["name"],
                Body=(folder / "body.bin").read_bytes(),
                Metadata=json.loads((folder / "metadata.json").read_text(encoding="utf-8")),
            )
            if (folder / "instruction.json").exists():
                s3_client.put_object(
                    Bucket=name,
                    Key=entry["name"] + INSTRUCTION_SUFFIX,
                    Body=(folder / "instruction.json").read_bytes(),
                    Metadata=json.loads(
                        (folder / "instruction-metadata.json").read_text(encoding="utf-8")
                    ),
                )
        yield name
    finally:
        if not s3.running:
            s3.start()
        s3_client.delete_bucket(Bucket=name)  # SeaweedFS drops the contents with it


def url(bucket: str, entry: dict[str, Any]) -> str:
    return f"s3://{bucket}/{entry['name']}"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def assert_decrypted(
    result: subprocess.CompletedProcess[bytes], entry: dict[str, Any], out: Path
) -> None:
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    assert sha256(out.read_bytes()) == entry["plaintext_sha256"]
    assert list(out.parent.iterdir()) == [out], "a temp file was left beside the output"


def assert_nothing_released(
    result: subprocess.CompletedProcess[bytes], codes: set[ExitCode], out_dir: Path
) -> None:
    assert result.returncode in codes, (result.returncode, result.stderr.decode())
    assert result.stderr.strip(), "the error must be explained"
    assert b"Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == [], "no output and no temp file may be left"


# --- the tests -------------------------------------------------------------------------


def test_vectors_are_stored_byte_for_byte(
    vector_bucket: str, s3_client: S3Client, vectors_dir: Path
) -> None:
    manifest = json.loads((vectors_dir / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == len(MANIFEST) > 0
    for entry in manifest:
        folder = vectors_dir / "objects" / entry["name"]
        stored = s3_client.get_object(Bucket=vector_bucket, Key=entry["name"])
        assert stored["Body"].read() == (folder / "body.bin").read_bytes(), entry["name"]
        assert stored["Metadata"] == json.loads((folder / "metadata.json").read_text())
        if (folder / "instruction.json").exists():
            instr = s3_client.get_object(
                Bucket=vector_bucket, Key=entry["name"] + INSTRUCTION_SUFFIX
            )
            assert instr["Body"].read() == (folder / "instruction.json").read_bytes()
            assert instr["Metadata"] == json.loads(
                (folder / "instruction-metadata.json").read_text()
            )


@pytest.mark.parametrize("entry", entries(lambda e: e["expect"] == "decrypts"))
def test_decrypts(
    entry: dict[str, Any],
    vector_bucket: str,
    all_keys: Keyring,
    vectors_dir: Path,
    out_dir: Path,
) -> None:
    out = out_dir / "plain.bin"
    args: list[str | os.PathLike[str]] = ["get", url(vector_bucket, entry), out]
    args += ["--key", key_name(entry)]
    if entry["format"] == "v1":
        # Legacy: refused without the opt-in, even with the right key named.
        refused = all_keys.run(*args, cwd=out_dir.parent)
        assert_nothing_released(refused, {ExitCode.REFUSED}, out_dir)
        assert b"--allow-legacy" in refused.stderr
        args.append("--allow-legacy")
    result = all_keys.run(*args, cwd=out_dir.parent)
    assert_decrypted(result, entry, out)
    assert out.read_bytes() == (vectors_dir / entry["plaintext"]).read_bytes()


@pytest.mark.parametrize("entry", entries(lambda e: e["expect"] == "fails"))
def test_tampered_copy_fails_cleanly(
    entry: dict[str, Any], vector_bucket: str, all_keys: Keyring, out_dir: Path
) -> None:
    source = url(vector_bucket, entry)
    named = ["--key", key_name(entry)]
    # As a user would try it: the key named; a downgrade to CBC may be refused as legacy.
    r = all_keys.run("get", source, out_dir / "plain.bin", *named, cwd=out_dir.parent)
    assert_nothing_released(r, {ExitCode.INTEGRITY, ExitCode.REFUSED}, out_dir)
    # With every opt-in, the tampering itself must be caught.
    r = all_keys.run(
        "get", source, out_dir / "plain.bin", *named, "--allow-legacy", cwd=out_dir.parent
    )
    assert_nothing_released(r, {ExitCode.INTEGRITY}, out_dir)
    # Without --key every stored key is tried, and to stdout: nothing may come out.
    r = all_keys.run("get", source, "-", "--allow-legacy", cwd=out_dir.parent)
    assert_nothing_released(r, {ExitCode.INTEGRITY}, out_dir)
    assert r.stdout == b""


def test_key_provider_group_opens_with_other_key_present(
    vector_bucket: str, keyrings: Callable[..., Keyring], tmp_path: Path
) -> None:
    # aes256-a is imported first (current, listed first): tried, fails, then aes256-b.
    keyring = keyrings("aes256-a", "aes256-b")
    group_entries = [e for e in MANIFEST if group(e) == KEY_PROVIDER_GROUP]
    assert len(group_entries) == 6
    for entry in group_entries:
        out_dir = tmp_path / entry["name"]
        out_dir.mkdir()
        out = out_dir / "plain.bin"
        r = keyring.run("get", url(vector_bucket, entry), out, "--json", cwd=tmp_path)
        assert_decrypted(r, entry, out)
        assert json.loads(r.stdout)["key_name"] == "aes256-b", entry["name"]


@pytest.mark.parametrize("entry", one_per_group(lambda e: e["format"] == "v2"))
def test_authenticated_wrap_opens_without_key_name(
    entry: dict[str, Any], vector_bucket: str, keyrings: Callable[..., Keyring], out_dir: Path
) -> None:
    # Only the object's own key is in the keyring, and no --key: s3vault tries it.
    keyring = keyrings(key_name(entry))
    out = out_dir / "plain.bin"
    r = keyring.run("get", url(vector_bucket, entry), out, "--json", cwd=out_dir.parent)
    assert_decrypted(r, entry, out)
    assert json.loads(r.stdout)["key_name"] == key_name(entry)


@pytest.mark.parametrize(
    "entry",
    entries(lambda e: e["format"] == "v1" and e["name"].endswith("--p17")),
)
def test_legacy_wrap_is_never_guessed(
    entry: dict[str, Any], vector_bucket: str, keyrings: Callable[..., Keyring], out_dir: Path
) -> None:
    # Only the right key is in the keyring, and legacy is allowed: s3vault still must
    # not try it unasked, since an unauthenticated wrap cannot tell a wrong key.
    keyring = keyrings(key_name(entry))
    r = keyring.run(
        "get",
        url(vector_bucket, entry),
        out_dir / "plain.bin",
        "--allow-legacy",
        cwd=out_dir.parent,
    )
    assert_nothing_released(r, {ExitCode.KEY_MISSING}, out_dir)
    assert b"--key" in r.stderr


@pytest.mark.parametrize("entry", one_per_group(lambda e: True))
def test_wrong_key_releases_nothing(
    entry: dict[str, Any], vector_bucket: str, keyrings: Callable[..., Keyring], out_dir: Path
) -> None:
    wrong = WRONG_KEY.get(key_name(entry), "aes256-b")
    keyring = keyrings(wrong)
    source = url(vector_bucket, entry)
    # Tried unasked (authenticated wraps) or not at all (V1): no key of yours opens it.
    r = keyring.run("get", source, out_dir / "plain.bin", "--allow-legacy", cwd=out_dir.parent)
    assert_nothing_released(r, {ExitCode.KEY_MISSING}, out_dir)
    # Named: it does not verify. Even the unauthenticated V1 wraps must not release
    # garbage for these objects (bad padding / data key size / content padding).
    r = keyring.run(
        "get", source, out_dir / "plain.bin", "--key", wrong, "--allow-legacy", cwd=out_dir.parent
    )
    assert_nothing_released(r, {ExitCode.INTEGRITY}, out_dir)
