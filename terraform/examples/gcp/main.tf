# A mirror at https://trivy.example.com behind an external Application Load Balancer with
# Cloud CDN, published every 6 hours by a Cloud Run job.
#
#   terraform init && terraform apply -var project_id=my-project -var bucket_name=my-trivy-mirror \
#     -var domain=trivy.example.com -var image=europe-docker.pkg.dev/my-project/tools/trivy-mirror:latest
# Then point the domain's A record at the ip_address output (or set dns_managed_zone).

provider "google" {
  project = var.project_id
  region  = var.region
}

module "trivy_mirror" {
  source = "../../modules/gcp"

  project_id   = var.project_id
  region       = var.region
  bucket_name  = var.bucket_name
  domain_names = [var.domain]
  image        = var.image

  # Optional: only these client ranges may read (Cloud Armor edge policy).
  # allowed_cidrs = ["203.0.113.0/24"]

  labels = {
    owner = "platform"
  }
}
