# A least-privilege policy: exactly the S3 and KMS calls s3vault makes, on one prefix
# of the bucket and on the KMS key. The README's table says which call needs what.

data "aws_iam_policy_document" "s3vault" {
  # ListObjectsV2 (listings, sync plans, restore) and ListObjectVersions (rotation's
  # count of old versions), only under the prefix.
  statement {
    sid       = "ListUnderThePrefix"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [local.bucket_arn]

    # With prefix "" the whole bucket is granted: a listing without a prefix too.
    dynamic "condition" {
      for_each = var.prefix == "" ? [] : [var.prefix]
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${condition.value}*"]
      }
    }
  }

  # GetBucketVersioning (rotation: is the bucket versioned?) and ListMultipartUploads
  # (sync: abort the uploads a killed run left). S3 has no prefix condition for either.
  statement {
    sid       = "BucketVersioningAndUploads"
    actions   = ["s3:GetBucketVersioning", "s3:ListBucketMultipartUploads"]
    resources = [local.bucket_arn]
  }

  # Objects under the prefix: HEAD/GET (also of a version), PUT (whole, multipart,
  # copies), tags kept by rewrites and copies, DELETE, aborting a multipart upload.
  statement {
    sid = "ObjectsUnderThePrefix"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:GetObjectTagging",
      "s3:PutObject",
      "s3:PutObjectTagging",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.objects_arn]
  }

  # The desktop app's "Test connection" (vault/store_check.py): ListObjectsV2 with
  # MaxKeys=1 and no prefix, then a probe object PUT and DELETEd at the bucket root.
  dynamic "statement" {
    for_each = var.allow_connection_test ? [local.bucket_arn] : []
    content {
      sid       = "ConnectionTestList"
      actions   = ["s3:ListBucket"]
      resources = [statement.value]
      condition {
        test     = "NumericLessThanEquals"
        variable = "s3:max-keys"
        values   = ["1"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.allow_connection_test ? ["${local.bucket_arn}/.s3vault-probe-*"] : []
    content {
      sid       = "ConnectionTestProbe"
      actions   = ["s3:PutObject", "s3:DeleteObject"]
      resources = [statement.value]
    }
  }

  # KMS wraps: GenerateDataKey (new objects), Decrypt (reads), Encrypt (rotation
  # re-wraps a data key). s3vault's kms+context wrap always sends the encryption
  # context entry aws:x-amz-cek-alg = the content cipher (v2: AES/GCM/NoPadding,
  # v3: 115), so the key serves s3vault's envelopes only.
  dynamic "statement" {
    for_each = local.use_kms ? ["kms"] : []
    content {
      sid       = "WrapDataKeys"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"]
      resources = [local.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:aws:x-amz-cek-alg"
        values   = ["AES/GCM/NoPadding", "115"]
      }
    }
  }

  # DescribeKey: rotation learns the target key's ARN (keys/kms.py key_arn).
  dynamic "statement" {
    for_each = local.use_kms ? ["kms"] : []
    content {
      sid       = "DescribeKey"
      actions   = ["kms:DescribeKey"]
      resources = [local.kms_key_arn]
    }
  }
}

resource "aws_iam_policy" "s3vault" {
  name        = coalesce(var.iam_policy_name, "s3vault-${var.bucket_name}")
  description = "s3vault on s3://${var.bucket_name}/${var.prefix} (and its KMS key, if any)"
  policy      = data.aws_iam_policy_document.s3vault.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "s3vault" {
  for_each = toset(var.attach_to_roles)

  role       = each.value
  policy_arn = aws_iam_policy.s3vault.arn
}

resource "aws_iam_user_policy_attachment" "s3vault" {
  for_each = toset(var.attach_to_users)

  user       = each.value
  policy_arn = aws_iam_policy.s3vault.arn
}
