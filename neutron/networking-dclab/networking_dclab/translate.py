"""Neutron dicts -> what dclab should hold.

- a Neutron project is a dclab tenant (names.tenant_name);
- a network with its IPv4 subnet is a dclab network with that CIDR; a
  network without one does not exist in dclab yet (dclab networks are
  IPv4 and have exactly one CIDR);
- a port bound to a host with an IPv4 fixed IP is a dclab port on that
  host (`binding:host_id`, through the host map), with its MAC and first
  IPv4 address; router interfaces are router ports, anything else a VM
  port. Unbound ports and ports without IPv4 are not pushed yet.

Only networks whose segment type the driver serves are mirrored (by
default the overlay types: dclab replaces the overlay); provider flat and
VLAN networks are left to other mechanism drivers.
"""

import dataclasses
import ipaddress

from networking_dclab import names
from networking_dclab.messages import pb

DEFAULT_NETWORK_TYPES = ("vxlan", "geneve", "local")
ROUTER_OWNERS = frozenset({
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
})
_KINDS = {"vm": pb.PORT_KIND_VM, "router": pb.PORT_KIND_ROUTER}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    tenant: str
    name: str
    cidr: str

    def payload(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PortSpec:
    name: str
    tenant: str
    network: str
    host: str
    mac: str
    ip: str
    kind: str  # "vm" or "router"

    def payload(self):
        return dataclasses.asdict(self)

    def request(self):
        fields = self.payload()
        fields["kind"] = _KINDS[self.kind]
        return pb.CreatePortRequest(**fields)

    @classmethod
    def from_port(cls, port):
        """The spec a coordinator's pb.Port stands for, to compare with."""
        kind = "router" if port.kind == pb.PORT_KIND_ROUTER else "vm"
        return cls(name=port.name, tenant=port.tenant, network=port.network,
                   host=port.host, mac=port.mac.lower(), ip=port.ip, kind=kind)


def project_of(obj):
    return obj.get("project_id") or obj.get("tenant_id") or ""


def network_type(network):
    """The segment type of a network dict, or None when it carries no
    provider attributes."""
    if network.get("provider:network_type"):
        return network["provider:network_type"]
    for segment in network.get("segments") or ():
        if segment.get("provider:network_type"):
            return segment["provider:network_type"]
    return None


def is_mirrored(network, network_types=DEFAULT_NETWORK_TYPES):
    kind = network_type(network)
    return kind is None or kind in network_types


def defining_subnet(subnets):
    """The IPv4 subnet that gives a network its dclab CIDR: the oldest one.
    The driver refuses a second IPv4 subnet, so there is one unless the
    network predates the driver."""
    ipv4 = [s for s in subnets if s.get("ip_version") == 4]
    if not ipv4:
        return None
    return min(ipv4, key=lambda s: (str(s.get("created_at") or ""), s["id"]))


def network_ref(network, network_types=DEFAULT_NETWORK_TYPES):
    """(tenant, name) of the dclab network a Neutron network maps to, or
    None when dclab does not carry networks of its type."""
    name = names.network_name(network["id"])
    if name is None or not is_mirrored(network, network_types):
        return None
    return names.tenant_name(project_of(network)), name


def network_spec(network, subnet, network_types=DEFAULT_NETWORK_TYPES):
    ref = network_ref(network, network_types)
    if ref is None or subnet is None or subnet.get("ip_version") != 4:
        return None
    return NetworkSpec(tenant=ref[0], name=ref[1], cidr=subnet["cidr"])


def dclab_host(neutron_host, host_map=None):
    """binding:host_id -> dclab host id (identity unless mapped)."""
    return (host_map or {}).get(neutron_host, neutron_host)


def first_ipv4(fixed_ips):
    for fixed in fixed_ips or ():
        try:
            if ipaddress.ip_address(fixed.get("ip_address", "")).version == 4:
                return fixed["ip_address"]
        except ValueError:
            continue
    return None


def port_spec(port, network, host_map=None, network_types=DEFAULT_NETWORK_TYPES):
    """The dclab port a Neutron port stands for, or None when it is not
    pushed (not bound, no IPv4, or on a network dclab does not carry)."""
    host = port.get("binding:host_id")
    ip = first_ipv4(port.get("fixed_ips"))
    name = names.port_name(port["id"])
    ref = network_ref(network, network_types)
    if not host or ip is None or name is None or ref is None:
        return None
    kind = "router" if port.get("device_owner") in ROUTER_OWNERS else "vm"
    return PortSpec(name=name, tenant=ref[0], network=ref[1], host=dclab_host(host, host_map),
                    mac=port["mac_address"].lower(), ip=ip, kind=kind)
