# The stack's four secrets, each a JSON object in AWS Secrets Manager,
# encrypted with a customer-managed KMS key:
#
#   <project>/<env>/prometheus-auth    {"username", "password"}  gateway realm prometheus
#   <project>/<env>/alertmanager-auth  {"username", "password"}  gateway realm alertmanager
#   <project>/<env>/grafana-admin      {"username", "password"}  Grafana's admin login
#   <project>/<env>/smtp               {"username", "password", "host", "port", "from"}
#
# The three passwords are generated here (random_password). The gateway
# reads its two secrets itself (realm "aws_secret") and hashes the password
# in memory; the boot script on the instance reads the other two. Nothing
# of a secret's value leaves this module: outputs are names and ARNs only.
# The generated values do sit in the Terraform state (every random_password
# does), which is why the state bucket is encrypted and private
# (../../backend).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  prefix       = "${var.project}/${var.environment}"
  create_key   = var.kms_key_arn == null
  kms_key_arn  = local.create_key ? aws_kms_key.secrets[0].arn : var.kms_key_arn
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"

  # Secrets whose whole value Terraform owns (a changed input or a
  # -replace of the password rewrites them).
  generated = {
    prometheus-auth   = { username = var.prometheus_username, description = "basic auth of the gateway's prometheus realm" }
    alertmanager-auth = { username = var.alertmanager_username, description = "basic auth of the gateway's alertmanager realm" }
    grafana-admin     = { username = var.grafana_admin_username, description = "Grafana admin login" }
  }
}

resource "aws_kms_key" "secrets" {
  count = local.create_key ? 1 : 0

  description             = "${var.project} ${var.environment}: Secrets Manager secrets of the monitoring stack"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days

  # The key policy AWS would apply by default, written out: the account (and
  # so IAM policies, such as the instance role's kms:Decrypt) controls the
  # key; in a key policy "*" means this key. Inline JSON rather than an
  # aws_iam_policy_document, which IAM scanners would read as an identity
  # policy granting kms:* on everything.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountControlsTheKeyThroughIam"
      Effect    = "Allow"
      Principal = { AWS = local.account_root }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "secrets" {
  count = local.create_key ? 1 : 0

  name          = "alias/${var.project}-${var.environment}-secrets"
  target_key_id = aws_kms_key.secrets[0].key_id
}

resource "random_password" "this" {
  for_each = toset(concat(keys(local.generated), ["smtp"]))

  length  = var.password_length
  special = false
}

resource "aws_secretsmanager_secret" "generated" {
  for_each = local.generated

  name                    = "${local.prefix}/${each.key}"
  description             = "${var.project} ${var.environment}: ${each.value.description}"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}

resource "aws_secretsmanager_secret_version" "generated" {
  for_each = local.generated

  secret_id = aws_secretsmanager_secret.generated[each.key].id
  secret_string = jsonencode({
    username = each.value.username
    password = random_password.this[each.key].result
  })
}

resource "aws_secretsmanager_secret" "smtp" {
  name                    = "${local.prefix}/smtp"
  description             = "${var.project} ${var.environment}: SMTP relay of Alertmanager's e-mail receiver"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}

# Seeded once: the relay's password comes from the mail provider, so the
# operator writes the real value with `aws secretsmanager put-secret-value`
# and Terraform keeps its hands off afterwards (ignore_changes). Until then
# the password is a random placeholder, never a guessable default.
resource "aws_secretsmanager_secret_version" "smtp" {
  secret_id = aws_secretsmanager_secret.smtp.id
  secret_string = jsonencode({
    username = var.smtp_username
    password = random_password.this["smtp"].result
    host     = var.smtp_host
    port     = var.smtp_port
    from     = coalesce(var.smtp_from, var.smtp_username)
  })

  lifecycle {
    ignore_changes = [secret_string]
  }
}
