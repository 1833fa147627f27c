# A public mirror on the *.cloudfront.net host, published every 6 hours by Lambda.
#
#   cargo lambda build --release --features lambda --output-format zip
#   terraform init && terraform apply -var bucket_name=my-trivy-mirror

provider "aws" {
  region = var.region
}

module "trivy_mirror" {
  source = "../../modules/aws"

  name            = "trivy-mirror"
  bucket_name     = var.bucket_name
  lambda_zip_path = var.lambda_zip_path

  # Optional: a custom domain (certificate in us-east-1) and a Route 53 zone for its records.
  # domain_names        = ["trivy.example.com"]
  # acm_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/..."
  # route53_zone_id     = "Z0123456789ABCDEFGHIJ"

  # Optional: a private mirror.
  # basic_auth_credentials = { ci = var.mirror_password }
  # allowed_cidrs          = ["203.0.113.0/24"]

  tags = {
    owner = "platform"
  }
}
