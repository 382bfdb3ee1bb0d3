#!/bin/sh
# Regenerates what is generated from proto/proto/dclab.proto and committed,
# so that building needs no protoc:
#   proto/src/codegen/      the Rust code and the descriptor set served by
#                           reflection (the vendored protoc of Cargo.lock,
#                           through proto/tests/codegen.rs)
# Run it after changing the .proto and commit what it changed; the drift
# test (cargo test -p dclab-proto) fails until then.
set -eu
cd "$(dirname "$0")/.."

DCLAB_GEN_PROTO=write cargo test --quiet -p dclab-proto --test codegen
echo "gen-proto: proto/src/codegen/ regenerated"
