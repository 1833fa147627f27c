# Publisher off: only storage and CDN; publishing happens elsewhere (for example CI).
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  bucket_name      = "my-trivy-mirror"
  create_publisher = false
  kms_key_arn      = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
}

run "plan_without_publisher" {
  command = plan

  assert {
    condition     = length(aws_lambda_function.publisher) == 0 && length(aws_iam_role.publisher) == 0 && length(aws_scheduler_schedule.publisher) == 0 && length(aws_cloudwatch_log_group.publisher) == 0 && length(data.aws_iam_policy_document.publisher) == 0
    error_message = "No publisher resources."
  }
  assert {
    condition     = aws_s3_object.not_found.key == "_trivy-mirror/404.json"
    error_message = "The error document does not depend on the publisher."
  }
}

run "apply_without_publisher" {
  assert {
    condition     = output.publisher_function_name == null && output.publisher_role_arn == null && output.publisher_log_group == null
    error_message = "Publisher outputs are null."
  }
  assert {
    condition     = one([for st in jsondecode(output.kms_key_policy_statements) : st.Principal.AWS if st.Sid == "AllowPublisher"]) == "arn:aws:iam::123456789012:root"
    error_message = "Without the publisher the key policy falls back to the account root for the external publisher."
  }
  assert {
    condition     = length([for st in jsondecode(output.kms_key_policy_statements) : st if st.Sid == "AllowSchedulerDecrypt"]) == 0
    error_message = "No scheduler statement without a scheduler."
  }
}
