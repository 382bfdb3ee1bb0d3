"""The ML2 mechanism driver `dclab`.

Precommit methods record what changes for dclab in the journal, inside
Neutron's transaction; postcommit methods wake the worker that pushes it.
A subnet create is also checked against the coordinator right away (see
_validate_network): it is the change dclab may refuse for reasons Neutron
cannot see (CIDRs overlapping within a tenant), and refusing it must fail
the Neutron call. Port binding hands nova an OvS port on the dclab bridge;
os-vif names the interface's iface-id after the Neutron port id, which is
the dclab port's name, so the agent attaches it as it does any port.
"""

import os
import time

import grpc
from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log

from networking_dclab import config, native, push, translate
from networking_dclab.client import Coordinator, CoordinatorError
from networking_dclab.journal import Journal
from networking_dclab.sync import NeutronView, Synchronizer
from networking_dclab.worker import Worker

LOG = log.getLogger(__name__)

HOSTS_REFRESH_SECONDS = 10.0


class CoordinatorRefusedInput(n_exc.BadRequest):
    message = "The dclab coordinator refused the %(resource)s: %(msg)s"


class CoordinatorRefusedConflict(n_exc.Conflict):
    message = "The dclab coordinator refused the %(resource)s: %(msg)s"


class SecondIPv4Subnet(n_exc.BadRequest):
    message = ("Network %(network)s already has the IPv4 subnet %(subnet)s; "
               "a dclab network carries exactly one IPv4 subnet")


def refusal(resource, error):
    """The Neutron exception (HTTP 400 or 409) for a coordinator refusal."""
    bad_input = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)
    cls = CoordinatorRefusedInput if error.code in bad_input else CoordinatorRefusedConflict
    return cls(resource=resource, msg=error.message)


def plugin_context(context):
    return getattr(context, "plugin_context", None) or context._plugin_context


class DclabMechanismDriver(api.MechanismDriver):

    def initialize(self):
        self.conf = config.register(self.config_object())
        self.host_map = dict(self.conf.host_map)
        self.network_types = tuple(self.conf.network_types)
        self.journal = Journal(self.journal_engine())
        synchronizer = Synchronizer(self.neutron_view, self.host_map, self.network_types)
        self.worker = Worker(self.journal, self.make_client, synchronizer,
                             sync_interval=self.conf.sync_interval,
                             backoff_max=self.conf.retry_max_interval,
                             poll_interval=self.conf.journal_poll_interval)
        self._clients = {}
        self._hosts = (set(), 0.0)
        self._lock = native.threads().Lock()
        registry.subscribe(self._process_started, resources.PROCESS, events.AFTER_INIT)

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    # Wiring, overridden by the tests.

    def config_object(self):
        return cfg.CONF

    def journal_engine(self):
        """Neutron's own database: the journal commits with its changes."""
        from neutron_lib.db import api as db_api
        return db_api.get_context_manager().writer.get_engine()

    def neutron_view(self):
        plugin = directory.get_plugin()
        ctx = n_context.get_admin_context()
        return NeutronView(networks=plugin.get_networks(ctx), subnets=plugin.get_subnets(ctx),
                           ports=plugin.get_ports(ctx))

    def make_client(self, timeout=None, wait_for_ready=True):
        """The worker's client waits for the coordinator within its timeout
        (and so reconnects promptly); calls made inside a Neutron request
        fail at once instead (wait_for_ready=False)."""
        ca, cert, key = config.tls_files(self.conf)
        return Coordinator(self.conf.coordinator, ca=ca, cert=cert, key=key,
                           timeout=timeout or self.conf.timeout, wait_for_ready=wait_for_ready)

    def _client(self, purpose, timeout):
        """One client per process and purpose: channels do not survive a fork."""
        key = (os.getpid(), purpose)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.make_client(timeout, wait_for_ready=False)
            return self._clients[key]

    def _process_started(self, resource, event, trigger, payload=None):
        if native.runs_journal_worker():
            self.worker.ensure_running()

    def _wake(self):
        # Under uWSGI another process's worker pushes the entry (native.py).
        if native.runs_journal_worker():
            self.worker.ensure_running()
            self.journal.wake()

    def stop(self):
        """Stops the worker and closes channels (tests; neutron-server just exits)."""
        registry.unsubscribe(self._process_started, resources.PROCESS, events.AFTER_INIT)
        self.worker.stop()
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # Networks: a dclab network exists once the network has its IPv4 subnet.

    def delete_network_precommit(self, context):
        ref = translate.network_ref(context.current, self.network_types)
        if ref is not None:
            self.journal.record_network_delete(plugin_context(context).session, *ref)

    def delete_network_postcommit(self, context):
        self._wake()

    def create_subnet_precommit(self, context):
        spec = translate.network_spec(context.network.current, context.current,
                                      self.network_types)
        if spec is None:
            return
        self._refuse_second_ipv4_subnet(context)
        # Checked after the tenant's earlier network changes reached the
        # coordinator: it must judge this subnet in Neutron's order.
        settled = self.journal.wait_settled(spec.tenant, self.conf.validate_timeout)
        self.journal.record_network(plugin_context(context).session, spec)
        if not settled:
            LOG.warning("dclab journal still holds network changes of tenant %s; "
                        "subnet %s is checked by the coordinator when it is pushed",
                        spec.tenant, context.current["id"])
            return
        self._validate_network(spec)

    def create_subnet_postcommit(self, context):
        self._wake()

    def delete_subnet_precommit(self, context):
        spec = translate.network_spec(context.network.current, context.current,
                                      self.network_types)
        if spec is not None:
            self.journal.record_network_delete(plugin_context(context).session,
                                               spec.tenant, spec.name)

    def delete_subnet_postcommit(self, context):
        self._wake()

    def _refuse_second_ipv4_subnet(self, context):
        plugin = getattr(context, "_plugin", None) or directory.get_plugin()
        network_id = context.current["network_id"]
        subnets = plugin.get_subnets(plugin_context(context),
                                     filters={"network_id": [network_id], "ip_version": [4]})
        other = [s for s in subnets if s["id"] != context.current["id"]]
        if other:
            raise SecondIPv4Subnet(network=network_id, subnet=other[0]["cidr"])

    def _validate_network(self, spec):
        """Writes the network now, inside Neutron's transaction, so a refusal
        rolls the subnet back with the coordinator's message. The journal
        entry recorded beside it finds the network there (idempotent). If
        Neutron's transaction rolls back later anyway, the full sync removes
        the network. An unreachable coordinator cannot judge: the subnet is
        accepted and its entry waits in the journal like any other."""
        client = self._client("validate", self.conf.validate_timeout)
        try:
            push.ensure_network(client, spec)
        except CoordinatorError as e:
            if e.refused:
                raise refusal("subnet", e) from None
            LOG.warning("dclab coordinator could not check network %s (%s); "
                        "accepted, the journal pushes it later", spec.name, e)

    # Ports.

    def _port_spec(self, port, network):
        if port is None:
            return None
        return translate.port_spec(port, network, self.host_map, self.network_types)

    def create_port_precommit(self, context):
        spec = self._port_spec(context.current, context.network.current)
        if spec is not None:
            self.journal.record_port(plugin_context(context).session, spec)

    def create_port_postcommit(self, context):
        self._wake()

    def update_port_precommit(self, context):
        network = context.network.current
        new = self._port_spec(context.current, network)
        old = self._port_spec(context.original, network)
        session = plugin_context(context).session
        if new is not None and new != old:
            self.journal.record_port(session, new)
        elif new is None and old is not None:
            self.journal.record_port_delete(session, old.name)

    def update_port_postcommit(self, context):
        self._wake()

    def delete_port_precommit(self, context):
        spec = self._port_spec(context.current, context.network.current)
        if spec is not None:
            self.journal.record_port_delete(plugin_context(context).session, spec.name)

    def delete_port_postcommit(self, context):
        self._wake()

    # Binding.

    def bind_port(self, context):
        host = translate.dclab_host(context.host, self.host_map)
        if not self._is_dclab_host(host):
            LOG.debug("not binding port %s: host %s has no dclab agent",
                      context.current["id"], host)
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in self.network_types:
                # ACTIVE at once: nova then does not wait for a vif-plugged
                # event, which the driver cannot send (the coordinator tells
                # no per-port attachment).
                context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                    self.vif_details(), status=n_const.PORT_STATUS_ACTIVE)
                return

    def vif_details(self):
        return {
            portbindings.CAP_PORT_FILTER: False,
            portbindings.OVS_HYBRID_PLUG: False,
            portbindings.VIF_DETAILS_BRIDGE_NAME: self.conf.bridge,
            portbindings.OVS_DATAPATH_TYPE: self.conf.datapath_type,
            portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2,
        }

    def _is_dclab_host(self, host):
        """Whether the coordinator knows the host (its agent registered).
        The list is cached and re-read on a miss at most every few seconds;
        with the coordinator down, the cached list decides."""
        known, read_at = self._hosts
        if host in known:
            return True
        if read_at and time.monotonic() - read_at < HOSTS_REFRESH_SECONDS:
            return False
        try:
            hosts = self._client("bind", self.conf.validate_timeout).list_hosts()
        except CoordinatorError as e:
            LOG.warning("dclab coordinator unreachable listing hosts (%s)", e)
            return host in known
        self._hosts = ({h.id for h in hosts}, time.monotonic())
        return host in self._hosts[0]
