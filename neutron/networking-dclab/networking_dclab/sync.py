"""The full comparison of Neutron's topology with the coordinator's.

It computes what dclab should hold from Neutron's networks, subnets and
ports (translate.py), reads what the coordinator holds, and makes the
coordinator match: deletes first (ports, then networks, then tenants),
then creates, each difference logged. It runs at start, periodically, and
at once when the coordinator's store looks reset (SyncSchedule).

Only the driver's objects are compared: tenants named "os.<project>"
(names.py) and their networks and ports. Labs' tenants (named after the
lab, never with a '.'), their ports ("<lab>.<node>.<n>") and tenants
operators made by hand are never touched; a lab that somehow carries an
"os." name is left alone too, since ListLabs names it.

The coordinator is read before Neutron, and the sync runs on the journal's
worker between drains: a change Neutron commits meanwhile is then either
in both views or still in the journal, whose idempotent entries settle it.
"""

import dataclasses
import logging
import time

from networking_dclab import names, push, translate
from networking_dclab.client import CoordinatorError
from networking_dclab.translate import NetworkSpec, PortSpec

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class NeutronView:
    """Neutron's topology as the core plugin lists it (lists of dicts)."""
    networks: list
    subnets: list
    ports: list


@dataclasses.dataclass
class DclabState:
    tenants: set = dataclasses.field(default_factory=set)
    # (tenant, name) -> NetworkSpec
    networks: dict = dataclasses.field(default_factory=dict)
    # name -> PortSpec
    ports: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Change:
    action: str  # "create" or "delete"
    kind: str    # "tenant", "network" or "port"
    target: object  # tenant name, NetworkSpec or PortSpec
    reason: str

    def __str__(self):
        return f"{self.action} {self.kind} {describe(self.target)}: {self.reason}"


@dataclasses.dataclass
class SyncReport:
    changes: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (Change, CoordinatorError)
    desired_tenants: int = 0


def describe(target):
    if isinstance(target, NetworkSpec):
        return f"{target.name} ({target.cidr}) of tenant {target.tenant}"
    if isinstance(target, PortSpec):
        return (f"{target.name} ({target.kind} {target.ip} {target.mac} on {target.host}, "
                f"network {target.network} of tenant {target.tenant})")
    return str(target)


def desired_state(view, host_map=None, network_types=translate.DEFAULT_NETWORK_TYPES):
    state = DclabState()
    subnets = {}
    for subnet in view.subnets:
        subnets.setdefault(subnet["network_id"], []).append(subnet)
    carried = {}
    for network in view.networks:
        subnet = translate.defining_subnet(subnets.get(network["id"], []))
        spec = translate.network_spec(network, subnet, network_types)
        if spec is not None:
            state.networks[(spec.tenant, spec.name)] = spec
            state.tenants.add(spec.tenant)
            carried[network["id"]] = network
    for port in view.ports:
        network = carried.get(port["network_id"])
        spec = network and translate.port_spec(port, network, host_map, network_types)
        if spec:
            state.ports[spec.name] = spec
    return state


def coordinator_state(client):
    """The driver's part of what the coordinator holds."""
    labs = {lab.name for lab in client.list_labs()}
    owned = {t.name for t in client.list_tenants()
             if names.is_driver_tenant(t.name) and t.name not in labs}
    state = DclabState(tenants=owned)
    for n in client.list_networks():
        if n.tenant in owned:
            state.networks[(n.tenant, n.name)] = NetworkSpec(n.tenant, n.name, n.cidr)
    for p in client.list_ports():
        if p.tenant in owned:
            state.ports[p.name] = PortSpec.from_port(p)
    return state


def _differs(have, want):
    fields = [f.name for f in dataclasses.fields(have) if getattr(have, f.name) != getattr(want, f.name)]
    return ", ".join(f"{f} {getattr(have, f)} in dclab, {getattr(want, f)} in Neutron" for f in fields)


def plan(desired, actual):
    """The changes that make `actual` (the coordinator) match `desired`."""
    deletes, creates = [], []
    replaced_nets = set()
    for key, have in sorted(actual.networks.items()):
        want = desired.networks.get(key)
        if want != have:
            replaced_nets.add(key)
            why = "not in Neutron" if want is None else _differs(have, want)
            deletes.append(Change("delete", "network", have, why))
    port_deletes = []
    for name, have in sorted(actual.ports.items()):
        want = desired.ports.get(name)
        if (have.tenant, have.network) in replaced_nets and want == have:
            port_deletes.append(Change("delete", "port", have, "its network is replaced"))
        elif want != have:
            why = "not in Neutron" if want is None else _differs(have, want)
            port_deletes.append(Change("delete", "port", have, why))
    for tenant in sorted(actual.tenants - desired.tenants):
        deletes.append(Change("delete", "tenant", tenant, "no Neutron network of it"))
    for tenant in sorted(desired.tenants - actual.tenants):
        creates.append(Change("create", "tenant", tenant, "missing in dclab"))
    for key, want in sorted(desired.networks.items()):
        if key in replaced_nets or key not in actual.networks:
            creates.append(Change("create", "network", want, "missing in dclab"))
    deleted_ports = {c.target.name for c in port_deletes}
    for name, want in sorted(desired.ports.items()):
        if name in deleted_ports or name not in actual.ports:
            creates.append(Change("create", "port", want, "missing in dclab"))
    # Ports go before their networks, networks before their tenants.
    return port_deletes + deletes + creates


def apply_change(client, change):
    target = change.target
    if change.action == "delete":
        if change.kind == "port":
            push.delete_port(client, target.name)
        elif change.kind == "network":
            client.delete_network(target.tenant, target.name)
        else:
            client.delete_tenant(target)
    elif change.kind == "tenant":
        push.ensure_tenant(client, target)
    elif change.kind == "network":
        push.ensure_network(client, target)
    else:
        push.put_port(client, target)


class Synchronizer:
    def __init__(self, neutron_view, host_map=None, network_types=translate.DEFAULT_NETWORK_TYPES):
        """`neutron_view` is a callable returning a NeutronView."""
        self._neutron_view = neutron_view
        self._host_map = host_map or {}
        self._network_types = tuple(network_types)

    def run(self, client, why="periodic"):
        actual = coordinator_state(client)  # before Neutron: see the module doc
        desired = desired_state(self._neutron_view(), self._host_map, self._network_types)
        report = SyncReport(changes=plan(desired, actual), desired_tenants=len(desired.tenants))
        for change in report.changes:
            LOG.warning("dclab sync (%s): %s", why, change)
            try:
                apply_change(client, change)
            except CoordinatorError as e:
                if e.unavailable:
                    raise
                LOG.error("dclab sync: could not %s: %s", change, e)
                report.failed.append((change, e))
        LOG.info("dclab sync (%s) done: %d differences, %d failed",
                 why, len(report.changes), len(report.failed))
        return report


class SyncSchedule:
    """When to sync: at start, every `interval` seconds, and as soon as the
    coordinator's store looks reset. The coordinator has no store identity,
    so a reset shows as its revision going backwards (a new or restored
    store) or as a store with no tenant while Neutron has networks."""

    def __init__(self, interval, retry=5.0, clock=time.monotonic):
        """A sync that could not apply every change (a host whose agent has
        not registered yet, say) is retried after `retry` seconds, doubling
        up to `interval`."""
        self.interval = interval
        self._retry = retry
        self._failed_in_a_row = 0
        self._clock = clock
        self._next_at = None  # None: never synced, so due now
        self._last_revision = None
        self._expect_tenants = False
        self._reset = None

    def observe(self, status):
        """Called with every Status the worker reads."""
        if self._last_revision is not None and status.revision < self._last_revision:
            self._reset = (f"coordinator revision went back from {self._last_revision} "
                           f"to {status.revision}: its store was reset")
        elif self._expect_tenants and status.tenants == 0:
            self._reset = "coordinator store holds no tenant: it was reset"
        self._last_revision = status.revision

    def due(self):
        """Why a sync is due now, or None."""
        if self._reset:
            return self._reset
        if self._next_at is None:
            return "start"
        if self._clock() >= self._next_at:
            return "periodic"
        return None

    def synced(self, report):
        self._reset = None
        self._failed_in_a_row = self._failed_in_a_row + 1 if report.failed else 0
        wait = self.interval
        if self._failed_in_a_row:
            wait = min(self.interval, self._retry * 2 ** (self._failed_in_a_row - 1))
        self._next_at = self._clock() + wait
        self._expect_tenants = report.desired_tenants > 0
