#!/bin/sh
# Runs every test: unit and property tests, and the integration tests on
# real Open vSwitch in network namespaces (needs root and
# scripts/install-deps.sh).
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root (the integration tests create namespaces and OvS instances)" >&2
    exit 1
fi
namespaces() { ip netns list | awk '/^dcl-/ {print $1}' | sort; }
before=$(namespaces)
# The integration tests start these binaries as real processes.
cargo build --workspace --bins
# Nothing is skipped: the harness's own end-to-end tests run too.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --run-ignored all
else
    cargo test --workspace -- --include-ignored
fi
leftover=$(namespaces | while read -r ns; do
    printf '%s\n' "$before" | grep -qx "$ns" || echo "$ns"
done)
if [ -n "$leftover" ]; then
    echo "test.sh: tests left namespaces behind: $leftover" >&2
    exit 1
fi
