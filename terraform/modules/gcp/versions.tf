terraform {
  required_version = ">= 1.5.0"

  required_providers {
    # 6.41: first release with the URL map's custom_error_response_policy outside google-beta.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.41, < 8.0"
    }
    # The key that makes Google create the Cloud CDN fill service agent (storage.tf).
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}
