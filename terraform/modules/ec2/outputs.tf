output "instance_id" {
  description = "ID of the instance."
  value       = aws_instance.this.id
}

output "public_ip" {
  description = "The address to reach the stack at: the Elastic IP when there is one, else the instance's public IPv4 address (changes on stop/start)."
  value       = var.create_eip ? aws_eip.this[0].public_ip : aws_instance.this.public_ip
}

output "public_dns" {
  description = "Public DNS name: the Elastic IP's when there is one, else the instance's."
  value       = var.create_eip ? aws_eip.this[0].public_dns : aws_instance.this.public_dns
}

output "elastic_ip" {
  description = "The Elastic IP, or null without one."
  value       = one(aws_eip.this[*].public_ip)
}

output "private_ip" {
  description = "Private IPv4 address of the instance."
  value       = aws_instance.this.private_ip
}

output "domain" {
  description = "The DOMAIN the stack was configured with at boot; empty means the instance's public address, found at boot."
  value       = local.domain
}

output "ami_id" {
  description = "AMI the instance was launched from."
  value       = aws_instance.this.ami
}
