"""Neutron dicts -> dclab requests, the names they get, and those requests
against a real coordinator."""

import unittest
import uuid

import harness  # first: it fails naming the Debian packages that are missing
import grpc
import neutron_dicts as nd
from networking_dclab import names, push, translate
from networking_dclab.client import CoordinatorError
from networking_dclab.messages import pb


class NamesTest(unittest.TestCase):

    def test_neutron_ids_are_used_as_they_are(self):
        port_id = str(uuid.uuid4())
        self.assertEqual(names.port_name(port_id), port_id)
        self.assertEqual(names.network_name(port_id), port_id)
        project = uuid.uuid4().hex
        self.assertEqual(names.tenant_name(project), "os." + project)
        self.assertEqual(names.tenant_name("demo"), "os.demo")

    def test_any_project_id_gets_a_valid_unique_tenant_name(self):
        odd = ["x" * 255, "with space", "ünïcode", "-dash", "a__b", "", "os.x", "a" * 61, "a" * 62]
        mapped = [names.tenant_name(p) for p in odd]
        for project, name in zip(odd, mapped):
            self.assertTrue(names.is_valid(name), (project, name))
            self.assertTrue(names.is_driver_tenant(name))
        self.assertEqual(len(set(mapped)), len(odd))
        self.assertEqual(names.tenant_name("a" * 61), "os." + "a" * 61)  # 64 bytes
        self.assertTrue(names.tenant_name("a" * 62).startswith("os.__"))

    def test_hashed_and_direct_forms_cannot_collide(self):
        hashed = names.tenant_name("with space")
        # The project id that would produce the hashed name directly:
        self.assertNotEqual(names.tenant_name(hashed[len("os."):]), hashed)

    def test_lab_tenants_are_never_the_drivers(self):
        # Lab names have no '.' (check_short_name), driver tenants start "os.".
        for lab in ("os-lab", "os", "oslab", "lab1"):
            self.assertFalse(names.is_driver_tenant(lab))

    def test_name_rule_matches_the_coordinators(self):
        for good in ("a", "A-b_c.d", "0" * 64):
            self.assertTrue(names.is_valid(good), good)
        for bad in ("", "-a", ".a", "_a", "a b", "a/b", "é", "0" * 65):
            self.assertFalse(names.is_valid(bad), bad)


class TranslateTest(unittest.TestCase):

    def setUp(self):
        self.project = nd.project_id()
        self.net = nd.network(self.project)
        self.sub = nd.subnet(self.net, "10.0.0.0/24")

    def test_network_with_ipv4_subnet(self):
        spec = translate.network_spec(self.net, self.sub)
        self.assertEqual(spec.payload(), {"tenant": "os." + self.project,
                                          "name": self.net["id"], "cidr": "10.0.0.0/24"})
        self.assertIsNone(translate.network_spec(self.net, None))
        self.assertIsNone(translate.network_spec(self.net, nd.subnet(self.net, "fd00::/64", 6)))

    def test_provider_networks_are_not_mirrored(self):
        for kind, mirrored in (("vxlan", True), ("geneve", True), ("local", True),
                               ("flat", False), ("vlan", False)):
            net = nd.network(self.project, kind)
            self.assertEqual(translate.network_spec(net, self.sub) is not None, mirrored, kind)
        net = nd.network(self.project)
        del net["provider:network_type"]
        net["segments"] = [{"provider:network_type": "flat"}]
        self.assertIsNone(translate.network_spec(net, self.sub))

    def test_oldest_ipv4_subnet_defines_the_network(self):
        old = dict(nd.subnet(self.net, "10.1.0.0/24"), created_at="2020-01-01T00:00:00Z")
        v6 = nd.subnet(self.net, "fd00::/64", 6)
        self.assertEqual(translate.defining_subnet([self.sub, v6, old]), old)
        self.assertIsNone(translate.defining_subnet([v6]))

    def test_bound_port(self):
        port = nd.port(self.net, self.sub, "10.0.0.5", host="compute-1", mac="FA:16:3E:00:00:01")
        port["fixed_ips"].insert(0, {"subnet_id": "v6", "ip_address": "fd00::5"})
        spec = translate.port_spec(port, self.net, {"compute-1": "h1"})
        self.assertEqual(spec.payload(), {
            "name": port["id"], "tenant": "os." + self.project, "network": self.net["id"],
            "host": "h1", "mac": "fa:16:3e:00:00:01", "ip": "10.0.0.5", "kind": "vm"})
        self.assertEqual(spec.request().kind, pb.PORT_KIND_VM)
        self.assertEqual(translate.port_spec(port, self.net).host, "compute-1")

    def test_router_interfaces_are_router_ports(self):
        for owner in ("network:router_interface", "network:ha_router_replicated_interface"):
            port = nd.port(self.net, self.sub, "10.0.0.1", host="h1", owner=owner)
            spec = translate.port_spec(port, self.net)
            self.assertEqual(spec.kind, "router")
            self.assertEqual(spec.request().kind, pb.PORT_KIND_ROUTER)
        dhcp = nd.port(self.net, self.sub, "10.0.0.2", host="h1", owner="network:dhcp")
        self.assertEqual(translate.port_spec(dhcp, self.net).kind, "vm")

    def test_ports_not_pushed_yet(self):
        unbound = nd.port(self.net, self.sub, "10.0.0.5")
        no_ip = nd.port(self.net, self.sub, None, host="h1")
        v6 = nd.port(self.net, self.sub, "fd00::5", host="h1")
        for port in (unbound, no_ip, v6):
            self.assertIsNone(translate.port_spec(port, self.net))
        flat = nd.network(self.project, "flat")
        self.assertIsNone(translate.port_spec(nd.port(flat, self.sub, "10.0.0.5", "h1"), flat))

    def test_port_tenant_is_the_networks_project(self):
        # A port another project made on a shared network lives in the
        # network owner's tenant, with the network.
        port = nd.port(self.net, self.sub, "10.0.0.9", host="h1")
        port["project_id"] = nd.project_id()
        self.assertEqual(translate.port_spec(port, self.net).tenant, "os." + self.project)


class TranslatedRequestsTest(harness.CoordinatorTestCase):
    """What translate produces, sent to a real coordinator."""

    def test_project_network_and_ports_reach_the_coordinator(self):
        project = nd.project_id()
        net = nd.network(project)
        sub = nd.subnet(net, "10.0.0.0/24")
        push.ensure_network(self.client, translate.network_spec(net, sub))
        ports = [nd.port(net, sub, "10.0.0.10", host="h1"),
                 nd.port(net, sub, "10.0.0.11", host="h2"),
                 nd.port(net, sub, "10.0.0.1", host="h2", owner="network:router_interface")]
        specs = [translate.port_spec(p, net) for p in ports]
        for spec in specs:
            push.put_port(self.client, spec)
        listed = {p.name: p for p in self.client.list_ports(tenant="os." + project)}
        self.assertEqual(sorted(listed), sorted(p["id"] for p in ports))
        for spec in specs:
            self.assertEqual(translate.PortSpec.from_port(listed[spec.name]), spec)
            self.assertTrue(listed[spec.name].key)  # a mapping key was assigned
        self.assertEqual(listed[specs[2].name].kind, pb.PORT_KIND_ROUTER)

    def test_odd_project_ids_make_tenants_the_coordinator_accepts(self):
        for project in ("x" * 255, "with space", "ünïcode", "a" * 61):
            push.ensure_tenant(self.client, names.tenant_name(project))
        self.assertEqual(len(self.client.list_tenants()), 4)

    def test_same_cidr_in_two_projects_is_fine(self):
        for _ in range(2):
            net = nd.network(nd.project_id())
            push.ensure_network(self.client, translate.network_spec(net, nd.subnet(net, "10.0.0.0/24")))
        self.assertEqual(len(self.client.list_networks()), 2)

    def test_overlapping_cidrs_in_one_tenant_are_refused(self):
        project = nd.project_id()
        first, second = nd.network(project), nd.network(project)
        push.ensure_network(self.client, translate.network_spec(first, nd.subnet(first, "10.0.0.0/24")))
        with self.assertRaises(CoordinatorError) as seen:
            push.ensure_network(self.client,
                                translate.network_spec(second, nd.subnet(second, "10.0.0.128/25")))
        self.assertEqual(seen.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn(f"CIDR 10.0.0.128/25 overlaps network {first['id']} (10.0.0.0/24) "
                      f"of tenant os.{project}", seen.exception.message)
        self.assertEqual([n.name for n in self.client.list_networks()], [first["id"]])

    def test_pushes_are_idempotent(self):
        net = nd.network(nd.project_id())
        sub = nd.subnet(net, "10.0.0.0/24")
        spec = translate.network_spec(net, sub)
        port = translate.port_spec(nd.port(net, sub, "10.0.0.10", host="h1"), net)
        for _ in range(2):
            push.ensure_network(self.client, spec)
            push.put_port(self.client, port)
        moved = translate.PortSpec(**dict(port.payload(), host="h2"))
        push.put_port(self.client, moved)  # replaced: deleted and created again
        self.assertEqual([p.host for p in self.client.list_ports()], ["h2"])
        with self.assertRaises(CoordinatorError) as seen:
            push.ensure_network(self.client, translate.NetworkSpec(spec.tenant, spec.name, "10.9.0.0/24"))
        self.assertIn("already has CIDR 10.0.0.0/24", seen.exception.message)
        for _ in range(2):
            push.delete_port(self.client, port.name)
            push.delete_network(self.client, spec.tenant, spec.name)
        self.assertEqual(self.client.list_tenants(), [])


if __name__ == "__main__":
    unittest.main()
