"""put / get / inspect / ls / rm through the real command line, on real SeaweedFS,
a real Secret Service keyring and moto's KMS endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from cli_checks import ok

from s3vault.errors import ExitCode

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def keys(run_cli, keyring_service, kms_key_id):
    """An AES, an RSA and a KMS master key in this test's keyring namespace."""
    assert run_cli("key", "generate", "aes-key").returncode == 0
    assert run_cli("key", "generate", "rsa-key", "--type", "rsa2048").returncode == 0
    r = run_cli("key", "import", "kms-key", "--type", "kms", "--key-id", kms_key_id)
    assert r.returncode == 0, r.stderr
    return {"aes": "aes-key", "rsa": "rsa-key", "kms": "kms-key"}


@pytest.mark.parametrize("kind", ["aes", "rsa", "kms"])
@pytest.mark.parametrize("fmt", ["v2", "v3"])
@pytest.mark.parametrize("envelope", ["metadata", "instruction-file"])
def test_round_trip_every_combination(
    run_cli, keys, bucket, s3_client, tmp_path, kind, fmt, envelope
):
    data = os.urandom(100_003)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    url = f"s3://{bucket}/dir/obj.bin"
    put = ok(
        run_cli(
            "put",
            str(src),
            url,
            "--key",
            keys[kind],
            "--format",
            fmt,
            "--envelope",
            envelope,
            "--json",
        )
    )
    info = json.loads(put.stdout)
    assert info["format"] == fmt and info["location"] == envelope

    stored = s3_client.get_object(Bucket=bucket, Key="dir/obj.bin")
    body = stored["Body"].read()
    assert data not in body and len(body) == len(data) + 16
    meta = stored["Metadata"]
    if fmt == "v3":
        assert {"x-amz-c", "x-amz-d", "x-amz-i"} <= set(meta)
    if envelope == "instruction-file":
        instr = json.loads(
            s3_client.get_object(Bucket=bucket, Key="dir/obj.bin.instruction")["Body"].read()
        )
        assert ("x-amz-3" if fmt == "v3" else "x-amz-key-v2") in instr
        assert not {"x-amz-c", "x-amz-d", "x-amz-i"} & set(instr)
        assert "x-amz-key-v2" not in meta and "x-amz-3" not in meta
    else:
        assert ("x-amz-3" if fmt == "v3" else "x-amz-key-v2") in meta

    out = tmp_path / "out.bin"
    ok(run_cli("get", url, str(out)))
    assert out.read_bytes() == data

    inspected = json.loads(ok(run_cli("inspect", url, "--json")).stdout)
    assert inspected["format"] == fmt
    assert inspected["location"] == envelope
    assert inspected["plaintext_size"] == len(data)
    assert inspected["ciphertext_size"] == len(data) + 16
    assert (
        inspected["wrap_algorithm"]
        == {"aes": "AES/GCM", "rsa": "RSA-OAEP-SHA1", "kms": "kms+context"}[kind]
    )
    if kind == "kms":
        assert inspected["encryption_context"]["aws:x-amz-cek-alg"] == (
            "115" if fmt == "v3" else "AES/GCM/NoPadding"
        )
    else:
        assert inspected["key_name"] == keys[kind]
    if fmt == "v3":
        assert len(base64.b64decode(inspected["message_id"])) == 28
        assert len(base64.b64decode(inspected["commitment"])) == 28
    else:
        assert len(base64.b64decode(inspected["iv"])) == 12
        assert inspected["tag_length"] == 128


def test_multipart_round_trip_and_stdout(run_cli, keys, bucket, s3_client, tmp_path, monkeypatch):
    # Lower the multipart threshold so a 13 MiB file takes the multipart path (3 parts).
    monkeypatch.setenv("S3VAULT_TRANSFER_MULTIPART_THRESHOLD", str(5 * MiB))
    monkeypatch.setenv("S3VAULT_TRANSFER_PART_SIZE", str(5 * MiB))
    data = os.urandom(13 * MiB + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    url = f"s3://{bucket}/big.bin"
    ok(run_cli("put", str(src), url, "--key", "aes-key"))
    etag = s3_client.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), etag  # a multipart ETag: 3 parts
    out = tmp_path / "big.out"
    ok(run_cli("get", url, str(out)))
    assert sha(out.read_bytes()) == sha(data)
    streamed = ok(run_cli("get", url, "-"))
    assert sha(streamed.stdout) == sha(data)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("where", ["body-start", "body-end", "tag"])
def test_tampered_object_releases_nothing(run_cli, keys, bucket, s3_client, tmp_path, where):
    data = os.urandom(50_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    ok(run_cli("put", str(src), f"s3://{bucket}/t.bin", "--key", "aes-key"))
    obj = s3_client.get_object(Bucket=bucket, Key="t.bin")
    body = bytearray(obj["Body"].read())
    index = {"body-start": 0, "body-end": len(data) - 1, "tag": len(body) - 1}[where]
    body[index] ^= 0x01
    s3_client.put_object(Bucket=bucket, Key="t.bin", Body=bytes(body), Metadata=obj["Metadata"])

    out = tmp_path / "out.bin"
    r = run_cli("get", f"s3://{bucket}/t.bin", str(out))
    assert r.returncode == ExitCode.INTEGRITY, r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temp file left behind
    assert b"Traceback" not in r.stderr
    r = run_cli("get", f"s3://{bucket}/t.bin", "-")
    assert r.returncode == ExitCode.INTEGRITY
    assert r.stdout == b""


def test_commitment_mismatch_is_refused(run_cli, keys, bucket, s3_client, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"secret" * 100)
    ok(run_cli("put", str(src), f"s3://{bucket}/c.bin", "--key", "aes-key", "--format", "v3"))
    obj = s3_client.get_object(Bucket=bucket, Key="c.bin")
    meta = dict(obj["Metadata"])
    commitment = bytearray(base64.b64decode(meta["x-amz-d"]))
    commitment[0] ^= 1
    meta["x-amz-d"] = base64.b64encode(bytes(commitment)).decode()
    s3_client.put_object(Bucket=bucket, Key="c.bin", Body=obj["Body"].read(), Metadata=meta)
    r = run_cli("get", f"s3://{bucket}/c.bin", str(tmp_path / "out"))
    assert r.returncode == ExitCode.INTEGRITY
    assert b"commitment" in r.stderr.lower()
    assert not (tmp_path / "out").exists()


def test_ls_shows_format_and_key_and_hides_instruction_files(run_cli, keys, bucket, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    ok(run_cli("put", str(src), f"s3://{bucket}/p/a.txt", "--key", "aes-key"))
    ok(
        run_cli(
            "put",
            str(src),
            f"s3://{bucket}/p/b.txt",
            "--key",
            "rsa-key",
            "--format",
            "v2",
            "--envelope",
            "instruction-file",
        )
    )
    ok(run_cli("put", str(src), f"s3://{bucket}/p/sub/c.txt", "--key", "aes-key"))
    listed = json.loads(ok(run_cli("ls", f"s3://{bucket}/p/", "--json")).stdout)
    by_key = {e.get("key") or e.get("prefix"): e for e in listed}
    assert set(by_key) == {"p/a.txt", "p/b.txt", "p/sub/"}
    assert by_key["p/a.txt"]["format"] == "v3" and by_key["p/a.txt"]["key_name"] == "aes-key"
    assert by_key["p/b.txt"]["format"] == "v2"
    assert by_key["p/b.txt"]["location"] == "instruction-file"
    assert by_key["p/b.txt"]["key_name"] == "rsa-key"
    recursive = json.loads(ok(run_cli("ls", f"s3://{bucket}/p/", "-r", "--json")).stdout)
    assert sorted(e["key"] for e in recursive) == ["p/a.txt", "p/b.txt", "p/sub/c.txt"]
    human = ok(run_cli("ls", f"s3://{bucket}/p/")).stdout.decode()
    assert "p/a.txt" in human and "aes-key" in human


def test_ls_json_streams_one_element_per_line_and_an_error_prints_only_the_error(
    run_cli, keys, bucket, tmp_path
):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    for name in ("s/1.txt", "s/2.txt", "s/3.txt"):
        ok(run_cli("put", str(src), f"s3://{bucket}/{name}", "--key", "aes-key"))
    lines = ok(run_cli("ls", f"s3://{bucket}/s/", "--json")).stdout.decode().splitlines()
    # "[", one compact element per line (so a long listing prints as it goes), "]".
    assert lines[0] == "[" and lines[-1] == "]"
    elements = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    assert [e["key"] for e in elements] == ["s/1.txt", "s/2.txt", "s/3.txt"]
    assert json.loads("\n".join(lines)) == elements
    assert json.loads(ok(run_cli("ls", f"s3://{bucket}/none/", "--json")).stdout) == []
    # A failure before the first element leaves stdout to the error object alone.
    denied = run_cli("ls", f"s3://{bucket}/s/", "--json", env={"AWS_SECRET_ACCESS_KEY": "x"})
    assert denied.returncode == ExitCode.ACCESS_DENIED
    assert json.loads(denied.stdout)["error"]["exit_code"] == ExitCode.ACCESS_DENIED


def test_rm_removes_object_and_instruction_file(run_cli, keys, bucket, s3_client, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    url = f"s3://{bucket}/a.txt"
    ok(run_cli("put", str(src), url, "--key", "aes-key", "--envelope", "instruction-file"))
    ok(run_cli("rm", url))
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert run_cli("rm", url).returncode == ExitCode.NOT_FOUND


def test_metadata_limit_is_enforced(run_cli, keys, bucket, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    big = "x" * 2100
    r = run_cli(
        "put", str(src), f"s3://{bucket}/a.txt", "--key", "aes-key", "--context", f"note={big}"
    )
    assert r.returncode == ExitCode.REFUSED, r.stderr
    assert b"instruction-file" in r.stderr
    assert run_cli("inspect", f"s3://{bucket}/a.txt").returncode == ExitCode.NOT_FOUND


def test_exit_codes_for_common_mistakes(run_cli, keys, bucket, tmp_path, s3):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    url = f"s3://{bucket}/a.txt"
    assert run_cli("put", str(tmp_path / "missing"), url).returncode == ExitCode.NOT_FOUND
    assert run_cli("put", str(src), "not-a-url").returncode == ExitCode.USAGE
    assert run_cli("put", str(src), url, "--key", "nope").returncode == ExitCode.KEY_MISSING
    assert run_cli("get", f"s3://{bucket}/none", str(tmp_path / "o")).returncode == (
        ExitCode.NOT_FOUND
    )
    assert run_cli("get", "s3://no-such-bucket-x/a", str(tmp_path / "o")).returncode == (
        ExitCode.NOT_FOUND
    )
    ok(run_cli("put", str(src), url, "--key", "aes-key"))
    # A key the keyring does not have, named explicitly, cannot open the object.
    ok(run_cli("key", "generate", "other"))
    ok(run_cli("key", "delete", "aes-key", "--yes"))
    r = run_cli("get", url, str(tmp_path / "o"))
    assert r.returncode == ExitCode.KEY_MISSING, r.stderr
    assert b"aes-key" in r.stderr
    denied = run_cli("ls", f"s3://{bucket}", env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert denied.returncode == ExitCode.ACCESS_DENIED, denied.stderr
    unreachable = run_cli("ls", f"s3://{bucket}", env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"})
    assert unreachable.returncode == ExitCode.UNREACHABLE, unreachable.stderr
    for r in (denied, unreachable):
        assert b"Traceback" not in r.stderr


def test_plain_object_is_refused_by_policy_not_decrypted(
    run_cli, bucket, s3_client, tmp_path, keyring_service
):
    s3_client.put_object(Bucket=bucket, Key="plain.txt", Body=b"not encrypted")
    r = run_cli("get", f"s3://{bucket}/plain.txt", str(tmp_path / "o"))
    assert r.returncode == ExitCode.REFUSED
    assert not (tmp_path / "o").exists()
    assert b"not encrypted" in r.stderr
    info = json.loads(ok(run_cli("inspect", f"s3://{bucket}/plain.txt", "--json")).stdout)
    assert info["encrypted"] is False and info["format"] == "plain"


def test_kms_context_must_match(run_cli, keys, bucket, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    url = f"s3://{bucket}/a.txt"
    ok(run_cli("put", str(src), url, "--key", "kms-key", "--context", "project=alpha"))
    ok(run_cli("get", url, str(tmp_path / "o1"), "--context", "project=alpha"))
    assert (tmp_path / "o1").read_text() == "hello"
    r = run_cli("get", url, str(tmp_path / "o2"), "--context", "project=beta")
    assert r.returncode != 0 and not (tmp_path / "o2").exists()
    ok(run_cli("get", url, str(tmp_path / "o3")))  # no expectation given: stored context used


def test_get_into_directory_and_current_key(run_cli, keys, bucket, tmp_path):
    src = tmp_path / "report.txt"
    src.write_text("quarterly")
    ok(run_cli("key", "use", "rsa-key"))
    put = json.loads(ok(run_cli("put", str(src), f"s3://{bucket}/docs/", "--json")).stdout)
    assert put["url"] == f"s3://{bucket}/docs/report.txt"
    assert put["key_name"] == "rsa-key"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ok(run_cli("get", f"s3://{bucket}/docs/report.txt", str(out_dir)))
    assert (out_dir / "report.txt").read_text() == "quarterly"


def test_config_file_sets_endpoint(run_cli, keys, bucket, tmp_path, s3):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"version: 1\ns3:\n  endpoint_url: {s3.endpoint_url}\n  addressing_style: path\n"
    )
    src = tmp_path / "a.txt"
    src.write_text("via config")
    env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}  # wrong; the file wins
    ok(
        run_cli(
            "--config",
            str(config),
            "put",
            str(src),
            f"s3://{bucket}/a.txt",
            "--key",
            "aes-key",
            env=env,
        )
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ns3: {endpont_url: x}\n")
    r = run_cli("--config", str(bad), "ls", f"s3://{bucket}")
    assert r.returncode == ExitCode.USAGE and b"endpont_url" in r.stderr


def test_help_lists_every_command(run_cli):
    out = ok(run_cli("--help")).stdout.decode()
    for command in ("put", "get", "inspect", "ls", "rm", "key", "config", "demo"):
        assert command in out
    key_help = ok(run_cli("key", "--help")).stdout.decode()
    for command in ("generate", "import", "export", "list", "delete", "use"):
        assert command in key_help


def test_source_file_is_never_modified(run_cli, keys, bucket, tmp_path):
    src = tmp_path / "keep.txt"
    src.write_text("original")
    before = src.stat()
    ok(run_cli("put", str(src), f"s3://{bucket}/keep.txt", "--key", "aes-key"))
    after = src.stat()
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    assert src.read_text() == "original"
