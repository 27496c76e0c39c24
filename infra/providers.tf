# Credentials, region and endpoints come from the environment (AWS_PROFILE, AWS_REGION,
# AWS_ENDPOINT_URL, ...): nothing here is specific to one account or to LocalStack.
provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}
