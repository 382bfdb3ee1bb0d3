"""The journal on a real sqlite database, pushed by the worker to a real
coordinator that is killed with SIGKILL and restarted."""

import time
import unittest

import harness  # first: it fails naming the Debian packages that are missing
from sqlalchemy.orm import Session
import neutron_dicts as nd
from networking_dclab import journal_store, translate
from networking_dclab.journal import Journal
from networking_dclab.worker import Worker


class JournalTest(harness.CoordinatorTestCase):

    def setUp(self):
        super().setUp()
        self.journal = Journal(self.journal_engine())
        self.project = nd.project_id()
        self.tenant = "os." + self.project
        self.net = nd.network(self.project)
        self.sub = nd.subnet(self.net, "10.0.0.0/24")

    def start_worker(self):
        worker = Worker(self.journal, lambda: self.coordinator.client(timeout=2.0, wait_for_ready=True),
                        idle_interval=0.1, backoff_start=0.05, backoff_max=0.5)
        worker.ensure_running()
        self.addCleanup(worker.stop)
        return worker

    def commit(self, record, *args):
        """One Neutron transaction that records one entry."""
        with Session(self.journal.engine) as session, session.begin():
            record(session, *args)
        self.journal.wake()

    def port(self, i, host="h1"):
        return translate.port_spec(nd.port(self.net, self.sub, f"10.0.0.{10 + i}", host=host),
                                   self.net)

    def test_an_entry_another_process_committed_is_pushed_within_a_poll(self):
        # A long idle interval, no wake: only the poll can find the entry,
        # as when a neutron-api process committed it.
        worker = Worker(self.journal, lambda: self.coordinator.client(timeout=2.0, wait_for_ready=True),
                        idle_interval=60.0, poll_interval=0.1)
        worker.ensure_running()
        self.addCleanup(worker.stop)
        self.commit(self.journal.record_network, translate.network_spec(self.net, self.sub))
        self.assertTrue(worker.wait_drained(10), self.coordinator.log_tail())
        spec = self.port(1)
        with Session(self.journal.engine) as session, session.begin():
            self.journal.record_port(session, spec)
        began = time.monotonic()
        self.assertTrue(worker.wait_drained(5), self.coordinator.log_tail())
        self.assertLess(time.monotonic() - began, 2.0)
        self.assertEqual(self.port_names(self.tenant), [spec.name])

    def test_a_backing_off_worker_does_not_poll_even_when_its_wait_equals_the_idle_one(self):
        # backoff_start == idle_interval: a pending entry while the
        # coordinator is down must not turn the back-off into a 50 ms loop.
        worker = Worker(self.journal, lambda: self.coordinator.client(timeout=0.05, wait_for_ready=True),
                        idle_interval=0.25, backoff_start=0.25, backoff_max=0.25, poll_interval=0.02)
        steps = []
        step = worker.step
        worker.step = lambda: (steps.append(time.monotonic()), step())[1]
        self.coordinator.kill()
        with Session(self.journal.engine) as session, session.begin():
            self.journal.record_network(session, translate.network_spec(self.net, self.sub))
        worker.ensure_running()
        self.addCleanup(worker.stop)
        time.sleep(2.0)
        # Each failed step takes the client's 0.05 s timeout, then 0.25 s.
        self.assertLessEqual(len(steps), 10, steps)
        self.assertTrue(self.journal.has_pending())

    def test_nothing_lost_when_the_coordinator_is_killed_while_recording(self):
        worker = self.start_worker()
        self.commit(self.journal.record_network, translate.network_spec(self.net, self.sub))
        ports = [self.port(i, ("h1", "h2")[i % 2]) for i in range(40)]
        slowest = 0.0
        for i, spec in enumerate(ports):
            if i == 12:
                self.coordinator.kill()
            if i == 30:
                self.coordinator.start()  # same data dir, same port
            began = time.monotonic()
            self.commit(self.journal.record_port, spec)
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.03)
        # Neutron kept working: recording never waited for the coordinator.
        self.assertLess(slowest, 1.5)
        self.assertTrue(worker.wait_drained(30), self.coordinator.log_tail())
        self.assertEqual(self.port_names(self.tenant), sorted(p.name for p in ports))
        self.assertEqual(len(self.client.list_ports()), 40)  # none left over
        listed = {p.name: translate.PortSpec.from_port(p) for p in self.client.list_ports()}
        self.assertEqual(listed, {p.name: p for p in ports})
        self.assertEqual(self.journal.entries(), [])

    def test_backlog_recorded_while_down_drains_in_order_after_restart(self):
        self.coordinator.kill()
        worker = self.start_worker()
        gone, kept = self.port(0), self.port(1)
        self.commit(self.journal.record_network, translate.network_spec(self.net, self.sub))
        self.commit(self.journal.record_port, gone)
        self.commit(self.journal.record_port, kept)
        self.commit(self.journal.record_port_delete, gone.name)
        time.sleep(1.0)
        self.assertEqual(len(self.journal.entries(journal_store.PENDING)), 4)
        self.coordinator.start()
        self.assertTrue(worker.wait_drained(30), self.coordinator.log_tail())
        self.assertEqual(self.port_names(), [kept.name])

    def test_refused_entry_fails_with_the_message_and_the_rest_goes_on(self):
        worker = self.start_worker()
        overlapping = nd.network(self.project)
        other = nd.network(self.project)
        self.commit(self.journal.record_network, translate.network_spec(self.net, self.sub))
        self.commit(self.journal.record_network,
                    translate.network_spec(overlapping, nd.subnet(overlapping, "10.0.0.0/16")))
        self.commit(self.journal.record_network,
                    translate.network_spec(other, nd.subnet(other, "10.1.0.0/24")))
        self.commit(self.journal.record_port, self.port(0))
        self.assertTrue(worker.wait_drained(20))
        failed = self.journal.entries(journal_store.FAILED)
        self.assertEqual([e.object_name for e in failed], [overlapping["id"]])
        self.assertIn("INVALID_ARGUMENT", failed[0].last_error)
        self.assertIn("overlaps network", failed[0].last_error)
        self.assertEqual(sorted(n.name for n in self.client.list_networks()),
                         sorted([self.net["id"], other["id"]]))
        self.assertEqual(self.port_names(), [self.port_names()[0]])

    def test_rolled_back_transaction_leaves_no_entry(self):
        with self.assertRaises(RuntimeError):
            with Session(self.journal.engine) as session, session.begin():
                self.journal.record_port(session, self.port(0))
                raise RuntimeError("Neutron's transaction failed")
        self.assertEqual(self.journal.entries(), [])

    def test_one_worker_holds_the_lease(self):
        engine = self.journal.engine
        self.assertTrue(journal_store.take_lease(engine, "a", 30))
        self.assertTrue(journal_store.take_lease(engine, "a", 30))  # renewed
        self.assertFalse(journal_store.take_lease(engine, "b", 30))
        journal_store.release_lease(engine, "a")
        self.assertTrue(journal_store.take_lease(engine, "b", 0.01))
        time.sleep(0.05)
        self.assertTrue(journal_store.take_lease(engine, "a", 30))  # b's lapsed

    def test_worker_without_the_lease_pushes_nothing(self):
        journal_store.take_lease(self.journal.engine, "another-process", 30)
        worker = Worker(self.journal, lambda: self.coordinator.client(timeout=2.0, wait_for_ready=True))
        self.addCleanup(worker.stop)
        self.commit(self.journal.record_network, translate.network_spec(self.net, self.sub))
        worker.step()
        self.assertEqual(len(self.journal.entries(journal_store.PENDING)), 1)
        self.assertEqual(self.client.list_networks(), [])


class SchemaTest(unittest.TestCase):

    def test_times_are_doubles_in_mysql(self):
        # A 4-byte FLOAT holds today's Unix time to about 2 minutes, which
        # made leases expire at random in a real Neutron database.
        from sqlalchemy.dialects import mysql
        from sqlalchemy.schema import CreateTable
        for table, column in ((journal_store.journal, "created_at"), (journal_store.lease, "expires_at")):
            ddl = str(CreateTable(table).compile(dialect=mysql.dialect()))
            line = next(l for l in ddl.splitlines() if column in l)
            self.assertIn("FLOAT(53)", line, ddl)
