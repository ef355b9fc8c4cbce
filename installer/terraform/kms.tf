# An optional KMS key for s3vault's `kms:` master keys: KMS keeps the key, so the
# machines running s3vault hold no key material at all.

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description              = "s3vault master key for s3://${var.bucket_name}/${var.prefix}"
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  # KMS's yearly rotation of the key material: old material stays to decrypt old data
  # keys, so nothing is re-encrypted (s3vault's `rotate` is another thing: moving
  # objects to another master key).
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.kms_alias}"
  target_key_id = aws_kms_key.this[0].key_id
}
