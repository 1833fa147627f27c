variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "storage_account_name" {
  description = "Storage account name (globally unique, 3-24 lower case letters and digits)."
  type        = string
}

variable "image" {
  description = "trivy-mirror container image."
  type        = string
}
