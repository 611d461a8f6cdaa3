variable "aws_region" {
  description = "AWS region of the stack (Cost Explorer is always called in us-east-1, whatever this is)."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "VPC of the instance and its security group."
  type        = string
}

variable "subnet_id" {
  description = "Public subnet of the instance (a route to an internet gateway)."
  type        = string
}

variable "domain" {
  description = "DNS name the stack is served under (https://DOMAIN/). Empty: the instance's public IP address."
  type        = string
  default     = ""
}

variable "repository_url" {
  description = "HTTPS URL of the portcullis repository the instance runs."
  type        = string
  default     = "https://github.com/portcullis-gw/portcullis.git"
}

variable "repository_ref" {
  description = "Pinned revision the instance runs: a 40-hex commit id or a vX.Y.Z tag."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.small"
}

variable "root_volume_size" {
  description = "Root volume size in GiB (encrypted gp3)."
  type        = number
  default     = 20
}

variable "create_eip" {
  description = "Give the instance an Elastic IP (stable address, about USD 3.65 a month)."
  type        = bool
  default     = false
}

variable "key_name" {
  description = "EC2 key pair for SSH; null for none."
  type        = string
  default     = null
}

variable "allowed_cidr_blocks" {
  description = "Who reaches ports 80 and 443. Dev default: everyone (the stack is behind TLS and logins); narrow it where you can."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "monitoring_cidr_blocks" {
  description = "Who reaches Prometheus (9090) and Alertmanager (9093) directly. Default: nobody (use https://DOMAIN/prometheus/)."
  type        = list(string)
  default     = []
}

variable "ssh_cidr_blocks" {
  description = "Who reaches SSH (22). Default: nobody. Never 0.0.0.0/0."
  type        = list(string)
  default     = []
}

variable "enable_cloudwatch_agent" {
  description = "Grant the instance role what the CloudWatch agent needs (the agent is not installed by the stack)."
  type        = bool
  default     = false
}

variable "enable_ssm_session_manager" {
  description = "Let operators reach the instance through SSM Session Manager (needs the SSM agent on the AMI)."
  type        = bool
  default     = false
}

variable "secret_recovery_window_in_days" {
  description = "Days a deleted secret stays restorable: 0 (at once) or 7-30."
  type        = number
  default     = 7
}

variable "smtp_host" {
  description = "SMTP relay of the e-mail receiver (seeds the smtp secret)."
  type        = string
  default     = "smtp.example.com"
}

variable "smtp_port" {
  description = "SMTP relay port (STARTTLS)."
  type        = number
  default     = 587
}

variable "smtp_username" {
  description = "SMTP login (seeds the smtp secret; the password is set in Secrets Manager)."
  type        = string
  default     = "portcullis-alertmanager@example.com"
}

variable "extra_tags" {
  description = "Tags added to the default tags of every resource, e.g. Owner and CostCenter."
  type        = map(string)
  default     = {}
}
