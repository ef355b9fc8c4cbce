"""installer/terraform, checked without a Terraform binary (none can be installed here).

Every ``.tf`` file parses with python-hcl2; the variables and outputs are the documented
ones; the bucket, the KMS key and the IAM policy have what s3vault needs and no more;
and the module's ``local.s3vault_config`` and policy document, rendered for several
sets of variables by the small evaluator of `hcl_helpers`, give a config s3vault
accepts and a policy that grants exactly the S3 and KMS calls found in s3vault's source.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from botocore.session import get_session
from hcl_helpers import EvalError, TerraformModule, Unsupported, evaluate, load_tf, render_block

from s3vault.config.model import Config
from s3vault.crypto import kms_encryption_context
from s3vault.crypto.constants import CEK_GCM, RESERVED_CONTEXT_KEY, SUITE_V3
from s3vault.keys.provider import KMS_PREFIX

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "installer" / "terraform"
EXAMPLE = MODULE / "examples" / "basic" / "main.tf"
SOURCE = ROOT / "s3vault"

REQUIRED = object()
# name -> (type, default): the module's interface, as the README's table documents it.
EXPECTED_VARIABLES: dict[str, tuple[str, Any]] = {
    "bucket_name": ("string", REQUIRED),
    "create_bucket": ("bool", True),
    "force_destroy": ("bool", False),
    "noncurrent_version_expiration_days": ("number", 90),
    "abort_incomplete_multipart_upload_days": ("number", 3),
    "prefix": ("string", ""),
    "allow_connection_test": ("bool", False),
    "iam_policy_name": ("string", None),
    "attach_to_roles": ("${list(string)}", []),
    "attach_to_users": ("${list(string)}", []),
    "create_kms_key": ("bool", False),
    "kms_alias": ("string", "s3vault"),
    "kms_deletion_window_days": ("number", 30),
    "kms_key_arn": ("string", None),
    "s3_endpoint_url": ("string", None),
    "default_key": ("string", None),
    "folders": (
        '${list(object({path = string, prefix = optional(string, ""), key = optional(string)}))}',
        [],
    ),
    "tags": ("${map(string)}", {}),
}
EXPECTED_OUTPUTS = {
    "bucket_name",
    "bucket_arn",
    "kms_key_arn",
    "kms_alias_name",
    "iam_policy_arn",
    "iam_policy_json",
    "s3vault_config",
}

# Each S3 / KMS call s3vault makes -> the IAM actions it needs (README: "What the policy
# grants"). A call found in the source and missing here fails the cross-check below.
CALL_ACTIONS: dict[str, set[str]] = {
    "s3:HeadObject": {"s3:GetObject", "s3:GetObjectVersion"},  # VersionId: old versions
    "s3:GetObject": {"s3:GetObject", "s3:GetObjectVersion"},
    "s3:PutObject": {"s3:PutObject", "s3:PutObjectTagging"},  # Tagging: rewrites keep tags
    "s3:CopyObject": {"s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging"},
    "s3:CreateMultipartUpload": {"s3:PutObject", "s3:PutObjectTagging"},
    "s3:UploadPart": {"s3:PutObject"},
    "s3:UploadPartCopy": {"s3:GetObject", "s3:PutObject"},
    "s3:CompleteMultipartUpload": {"s3:PutObject"},
    "s3:AbortMultipartUpload": {"s3:AbortMultipartUpload"},
    "s3:ListMultipartUploads": {"s3:ListBucketMultipartUploads"},
    "s3:DeleteObject": {"s3:DeleteObject"},
    "s3:GetObjectTagging": {"s3:GetObjectTagging"},
    "s3:GetBucketVersioning": {"s3:GetBucketVersioning"},
    "s3:ListObjectsV2": {"s3:ListBucket"},
    "s3:ListObjectVersions": {"s3:ListBucketVersions"},
    "obstore:put_async": {"s3:PutObject"},  # single PUTs (use_multipart=False)
    "obstore:list": {"s3:ListBucket"},  # ListObjectsV2 through the native client
    "obstore:list_with_delimiter": {"s3:ListBucket"},
    "obstore:get_async": {"s3:GetObject"},  # HEADs (head=True) and ranged GETs
    "kms:GenerateDataKey": {"kms:GenerateDataKey"},
    "kms:Decrypt": {"kms:Decrypt"},
    "kms:Encrypt": {"kms:Encrypt"},
    "kms:DescribeKey": {"kms:DescribeKey"},
}
# Calls the policy deliberately does not grant (the README says why).
NOT_GRANTED = {
    "s3:CreateBucket",  # the app's "Create bucket": Terraform makes the bucket
    "s3:ListBuckets",  # the app's connection test when no bucket is named yet
}
# Source that only ever talks to the embedded local S3 server (`s3vault demo`, tests).
NOT_A_USERS_S3 = (Path("embedded"), Path("cli/demo_command.py"))
CLIENT = re.compile(r"client(\(\))?$")
BUCKET_ACTIONS = {
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketVersioning",
    "s3:ListBucketMultipartUploads",
}
CEK_ALGORITHMS = {"AES/GCM/NoPadding", "115"}  # x-amz-cek-alg of v2 and v3 (FORMAT.md)

REGION = "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/0000aaaa-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def module() -> TerraformModule:
    return TerraformModule(MODULE)


def folder(path: str, prefix: str = "", key: str | None = None) -> dict[str, Any]:
    """A folders item as Terraform's type conversion leaves it (optional attributes set)."""
    return {"path": path, "prefix": prefix, "key": key}


def scope_for(module: TerraformModule, **variables: Any) -> dict[str, Any]:
    """Names for evaluating the module as `terraform apply` would after creating what
    the variables ask for (resources with count 0 are empty lists)."""
    given = module.variable_values(variables)
    bucket = given["bucket_name"]
    kms = given["create_kms_key"]
    objects = {
        "data": {
            "aws_region": {"current": {"name": REGION}},
            "aws_partition": {"current": {"partition": "aws"}},
        },
        "aws_s3_bucket": {
            "this": [{"id": bucket, "arn": f"arn:aws:s3:::{bucket}"}]
            if given["create_bucket"]
            else []
        },
        "aws_kms_key": {
            "this": [{"arn": KEY_ARN, "key_id": KEY_ARN.rsplit("/", 1)[1]}] if kms else []
        },
        "aws_kms_alias": {"this": [{"name": f"alias/{given['kms_alias']}"}] if kms else []},
    }
    return module.scope(variables, objects)


def rendered_policy(module: TerraformModule, **variables: Any) -> list[dict[str, Any]]:
    document = module.data[("aws_iam_policy_document", "s3vault")]
    return render_block(document, scope_for(module, **variables))["statement"]


def rendered_config(module: TerraformModule, **variables: Any) -> dict[str, Any]:
    config = scope_for(module, **variables)["local"]["s3vault_config"]
    # What jsonencode writes is what s3vault reads.
    return json.loads(json.dumps(config))


def granted(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in s["actions"]}


# ---- parsing and interface -----------------------------------------------------------


def test_every_tf_file_parses_with_python_hcl2() -> None:
    files = sorted(MODULE.rglob("*.tf"))
    assert {p.name for p in files} >= {
        "versions.tf",
        "variables.tf",
        "main.tf",
        "s3.tf",
        "kms.tf",
        "iam.tf",
        "outputs.tf",
    }
    assert EXAMPLE in files
    for path in files:
        assert load_tf(path), f"{path} holds no block"


def test_versions_pin_the_aws_provider_to_major_5(module: TerraformModule) -> None:
    (terraform,) = module.files["versions.tf"]["terraform"]
    (providers,) = terraform["required_providers"]
    assert providers["aws"] == {"source": "hashicorp/aws", "version": "~> 5.0"}
    assert terraform["required_version"].startswith(">=")


def test_variables_are_exactly_the_expected_ones_with_types_defaults_and_descriptions(
    module: TerraformModule,
) -> None:
    assert set(module.variables) == set(EXPECTED_VARIABLES)
    for name, (type_, default) in EXPECTED_VARIABLES.items():
        block = module.variables[name]
        assert block["type"] == type_, name
        assert block.get("description", "").strip(), f"variable {name} has no description"
        if default is REQUIRED:
            assert "default" not in block, f"{name} should be required"
        else:
            assert block["default"] == default, name


def test_outputs_are_exactly_the_expected_ones_with_descriptions(module: TerraformModule) -> None:
    assert set(module.outputs) == EXPECTED_OUTPUTS
    for name, block in module.outputs.items():
        assert block.get("description", "").strip(), f"output {name} has no description"


def test_readme_tables_name_every_variable_output_and_call(module: TerraformModule) -> None:
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z0-9_:]+)` \|", readme, re.MULTILINE))
    assert set(module.variables) <= rows
    assert rows >= EXPECTED_OUTPUTS
    for call in [*CALL_ACTIONS, *NOT_GRANTED]:
        assert f"`{call.split(':')[1]}`" in readme, f"the README's IAM table lacks {call}"
    assert "no terraform binary can be installed" in readme.lower()


def test_example_passes_only_declared_variables_and_every_required_one(
    module: TerraformModule,
) -> None:
    (block,) = load_tf(EXAMPLE)["module"]
    args = block["s3vault"]
    assert args["source"] == "../.."
    passed = set(args) - {"source"}
    assert passed <= set(module.variables)
    required = {n for n, (_, d) in EXPECTED_VARIABLES.items() if d is REQUIRED}
    assert required <= passed


def test_evaluator_refuses_what_it_cannot_read_and_picks_branches_as_terraform() -> None:
    scope = {"var": {"on": False, "name": "b", "items": []}, "things": {"this": []}}
    with pytest.raises(Unsupported, match="merge"):
        evaluate("${merge(var.a, var.b)}", scope)
    with pytest.raises(EvalError, match="missing"):
        evaluate("${var.on ? 1 : missing}", scope)
    with pytest.raises(EvalError, match="null"):
        evaluate("kms:${null}", scope)
    # The unchosen branch may fail (a resource with count 0), as in Terraform.
    assert evaluate("${var.on ? things.this[0].id : var.name}", scope) == "b"
    assert evaluate('${var.on ? null : "x-${var.name}-${"${var.name}"}"}', scope) == "x-b-b"
    assert evaluate("${[for i in [1, 2] : {n = i, ok = i != 2}]}", scope) == [
        {"n": 1, "ok": True},
        {"n": 2, "ok": False},
    ]
    assert evaluate({"a": ["${var.items}", "${!var.on && true}"]}, scope) == {"a": [[], True]}


# ---- the bucket and the key ----------------------------------------------------------


def _resource(module: TerraformModule, rtype: str) -> dict[str, Any]:
    body = module.resources[(rtype, "this")]
    assert body["count"] == "${var.create_bucket ? 1 : 0}" or rtype.startswith("aws_kms")
    return body


def test_bucket_is_versioned_private_owner_enforced_and_not_force_destroyed(
    module: TerraformModule,
) -> None:
    bucket = _resource(module, "aws_s3_bucket")
    assert bucket["force_destroy"] == "${var.force_destroy}"
    assert module.variables["force_destroy"]["default"] is False
    (versioning,) = _resource(module, "aws_s3_bucket_versioning")["versioning_configuration"]
    assert versioning["status"] == "Enabled"
    block = _resource(module, "aws_s3_bucket_public_access_block")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[setting] is True, setting
    (rule,) = _resource(module, "aws_s3_bucket_ownership_controls")["rule"]
    assert rule["object_ownership"] == "BucketOwnerEnforced"


def test_lifecycle_expires_noncurrent_versions_and_aborts_incomplete_uploads(
    module: TerraformModule,
) -> None:
    lifecycle = _resource(module, "aws_s3_bucket_lifecycle_configuration")
    assert lifecycle["depends_on"] == ["${aws_s3_bucket_versioning.this}"]
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    assert all(rule["status"] == "Enabled" for rule in rules.values())
    (expiry,) = rules["s3vault-noncurrent-versions"]["noncurrent_version_expiration"]
    assert expiry["noncurrent_days"] == "${var.noncurrent_version_expiration_days}"
    (abort,) = rules["s3vault-incomplete-multipart-uploads"]["abort_incomplete_multipart_upload"]
    assert abort["days_after_initiation"] == "${var.abort_incomplete_multipart_upload_days}"


def test_kms_key_is_optional_rotates_and_has_an_alias_and_a_deletion_window(
    module: TerraformModule,
) -> None:
    key = module.resources[("aws_kms_key", "this")]
    assert key["count"] == "${var.create_kms_key ? 1 : 0}"
    assert key["enable_key_rotation"] is True
    assert key["customer_master_key_spec"] == "SYMMETRIC_DEFAULT"
    assert key["deletion_window_in_days"] == "${var.kms_deletion_window_days}"
    alias = module.resources[("aws_kms_alias", "this")]
    assert alias["name"] == "alias/${var.kms_alias}"
    assert alias["target_key_id"] == "${aws_kms_key.this[0].key_id}"


# ---- the IAM policy ------------------------------------------------------------------


def test_policy_grants_exactly_what_the_calls_need(module: TerraformModule) -> None:
    needed = set().union(*CALL_ACTIONS.values())
    full = rendered_policy(
        module,
        bucket_name="vault",
        prefix="laptops/",
        create_kms_key=True,
        allow_connection_test=True,
    )
    assert granted(full) == needed
    without_kms = rendered_policy(module, bucket_name="vault", prefix="laptops/")
    assert granted(without_kms) == {a for a in needed if a.startswith("s3:")}
    assert {s["sid"] for s in without_kms} == {
        "ListUnderThePrefix",
        "BucketVersioningAndUploads",
        "ObjectsUnderThePrefix",
    }


def test_every_s3_object_action_is_scoped_to_the_prefix(module: TerraformModule) -> None:
    for statement in rendered_policy(module, bucket_name="vault", prefix="laptops/"):
        (resource,) = statement["resources"]
        objects = {a for a in statement["actions"] if a not in BUCKET_ACTIONS}
        if objects:
            assert resource == "arn:aws:s3:::vault/laptops/*", statement["sid"]
            assert BUCKET_ACTIONS.isdisjoint(statement["actions"])
        else:
            assert resource == "arn:aws:s3:::vault"
        if {"s3:ListBucket", "s3:ListBucketVersions"} & set(statement["actions"]):
            (condition,) = statement["condition"]
            assert condition == {
                "test": "StringLike",
                "variable": "s3:prefix",
                "values": ["laptops/*"],
            }


def test_whole_bucket_prefix_lists_without_a_prefix_condition(module: TerraformModule) -> None:
    by_sid = {s["sid"]: s for s in rendered_policy(module, bucket_name="vault")}
    assert "condition" not in by_sid["ListUnderThePrefix"]
    assert by_sid["ObjectsUnderThePrefix"]["resources"] == ["arn:aws:s3:::vault/*"]


def test_connection_test_grants_one_key_listing_and_the_root_probe_only(
    module: TerraformModule,
) -> None:
    statements = rendered_policy(
        module, bucket_name="vault", prefix="laptops/", allow_connection_test=True
    )
    by_sid = {s["sid"]: s for s in statements}
    assert by_sid["ConnectionTestList"]["condition"] == [
        {"test": "NumericLessThanEquals", "variable": "s3:max-keys", "values": ["1"]}
    ]
    assert by_sid["ConnectionTestProbe"]["resources"] == ["arn:aws:s3:::vault/.s3vault-probe-*"]
    assert set(by_sid["ConnectionTestProbe"]["actions"]) == {"s3:PutObject", "s3:DeleteObject"}


@pytest.mark.parametrize(
    ("variables", "key_arn"),
    [
        ({"create_kms_key": True}, KEY_ARN),
        ({"kms_key_arn": OTHER_KEY_ARN}, OTHER_KEY_ARN),
    ],
    ids=["key-made-here", "existing-key"],
)
def test_kms_actions_are_on_the_key_and_need_s3vaults_encryption_context(
    module: TerraformModule, variables: dict[str, Any], key_arn: str
) -> None:
    statements = rendered_policy(module, bucket_name="vault", **variables)
    kms = [s for s in statements if any(a.startswith("kms:") for a in s["actions"])]
    assert {s["sid"] for s in kms} == {"WrapDataKeys", "DescribeKey"}
    for statement in kms:
        assert statement["resources"] == [key_arn]
        assert all(a.startswith("kms:") for a in statement["actions"])
    wrap = next(s for s in kms if s["sid"] == "WrapDataKeys")
    (condition,) = wrap["condition"]
    assert condition["test"] == "StringEquals"
    assert condition["variable"] == "kms:EncryptionContext:aws:x-amz-cek-alg"
    assert set(condition["values"]) == CEK_ALGORITHMS


def test_encryption_context_condition_matches_what_s3vault_sends() -> None:
    # The content ciphers s3vault writes (v2, v3): each KMS wrap's context carries one.
    assert {CEK_GCM, SUITE_V3} == CEK_ALGORITHMS
    for cipher in (CEK_GCM, SUITE_V3):
        sent = kms_encryption_context({"team": "a"}, cipher)
        assert sent == {"team": "a", RESERVED_CONTEXT_KEY: cipher}
    assert RESERVED_CONTEXT_KEY == "aws:x-amz-cek-alg"


def _source_calls() -> dict[str, list[str]]:
    """Every boto3 S3/KMS call and obstore call in s3vault: call name -> where.

    A boto3 call is a method named after an S3 or KMS operation (botocore's model) on
    something named ``*client`` or ``*client()`` (``session.s3_client``,
    ``self.client``), or a paginator of one; obstore's are calls of ``obstore.*``.
    `NOT_A_USERS_S3` only ever talks to the embedded local S3 server.
    """
    session = get_session()
    operations: dict[str, str] = {}
    for service in ("s3", "kms"):
        for op in session.get_service_model(service).operation_names:
            assert xform_name(op) not in operations, f"{op} is both an S3 and a KMS call"
            operations[xform_name(op)] = f"{service}:{op}"
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if any(path.relative_to(SOURCE).is_relative_to(p) for p in NOT_A_USERS_S3):
            continue
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver, method = ast.unparse(node.func.value), node.func.attr
            call = None
            if receiver == "obstore":
                call = f"obstore:{method}"
            elif CLIENT.search(receiver) and method in operations:
                call = operations[method]
            elif CLIENT.search(receiver) and method == "get_paginator":
                (arg,) = node.args
                assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                call = operations[arg.value]
            if call is not None:
                found.setdefault(call, []).append(f"{where}:{node.lineno}")
    return found


def test_every_s3_and_kms_call_in_the_source_is_in_the_policy_table(
    module: TerraformModule,
) -> None:
    found = _source_calls()
    unknown = {call: where for call, where in found.items() if call not in CALL_ACTIONS}
    unknown = {call: where for call, where in unknown.items() if call not in NOT_GRANTED}
    assert not unknown, f"calls with no IAM action in the table (and the module): {unknown}"
    # And no entry for a call the code no longer makes: the policy would grant too much.
    stale = set(CALL_ACTIONS) - set(found)
    assert not stale, f"the table lists calls s3vault no longer makes: {sorted(stale)}"
    assert set(found) >= NOT_GRANTED, "NOT_GRANTED names a call s3vault does not make"
    full = rendered_policy(
        module, bucket_name="vault", prefix="p/", create_kms_key=True, allow_connection_test=True
    )
    for call in found:
        if call not in NOT_GRANTED:
            assert CALL_ACTIONS[call] <= granted(full), call
    assert not {"s3:CreateBucket", "s3:ListAllMyBuckets"} & granted(full)


# ---- the s3vault config --------------------------------------------------------------


def test_s3vault_config_output_is_jsonencode_of_the_local(module: TerraformModule) -> None:
    output = module.outputs["s3vault_config"]
    assert output["value"] == "${jsonencode(local.s3vault_config)}"
    (precondition,) = output["precondition"]
    assert "f.key != null" in precondition["condition"]


SCENARIOS: dict[str, dict[str, Any]] = {
    "bucket-only": {"bucket_name": "vault"},
    "kms-key-and-folders": {
        "bucket_name": "vault",
        "prefix": "laptops/",
        "create_kms_key": True,
        "kms_alias": "s3vault-laptops",
        "folders": [folder("~/Documents", "documents"), folder("/srv/photos", "photos/")],
    },
    "existing-bucket-and-key": {
        "bucket_name": "vault",
        "create_bucket": False,
        "prefix": "team/a/",
        "kms_key_arn": OTHER_KEY_ARN,
        "s3_endpoint_url": "https://bucket.vpce-0a1b.s3.eu-west-1.vpce.amazonaws.com",
        "folders": [folder("/data", key="raw-2026")],
    },
    "raw-default-key": {
        "bucket_name": "vault",
        "default_key": "laptop-2026",
        "folders": [folder("~/Documents", "docs")],
    },
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_config_validates_against_s3vaults_schema(
    module: TerraformModule, name: str
) -> None:
    variables = SCENARIOS[name]
    data = rendered_config(module, **variables)
    config = Config.model_validate(data)
    assert config.managed_by == "terraform"
    assert config.s3.region == REGION and config.kms.region == REGION
    assert config.s3.endpoint_url == variables.get("s3_endpoint_url")
    prefix = variables.get("prefix", "")
    assert config.buckets == [f"s3://vault/{prefix}"]
    assert len(config.folders) == len(variables.get("folders", []))
    for f in config.folders:
        # Inside the granted prefix, so the policy covers every folder.
        assert f.bucket == "vault" and f.prefix.startswith(prefix)


def test_rendered_config_names_the_kms_key_as_s3vault_accepts_it(
    module: TerraformModule,
) -> None:
    made = Config.model_validate(rendered_config(module, **SCENARIOS["kms-key-and-folders"]))
    assert made.defaults.key == f"{KMS_PREFIX}alias/s3vault-laptops"
    assert [f.key for f in made.folders] == [made.defaults.key] * 2
    assert [f.prefix for f in made.folders] == ["laptops/documents/", "laptops/photos/"]
    existing = Config.model_validate(
        rendered_config(module, **SCENARIOS["existing-bucket-and-key"])
    )
    assert existing.defaults.key == f"{KMS_PREFIX}{OTHER_KEY_ARN}"
    assert existing.folders[0].key == "raw-2026"
    assert Config.model_validate(rendered_config(module, bucket_name="vault")).defaults.key is None


def test_folder_without_any_key_is_what_the_precondition_refuses(module: TerraformModule) -> None:
    data = rendered_config(module, bucket_name="vault", folders=[folder("/data")])
    assert data["folders"][0]["key"] is None
    with pytest.raises(ValueError, match="key"):
        Config.model_validate(data)


def test_rendered_config_passes_s3vault_config_validate(
    module: TerraformModule, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(rendered_config(module, **SCENARIOS["kms-key-and-folders"])))
    result = subprocess.run(
        [sys.executable, "-m", "s3vault", "--config", str(path), "config", "validate", "--json"],
        capture_output=True,
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {"path": str(path), "valid": True}
