variable "name" {
  description = "Name tag and name prefix of the security group, e.g. portcullis-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instance."
  type        = string
}

variable "allowed_cidr_blocks" {
  description = "Who reaches the web front door: ports 80 (redirect to https) and 443 (Grafana, /prometheus/, /alertmanager/). IPv4 or IPv6 CIDRs."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "allowed_cidr_blocks: every entry must be a CIDR block."
  }
}

variable "monitoring_cidr_blocks" {
  description = "Who reaches Prometheus on 9090 and Alertmanager on 9093 directly (TLS + basic auth at the gateway): keep it narrower than allowed_cidr_blocks, e.g. the office or the VPN. Empty: the ports stay closed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.monitoring_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "monitoring_cidr_blocks: every entry must be a CIDR block."
  }
}

variable "ssh_cidr_blocks" {
  description = "Who reaches SSH (22). Empty (the default): no SSH at all; use Session Manager. Never the whole internet."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidr_blocks : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "ssh_cidr_blocks: CIDR blocks, and never 0.0.0.0/0 or ::/0."
  }
}

variable "egress_cidr_blocks" {
  description = "Where the instance may connect to (package mirrors, image registries, AWS APIs, Slack, PagerDuty, the SMTP relay). IPv4 or IPv6 CIDRs."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "egress_cidr_blocks: every entry must be a CIDR block."
  }
}

variable "egress_tcp_ports" {
  description = "TCP ports the instance may connect out to: 80 and 443 (packages, images, git, AWS APIs, webhooks) and the SMTP relay's port (587)."
  type        = list(number)
  default     = [80, 443, 587]
}
