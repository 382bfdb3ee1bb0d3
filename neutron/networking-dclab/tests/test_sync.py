"""The full comparison against a real coordinator that also holds a lab
and an operator's own tenant, which it must never touch."""

import os

import harness  # first: it fails naming the Debian packages that are missing
import neutron_dicts as nd
from networking_dclab import sync, translate
from networking_dclab.journal import Journal
from networking_dclab.messages import pb
from networking_dclab.worker import Worker


class SyncTest(harness.CoordinatorTestCase):

    def setUp(self):
        super().setUp()
        self.neutron = nd.CorePlugin()
        self.project = nd.project_id()
        self.other = nd.project_id()
        self.net = self.add_network(self.project, "10.0.0.0/24")
        self.net2 = self.add_network(self.other, "10.0.0.0/24")  # same CIDR, other tenant
        sub, sub2 = self.subnet_of(self.net), self.subnet_of(self.net2)
        self.p1 = self.add_port(nd.port(self.net, sub, "10.0.0.10", host="h1"))
        self.p2 = self.add_port(nd.port(self.net, sub, "10.0.0.11", host="h2"))
        self.add_port(nd.port(self.net, sub, "10.0.0.1", host="h1", owner="network:router_interface"))
        self.add_port(nd.port(self.net, sub, "10.0.0.12"))  # not bound: not pushed
        self.add_port(nd.port(self.net2, sub2, "10.0.0.10", host="h1"))
        v6 = nd.network(self.project)
        self.neutron.networks[v6["id"]] = v6
        self.neutron.subnets["v6"] = dict(nd.subnet(v6, "fd00::/64", 6), id="v6")
        self.synchronizer = sync.Synchronizer(self.view)
        self.foreign = self.add_lab_and_operator_tenant()

    def add_network(self, project, cidr):
        net = nd.network(project)
        sub = nd.subnet(net, cidr)
        self.neutron.networks[net["id"]] = net
        self.neutron.subnets[sub["id"]] = sub
        return net

    def subnet_of(self, net):
        return next(s for s in self.neutron.subnets.values() if s["network_id"] == net["id"])

    def add_port(self, port):
        self.neutron.ports[port["id"]] = port
        return port

    def view(self):
        return sync.NeutronView(self.neutron.get_networks(None), self.neutron.get_subnets(None),
                                self.neutron.get_ports(None))

    def add_lab_and_operator_tenant(self):
        """A lab (its tenant, network and node port) and a tenant an operator
        made by hand; returns what the coordinator holds of both."""
        node = pb.NodeSpec(name="n1", vcpus=1, memory_mib=128, image="micro", host="h1",
                           interfaces=[pb.InterfaceSpec(network="net")])
        lab = pb.LabSpec(name="lab1", networks=[pb.LabNetwork(name="net", cidr="10.0.0.0/24")],
                         nodes=[node])
        self.client.call("Labs", "ApplyLab", pb.ApplyLabRequest(spec=lab))
        self.client.create_tenant("ops")
        self.client.create_network("ops", "lan", "10.0.0.0/24")
        self.client.create_port(pb.CreatePortRequest(
            name="ops-port", tenant="ops", network="lan", host="h2",
            mac="02:00:00:00:10:01", ip="10.0.0.5", kind=pb.PORT_KIND_VM))
        return self.foreign_state()

    def foreign_state(self):
        tenants = sorted(t.name for t in self.client.list_tenants() if not t.name.startswith("os."))
        nets = sorted((n.tenant, n.name, n.cidr, n.id) for n in self.client.list_networks()
                      if not n.tenant.startswith("os."))
        ports = sorted((p.name, p.tenant, p.host, p.ip, p.mac, p.key) for p in self.client.list_ports()
                       if not p.tenant.startswith("os."))
        return tenants, nets, ports

    def assert_in_step(self):
        desired = sync.desired_state(self.view())
        self.assertEqual(sync.coordinator_state(self.client), desired)
        self.assertEqual(self.foreign_state(), self.foreign)
        return desired

    def test_first_sync_creates_what_neutron_has(self):
        report = self.synchronizer.run(self.client, "start")
        self.assertEqual(report.failed, [])
        desired = self.assert_in_step()
        self.assertEqual(len(desired.tenants), 2)
        self.assertEqual(len(desired.networks), 2)
        self.assertEqual(len(desired.ports), 4)
        self.assertEqual(self.foreign[0], ["lab1", "ops"])
        self.assertIn("lab1.n1.0", [p[0] for p in self.foreign[2]])
        self.assertEqual(self.synchronizer.run(self.client).changes, [])  # nothing left to do

    def test_repairs_both_directions_and_leaves_labs_alone(self):
        self.synchronizer.run(self.client, "start")
        tenant = "os." + self.project
        self.client.delete_port(self.p1["id"])  # behind the driver's back
        stray = "0b7c5b7e-5d34-4e0c-a0e1-1a2b3c4d5e6f"  # the driver's, gone from Neutron
        self.client.create_port(pb.CreatePortRequest(
            name=stray, tenant=tenant, network=self.net["id"], host="h2",
            mac="fa:16:3e:99:99:99", ip="10.0.0.99", kind=pb.PORT_KIND_VM))
        self.p2["binding:host_id"] = "h1"  # migrated while the driver missed it
        with self.assertLogs("networking_dclab.sync", "WARNING") as logs:
            report = self.synchronizer.run(self.client)
        done = sorted((c.action, c.kind, c.target.name) for c in report.changes)
        self.assertEqual(done, sorted([("create", "port", self.p1["id"]),
                                       ("create", "port", self.p2["id"]),
                                       ("delete", "port", self.p2["id"]),
                                       ("delete", "port", stray)]))
        self.assertEqual(report.failed, [])
        self.assertTrue(any("host h2 in dclab, h1 in Neutron" in line for line in logs.output),
                        logs.output)
        self.assert_in_step()

    def test_deletes_networks_and_tenants_neutron_no_longer_has(self):
        self.synchronizer.run(self.client, "start")
        for pid in [p for p, port in self.neutron.ports.items() if port["network_id"] == self.net2["id"]]:
            del self.neutron.ports[pid]
        del self.neutron.subnets[self.subnet_of(self.net2)["id"]]
        del self.neutron.networks[self.net2["id"]]
        report = self.synchronizer.run(self.client)
        self.assertEqual(sorted((c.action, c.kind) for c in report.changes),
                         [("delete", "network"), ("delete", "port"), ("delete", "tenant")])
        self.assert_in_step()
        self.assertNotIn("os." + self.other, [t.name for t in self.client.list_tenants()])

    def test_a_network_whose_cidr_differs_is_replaced_with_its_ports(self):
        self.synchronizer.run(self.client, "start")
        tenant, name = "os." + self.project, self.net["id"]
        for port in self.client.list_ports(tenant=tenant):
            self.client.delete_port(port.name)
        self.client.delete_network(tenant, name)
        self.client.create_network(tenant, name, "10.0.0.0/16")
        self.synchronizer.run(self.client)
        self.assert_in_step()

    def test_sync_at_once_when_the_store_was_reset(self):
        journal = Journal(self.journal_engine())
        worker = Worker(journal, lambda: self.coordinator.client(timeout=2.0, wait_for_ready=True),
                        self.synchronizer, sync_interval=3600, sync_retry=0.5,
                        idle_interval=0.1, backoff_start=0.05, backoff_max=0.5)
        worker.ensure_running()
        self.addCleanup(worker.stop)
        want = sorted(sync.desired_state(self.view()).ports)
        owned = lambda: sorted(p.name for p in self.client.list_ports() if p.tenant.startswith("os."))
        self.wait_for("the start sync", lambda: owned() == want)
        # A new, empty store on the same address: the revision goes back.
        self.coordinator.kill()
        self.coordinator.start(data_dir=os.path.join(self.workdir, "fresh"))
        self.register_hosts()
        self.wait_for("the sync after the reset", lambda: owned() == want)
        self.assertEqual(sync.coordinator_state(self.client), sync.desired_state(self.view()))

    def test_ports_on_unregistered_hosts_fail_and_the_rest_syncs(self):
        self.add_port(nd.port(self.net, self.subnet_of(self.net), "10.0.0.20", host="h9"))
        report = self.synchronizer.run(self.client, "start")
        self.assertEqual([(c.target.host, e.code.name) for c, e in report.failed], [("h9", "NOT_FOUND")])
        self.assertEqual(len(sync.coordinator_state(self.client).ports), 4)


class ScheduleTest(harness.unittest.TestCase):

    def status(self, revision, tenants=1):
        return pb.CoordinatorStatus(revision=revision, tenants=tenants)

    def test_due_at_start_then_periodically(self):
        now = [100.0]
        schedule = sync.SyncSchedule(60, clock=lambda: now[0])
        self.assertEqual(schedule.due(), "start")
        schedule.synced(sync.SyncReport(desired_tenants=1))
        self.assertIsNone(schedule.due())
        now[0] += 61
        self.assertEqual(schedule.due(), "periodic")

    def test_reset_seen_from_the_revision_or_an_empty_store(self):
        schedule = sync.SyncSchedule(60)
        schedule.synced(sync.SyncReport(desired_tenants=1))
        schedule.observe(self.status(10))
        schedule.observe(self.status(12))
        self.assertIsNone(schedule.due())
        schedule.observe(self.status(3))
        self.assertIn("went back from 12 to 3", schedule.due())
        schedule.synced(sync.SyncReport(desired_tenants=1))
        schedule.observe(self.status(20, tenants=0))
        self.assertIn("holds no tenant", schedule.due())

    def test_failed_sync_retried_sooner(self):
        now = [0.0]
        schedule = sync.SyncSchedule(60, retry=5, clock=lambda: now[0])
        failed = sync.SyncReport(failed=[("change", "error")])
        schedule.synced(failed)
        now[0] = 5.1
        self.assertEqual(schedule.due(), "periodic")
        schedule.synced(failed)
        now[0] = 5.1 + 9.9
        self.assertIsNone(schedule.due())  # 10 s the second time

    def test_desired_state_translates_neutron(self):
        project = nd.project_id()
        net = nd.network(project)
        sub = nd.subnet(net, "10.0.0.0/24")
        port = nd.port(net, sub, "10.0.0.3", host="compute-1")
        state = sync.desired_state(sync.NeutronView([net], [sub], [port]), {"compute-1": "h1"})
        self.assertEqual(state.tenants, {"os." + project})
        self.assertEqual(state.ports[port["id"]], translate.port_spec(port, net, {"compute-1": "h1"}))
