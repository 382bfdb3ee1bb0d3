"""Neutron resources as the ML2 plugin hands them to drivers (the dict
fields the driver reads), and an in-memory core plugin that lists them."""

import itertools
import uuid

_macs = itertools.count(1)


def project_id():
    return uuid.uuid4().hex  # Keystone's form: 32 hex digits


def network(project, network_type="vxlan"):
    return {"id": str(uuid.uuid4()), "project_id": project, "tenant_id": project,
            "name": "net", "provider:network_type": network_type,
            "provider:segmentation_id": 1001, "subnets": []}


def subnet(net, cidr, ip_version=4):
    return {"id": str(uuid.uuid4()), "network_id": net["id"], "project_id": net["project_id"],
            "cidr": cidr, "ip_version": ip_version, "created_at": "2026-12-01T00:00:00Z"}


def port(net, sub, ip, host="", owner="compute:nova", mac=None):
    if mac is None:
        n = next(_macs)
        mac = f"fa:16:3e:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}"
    return {"id": str(uuid.uuid4()), "network_id": net["id"], "project_id": net["project_id"],
            "mac_address": mac, "device_owner": owner, "binding:host_id": host,
            "binding:vif_type": "ovs" if host else "unbound",
            "fixed_ips": [{"subnet_id": sub["id"], "ip_address": ip}] if ip else []}


def segment(net):
    return {"id": str(uuid.uuid4()), "network_type": net["provider:network_type"],
            "segmentation_id": net["provider:segmentation_id"], "physical_network": None}


def _matches(obj, filters):
    return all(obj.get(k) in values for k, values in (filters or {}).items())


class CorePlugin:
    """Neutron's core plugin as far as the driver uses it."""

    def __init__(self):
        self.networks, self.subnets, self.ports = {}, {}, {}

    def get_networks(self, context, filters=None):
        return [dict(n) for n in self.networks.values() if _matches(n, filters)]

    def get_subnets(self, context, filters=None):
        return [dict(s) for s in self.subnets.values() if _matches(s, filters)]

    def get_ports(self, context, filters=None):
        return [dict(p) for p in self.ports.values() if _matches(p, filters)]
