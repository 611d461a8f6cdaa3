locals {
  # The name in the URLs: the domain, else the EIP, else the public IP.
  host = module.ec2.domain != "" ? module.ec2.domain : module.ec2.public_ip
}

output "instance_id" {
  description = "ID of the EC2 instance."
  value       = module.ec2.instance_id
}

output "public_ip" {
  description = "Public address of the stack: the Elastic IP when there is one, else the instance's (changes on stop/start)."
  value       = module.ec2.public_ip
}

output "elastic_ip" {
  description = "The Elastic IP, or null without one."
  value       = module.ec2.elastic_ip
}

output "grafana_url" {
  description = "Grafana (its own login: user and password in the grafana-admin secret)."
  value       = "https://${local.host}/"
}

output "prometheus_url" {
  description = "Prometheus through the gateway (basic auth: the prometheus-auth secret)."
  value       = "https://${local.host}/prometheus/"
}

output "alertmanager_url" {
  description = "Alertmanager through the gateway (basic auth: the alertmanager-auth secret)."
  value       = "https://${local.host}/alertmanager/"
}

output "prometheus_direct_url" {
  description = "Prometheus on its own port, open to monitoring_cidr_blocks only."
  value       = "https://${local.host}:9090/"
}

output "alertmanager_direct_url" {
  description = "Alertmanager on its own port, open to monitoring_cidr_blocks only."
  value       = "https://${local.host}:9093/"
}

output "secret_names" {
  description = "Secrets Manager names of the stack's credentials (read them with aws secretsmanager get-secret-value)."
  value       = module.secrets.secret_names
}

output "kms_key_arn" {
  description = "KMS key of the secrets."
  value       = module.secrets.kms_key_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = module.security_group.security_group_id
}

output "instance_role_name" {
  description = "IAM role of the instance."
  value       = module.iam.role_name
}

output "ssh_command" {
  description = "SSH to the instance (Debian's AMI user is admin); null without a key pair."
  value       = var.key_name == null ? null : "ssh admin@${module.ec2.public_ip}"
}
