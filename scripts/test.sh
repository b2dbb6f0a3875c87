#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs every test
# of every workspace crate (unit, integration, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --workspace --locked "$@"
