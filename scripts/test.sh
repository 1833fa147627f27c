#!/usr/bin/env bash
# Runs every test: installs the real components the tests talk to (first run only),
# checks formatting and lints, then runs the unit and integration tests (the
# integration tests start and stop their own servers on 127.0.0.1), the edge-function
# tests, the Lambda handler test, the Helm chart's tests, and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
export PATH="$PWD/.tools/py/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
node --test tests/edge/
bash scripts/terraform-test.sh
bash scripts/chart-test.sh
cargo test --workspace --all-features
# Short, fixed-length fuzzing of the parsers of untrusted input (replays saved crashes first).
bash scripts/fuzz.sh
