variable "name" {
  description = "Name of the role and instance profile, e.g. portcullis-prod."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,50}$", var.name))
    error_message = "name: 1-50 characters of A-Z a-z 0-9 +=,.@_- (IAM role names)."
  }
}

variable "environment" {
  description = "dev or prod: names the CloudWatch log group prefix /portcullis/<environment>/."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "secret_arns" {
  description = "Full ARNs of the secrets the instance may read (modules/secrets output secret_arns). The only resources of secretsmanager:GetSecretValue."
  type        = list(string)

  validation {
    condition     = length(var.secret_arns) > 0 && alltrue([for a in var.secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", a))])
    error_message = "secret_arns: one or more Secrets Manager secret ARNs, no wildcards."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the secrets: kms:Decrypt on it, only through Secrets Manager."
  type        = string
}

variable "enable_cost_explorer" {
  description = "Allow ce:GetCostAndUsage and ce:GetCostForecast for the cost exporter."
  type        = bool
  default     = true
}

variable "enable_cloudwatch_agent" {
  description = "Allow what the CloudWatch agent needs: metrics in the CWAgent namespace, logs under /portcullis/<environment>/. The agent itself is not installed by this stack."
  type        = bool
  default     = false
}

variable "enable_ssm_session_manager" {
  description = "Attach AWS's AmazonSSMManagedInstanceCore policy, so operators can reach the instance with Session Manager instead of SSH."
  type        = bool
  default     = false
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for the role, where the organisation requires one. Null: none."
  type        = string
  default     = null
}
