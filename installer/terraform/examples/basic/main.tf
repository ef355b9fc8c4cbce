# A versioned bucket, a KMS key and a policy for the prefix laptops/, attached to the
# machines' instance role; the agent syncs ~/Documents to laptops/documents/.
#
#   terraform init && terraform apply
#   terraform output -raw s3vault_config > ~/.config/s3vault/config.yaml

provider "aws" {
  region = "eu-west-1"
}

module "s3vault" {
  source = "../.."

  bucket_name    = "example-s3vault-vault"
  prefix         = "laptops/"
  create_kms_key = true
  kms_alias      = "s3vault-laptops"

  attach_to_roles = ["s3vault-laptop"]

  folders = [
    { path = "~/Documents", prefix = "documents" },
  ]

  tags = { project = "s3vault" }
}

output "s3vault_config" {
  description = "The s3vault config file for the machines (JSON, valid YAML)."
  value       = module.s3vault.s3vault_config
}

output "iam_policy_arn" {
  description = "The policy to attach to other principals that run s3vault."
  value       = module.s3vault.iam_policy_arn
}
