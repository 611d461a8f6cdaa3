output "s3_bucket_name" {
  description = "State bucket: bucket in the environments' backend blocks."
  value       = aws_s3_bucket.state.id
}

output "s3_bucket_arn" {
  description = "ARN of the state bucket."
  value       = aws_s3_bucket.state.arn
}

output "dynamodb_table_name" {
  description = "Lock table: dynamodb_table in the backend blocks (null when not created)."
  value       = one(aws_dynamodb_table.lock[*].name)
}

output "dynamodb_table_arn" {
  description = "ARN of the lock table (null when not created)."
  value       = one(aws_dynamodb_table.lock[*].arn)
}

output "state_access_policy_json" {
  description = "IAM policy (JSON) with exactly what plan/apply needs on the state: attach it to the people's or CI's role."
  value       = data.aws_iam_policy_document.state_access.json
}

output "backend_config" {
  description = "The backend blocks to paste into terraform/environments/{dev,prod}/versions.tf."
  value       = <<-EOT
    # terraform/environments/dev/versions.tf (prod: key = "portcullis/prod/terraform.tfstate")
    backend "s3" {
      bucket  = "${aws_s3_bucket.state.id}"
      key     = "portcullis/dev/terraform.tfstate"
      region  = "${var.aws_region}"
      encrypt = true
      ${var.create_lock_table ? "dynamodb_table = \"${aws_dynamodb_table.lock[0].name}\"" : "use_lockfile = true"}
    }
  EOT
}
