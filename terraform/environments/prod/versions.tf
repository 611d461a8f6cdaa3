terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }

  # Remote state. State starts local (terraform.tfstate in this directory).
  # For shared, locked, encrypted state: create the bucket and lock table
  # once with ../../backend (see its README), then uncomment this block,
  # put in the bucket name and region, and run
  #   terraform init -migrate-state
  # Terraform >= 1.10 can lock with a lock file in the bucket itself
  # (use_lockfile = true) instead of the DynamoDB table.
  #
  # backend "s3" {
  #   bucket         = "portcullis-tfstate-123456789012"
  #   key            = "portcullis/prod/terraform.tfstate"
  #   region         = "us-east-1"
  #   encrypt        = true
  #   dynamodb_table = "portcullis-tfstate-lock"
  #   # use_lockfile = true    # Terraform >= 1.10, in place of dynamodb_table
  # }
}
