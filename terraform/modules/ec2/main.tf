# One EC2 instance running the stack under Docker Compose as the systemd
# unit portcullis.service:
#   - IMDSv2 only (http_tokens = "required"), hop limit 2: the gateway and
#     the cost exporter run behind Docker's bridge, one network hop further
#     than the host, and with the default limit of 1 the IMDSv2 token answer
#     never reaches them (no credentials: realms fail closed, CostDataStale);
#   - encrypted gp3 root volume; optional Elastic IP;
#   - user data (user-data.sh.tftpl): Docker and the Compose plugin, the
#     repository at a pinned ref, the unit. It holds secret names, never
#     secret values: those are read from Secrets Manager at every start.

data "aws_ami" "debian" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["136693071363"] # Debian's official AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_eip" "this" {
  count = var.create_eip ? 1 : 0

  domain = "vpc"

  tags = {
    Name = var.name
  }
}

locals {
  # DOMAIN: the configured name, else the EIP (known before the instance,
  # so it can go into the user data), else found at boot from IMDS.
  domain = var.domain != "" ? var.domain : (var.create_eip ? aws_eip.this[0].public_ip : "")

  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    environment       = var.environment
    domain            = local.domain
    repository_url    = var.repository_url
    repository_ref    = var.repository_ref
    swap_size_mb      = var.swap_size_mb
    prometheus_secret = var.secret_names.prometheus_auth
    am_secret         = var.secret_names.alertmanager_auth
    grafana_secret    = var.secret_names.grafana_admin
    smtp_secret       = var.secret_names.smtp
  })
}

resource "aws_instance" "this" {
  ami                         = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = var.security_group_ids
  iam_instance_profile        = var.iam_instance_profile
  key_name                    = var.key_name
  associate_public_ip_address = var.associate_public_ip_address
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  disable_api_termination     = var.disable_api_termination

  user_data                   = local.user_data
  user_data_replace_on_change = var.user_data_replace_on_change

  credit_specification {
    cpu_credits = var.cpu_credits
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true

    tags = {
      Name = "${var.name}-root"
    }
  }

  tags = {
    Name = var.name
  }

  lifecycle {
    # A newer Debian AMI must not replace a running monitoring host.
    ignore_changes = [ami]
  }
}

resource "aws_eip_association" "this" {
  count = var.create_eip ? 1 : 0

  instance_id   = aws_instance.this.id
  allocation_id = aws_eip.this[0].id
}
