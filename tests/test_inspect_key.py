"""`s3vault inspect` names the master key of every wrap type and says whether opening
the data key confirmed it: real SeaweedFS, moto's KMS and the private keyring."""

from __future__ import annotations

import json
import uuid

import pytest
from cli_checks import ok


@pytest.fixture
def kms_names(run_cli, keyring_service, kms_client, kms_key_id):
    """One KMS key stored under three names: by key id, by ARN and by an alias."""
    arn = kms_client.describe_key(KeyId=kms_key_id)["KeyMetadata"]["Arn"]
    alias = f"alias/s3vault-inspect-{uuid.uuid4().hex[:8]}"
    kms_client.create_alias(AliasName=alias, TargetKeyId=kms_key_id)
    for name, ref in (("kms-by-id", kms_key_id), ("kms-by-arn", arn), ("kms-by-alias", alias)):
        ok(run_cli("key", "import", name, "--type", "kms", "--key-id", ref))
    return arn


def inspect_json(run_cli, url, *args, env=None):
    return json.loads(ok(run_cli("inspect", url, "--json", *args, env=env)).stdout)


def put(run_cli, tmp_path, url, *args):
    src = tmp_path / "src.txt"
    src.write_bytes(b"inspect me\n")
    ok(run_cli("put", str(src), url, *args))


def test_kms_object_shows_its_kms_key_and_the_local_names_confirmed(
    run_cli, kms_names, bucket, tmp_path
):
    url = f"s3://{bucket}/kms.txt"
    put(run_cli, tmp_path, url, "--key", "kms-by-id")

    info = inspect_json(run_cli, url)
    assert info["kms_key_id"] == kms_names
    assert info["key_names"] == ["kms-by-alias", "kms-by-arn", "kms-by-id"]
    assert info["key_name"] == "kms-by-alias"
    assert info["key_confirmed"] is True
    assert (info["key_source"], info["key_check"]) == ("opened", "confirmed")

    text = ok(run_cli("inspect", url)).stdout.decode()
    assert kms_names in text and "kms-by-id" in text and "key confirmed" in text

    # Without the key check: nothing but S3 is asked, and a kms+context envelope
    # names no KMS key.
    cheap = inspect_json(run_cli, url, "--no-key-check")
    assert cheap["kms_key_id"] is None and cheap["key_confirmed"] is False
    assert cheap["key_check"] == "not-checked"


def test_raw_aes_object_with_its_key_present_is_confirmed(
    run_cli, keyring_service, bucket, tmp_path
):
    ok(run_cli("key", "generate", "aes-key"))
    url = f"s3://{bucket}/aes.txt"
    put(run_cli, tmp_path, url, "--key", "aes-key")

    info = inspect_json(run_cli, url)
    assert (info["key_name"], info["key_source"]) == ("aes-key", "description")
    assert info["key_confirmed"] is True and info["key_check_message"] is None


def test_raw_key_missing_is_not_confirmed_and_says_why(run_cli, keyring_service, bucket, tmp_path):
    ok(run_cli("key", "generate", "aes-key"))
    url = f"s3://{bucket}/away.txt"
    put(run_cli, tmp_path, url, "--key", "aes-key")

    # Another keyring namespace: a machine that does not hold the key.
    elsewhere = {"S3VAULT_KEYRING_SERVICE": f"{keyring_service}-elsewhere"}
    info = inspect_json(run_cli, url, env=elsewhere)
    assert info["key_name"] == "aes-key" and info["key_source"] == "description"
    assert info["key_confirmed"] is False and info["key_check"] == "failed"
    assert "aes-key" in info["key_check_message"]
    text = run_cli("inspect", url, env=elsewhere)
    assert text.returncode == 0 and b"failed" in text.stdout


def test_raw_object_naming_no_key_is_identified_by_opening(
    run_cli, keyring_service, bucket, s3_client, tmp_path
):
    ok(run_cli("key", "generate", "other-key"))
    ok(run_cli("key", "generate", "aes-key"))
    url = f"s3://{bucket}/anonymous.txt"
    put(run_cli, tmp_path, url, "--key", "aes-key", "--format", "v2")
    # Rewrite the metadata without the description entry that names the key.
    head = s3_client.head_object(Bucket=bucket, Key="anonymous.txt")
    metadata = dict(head["Metadata"], **{"x-amz-matdesc": "{}"})
    s3_client.copy_object(
        Bucket=bucket,
        Key="anonymous.txt",
        CopySource={"Bucket": bucket, "Key": "anonymous.txt"},
        Metadata=metadata,
        MetadataDirective="REPLACE",
    )

    assert inspect_json(run_cli, url, "--no-key-check")["key_name"] is None
    info = inspect_json(run_cli, url)
    assert (info["key_name"], info["key_source"]) == ("aes-key", "opened")
    assert info["key_confirmed"] is True
