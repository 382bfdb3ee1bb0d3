"""What the driver's tests share: the dependency check, real coordinator
processes and sqlite journals.

Importing this module fails (so every test module fails, none is skipped)
when a Debian package the driver needs is missing.
"""

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO_ROOT = os.path.abspath(os.path.join(PACKAGE_ROOT, "..", ".."))
sys.path.insert(0, PACKAGE_ROOT)

# module -> the Debian 12 package that provides it
DEBIAN_PACKAGES = {
    "grpc": "python3-grpcio",
    "google.protobuf": "python3-protobuf",
    "sqlalchemy": "python3-sqlalchemy",
    "neutron_lib": "python3-neutron-lib",
    "oslo_config": "python3-oslo.config",
    "eventlet": "python3-eventlet",
    "pip": "python3-pip",
    "setuptools": "python3-setuptools",
}


def _check_dependencies():
    missing = []
    for module, package in DEBIAN_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is missing
            found = False
        if not found:
            missing.append(package)
    python_missing = bool(missing)
    if shutil.which("protoc") is None:
        missing.append("protobuf-compiler")
    if missing:
        hint = ""
        if python_missing:
            hint = (f"; run the tests under the python3 those install into "
                    f"(/usr/bin/python3; this is {sys.executable})")
        raise RuntimeError(
            f"the networking-dclab tests need Debian's {' '.join(missing)}: "
            f"apt-get install -y {' '.join(missing)} (scripts/install-deps.sh does){hint}")


_check_dependencies()

# The driver logs every retry and difference; keep it out of the test
# report unless asked for (DCLAB_TEST_LOG=FILE).
if os.environ.get("DCLAB_TEST_LOG"):
    logging.basicConfig(filename=os.environ["DCLAB_TEST_LOG"], level=logging.DEBUG,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
else:
    logging.getLogger("networking_dclab").addHandler(logging.NullHandler())
    logging.getLogger("networking_dclab").propagate = False

import sqlalchemy  # noqa: E402

from networking_dclab.client import Coordinator  # noqa: E402
from networking_dclab.messages import pb  # noqa: E402


def binary(name):
    """A dclab binary of the build under test ($DCLAB_TARGET_DIR or target/debug)."""
    target = os.environ.get("DCLAB_TARGET_DIR") or os.path.join(REPO_ROOT, "target", "debug")
    path = os.path.join(target, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build the binaries first "
                           "(cargo build --workspace --bins) or set DCLAB_TARGET_DIR")
    return path


def clean_env():
    """The environment without DCLAB_* settings that would change a binary's
    defaults (a DCLAB_INSECURE left in the shell, say)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DCLAB_")}


class CoordinatorProcess:
    """A real coordinator on 127.0.0.1, started, killed and restarted on
    the same port and (unless told otherwise) the same data directory."""

    def __init__(self, workdir, tls=True, agents=("h1", "h2")):
        self.workdir = workdir
        self.tls = tls
        self.data_dir = os.path.join(workdir, "data")
        self.pki = os.path.join(workdir, "pki")
        self.addr_file = os.path.join(workdir, "addr")
        self.log_path = os.path.join(workdir, "coordinator.log")
        self.addr = None
        self.proc = None
        if tls:
            subprocess.run([binary("ctl"), "certs", "init", "--dir", self.pki,
                            "--agent", ",".join(agents)],
                           env=clean_env(), check=True, capture_output=True)

    @property
    def url(self):
        return ("https://" if self.tls else "http://") + self.addr

    def start(self, data_dir=None):
        if data_dir is not None:
            self.data_dir = data_dir
        if os.path.exists(self.addr_file):
            os.remove(self.addr_file)
        args = [binary("coordinator"), "--data-dir", self.data_dir,
                "--listen", self.addr or "127.0.0.1:0", "--addr-file", self.addr_file]
        args += ["--pki-dir", self.pki] if self.tls else ["--insecure"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=clean_env())
        deadline = time.monotonic() + 30
        while not os.path.exists(self.addr_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"coordinator did not start:\n{self.log_tail()}")
            time.sleep(0.02)
        with open(self.addr_file) as f:
            self.addr = f.read().strip()

    def kill(self):
        """SIGKILL: no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self, role="operator", timeout=5.0, wait_for_ready=False):
        if not self.tls:
            return Coordinator(self.url, timeout=timeout, wait_for_ready=wait_for_ready)
        return Coordinator.from_pki_dir(self.url, self.pki, role, timeout=timeout,
                                        wait_for_ready=wait_for_ready)

    def register_host(self, host_id, mac, vcpus=4, memory_mib=8192):
        """Registers a host the way its agent does: AgentControl/Register
        with the agent's own certificate."""
        agent = self.client(f"agent-{host_id}")
        try:
            request = pb.RegisterRequest(host_id=host_id, uplink="eth0", mac=mac,
                                         vcpus=vcpus, memory_mib=memory_mib)
            return agent.call("AgentControl", "Register", request)
        finally:
            agent.close()


class CoordinatorTestCase(unittest.TestCase):
    """Each test gets its own coordinator (with hosts h1 and h2 registered)
    in a temporary directory; everything is removed afterwards, also when
    the test fails."""

    tls = True
    hosts = ("h1", "h2")

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="dclab-neutron-test-")
        self.addCleanup(shutil.rmtree, self.workdir, ignore_errors=True)
        self.coordinator = CoordinatorProcess(self.workdir, self.tls, self.hosts)
        self.addCleanup(self.coordinator.stop)
        self.coordinator.start()
        self.register_hosts()
        self.client = self.coordinator.client()
        self.addCleanup(self.client.close)

    def register_hosts(self):
        for i, host in enumerate(self.hosts):
            self.coordinator.register_host(host, f"02:00:00:00:00:{i + 1:02x}")

    def journal_engine(self):
        path = os.path.join(self.workdir, "journal.sqlite")
        engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        self.addCleanup(engine.dispose)
        return engine

    def port_names(self, tenant=""):
        return sorted(p.name for p in self.client.list_ports(tenant=tenant))

    def wait_for(self, what, condition, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}\ncoordinator log:\n"
                  f"{self.coordinator.log_tail()}")
