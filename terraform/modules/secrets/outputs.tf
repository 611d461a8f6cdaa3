output "secret_names" {
  description = "Names of the four secrets, by role: prometheus_auth, alertmanager_auth, grafana_admin, smtp."
  value = {
    prometheus_auth   = aws_secretsmanager_secret.generated["prometheus-auth"].name
    alertmanager_auth = aws_secretsmanager_secret.generated["alertmanager-auth"].name
    grafana_admin     = aws_secretsmanager_secret.generated["grafana-admin"].name
    smtp              = aws_secretsmanager_secret.smtp.name
  }
}

output "secret_arns" {
  description = "ARNs of the four secrets (with their random suffix), for the instance role's GetSecretValue statement."
  value = concat(
    [for s in aws_secretsmanager_secret.generated : s.arn],
    [aws_secretsmanager_secret.smtp.arn],
  )
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the secrets (the module's own or the one passed in)."
  value       = local.kms_key_arn
}
