# ---- the bucket ------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket s3vault stores encrypted objects in (made here unless create_bucket is false)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens."
  }
}

variable "create_bucket" {
  description = "Make the bucket (versioning, public access block, lifecycle). false: use the existing bucket bucket_name and only write the policy and config for it."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with all its objects and versions. Leave false for real data."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which an object version that was replaced or deleted is removed for good (the lifecycle rule for non-current versions)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which S3 aborts a multipart upload that was never completed (s3vault aborts its own; a killed process may leave some)."
  type        = number
  default     = 3

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }
}

# ---- what the policy grants ------------------------------------------------------------

variable "prefix" {
  description = "The one key prefix of the bucket the IAM policy grants, e.g. \"laptops/\" (ends with /); \"\" grants the whole bucket. Folders in the config live under it."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || (endswith(var.prefix, "/") && !startswith(var.prefix, "/") && !strcontains(var.prefix, "//") && !strcontains(var.prefix, "*") && !strcontains(var.prefix, "?"))
    error_message = "prefix must be \"\" or a key prefix like \"team/laptops/\": ending with /, not starting with /, no //, no * or ?."
  }
}

variable "allow_connection_test" {
  description = "Also grant what the desktop app's \"Test connection\" does outside the prefix: list at most one key of the bucket and write then delete a probe object .s3vault-probe-* at the bucket root."
  type        = bool
  default     = false
}

variable "iam_policy_name" {
  description = "Name of the IAM policy (default: s3vault-BUCKET)."
  type        = string
  default     = null
}

variable "attach_to_roles" {
  description = "Names of IAM roles to attach the policy to (e.g. the instance role of the machines running s3vault)."
  type        = list(string)
  default     = []
}

variable "attach_to_users" {
  description = "Names of IAM users to attach the policy to."
  type        = list(string)
  default     = []
}

# ---- the KMS key -------------------------------------------------------------------------

variable "create_kms_key" {
  description = "Make a KMS key (with automatic rotation and an alias) to use as s3vault's master key (kms:alias/NAME)."
  type        = bool
  default     = false
}

variable "kms_alias" {
  description = "Alias of the KMS key made when create_kms_key is true, without the alias/ prefix."
  type        = string
  default     = "s3vault"

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.kms_alias)) && !startswith(var.kms_alias, "alias/") && !startswith(var.kms_alias, "aws/")
    error_message = "kms_alias must be letters, digits, /, _ and -, without the alias/ prefix, and not start with aws/."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period (7 to 30 days) before a KMS key scheduled for deletion is deleted: the objects it wraps become unreadable then."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing KMS key to grant and to use as the master key, when create_kms_key is false (null: no KMS key, raw master keys only)."
  type        = string
  default     = null
}

# ---- the s3vault config ----------------------------------------------------------------

variable "s3_endpoint_url" {
  description = "s3.endpoint_url written in the s3vault config (e.g. a VPC interface endpoint); null for AWS's default endpoint."
  type        = string
  default     = null
}

variable "default_key" {
  description = "defaults.key of the s3vault config: the master key new objects use (a key name, or kms:KEY_ID). Default: kms:alias/NAME of the KMS key when there is one, else the machine's current key."
  type        = string
  default     = null
}

variable "folders" {
  description = "Folders the s3vault agent syncs: path (absolute or ~/...), prefix (under var.prefix) and key (default: the default key)."
  type = list(object({
    path   = string
    prefix = optional(string, "")
    key    = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for f in var.folders : !startswith(f.prefix, "/") && !strcontains(f.prefix, "..")])
    error_message = "A folder's prefix is relative to var.prefix: it must not start with / or contain ..."
  }
}

variable "tags" {
  description = "Tags for the bucket, the KMS key and the IAM policy."
  type        = map(string)
  default     = {}
}
