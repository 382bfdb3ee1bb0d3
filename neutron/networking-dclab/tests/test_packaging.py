"""The package installs with pip (no network, no protoc, Debian's
setuptools), carries its committed messages, and Neutron finds the driver
by its entry point."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import harness  # first: it fails naming the Debian packages that are missing

FIND_DRIVER = textwrap.dedent("""
    import importlib.metadata, json, sys
    sys.path.insert(0, sys.argv[1])
    found = [e for e in importlib.metadata.entry_points(group="neutron.ml2.mechanism_drivers")
             if e.name == "dclab"]
    cls = found[0].load()
    import networking_dclab.dclab_pb2 as pb
    print(json.dumps({"value": found[0].value, "class": cls.__name__,
                      "module_file": cls.__module__ and sys.modules[cls.__module__].__file__,
                      "messages": pb.DESCRIPTOR.package}))
""")


class PackagingTest(unittest.TestCase):

    def test_pip_install_and_entry_point(self):
        work = tempfile.mkdtemp(prefix="dclab-neutron-pip-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        # A copy outside the repository, so the in-tree build leaves nothing
        # there and no repository's .proto is within reach: the committed
        # messages are what is installed.
        source = os.path.join(work, "src")
        shutil.copytree(harness.PACKAGE_ROOT, source, ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__", ".gen-*", "tests"))
        target = os.path.join(work, "site")
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
             "--no-index", "--no-cache-dir", "--target", target, source],
            capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertTrue(os.path.isfile(os.path.join(target, "networking_dclab", "dclab_pb2.py")))
        found = subprocess.run([sys.executable, "-c", FIND_DRIVER, target],
                               capture_output=True, text=True, timeout=120, cwd=work)
        self.assertEqual(found.returncode, 0, found.stderr)
        out = json.loads(found.stdout.strip().splitlines()[-1])
        self.assertEqual(out["value"], "networking_dclab.mech_driver:DclabMechanismDriver")
        self.assertEqual(out["class"], "DclabMechanismDriver")
        self.assertTrue(out["module_file"].startswith(target), out)
        self.assertEqual(out["messages"], "dclab.v1")
