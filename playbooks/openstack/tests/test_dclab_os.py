"""dclab_os, the helpers the identity chapter installs on every node: the
package imports as one (no module loaded by path), and the three commands
keep their names, calls and exit codes. Runs without OpenStack: the calls
that need an API are pointed at a loopback port nothing listens on.

    python3 -m unittest discover -s playbooks/openstack/tests
"""
import os
import socket
import subprocess
import sys
import tempfile
import unittest

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "files")
sys.path.insert(0, FILES)

import dclab_os.bench  # noqa: E402
import dclab_os.check  # noqa: E402
import dclab_os.tenants  # noqa: E402


def closed_port():
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command, *args, openrc=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if openrc:
        env["OPENRC"] = openrc
    return subprocess.run([sys.executable, os.path.join(FILES, command), *args],
                          capture_output=True, text=True, timeout=60, env=env)


class Package(unittest.TestCase):
    def test_the_commands_share_one_client_module(self):
        self.assertIs(dclab_os.tenants.oscheck, dclab_os.check)
        self.assertIs(dclab_os.bench.oscheck, dclab_os.check)

    def test_the_calls_the_integration_tests_make_are_there(self):
        self.assertLessEqual({"setup", "matrix", "routers", "burst", "unburst", "teardown"},
                             set(dclab_os.tenants.CALLS))
        self.assertLessEqual({"hypervisors", "network-agents", "horizon-login", "apis"},
                             set(dclab_os.check.CALLS))


class Commands(unittest.TestCase):
    def test_help_prints_the_docstring_and_exits_0(self):
        for command, module in [("dclab-os-check", dclab_os.check),
                                ("dclab-tenants-check", dclab_os.tenants),
                                ("dclab-neutron-bench", dclab_os.bench)]:
            out = run(command, "--help")
            self.assertEqual(out.returncode, 0, command + out.stderr)
            self.assertEqual(out.stdout.strip(), module.__doc__.strip(), command)

    def test_no_call_or_a_bad_one_exits_2(self):
        for command, args in [("dclab-os-check", []), ("dclab-os-check", ["nope"]),
                              ("dclab-os-check", ["server-show"]),
                              ("dclab-tenants-check", []), ("dclab-tenants-check", ["matrix", "1", "2"]),
                              ("dclab-tenants-check", ["burst", "1", "2", "3"]),
                              ("dclab-neutron-bench", []), ("dclab-neutron-bench", ["0"]),
                              ("dclab-neutron-bench", ["many"])]:
            out = run(command, *args)
            self.assertEqual(out.returncode, 2, f"{command} {args}: {out.stdout}{out.stderr}")
        out = run("dclab-tenants-check", "matrix", "1", "2")
        self.assertIn("unknown call 'matrix 1 2'; see --help", out.stderr)

    def test_an_api_that_does_not_answer_exits_2_and_says_where(self):
        port = closed_port()
        with tempfile.NamedTemporaryFile("w", suffix="-openrc") as rc:
            rc.write(f"export OS_AUTH_URL=http://127.0.0.1:{port}/v3\n"
                     "export OS_USERNAME=admin\nexport OS_PASSWORD='x'\n"
                     "export OS_PROJECT_NAME=admin\nexport OS_USER_DOMAIN_NAME=Default\n"
                     "export OS_PROJECT_DOMAIN_NAME=Default\n")
            rc.flush()
            for command, args in [("dclab-os-check", ["hypervisors"]),
                                  ("dclab-tenants-check", ["unburst"]),
                                  ("dclab-neutron-bench", ["1", rc.name])]:
                out = run(command, *args, openrc=rc.name)
                self.assertEqual(out.returncode, 2, f"{command}: {out.stdout}{out.stderr}")
                self.assertIn(f"no answer from http://127.0.0.1:{port}", out.stdout + out.stderr,
                              command)


if __name__ == "__main__":
    unittest.main()
