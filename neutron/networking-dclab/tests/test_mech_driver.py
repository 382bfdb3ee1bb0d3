"""The ML2 driver class, driven the way ML2 drives it, against a real
coordinator and a real (sqlite) database.

Not a running neutron-server: the contexts are small objects with the
attributes ML2's contexts document (current, original, network, host,
segments_to_bind, set_binding, _plugin_context with its session), the core
plugin is an in-memory one registered in neutron_lib's plugin directory,
and each call runs its precommit inside a SQLAlchemy transaction that
commits before postcommit, as ML2 does.
"""

import copy

import harness  # first: it fails naming the Debian packages that are missing
from neutron_lib import exceptions as n_exc
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from sqlalchemy.orm import Session
import neutron_dicts as nd
from networking_dclab import config, journal_store
from networking_dclab.mech_driver import (CoordinatorRefusedInput, DclabMechanismDriver,
                                          SecondIPv4Subnet)
from networking_dclab.messages import pb


class PluginContext:
    def __init__(self, session):
        self.session = session


class NetworkContext:
    def __init__(self, plugin, network, original=None):
        self._plugin = plugin
        self._plugin_context = None
        self.current, self.original = network, original
        self.network_segments = [nd.segment(network)]


class SubnetContext:
    def __init__(self, plugin, subnet, network):
        self._plugin = plugin
        self._plugin_context = None
        self.current, self.original = subnet, None
        self.network = NetworkContext(plugin, network)


class PortContext:
    def __init__(self, plugin, port, network, original=None, host=""):
        self._plugin = plugin
        self._plugin_context = None
        self.current, self.original = port, original
        self.network = NetworkContext(plugin, network)
        self.host = host
        self.segments_to_bind = self.network.network_segments
        self.binding = None

    def set_binding(self, segment_id, vif_type, vif_details, status=None):
        self.binding = (segment_id, vif_type, vif_details, status)


class Driver(DclabMechanismDriver):
    """The driver with its configuration and database given by the test."""

    def __init__(self, conf, engine):
        self._test_conf = conf
        self._test_engine = engine

    def config_object(self):
        return self._test_conf

    def journal_engine(self):
        return self._test_engine


class MechanismDriverTest(harness.CoordinatorTestCase):
    hosts = ("h1", "h2")

    def setUp(self):
        super().setUp()
        self.neutron = nd.CorePlugin()
        directory.add_plugin(plugin_constants.CORE, self.neutron)
        self.addCleanup(setattr, directory, "_PLUGIN_DIRECTORY", None)
        self.engine = self.journal_engine()
        self.driver = self.make_driver()

    def make_driver(self, **overrides):
        conf = cfg.ConfigOpts()
        conf(args=[], default_config_files=[])
        config.register(conf)
        settings = {"coordinator": self.coordinator.url, "pki_dir": self.coordinator.pki,
                    "timeout": 2.0, "validate_timeout": 2.0, "retry_max_interval": 0.5,
                    "host_map": {"compute-1": "h1"}, "datapath_type": "netdev"}
        settings.update(overrides)
        for name, value in settings.items():
            conf.set_override(name, value, config.GROUP)
        driver = Driver(conf, self.engine)
        driver.initialize()
        self.addCleanup(driver.stop)
        return driver

    # ML2's calls: precommit in the transaction, postcommit after it.

    def ml2(self, method, context, change):
        saved = copy.deepcopy((self.neutron.networks, self.neutron.subnets, self.neutron.ports))
        change()  # Neutron's own write, in the same transaction
        try:
            with Session(self.engine) as session, session.begin():
                context._plugin_context = PluginContext(session)
                getattr(self.driver, method + "_precommit")(context)
        except Exception:
            self.neutron.networks, self.neutron.subnets, self.neutron.ports = saved
            raise
        getattr(self.driver, method + "_postcommit")(context)

    def create_network(self, project, network_type="vxlan"):
        net = nd.network(project, network_type)
        self.ml2("create_network", NetworkContext(self.neutron, net),
                 lambda: self.neutron.networks.__setitem__(net["id"], net))
        return net

    def create_subnet(self, net, cidr, ip_version=4):
        sub = nd.subnet(net, cidr, ip_version)
        self.ml2("create_subnet", SubnetContext(self.neutron, sub, net),
                 lambda: self.neutron.subnets.__setitem__(sub["id"], sub))
        return sub

    def create_port(self, net, sub, ip, owner="compute:nova"):
        port = nd.port(net, sub, ip, owner=owner)
        self.ml2("create_port", PortContext(self.neutron, port, net),
                 lambda: self.neutron.ports.__setitem__(port["id"], port))
        return port

    def update_port(self, port, net, **fields):
        new = dict(port, **fields)
        self.ml2("update_port", PortContext(self.neutron, new, net, original=port),
                 lambda: self.neutron.ports.__setitem__(new["id"], new))
        return new

    def delete_port(self, port, net):
        self.ml2("delete_port", PortContext(self.neutron, port, net),
                 lambda: self.neutron.ports.pop(port["id"]))

    def bind(self, port, net, host):
        context = PortContext(self.neutron, port, net, host=host)
        self.driver.bind_port(context)
        if context.binding is not None:
            self.assertEqual(context.binding[0], context.segments_to_bind[0][api.ID])
        return context.binding

    def drained(self):
        self.assertTrue(self.driver.worker.wait_drained(20), self.coordinator.log_tail())
        self.assertEqual(self.driver.journal.entries(), [])

    def dclab_ports(self):
        return {p.name: p for p in self.client.list_ports()}

    # The tests.

    def test_is_an_ml2_mechanism_driver_that_binds(self):
        self.assertTrue(issubclass(DclabMechanismDriver, api.MechanismDriver))
        self.assertTrue(self.driver._supports_port_binding)
        self.assertEqual(self.driver.connectivity, portbindings.CONNECTIVITY_L2)

    def test_project_network_and_ports_through_their_life(self):
        project = nd.project_id()
        tenant = "os." + project
        net = self.create_network(project)
        self.assertEqual(self.client.list_tenants(), [])  # no subnet yet: nothing in dclab
        sub = self.create_subnet(net, "10.0.0.0/24")
        self.assertEqual([(n.tenant, n.name, n.cidr) for n in self.client.list_networks()],
                         [(tenant, net["id"], "10.0.0.0/24")])
        port = self.create_port(net, sub, "10.0.0.10")
        self.drained()
        self.assertEqual(self.dclab_ports(), {})  # not bound yet

        _, vif_type, details, status = self.bind(port, net, "compute-1")  # mapped to h1
        self.assertEqual(vif_type, portbindings.VIF_TYPE_OVS)
        self.assertEqual(details[portbindings.VIF_DETAILS_BRIDGE_NAME], "br-dclab")
        self.assertEqual(details[portbindings.OVS_DATAPATH_TYPE], "netdev")
        self.assertFalse(details[portbindings.OVS_HYBRID_PLUG])
        self.assertEqual(status, "ACTIVE")
        port = self.update_port(port, net, **{"binding:host_id": "compute-1"})
        router = self.create_port(net, sub, "10.0.0.1", owner="network:router_interface")
        router = self.update_port(router, net, **{"binding:host_id": "h2"})
        self.drained()
        ports = self.dclab_ports()
        self.assertEqual(sorted(ports), sorted([port["id"], router["id"]]))
        self.assertEqual((ports[port["id"]].host, ports[port["id"]].ip, ports[port["id"]].mac),
                         ("h1", "10.0.0.10", port["mac_address"]))
        self.assertEqual(ports[router["id"]].kind, pb.PORT_KIND_ROUTER)

        port = self.update_port(port, net, fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.20"}])
        port = self.update_port(port, net, **{"binding:host_id": "h2"})
        self.drained()
        self.assertEqual((self.dclab_ports()[port["id"]].ip, self.dclab_ports()[port["id"]].host),
                         ("10.0.0.20", "h2"))

        self.delete_port(port, net)
        self.delete_port(router, net)
        self.ml2("delete_subnet", SubnetContext(self.neutron, sub, net),
                 lambda: self.neutron.subnets.pop(sub["id"]))
        self.ml2("delete_network", NetworkContext(self.neutron, net),
                 lambda: self.neutron.networks.pop(net["id"]))
        self.drained()
        self.assertEqual(self.client.list_ports(), [])
        self.assertEqual(self.client.list_networks(), [])
        self.assertEqual(self.client.list_tenants(), [])

    def test_overlapping_subnet_fails_the_neutron_call_with_the_coordinators_message(self):
        project = nd.project_id()
        first = self.create_network(project)
        self.create_subnet(first, "10.0.0.0/24")
        second = self.create_network(project)
        with self.assertRaises(CoordinatorRefusedInput) as seen:
            self.create_subnet(second, "10.0.0.128/25")
        self.assertIsInstance(seen.exception, n_exc.BadRequest)  # HTTP 400 from Neutron's API
        self.assertIn(f"CIDR 10.0.0.128/25 overlaps network {first['id']} (10.0.0.0/24) "
                      f"of tenant os.{project}", str(seen.exception))
        self.drained()  # the refused subnet's entry rolled back with it
        self.assertEqual([n.name for n in self.client.list_networks()], [first["id"]])
        self.assertEqual(len(self.neutron.subnets), 1)
        # The same addresses in another project are what dclab is for.
        other = self.create_network(nd.project_id())
        self.create_subnet(other, "10.0.0.0/24")
        self.assertEqual(len(self.client.list_networks()), 2)

    def test_second_ipv4_subnet_refused_ipv6_ignored(self):
        net = self.create_network(nd.project_id())
        self.create_subnet(net, "10.0.0.0/24")
        self.create_subnet(net, "fd00::/64", 6)
        with self.assertRaises(SecondIPv4Subnet):
            self.create_subnet(net, "10.1.0.0/24")
        self.drained()
        self.assertEqual([n.cidr for n in self.client.list_networks()], ["10.0.0.0/24"])

    def test_provider_networks_and_unknown_hosts_are_not_bound(self):
        project = nd.project_id()
        flat = self.create_network(project, "flat")
        sub = self.create_subnet(flat, "192.0.2.0/24")
        self.assertEqual(self.client.list_networks(), [])
        self.assertIsNone(self.bind(nd.port(flat, sub, "192.0.2.5"), flat, "h1"))
        net = self.create_network(project)
        sub = self.create_subnet(net, "10.0.0.0/24")
        self.assertIsNone(self.bind(nd.port(net, sub, "10.0.0.5"), net, "h9"))
        self.assertIsNotNone(self.bind(nd.port(net, sub, "10.0.0.5"), net, "h2"))

    def test_neutron_keeps_working_while_the_coordinator_is_down(self):
        project = nd.project_id()
        self.coordinator.kill()
        net = self.create_network(project)
        with self.assertLogs("networking_dclab.mech_driver", "WARNING"):
            sub = self.create_subnet(net, "10.0.0.0/24")  # accepted unchecked
        ports = [self.update_port(self.create_port(net, sub, f"10.0.0.{10 + i}"), net,
                                  **{"binding:host_id": "h1"}) for i in range(5)]
        self.assertEqual(len(self.driver.journal.entries(journal_store.PENDING)), 6)
        self.coordinator.start()
        self.drained()
        self.assertEqual(sorted(self.dclab_ports()), sorted(p["id"] for p in ports))

    def test_worker_starts_per_process_and_repairs_by_periodic_sync(self):
        self.driver.stop()
        self.driver = self.make_driver(sync_interval=1.0)
        registry.publish(resources.PROCESS, events.AFTER_INIT, self)
        self.assertTrue(self.driver.worker._thread.is_alive())
        net = self.create_network(nd.project_id())
        sub = self.create_subnet(net, "10.0.0.0/24")
        port = self.update_port(self.create_port(net, sub, "10.0.0.10"), net,
                                **{"binding:host_id": "h1"})
        self.drained()
        self.client.delete_port(port["id"])  # behind Neutron's back
        self.wait_for("the periodic sync", lambda: port["id"] in self.dclab_ports())
