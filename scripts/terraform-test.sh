#!/usr/bin/env bash
# Terraform's own checks of terraform/, offline: `terraform init` from a local plugin directory,
# `terraform validate`, and `terraform test` (the suites in */tests/*.tftest.hcl use mock_provider, so
# plan and apply run without an account and without network).
#
# Each suite runs in a temporary copy of terraform/ with its own TF_DATA_DIR: nothing (.terraform/,
# .terraform.lock.hcl) is written into the repository, and a second run does the same as the first.
# A suite whose provider is not in a local plugin directory is reported as skipped, by name.
#
# Plugin directory: $TRIVY_MIRROR_TF_PLUGIN_DIR, else the first of /opt/tf-plugins,
# ~/.terraform.d/plugins, /usr/local/share/terraform/plugins, /usr/share/terraform/plugins that
# holds the provider (layout: registry.terraform.io/hashicorp/NAME/VERSION/OS_ARCH/terraform-provider-NAME*).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'terraform-test: %s\n' "$*"; }

if ! command -v terraform >/dev/null 2>&1; then
  say "skipped: terraform is not installed (no validate, no terraform test)"
  exit 0
fi

export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
unset TF_WORKSPACE TF_CLI_ARGS TF_CLI_ARGS_init TF_CLI_ARGS_test TF_CLI_ARGS_validate 2>/dev/null || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R terraform "$work/terraform"
# Never pick up the caller's CLI configuration (credentials helpers, provider mirrors, network).
: >"$work/terraformrc"
export TF_CLI_CONFIG_FILE="$work/terraformrc"

tf_version=$(terraform version -json | sed -n 's/.*"terraform_version": *"\([^"]*\)".*/\1/p')
platform=$(terraform version -json | sed -n 's/.*"platform": *"\([^"]*\)".*/\1/p')
say "terraform $tf_version ($platform)"
# mock_provider with `source` (shared mocks) needs Terraform 1.7.
can_test=1
case "$tf_version" in
  0.* | 1.[0-6].*) can_test=0 ;;
esac

# plugin_dir NAME...: the first candidate directory holding every named provider for this platform.
plugin_dir() {
  local dir name found
  for dir in ${TRIVY_MIRROR_TF_PLUGIN_DIR:-} /opt/tf-plugins "$HOME/.terraform.d/plugins" \
    /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
    [ -d "$dir" ] || continue
    found=1
    for name in "$@"; do
      compgen -G "$dir/registry.terraform.io/hashicorp/$name/*/$platform/terraform-provider-${name}*" >/dev/null || found=0
    done
    if [ "$found" = 1 ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  return 1
}

ran=0 skipped=0 failed=0

# suite DIR PROVIDER...: init, validate and (when DIR/tests exists) test one module or example.
suite() {
  local rel=$1
  shift
  local dir="$work/terraform/$rel" plugins log summary
  if ! plugins=$(plugin_dir "$@"); then
    say "$rel: skipped: no local $(printf '%s ' "$@" | sed 's/ $//; s/ / + /g') provider in a plugin directory (validated by reading only, see terraform/README.md)"
    skipped=$((skipped + 1))
    return 0
  fi
  log="$work/$(printf '%s' "$rel" | tr '/' '-').log"
  export TF_DATA_DIR="$work/data/$rel"
  if ! (cd "$dir" && terraform init -backend=false -input=false -no-color -plugin-dir="$plugins") >"$log" 2>&1; then
    say "$rel: FAILED: terraform init -plugin-dir=$plugins"
    cat "$log"
    failed=$((failed + 1))
    return 0
  fi
  if ! (cd "$dir" && terraform validate -no-color) >>"$log" 2>&1; then
    say "$rel: FAILED: terraform validate"
    cat "$log"
    failed=$((failed + 1))
    return 0
  fi
  summary="validate ok"
  if [ -d "$dir/tests" ]; then
    if [ "$can_test" = 0 ]; then
      summary="$summary; terraform test skipped: needs Terraform >= 1.7 (have $tf_version)"
    elif (cd "$dir" && terraform test -no-color) >>"$log" 2>&1; then
      summary="$summary; terraform test: $(grep -E '^Success!' "$log" | tail -1 | sed 's/^Success! //; s/\.$//')"
    else
      say "$rel: FAILED: terraform test"
      cat "$log"
      failed=$((failed + 1))
      return 0
    fi
  fi
  say "$rel: $summary (providers from $plugins)"
  ran=$((ran + 1))
}

suite modules/aws aws
suite examples/aws aws
suite modules/gcp google random
suite examples/gcp google random
suite modules/azure azurerm
suite examples/azure azurerm

say "$ran suites passed, $skipped skipped, $failed failed"
[ "$failed" = 0 ]
