"""Generates dclab_pb2.py, the coordinator's messages, from the repository's
proto/proto/dclab.proto with Debian's protoc, next to this file.

The result is committed, so installing the driver needs no protoc;
scripts/gen-proto.sh runs this after the .proto changes, and
tests/test_generated.py fails while the committed file is stale.

Only messages are generated: the client calls methods through grpcio's
generic `channel.unary_unary`, so it needs no grpc_tools (Debian 12's is far
older than its grpcio). protoc must match the protobuf runtime: on Debian 12
both are 3.21 (protobuf-compiler, python3-protobuf).

    python3 -m networking_dclab.generate_proto [--proto PATH]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# networking_dclab/ -> networking-dclab/ -> neutron/ -> the repository.
REPO_PROTO = os.path.join(HERE, "..", "..", "..", "proto", "proto", "dclab.proto")
OUTPUT = os.path.join(HERE, "dclab_pb2.py")


class GenerationError(Exception):
    pass


# Debian's, also when another protoc (a newer one, whose stubs Debian's
# python3-protobuf cannot load) comes first on PATH.
DEBIAN_PROTOC = "/usr/bin/protoc"


def proto_path(proto=None):
    """The proto to compile: the argument or the repository's."""
    return os.path.abspath(proto or REPO_PROTO)


def protoc_path():
    if os.access(DEBIAN_PROTOC, os.X_OK):
        return DEBIAN_PROTOC
    return shutil.which("protoc")


def generate(proto=None, output=OUTPUT):
    """Writes `output` from the proto (atomically, so concurrent runs are safe)."""
    proto = proto_path(proto)
    protoc = protoc_path()
    if protoc is None:
        raise GenerationError(
            "protoc not found; install Debian's protobuf-compiler "
            "(apt-get install protobuf-compiler)")
    if not os.path.isfile(proto):
        raise GenerationError(
            f"{proto} not found; pass --proto with "
            "the repository's proto/proto/dclab.proto")
    out_dir = os.path.dirname(os.path.abspath(output))
    with tempfile.TemporaryDirectory(prefix=".gen-", dir=out_dir) as tmp:
        done = subprocess.run(
            [protoc, f"--proto_path={os.path.dirname(proto)}",
             f"--python_out={tmp}", os.path.basename(proto)],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GenerationError(f"protoc failed on {proto}: {done.stderr.strip()}")
        generated = os.path.splitext(os.path.basename(proto))[0] + "_pb2.py"
        os.replace(os.path.join(tmp, generated), output)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto", help="dclab.proto (default: the repository's)")
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args(argv)
    try:
        print(generate(args.proto, args.output))
    except GenerationError as e:
        print(f"generate_proto: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
