# What the other files share, and the s3vault config this module's outputs hand over.

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  # The bucket resource when made here, so the config waits for the bucket to exist.
  bucket_name = var.create_bucket ? aws_s3_bucket.this[0].id : var.bucket_name
  bucket_arn  = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
  objects_arn = "${local.bucket_arn}/${var.prefix}*"

  # Known at plan time (a key made here has no ARN yet): decides the KMS statements.
  use_kms     = var.create_kms_key || var.kms_key_arn != null
  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn
  # The config names a key made here by its alias (readable, and what `key list` shows).
  kms_key_ref = var.create_kms_key ? aws_kms_alias.this[0].name : var.kms_key_arn
  default_key = var.default_key != null ? var.default_key : (local.kms_key_ref != null ? "kms:${local.kms_key_ref}" : null)

  # s3vault's config file (s3vault/config/model.py: Config), as the output
  # s3vault_config renders it with jsonencode: JSON is valid YAML, so it is a
  # config.yaml as it is. Nulls are the settings' defaults.
  s3vault_config = {
    version    = 1
    managed_by = "terraform"
    s3 = {
      region       = data.aws_region.current.name
      endpoint_url = var.s3_endpoint_url
    }
    kms = {
      region = data.aws_region.current.name
    }
    defaults = {
      key = local.default_key
    }
    # `key delete` refuses a key the objects under the prefix still need.
    buckets = ["s3://${local.bucket_name}/${var.prefix}"]
    # Each folder under the granted prefix, so the policy covers it.
    folders = [for f in var.folders : {
      path   = f.path
      bucket = local.bucket_name
      prefix = "${var.prefix}${f.prefix}"
      key    = f.key != null ? f.key : local.default_key
    }]
  }
}
