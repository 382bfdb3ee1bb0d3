"""The coordinator writes a journal entry stands for, each idempotent.

An entry may be pushed twice (the precommit validation already wrote it,
a worker died after the write and before deleting the entry, a full sync
got there first), so "already there, the same" counts as done and "already
gone" as deleted. What differs or cannot be done raises CoordinatorError.
"""

import grpc

from networking_dclab.client import CoordinatorError
from networking_dclab.translate import NetworkSpec, PortSpec

ENSURE_NETWORK = "ensure_network"
DELETE_NETWORK = "delete_network"
PUT_PORT = "put_port"
DELETE_PORT = "delete_port"

_EXISTS = grpc.StatusCode.ALREADY_EXISTS
_NOT_FOUND = grpc.StatusCode.NOT_FOUND
_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def _tolerating(codes, call, *args):
    """call(*args), where a refusal with one of `codes` means done."""
    try:
        call(*args)
    except CoordinatorError as e:
        if e.code not in codes:
            raise


def ensure_tenant(client, tenant):
    _tolerating((_EXISTS,), client.create_tenant, tenant)


def ensure_network(client, spec):
    """The tenant and the network with this CIDR exist. A network of the
    same name with another CIDR is a refusal (ALREADY_EXISTS)."""
    ensure_tenant(client, spec.tenant)
    try:
        client.create_network(spec.tenant, spec.name, spec.cidr)
        return
    except CoordinatorError as e:
        if e.code != _EXISTS:
            raise
        first = e
    existing = next((n for n in client.list_networks(spec.tenant) if n.name == spec.name), None)
    if existing is None:
        raise first
    if existing.cidr != spec.cidr:
        raise CoordinatorError(
            "CreateNetwork", _EXISTS,
            f"network {spec.name} of tenant {spec.tenant} already has CIDR "
            f"{existing.cidr}; dclab carries one IPv4 subnet per network")


def delete_network(client, tenant, name):
    """Deletes the network, then its tenant once it has no network left."""
    _tolerating((_NOT_FOUND,), client.delete_network, tenant, name)
    # Other networks left, or gone already: both are fine.
    _tolerating((_NOT_FOUND, _PRECONDITION), client.delete_tenant, tenant)


def find_port(client, spec):
    """The coordinator's port of this name in the spec's tenant, as a spec."""
    for port in client.list_ports(tenant=spec.tenant):
        if port.name == spec.name:
            return PortSpec.from_port(port)
    return None


def put_port(client, spec):
    """The port exists as specified; one that differs is replaced (the
    coordinator has no update call, so this is a delete and a create)."""
    try:
        client.create_port(spec.request())
        return
    except CoordinatorError as e:
        if e.code != _EXISTS:
            raise
        first = e
    existing = find_port(client, spec)
    if existing == spec:
        return
    if existing is None:
        # The name (or the IP or MAC) is taken outside this tenant.
        raise first
    delete_port(client, spec.name)
    client.create_port(spec.request())


def delete_port(client, name):
    _tolerating((_NOT_FOUND,), client.delete_port, name)


def apply(client, operation, payload):
    """Pushes one journal entry."""
    if operation == ENSURE_NETWORK:
        ensure_network(client, NetworkSpec(**payload))
    elif operation == DELETE_NETWORK:
        delete_network(client, payload["tenant"], payload["name"])
    elif operation == PUT_PORT:
        put_port(client, PortSpec(**payload))
    elif operation == DELETE_PORT:
        delete_port(client, payload["name"])
    else:
        raise ValueError(f"unknown journal operation {operation!r}")
