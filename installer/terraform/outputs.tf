output "bucket_name" {
  description = "Name of the bucket s3vault uses."
  value       = local.bucket_name
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = local.bucket_arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key s3vault wraps data keys with (null without one)."
  value       = local.kms_key_arn
}

output "kms_alias_name" {
  description = "Alias of the KMS key made here, alias/NAME (null when no key is made)."
  value       = var.create_kms_key ? aws_kms_alias.this[0].name : null
}

output "iam_policy_arn" {
  description = "ARN of the least-privilege IAM policy (attach it to the machines' role)."
  value       = aws_iam_policy.s3vault.arn
}

output "iam_policy_json" {
  description = "The IAM policy document, as JSON."
  value       = data.aws_iam_policy_document.s3vault.json
}

output "s3vault_config" {
  description = "The s3vault config file, as JSON (valid YAML): terraform output -raw s3vault_config > ~/.config/s3vault/config.yaml, or jsondecode() it for the Ansible role's s3vault_config."
  value       = jsonencode(local.s3vault_config)

  precondition {
    condition     = alltrue([for f in local.s3vault_config.folders : f.key != null])
    error_message = "Every folder needs a master key: give it a key, or set default_key, create_kms_key or kms_key_arn."
  }
}
