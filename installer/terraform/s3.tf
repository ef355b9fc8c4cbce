# The bucket, when this module makes it. Objects are encrypted by s3vault before they
# leave the machine, so S3's own encryption (SSE-S3, S3's default) is a second layer,
# not the protection: no SSE-KMS bucket key is needed (README: "Why SSE-S3").

resource "aws_s3_bucket" "this" {
  count = var.create_bucket ? 1 : 0

  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# ACLs off: every object belongs to the bucket owner, whoever wrote it.
resource "aws_s3_bucket_ownership_controls" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  count = var.create_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.this[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Versioning: an overwritten or deleted object stays recoverable until the lifecycle
# rule below expires its old version.
resource "aws_s3_bucket_versioning" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.create_bucket ? 1 : 0

  # A lifecycle rule on non-current versions needs versioning on first.
  depends_on = [aws_s3_bucket_versioning.this]

  bucket = aws_s3_bucket.this[0].id

  # Old versions still hold data keys wrapped by the master keys of their time:
  # expiring them is also what lets a rotated-away key be retired.
  rule {
    id     = "s3vault-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    # A delete marker left with no version behind it.
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "s3vault-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }
}
