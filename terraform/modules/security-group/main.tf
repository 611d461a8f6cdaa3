# Inbound: exactly the gateway's published ports (compose/docker-compose.yml)
# and SSH, each from its own list of CIDRs, one rule per CIDR:
#   80, 443     allowed_cidr_blocks      (the web front door)
#   9090, 9093  monitoring_cidr_blocks   (Prometheus and Alertmanager direct)
#   22          ssh_cidr_blocks          (none by default)
# Nothing else: node-exporter, the cost exporter, Grafana's 3000 and the
# gateway's admin port are on the compose network only.
# Outbound: only the TCP ports the stack needs (egress_tcp_ports). DNS to the
# VPC resolver, IMDS and the Amazon Time Sync Service are link-local or
# VPC-internal and not filtered by security groups.

locals {
  is_ipv6 = { for c in distinct(concat(var.allowed_cidr_blocks, var.monitoring_cidr_blocks, var.ssh_cidr_blocks, var.egress_cidr_blocks)) : c => strcontains(c, ":") }

  egress = { for pair in setproduct(var.egress_tcp_ports, var.egress_cidr_blocks) : "${pair[0]} ${pair[1]}" => { port = pair[0], cidr = pair[1] } }
}

resource "aws_security_group" "this" {
  # A prefix, not a fixed name: a replacement group is created before the
  # old one is destroyed, and two groups of one VPC cannot share a name.
  name_prefix = "${var.name}-"
  description = "portcullis gateway: web from allowed CIDRs, 9090/9093 from monitoring CIDRs, SSH from ssh CIDRs"
  vpc_id      = var.vpc_id

  tags = {
    Name = var.name
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTP (308 to https, /healthz)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = local.is_ipv6[each.value] ? null : each.value
  cidr_ipv6         = local.is_ipv6[each.value] ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTPS: Grafana, /prometheus/, /alertmanager/"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = local.is_ipv6[each.value] ? null : each.value
  cidr_ipv6         = local.is_ipv6[each.value] ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "prometheus" {
  for_each = toset(var.monitoring_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Prometheus through the gateway (TLS, basic auth)"
  ip_protocol       = "tcp"
  from_port         = 9090
  to_port           = 9090
  cidr_ipv4         = local.is_ipv6[each.value] ? null : each.value
  cidr_ipv6         = local.is_ipv6[each.value] ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "alertmanager" {
  for_each = toset(var.monitoring_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Alertmanager through the gateway (TLS, basic auth)"
  ip_protocol       = "tcp"
  from_port         = 9093
  to_port           = 9093
  cidr_ipv4         = local.is_ipv6[each.value] ? null : each.value
  cidr_ipv6         = local.is_ipv6[each.value] ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "SSH from the operators' networks"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = local.is_ipv6[each.value] ? null : each.value
  cidr_ipv6         = local.is_ipv6[each.value] ? each.value : null
}

resource "aws_vpc_security_group_egress_rule" "tcp" {
  for_each = local.egress

  security_group_id = aws_security_group.this.id
  description       = "out to TCP ${each.value.port}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = local.is_ipv6[each.value.cidr] ? null : each.value.cidr
  cidr_ipv6         = local.is_ipv6[each.value.cidr] ? each.value.cidr : null
}
