"""kill -9 of `s3vault rotate --recursive` at random moments, then the run again.

A prefix holds objects of every shape a rotation treats differently: V2 and V3, an
envelope in metadata or in an instruction file, and one larger than the copy
threshold (a multipart copy onto itself). The real CLI re-wraps them from one key to
the other and is killed at a random moment, again and again; then it is run to its
end. After every kill no object is lost: each decrypts to its original bytes, with the
new key or still the old one. After the run to the end every object is on the new
key; that run rotated exactly the objects the killed ones had not reached (the others
were skipped: nothing rewritten twice), and no object's data moved (a re-wrap keeps
the data key: every ciphertext body is still the one first stored). Then the next
chain goes the other way.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from crash_helpers import MiB, open_multipart_uploads, run_then_kill_9
from rotation_helpers import CachingKeyStore, make_vault, rotate

from s3vault.config.load import load_config
from s3vault.crypto.envelope import Location, Version
from s3vault.keys.material import generate_key
from s3vault.vault.factory import build_vault
from s3vault.vault.rotation.report import SkipReason

PREFIX = "rot/"
KEYS = ("rot-a", "rot-b")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def rotation_prefix(keyring_service, bucket, tmp_path, s3_client):
    """Objects under PREFIX, all on rot-a; (config, vault, {key: plaintext sha},
    {key: ciphertext sha})."""
    store = CachingKeyStore(keyring_service)
    for name in KEYS:
        store.put(generate_key(name, "aes256"))
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "transfer: {multipart_threshold: 5MiB, part_size: 5MiB, copy_threshold: 5MiB}\n"
    )
    vault = build_vault(load_config(config), keystore_factory=lambda: store)
    rng = random.Random(13)  # the data; the kill moments come from the crash seed
    plain: dict[str, str] = {}
    source = tmp_path / "source"
    for n in range(31):
        size = 6 * MiB if n == 0 else rng.randint(0, 8192)
        key = f"{PREFIX}obj-{n}.bin"
        data = rng.randbytes(size)
        source.write_bytes(data)
        vault.put(
            source,
            bucket,
            key,
            key_name=KEYS[0],
            version=Version.V2 if n % 3 == 1 else Version.V3,
            location=Location.INSTRUCTION_FILE if n % 4 == 2 else Location.METADATA,
        )
        plain[key] = sha(data)
    return config, vault, plain, bodies(s3_client, bucket, plain)


def bodies(s3_client, bucket: str, keys) -> dict[str, str]:
    return {k: sha(s3_client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys}


def opened_by(vault, bucket: str, plain: dict[str, str], why: str, reliability) -> dict[str, str]:
    """Each object's key name, asserting it decrypts to its original bytes."""

    def get(key: str) -> tuple[str, str, str, int]:
        out = io.BytesIO()
        result = vault.get(bucket, key, out)
        return key, sha(out.getvalue()), result.key_name, len(out.getvalue())

    keys = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for key, digest, name, size in pool.map(get, plain):
            assert digest == plain[key], f"{key} lost or changed {why}"
            keys[key] = name
            reliability.data(size, 0)
    return keys


def test_rotate_killed_9_at_random_moments_then_run_again_rotates_all_without_moving_data(
    rotation_prefix,
    bucket,
    s3_client,
    session_env,
    keyring_service,
    crash_seed,
    soak,
    reliability,
):
    config, vault, plain, ciphertexts = rotation_prefix
    rng = random.Random(crash_seed)
    why = f"(S3VAULT_CRASH_SEED={crash_seed})"
    env = dict(session_env, S3VAULT_KEYRING_SERVICE=keyring_service)
    kills, per_chain = (200, 4) if soak else (6, 3)
    window = 1.6  # the length of a whole run (start-up ~0.5 s), learnt as it goes
    source, target = KEYS

    def argv(to_key: str) -> list[str]:
        return [
            sys.executable, "-m", "s3vault", "--config", str(config), "rotate",
            f"s3://{bucket}/{PREFIX}", "--recursive", "--to-key", to_key, "--workers", "2",
            "--json",
        ]  # fmt: skip

    survived = 0
    while survived < kills:
        landed = 0
        while landed < min(per_chain, kills - survived):
            _, killed = run_then_kill_9(argv(target), env, rng.uniform(0.45, window))
            if not killed:
                window = max(0.6, window * 0.85)  # it finished first: kill sooner
                break
            landed += 1
            on = opened_by(vault, bucket, plain, why, reliability)  # nothing lost, on either key
            assert set(on.values()) <= {source, target}, f"{on} {why}"
        on = opened_by(vault, bucket, plain, why, reliability)
        behind = {k for k, name in on.items() if name != target}
        done = subprocess.run(argv(target), env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, f"{done.stderr.decode()} {why}"
        assert b"Traceback" not in done.stderr, why
        report = json.loads(done.stdout)
        assert {r["key"] for r in report["rotated"]} == behind, f"rotated again {why}"
        assert all(s["code"] == "already-on-target" for s in report["skipped"]), why
        on = opened_by(vault, bucket, plain, why, reliability)
        assert set(on.values()) == {target}, f"not all on {target}: {on} {why}"
        assert bodies(s3_client, bucket, plain) == ciphertexts, f"data moved {why}"
        assert open_multipart_uploads(s3_client, bucket, PREFIX) == [], (
            f"multipart copies left open {why}"
        )
        survived += landed
        reliability.kill("rotate", landed)
        source, target = target, source


def test_a_copy_a_killed_run_left_on_an_object_rotated_since_is_aborted(
    keyring_service, bucket, s3_client, tmp_path
):
    # Found by the soak (200 kills): run 1 is killed while it copies the object in
    # parts; run 2 rotates the object and is killed before it cleans up; run 3 finds
    # the object on the target already, and must still abort run 1's copy.
    store = CachingKeyStore(keyring_service)
    for name in ("old-key", "new-key"):
        store.put(generate_key(name))
    parts = {"multipart_threshold": 5 * MiB, "part_size": 5 * MiB, "copy_threshold": 5 * MiB}
    vault = make_vault(store, **parts)
    source = tmp_path / "big.bin"
    source.write_bytes(random.randbytes(11 * MiB))
    vault.put(source, bucket, "rot/big.bin", key_name="old-key")
    assert rotate(vault, bucket, "rot/big.bin", to_key="new-key").rotated  # runs 1 and 2
    s3_client.create_multipart_upload(Bucket=bucket, Key="rot/big.bin")  # run 1's copy
    assert open_multipart_uploads(s3_client, bucket, "rot/") == ["rot/big.bin"]

    report = rotate(vault, bucket, "rot/big.bin", to_key="new-key")  # run 3
    assert [s.code for s in report.skipped] == [SkipReason.ALREADY_ON_TARGET]
    assert open_multipart_uploads(s3_client, bucket, "rot/") == []
