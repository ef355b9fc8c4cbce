"""Interoperability with the official Ruby S3 Encryption Client under a custom suffix.

Outside the test suite (the Ruby client is an apt package the tests do not need):

    apt-get install ruby-aws-sdk-s3
    .venv/bin/python scripts/interop/ruby_suffix.py [--suffix .envelope]

On a private SeaweedFS and a private keyring it checks both ways, each object with its
envelope in an instruction file KEY+SUFFIX:

1. Ruby writes (EncryptionV2, AES/GCM wrap); `s3vault ls`, `inspect` and `get` read
   it; `s3vault rotate` re-wraps it under another key; Ruby reads it with that key.
2. `s3vault put --format v2` and `s3vault sync` write; Ruby reads them back.
3. Ruby looking under the default suffix does not find s3vault's envelopes (the
   suffix really is where they are).

Prints one line per check and exits 1 on the first mismatch. The master keys are
throwaway keys made here; they reach Ruby and s3vault on stdin only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.embedded.seaweed import LocalS3

HERE = Path(__file__).resolve().parent
BUCKET = "interop-ruby"


class Check:
    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env = env
        self.work = work

    def s3vault(self, *args: str | Path, stdin: bytes | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "s3vault", *map(str, args)],
            input=stdin,
            capture_output=True,
            env=self.env,
            cwd=self.work,
            check=False,
        )
        if result.returncode != 0:
            fail(f"s3vault {' '.join(map(str, args))}: {result.stderr.decode()}")
        return result.stdout.decode()

    def ruby(self, action: str, key: str, suffix: str, file: Path, master: bytes) -> bool:
        result = subprocess.run(
            ["ruby", str(HERE / "ruby_client.rb"), action, BUCKET, key, suffix, str(file)],
            input=base64.b64encode(master),
            capture_output=True,
            env=self.env,
            check=False,
        )
        if result.returncode != 0:
            print(f"  (ruby {action} {key} {suffix}: {result.stderr.decode().splitlines()[0]})")
        return result.returncode == 0


def fail(message: str) -> None:
    print(f"FAIL {message}")
    sys.exit(1)


def same(name: str, got: bytes, want: bytes) -> None:
    if got != want:
        fail(f"{name}: sha256 {sha(got)} != {sha(want)}")
    print(f"ok   {name} ({len(got)} bytes, sha256 {sha(got)[:16]}…)")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suffix", default=".envelope", help="the instruction-file suffix")
    suffix = parser.parse_args(argv).suffix
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="s3vault-ruby-")))
        keyring = stack.enter_context(PrivateKeyring())
        s3 = stack.enter_context(LocalS3(work / "s3"))
        s3.create_bucket(BUCKET)
        env = s3.child_env({**os.environ, **keyring.env()})
        config = work / "config.yaml"  # defaults only: nothing from the user's own config
        config.write_text("version: 1\n")
        env.update(S3VAULT_KEYRING_SERVICE="s3vault-interop", S3VAULT_CONFIG=str(config))
        # The sync state and anything else s3vault keeps stays in the work directory.
        for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
            env[name] = str(work / name.lower())
        check = Check(env, work)
        run(check, work, suffix)
    print("all checks passed")
    return 0


def run(check: Check, work: Path, suffix: str) -> None:
    shared, rotated = os.urandom(32), os.urandom(32)
    for name, key in (("ruby-shared", shared), ("ruby-rotated", rotated)):
        check.s3vault("key", "import", name, "--type", "aes", "--file", "-",
                      stdin=base64.b64encode(key))  # fmt: skip
    small = work / "small.txt"
    small.write_bytes("Grüße aus Ruby\n".encode() * 50)
    big = work / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024 + 7))  # s3vault: a multipart upload
    out = work / "out"

    # 1. Ruby writes, s3vault reads, rotates; Ruby reads the rotated object.
    for source in (small, big):
        key = f"from-ruby/{source.name}"
        if not check.ruby("put", key, suffix, source, shared):
            fail(f"ruby could not put {key}")
        url = f"s3://{BUCKET}/{key}"
        info = json.loads(check.s3vault("inspect", url, "--instruction-suffix", suffix, "--json"))
        if info["instruction_file"] != key + suffix or info["format"] != "v2":
            fail(f"inspect {key}: {info}")
        check.s3vault("get", url, out, "--key", "ruby-shared", "--instruction-suffix", suffix)
        same(f"ruby put {key}, s3vault get", out.read_bytes(), source.read_bytes())
    listed = json.loads(
        check.s3vault("ls", f"s3://{BUCKET}/from-ruby/", "--instruction-suffix", suffix, "--json")
    )
    if sorted(e["key"] for e in listed) != ["from-ruby/big.bin", "from-ruby/small.txt"]:
        fail(f"ls under {suffix} listed {[e['key'] for e in listed]}")
    print(f"ok   ls shows Ruby's two objects, not their {suffix} envelopes")
    check.s3vault("rotate", f"s3://{BUCKET}/from-ruby/", "-r", "--from-key", "ruby-shared",
                  "--to-key", "ruby-rotated", "--instruction-suffix", suffix)  # fmt: skip
    for source in (small, big):
        key = f"from-ruby/{source.name}"
        if not check.ruby("get", key, suffix, out, rotated):
            fail(f"ruby could not read {key} after s3vault re-wrapped it")
        same(f"s3vault rotate {key}, ruby get (new key)", out.read_bytes(), source.read_bytes())

    # 2. s3vault writes (put and sync), Ruby reads.
    for source in (small, big):
        key = f"from-s3vault/{source.name}"
        check.s3vault("put", source, f"s3://{BUCKET}/{key}", "--key", "ruby-shared",
                      "--format", "v2", "--envelope", "instruction-file",
                      "--instruction-suffix", suffix)  # fmt: skip
        if not check.ruby("get", key, suffix, out, shared):
            fail(f"ruby could not read {key}")
        same(f"s3vault put {key}, ruby get", out.read_bytes(), source.read_bytes())
        # 3. Under the default suffix Ruby finds no envelope: it really is under SUFFIX.
        if check.ruby("get", key, ".instruction", out, shared):
            fail(f"ruby read {key} without its suffix")
        print(f"ok   ruby under .instruction finds no envelope for {key}")
    folder = work / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "note.txt").write_bytes(b"synced through an instruction file\n")
    check.s3vault("sync", folder, f"s3://{BUCKET}/synced", "--key", "ruby-shared",
                  "--format", "v2", "--envelope", "instruction-file",
                  "--instruction-suffix", suffix, "--json")  # fmt: skip
    if not check.ruby("get", "synced/sub/note.txt", suffix, out, shared):
        fail("ruby could not read the synced object")
    same("s3vault sync sub/note.txt, ruby get", out.read_bytes(),
         (folder / "sub" / "note.txt").read_bytes())  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
