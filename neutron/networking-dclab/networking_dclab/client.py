"""A small gRPC client of the dclab coordinator.

Mutual TLS with an operator certificate (https://), or plaintext for a
coordinator started with --insecure (http://). Methods are called through
grpcio's generic unary_unary with the generated messages; their request and
response types come from the proto's own service descriptor, so a call
cannot be wired to the wrong message. Every gRPC failure becomes one
exception, CoordinatorError, carrying the status code and the coordinator's
message.
"""

import os
from urllib.parse import urlsplit

import grpc

from networking_dclab import native
from networking_dclab.messages import pb

# The coordinator is down, restarting or unreachable: retry later.
UNAVAILABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# The coordinator refused the input itself: retrying the same call cannot help.
REFUSED = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})

# Reconnect soon after a coordinator restart. By default grpc's backoff
# grows to two minutes, and a channel whose connects failed re-resolves the
# address (and so reconnects) at most every 30 s: either would hold the
# backlog long after the coordinator is back. (Not min_reconnect_backoff_ms:
# it is also the connect timeout.)
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
)


class CoordinatorError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `message` the coordinator's."""

    def __init__(self, call, code, message):
        self.call = call
        self.code = code
        self.message = message
        super().__init__(f"{call}: {code.name}: {message}")

    @property
    def unavailable(self):
        return self.code in UNAVAILABLE

    @property
    def refused(self):
        return self.code in REFUSED


def _outside_eventlet(fn):
    """Runs a blocking grpc call. grpcio is not eventlet-aware: in the
    green main thread of neutron-server a call would block every green
    thread of the process, so there it runs in a native thread of eventlet's
    pool (native.py says where else it may simply block)."""
    if native.in_green_main_thread():
        from eventlet import tpool
        return tpool.execute(fn)
    return fn()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Coordinator:
    """Calls of the coordinator's Topology and Labs services (and, for tests
    and tools, any other by name)."""

    def __init__(self, url, ca=None, cert=None, key=None, timeout=10.0, wait_for_ready=False):
        """`wait_for_ready`: calls wait (up to their timeout) for the
        coordinator to be reachable instead of failing at once. A waiting
        call also drives the reconnection, so a worker that retries learns
        within milliseconds that the coordinator is back."""
        target, secure = parse_url(url)
        self.url = url
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        if secure:
            if not (ca and cert and key):
                raise ValueError(f"{url} needs TLS: give the CA, certificate and key")
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(ca), private_key=_read(key),
                certificate_chain=_read(cert))
            self._channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stubs = {}

    @classmethod
    def from_pki_dir(cls, url, pki_dir, role_file="operator", **kwargs):
        """Certificates laid out as `ctl certs init` writes them."""
        return cls(url, ca=os.path.join(pki_dir, "ca.crt"),
                   cert=os.path.join(pki_dir, f"{role_file}.crt"),
                   key=os.path.join(pki_dir, f"{role_file}.key"), **kwargs)

    def close(self):
        self._channel.close()

    def call(self, service, method, request, timeout=None):
        """One unary call by name, e.g. call("Topology", "Status", pb.StatusRequest())."""
        stub = self._stub(service, method)
        timeout = self.timeout if timeout is None else timeout
        try:
            return _outside_eventlet(
                lambda: stub(request, timeout=timeout, wait_for_ready=self.wait_for_ready))
        except grpc.RpcError as e:
            raise CoordinatorError(method, e.code(), e.details() or "") from None

    def _stub(self, service, method):
        key = (service, method)
        if key not in self._stubs:
            desc = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
            if desc.client_streaming or desc.server_streaming:
                raise ValueError(f"{service}/{method} is a streaming call")
            request_type = getattr(pb, desc.input_type.name)
            response_type = getattr(pb, desc.output_type.name)
            self._stubs[key] = self._channel.unary_unary(
                f"/{pb.DESCRIPTOR.package}.{service}/{method}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString)
        return self._stubs[key]

    def _topology(self, method, request, timeout=None):
        return self.call("Topology", method, request, timeout)

    # Topology: what the driver reads and writes.

    def status(self, timeout=None):
        return self._topology("Status", pb.StatusRequest(), timeout)

    def list_hosts(self, timeout=None):
        return list(self._topology("ListHosts", pb.ListHostsRequest(), timeout).hosts)

    def list_labs(self, timeout=None):
        return list(self.call("Labs", "ListLabs", pb.ListLabsRequest(), timeout).labs)

    def create_tenant(self, name, timeout=None):
        return self._topology("CreateTenant", pb.CreateTenantRequest(name=name), timeout)

    def list_tenants(self, timeout=None):
        return list(self._topology("ListTenants", pb.ListTenantsRequest(), timeout).tenants)

    def delete_tenant(self, name, timeout=None):
        self._topology("DeleteTenant", pb.DeleteTenantRequest(name=name), timeout)

    def create_network(self, tenant, name, cidr, timeout=None):
        request = pb.CreateNetworkRequest(tenant=tenant, name=name, cidr=cidr)
        return self._topology("CreateNetwork", request, timeout)

    def list_networks(self, tenant="", timeout=None):
        request = pb.ListNetworksRequest(tenant=tenant)
        return list(self._topology("ListNetworks", request, timeout).networks)

    def delete_network(self, tenant, name, timeout=None):
        self._topology("DeleteNetwork", pb.DeleteNetworkRequest(tenant=tenant, name=name), timeout)

    def create_port(self, request, timeout=None):
        """`request` is a pb.CreatePortRequest (see translate.port_request)."""
        return self._topology("CreatePort", request, timeout)

    def list_ports(self, tenant="", network="", host="", timeout=None):
        request = pb.ListPortsRequest(tenant=tenant, network=network, host=host)
        return list(self._topology("ListPorts", request, timeout).ports)

    def delete_port(self, name, timeout=None):
        self._topology("DeletePort", pb.DeletePortRequest(name=name), timeout)


def parse_url(url):
    """(host:port, uses TLS) from https://HOST:PORT, http://HOST:PORT or HOST:PORT
    (taken as https, as ctl does)."""
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise ValueError(f"bad coordinator URL {url!r}; expected https://HOST:PORT")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}", parts.scheme == "https"
