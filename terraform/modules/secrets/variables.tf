variable "project" {
  description = "First part of every secret name: <project>/<environment>/<secret>. The gateway's and the boot script's secret names follow it."
  type        = string
  default     = "portcullis"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.project))
    error_message = "project: lower-case letters, digits and dashes, at most 32 characters."
  }
}

variable "environment" {
  description = "dev or prod: the second part of every secret name, and the ENVIRONMENT of the compose stack."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (the values compose/.env and the cost alerts know)."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing customer-managed KMS key for the secrets. Null: the module creates one (rotation on), about USD 1 a month."
  type        = string
  default     = null
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before the module's own KMS key is deleted after a destroy (7-30 days). Secrets encrypted with it are unreadable once it is gone."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can still be restored (7-30), or 0 to delete at once (only sensible for throw-away test accounts)."
  type        = number
  default     = 30

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "password_length" {
  description = "Length of the generated passwords (letters and digits only, so they survive every shell, URL and htpasswd tool unquoted)."
  type        = number
  default     = 32

  validation {
    condition     = var.password_length >= 20 && var.password_length <= 128
    error_message = "password_length must be between 20 and 128."
  }
}

variable "prometheus_username" {
  description = "User of the gateway's prometheus realm (basic auth on /prometheus/ and :9090)."
  type        = string
  default     = "admin"
}

variable "alertmanager_username" {
  description = "User of the gateway's alertmanager realm (basic auth on /alertmanager/ and :9093)."
  type        = string
  default     = "admin"
}

variable "grafana_admin_username" {
  description = "Grafana's admin login (GRAFANA_ADMIN_USER of the compose stack)."
  type        = string
  default     = "admin"
}

variable "smtp_host" {
  description = "SMTP relay host for Alertmanager's e-mail receiver, seeded into the smtp secret (later edits of the secret are kept: see README)."
  type        = string
  default     = "smtp.example.com"
}

variable "smtp_port" {
  description = "SMTP relay port (587: submission with STARTTLS, which alertmanager.yml requires). The security group's egress must allow it."
  type        = number
  default     = 587
}

variable "smtp_username" {
  description = "SMTP login, seeded into the smtp secret."
  type        = string
  default     = "portcullis-alertmanager@example.com"
}

variable "smtp_from" {
  description = "Sender address of alert e-mails, seeded into the smtp secret. Null: smtp_username."
  type        = string
  default     = null
}
