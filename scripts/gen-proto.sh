#!/bin/sh
# Regenerates what is generated from proto/proto/dclab.proto and committed,
# so that building needs no protoc:
#   proto/src/codegen/      the Rust code and the descriptor set served by
#                           reflection (the vendored protoc of Cargo.lock,
#                           through proto/tests/codegen.rs)
#   neutron/networking-dclab/networking_dclab/dclab_pb2.py
#                           the Neutron driver's messages (Debian's protoc,
#                           protobuf-compiler, which matches Debian's
#                           python3-protobuf)
# Run it after changing the .proto and commit what it changed; the drift
# tests (cargo test -p dclab-proto; the driver's tests/test_generated.py)
# fail until then.
set -eu
cd "$(dirname "$0")/.."

DCLAB_GEN_PROTO=write cargo test --quiet -p dclab-proto --test codegen
echo "gen-proto: proto/src/codegen/ regenerated"

python3 neutron/networking-dclab/networking_dclab/generate_proto.py >/dev/null
echo "gen-proto: neutron/networking-dclab/networking_dclab/dclab_pb2.py regenerated"
