"""The gRPC client against real coordinators: mutual TLS, plaintext,
errors carrying the code and the coordinator's message, and calls that do
not stall eventlet (neutron-server's green threads)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import unittest

import harness  # first: it fails naming the Debian packages that are missing
import grpc
from networking_dclab.client import Coordinator, CoordinatorError, parse_url


class TlsClientTest(harness.CoordinatorTestCase):

    def test_operator_certificate_reads_and_writes_topology(self):
        self.client.create_tenant("os.t1")
        self.client.create_network("os.t1", "n1", "10.0.0.0/24")
        self.assertEqual([(n.tenant, n.name, n.cidr) for n in self.client.list_networks()],
                         [("os.t1", "n1", "10.0.0.0/24")])
        self.assertEqual(sorted(h.id for h in self.client.list_hosts()), ["h1", "h2"])
        self.assertGreater(self.client.status().revision, 0)

    def test_refusals_carry_code_and_coordinator_message(self):
        self.client.create_tenant("os.t1")
        with self.assertRaises(CoordinatorError) as seen:
            self.client.create_tenant("os.t1")
        self.assertEqual(seen.exception.code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertEqual(seen.exception.message, "tenant os.t1 already exists")
        self.assertTrue(seen.exception.refused)
        self.assertFalse(seen.exception.unavailable)
        with self.assertRaises(CoordinatorError) as seen:
            self.client.create_tenant("bad name")
        self.assertEqual(seen.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("has the character ' '", seen.exception.message)

    def test_agent_certificate_may_not_touch_topology(self):
        agent = self.coordinator.client("agent-h1")
        self.addCleanup(agent.close)
        with self.assertRaises(CoordinatorError) as seen:
            agent.list_tenants()
        self.assertEqual(seen.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertFalse(seen.exception.refused)

    def test_stopped_coordinator_is_unavailable(self):
        self.coordinator.kill()
        with self.assertRaises(CoordinatorError) as seen:
            self.client.status(timeout=2)
        self.assertTrue(seen.exception.unavailable, seen.exception)


class PlaintextClientTest(harness.CoordinatorTestCase):
    tls = False

    def test_insecure_coordinator_over_http(self):
        self.assertTrue(self.coordinator.url.startswith("http://"))
        self.client.create_tenant("os.plain")
        self.assertEqual([t.name for t in self.client.list_tenants()], ["os.plain"])


class UrlTest(unittest.TestCase):

    def test_urls(self):
        self.assertEqual(parse_url("https://10.0.10.1:7400"), ("10.0.10.1:7400", True))
        self.assertEqual(parse_url("http://127.0.0.1:7400"), ("127.0.0.1:7400", False))
        self.assertEqual(parse_url("coord.lab.example:7400"), ("coord.lab.example:7400", True))
        for bad in ("ftp://x:1", "https://nohost", "https://:7400"):
            with self.assertRaises(ValueError):
                parse_url(bad)

    def test_tls_url_needs_certificates(self):
        with self.assertRaises(ValueError):
            Coordinator("https://127.0.0.1:7400")


# Runs under eventlet's monkey patching, as neutron-server does. A green
# thread ticks every 50 ms while the main green thread makes a call to a
# server that accepts the connection and never answers, so the call takes
# its whole 1.5 s deadline. Then real calls to the coordinator.
EVENTLET_SCRIPT = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from networking_dclab import client as client_module
    from networking_dclab.client import Coordinator, CoordinatorError

    if sys.argv[5] == "without-tpool":
        client_module._outside_eventlet = lambda fn: fn()
    ticks = []
    def tick():
        while True:
            eventlet.sleep(0.05)
            ticks.append(time.monotonic())
    eventlet.spawn(tick)
    eventlet.sleep(0.1)
    silent = Coordinator("http://" + sys.argv[2], timeout=1.5)
    start = time.monotonic()
    try:
        silent.status()
        code = "OK"
    except CoordinatorError as e:
        code = e.code.name
    end = time.monotonic()
    during = len([t for t in ticks if start < t < end])
    real = Coordinator.from_pki_dir(sys.argv[3], sys.argv[4])
    real.create_tenant("os.green")
    names = [t.name for t in real.list_tenants()]
    print(json.dumps({"code": code, "ticks_during_call": during, "tenants": names}))
""")


# As Debian's neutron-api under uWSGI: eventlet's monkey patching, and
# requests served by native threads other than the main one. A call made
# there goes straight to gRPC, and the worker it starts is a native thread.
REQUEST_THREAD_SCRIPT = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from networking_dclab import native
    from networking_dclab.client import Coordinator

    original = eventlet.patcher.original("threading")
    out = {"main_is_green": native.in_green_main_thread()}
    def request():
        out["in_request_is_green"] = native.in_green_main_thread()
        c = Coordinator.from_pki_dir(sys.argv[2], sys.argv[3], timeout=5)
        try:
            c.create_tenant("os.request")
            out["tenants"] = [t.name for t in c.list_tenants()]
        except Exception as e:
            out["error"] = type(e).__name__ + ": " + str(e)
        ran = original.Event()
        native.threads().Thread(target=ran.set, daemon=True).start()
        out["worker_ran"] = ran.wait(5)
    t = original.Thread(target=request, daemon=True)
    t.start()
    t.join(20)
    out["request_finished"] = not t.is_alive()
    print(json.dumps(out))
""")


class EventletTest(harness.CoordinatorTestCase):

    def run_under_eventlet(self, mode):
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host, port = silent.getsockname()
        done = subprocess.run(
            [sys.executable, "-c", EVENTLET_SCRIPT, harness.PACKAGE_ROOT, f"{host}:{port}",
             self.coordinator.url, self.coordinator.pki, mode],
            capture_output=True, text=True, timeout=60, env=dict(os.environ))
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def test_calls_run_outside_the_green_hub(self):
        out = self.run_under_eventlet("with-tpool")
        self.assertEqual(out["code"], "DEADLINE_EXCEEDED")
        # 1.5 s at one tick per 50 ms: the hub kept running during the call.
        self.assertGreater(out["ticks_during_call"], 15, out)
        self.assertIn("os.green", out["tenants"])

    def run_in_request_thread(self):
        done = subprocess.run(
            [sys.executable, "-c", REQUEST_THREAD_SCRIPT, harness.PACKAGE_ROOT,
             self.coordinator.url, self.coordinator.pki],
            capture_output=True, text=True, timeout=60, env=dict(os.environ))
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def test_native_request_threads_call_directly_and_start_native_workers(self):
        out = self.run_in_request_thread()
        self.assertEqual(out["main_is_green"], True, out)
        self.assertEqual(out["in_request_is_green"], False, out)
        self.assertTrue(out["request_finished"], out)
        self.assertIn("os.request", out.get("tenants", []), out)
        self.assertTrue(out["worker_ran"], out)

    def test_without_the_native_thread_a_call_stalls_every_green_thread(self):
        # Why client._outside_eventlet exists.
        out = self.run_under_eventlet("without-tpool")
        self.assertEqual(out["code"], "DEADLINE_EXCEEDED")
        self.assertLessEqual(out["ticks_during_call"], 1, out)


if __name__ == "__main__":
    unittest.main()
