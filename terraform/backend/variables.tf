variable "aws_region" {
  description = "Region of the state bucket and lock table."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the state bucket; globally unique, e.g. portcullis-tfstate-<account id>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, dots, dashes)."
  }
}

variable "lock_table_name" {
  description = "Name of the DynamoDB lock table (dynamodb_table in the backend blocks)."
  type        = string
  default     = "portcullis-tfstate-lock"
}

variable "create_lock_table" {
  description = "Create the DynamoDB lock table. False when every user runs Terraform >= 1.10 and locks with use_lockfile = true in the bucket instead."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the state objects. Null: the AWS-managed aws/s3 key (SSE-KMS at no key charge)."
  type        = string
  default     = null
}

variable "noncurrent_version_retention_days" {
  description = "Days old versions of a state file are kept (to roll back a bad apply) before they expire."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "extra_tags" {
  description = "Tags added to the default tags of every resource."
  type        = map(string)
  default     = {}
}
