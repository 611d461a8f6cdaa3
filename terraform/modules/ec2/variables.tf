variable "name" {
  description = "Name tag of the instance and prefix of its other resources, e.g. portcullis-prod."
  type        = string
}

variable "environment" {
  description = "dev or prod: ENVIRONMENT in the stack's compose/.env (alert and cost labels, budgets)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (the values compose/.env knows)."
  }
}

variable "instance_type" {
  description = "EC2 instance type. t3.small (2 GiB) runs the stack; the first boot builds two C images on it, so the module adds swap."
  type        = string
  default     = "t3.small"
}

variable "cpu_credits" {
  description = "CPU credits of a burstable (t2/t3/t4g) type: standard (never billed beyond the hourly price) or unlimited."
  type        = string
  default     = "standard"

  validation {
    condition     = contains(["standard", "unlimited"], var.cpu_credits)
    error_message = "cpu_credits must be standard or unlimited."
  }
}

variable "ami_id" {
  description = "AMI of the instance. Null: the newest official Debian 12 (bookworm) amd64 AMI at creation (later AMIs do not replace the instance). An override must be Debian or Ubuntu: the user data installs Docker from Docker's apt repository."
  type        = string
  default     = null
}

variable "subnet_id" {
  description = "Subnet of the instance: a public subnet (a route to an internet gateway) for it to be reachable and to reach the registries."
  type        = string
}

variable "associate_public_ip_address" {
  description = "Give the instance a public IPv4 address at launch (needed without an EIP in a public subnet)."
  type        = bool
  default     = true
}

variable "security_group_ids" {
  description = "Security groups of the instance (modules/security-group)."
  type        = list(string)
}

variable "iam_instance_profile" {
  description = "Instance profile name (modules/iam): the role the gateway, the cost exporter and the boot script use through IMDSv2."
  type        = string
}

variable "key_name" {
  description = "EC2 key pair for SSH. Null: none (use Session Manager, or add one later)."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Size of the encrypted gp3 root volume in GiB: the OS, the images, and the named volumes (Prometheus keeps 35 days)."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size >= 12 && var.root_volume_size <= 1024
    error_message = "root_volume_size must be between 12 and 1024 GiB."
  }
}

variable "ebs_kms_key_arn" {
  description = "Customer-managed KMS key for the root volume. Null: the account's aws/ebs key (encryption is on either way)."
  type        = string
  default     = null
}

variable "swap_size_mb" {
  description = "Size of a swap file the user data creates (MiB); 0 for none. Helps a 2 GiB instance through the first image build."
  type        = number
  default     = 2048
}

variable "create_eip" {
  description = "Give the instance an Elastic IP, so its address survives stop/start and replacement (about USD 3.65 a month)."
  type        = bool
  default     = false
}

variable "domain" {
  description = "DOMAIN of the stack (https://DOMAIN/). Empty: the EIP's address when there is one, else the instance's public IPv4 address at boot."
  type        = string
  default     = ""

  validation {
    condition     = var.domain == "" || can(regex("^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", var.domain))
    error_message = "domain must be a DNS name (letters, digits, dots and dashes) or empty."
  }
}

variable "repository_url" {
  description = "HTTPS URL of the repository the instance runs the stack from."
  type        = string
  default     = "https://github.com/portcullis-gw/portcullis.git"

  validation {
    condition     = can(regex("^https://[A-Za-z0-9./_~-]+$", var.repository_url))
    error_message = "repository_url must be an https:// URL without spaces or quotes."
  }
}

variable "repository_ref" {
  description = "The pinned revision to run: a full 40-hex commit id (recommended: immutable) or a release tag such as v1.2.0. Never a branch."
  type        = string

  validation {
    condition     = can(regex("^([0-9a-f]{40}|v[0-9]+\\.[0-9]+\\.[0-9]+[A-Za-z0-9.-]*)$", var.repository_ref))
    error_message = "repository_ref must be a 40-hex commit id or a version tag vX.Y.Z."
  }
}

variable "secret_names" {
  description = "Names of the stack's secrets (modules/secrets output secret_names); the user data holds names only, never values."
  type = object({
    prometheus_auth   = string
    alertmanager_auth = string
    grafana_admin     = string
    smtp              = string
  })

  validation {
    condition     = alltrue([for n in values(var.secret_names) : can(regex("^[A-Za-z0-9/_+=.@-]+$", n))])
    error_message = "secret_names: Secrets Manager names (letters, digits and /_+=.@-)."
  }
}

variable "detailed_monitoring" {
  description = "EC2 detailed (1-minute) CloudWatch monitoring, about USD 2 a month. node-exporter already gives the stack 15-second host metrics."
  type        = bool
  default     = false
}

variable "disable_api_termination" {
  description = "Protect the instance against termination by the API or console (prod)."
  type        = bool
  default     = false
}

variable "user_data_replace_on_change" {
  description = "Replace the instance when its user data changes (a new repository_ref, say). False: the change is recorded but the running instance keeps its deployment; move it with portcullis-deploy (README)."
  type        = bool
  default     = false
}
