terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # This configuration's own state is local (terraform.tfstate here): it
  # creates the bucket the other states go to. Keep that file safe, or move
  # it into the bucket afterwards (README.md, "State of the backend itself").
}
