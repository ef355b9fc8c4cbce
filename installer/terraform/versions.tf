terraform {
  # 1.5: strcontains() in the validations; optional() attributes with defaults (1.3).
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
