variable "region" {
  description = "AWS region of the bucket and the publisher."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_name" {
  description = "Name of the mirror bucket (globally unique)."
  type        = string
}

variable "lambda_zip_path" {
  description = "Path to the zip built by cargo lambda."
  type        = string
  default     = "../../../target/lambda/trivy-mirror/bootstrap.zip"
}
