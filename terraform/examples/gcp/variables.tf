variable "project_id" {
  description = "Google Cloud project ID."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run job and the scheduler."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "Name of the mirror bucket (globally unique)."
  type        = string
}

variable "domain" {
  description = "Host name of the mirror."
  type        = string
}

variable "image" {
  description = "trivy-mirror container image."
  type        = string
}
