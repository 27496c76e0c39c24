terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State stays local by default. Local (LocalStack) runs keep theirs apart with
  # `TF_DATA_DIR` and `-backend-config=path=...` under .local/ in the repository (see README.md).
  # For a shared AWS state, replace this block (or add a `backend_override.tf` with e.g. `backend "s3" {}`).
  backend "local" {}
}
