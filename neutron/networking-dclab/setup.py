"""Builds networking-dclab; dclab_pb2.py is generated before the package is
collected, so every install carries messages matching the repository's
proto (it is never committed)."""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _generator():
    # Loaded by path: importing the package itself would need grpcio.
    path = os.path.join(HERE, "networking_dclab", "generate_proto.py")
    spec = importlib.util.spec_from_file_location("generate_proto", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithMessages(build_py):
    def run(self):
        _generator().generate()
        super().run()


setup(cmdclass={"build_py": BuildWithMessages})
