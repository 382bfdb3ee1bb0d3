"""The committed dclab_pb2.py is what Debian's protoc makes of the
repository's proto/proto/dclab.proto today (installing the driver needs no
protoc, so nothing regenerates it on the way)."""

import os
import shutil
import tempfile
import unittest

import harness  # first: it fails naming the Debian packages that are missing
from networking_dclab import generate_proto

REGENERATE = "scripts/gen-proto.sh"


class GeneratedMessagesTest(unittest.TestCase):

    def test_committed_messages_match_the_proto(self):
        work = tempfile.mkdtemp(prefix="dclab-neutron-gen-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        fresh_path = generate_proto.generate(output=os.path.join(work, "dclab_pb2.py"))
        with open(fresh_path, "rb") as f:
            fresh = f.read()
        with open(generate_proto.OUTPUT, "rb") as f:
            committed = f.read()
        if committed != fresh:
            self.fail(
                f"{os.path.relpath(generate_proto.OUTPUT, harness.REPO_ROOT)} is not what "
                f"{generate_proto.protoc_path()} makes of proto/proto/dclab.proto; "
                f"run {REGENERATE} and commit the result")


if __name__ == "__main__":
    unittest.main()
