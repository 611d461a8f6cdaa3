# portcullis, prod: one instance running the compose stack, its security
# group, instance role and secrets. See ../../README.md.

locals {
  environment = "prod"
  name        = "portcullis-${local.environment}"
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.extra_tags, {
      Project     = "portcullis"
      Environment = local.environment
      ManagedBy   = "terraform"
      Source      = "terraform/environments/${local.environment}"
    })
  }
}

module "secrets" {
  source = "../../modules/secrets"

  environment             = local.environment
  recovery_window_in_days = var.secret_recovery_window_in_days
  smtp_host               = var.smtp_host
  smtp_port               = var.smtp_port
  smtp_username           = var.smtp_username
}

module "iam" {
  source = "../../modules/iam"

  name                       = local.name
  environment                = local.environment
  secret_arns                = module.secrets.secret_arns
  kms_key_arn                = module.secrets.kms_key_arn
  enable_cloudwatch_agent    = var.enable_cloudwatch_agent
  enable_ssm_session_manager = var.enable_ssm_session_manager
}

module "security_group" {
  source = "../../modules/security-group"

  name                   = local.name
  vpc_id                 = var.vpc_id
  allowed_cidr_blocks    = var.allowed_cidr_blocks
  monitoring_cidr_blocks = var.monitoring_cidr_blocks
  ssh_cidr_blocks        = var.ssh_cidr_blocks
  egress_tcp_ports       = distinct([80, 443, var.smtp_port])
}

module "ec2" {
  source = "../../modules/ec2"

  name                 = local.name
  environment          = local.environment
  instance_type        = var.instance_type
  subnet_id            = var.subnet_id
  security_group_ids   = [module.security_group.security_group_id]
  iam_instance_profile = module.iam.instance_profile_name
  key_name             = var.key_name
  root_volume_size     = var.root_volume_size
  create_eip           = var.create_eip
  domain               = var.domain
  repository_url       = var.repository_url
  repository_ref       = var.repository_ref
  secret_names         = module.secrets.secret_names

  # Prod: no termination by accident.
  disable_api_termination = true
}
