# The instance's role: what the containers on the instance may do with the
# instance's credentials (IMDSv2). Least privilege:
#   - the gateway and the boot script: secretsmanager:GetSecretValue on the
#     stack's four secrets by full ARN, and kms:Decrypt on their key only
#     when Secrets Manager asks for it (kms:ViaService);
#   - the cost exporter: ce:GetCostAndUsage and ce:GetCostForecast. Cost
#     Explorer has no resource-level permissions for these actions, so "*"
#     is the only resource AWS accepts: the one wildcard of this module;
#   - optionally the CloudWatch agent: PutMetricData (also resource "*" by
#     AWS's design) held to the CWAgent namespace by a condition, and log
#     writes under /portcullis/<environment>/.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  log_group = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/portcullis/${var.environment}/*"
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "Ec2AssumesTheRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "ReadTheStackSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.secret_arns
  }

  statement {
    sid       = "DecryptTheStackSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = var.enable_cost_explorer ? [1] : []
    content {
      sid       = "ReadCostsCostExplorerHasNoResourceArns"
      actions   = ["ce:GetCostAndUsage", "ce:GetCostForecast"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.enable_cloudwatch_agent ? [1] : []
    content {
      sid       = "AgentMetricsPutMetricDataHasNoResourceArns"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]

      condition {
        test     = "StringEquals"
        variable = "cloudwatch:namespace"
        values   = ["CWAgent"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_cloudwatch_agent ? [1] : []
    content {
      sid = "AgentLogsUnderTheStackPrefix"
      actions = [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
        "logs:PutRetentionPolicy",
      ]
      resources = [local.log_group, "${local.log_group}:log-stream:*"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name                 = var.name
  description          = "portcullis ${var.environment}: the monitoring instance (gateway, cost exporter, boot script)"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "instance" {
  name   = "${var.name}-stack"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count = var.enable_ssm_session_manager ? 1 : 0

  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name = var.name
  role = aws_iam_role.instance.name
}
