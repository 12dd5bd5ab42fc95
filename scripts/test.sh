#!/usr/bin/env bash
# Runs every test: unit, conformance and end-to-end tests (cargo), then the
# official SDK tests. Tests that need an external service skip with a SKIP
# line when it is unreachable, or fail when MECHA_REQUIRE_SERVICES=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "=== cargo tests"
cargo test --workspace --all-targets

echo "=== SDK tests"
scripts/sdk.sh

echo "=== all tests passed"
