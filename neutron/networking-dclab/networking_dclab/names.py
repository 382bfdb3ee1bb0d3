"""dclab names for Neutron objects.

dclab's one name rule (spec/src/validate/names.rs): 1 to 64 bytes of ASCII
letters, digits, '-', '_' and '.', starting with a letter or digit.

- Ports are named by their Neutron id, unchanged: the agent matches a port
  to the OvS interface whose external_ids:iface-id equals its name, and
  os-vif sets iface-id to the Neutron port id. Neutron makes every port id
  (a UUID, 36 bytes), so it is always a valid name.
- Networks are named by their Neutron id (a UUID) inside their tenant.
- Tenants are "os." + the project id. The '.' marks the tenant as the
  driver's: lab names never contain '.', so no lab's tenant can look like
  one. A project id that is not a valid name part (noauth setups accept any
  string up to 255 bytes) becomes "os.__" + 32 hex digits of its SHA-256;
  direct names never contain "__", so the two forms cannot collide.
"""

import hashlib
import re

MAX_NAME = 64
TENANT_PREFIX = "os."
_HASHED = "__"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def is_valid(name):
    """dclab's name rule, as the coordinator checks it."""
    return isinstance(name, str) and len(name) <= MAX_NAME and bool(_NAME.match(name))


def tenant_name(project_id):
    direct = TENANT_PREFIX + project_id
    if is_valid(direct) and _HASHED not in project_id:
        return direct
    digest = hashlib.sha256(project_id.encode("utf-8", "surrogatepass")).hexdigest()
    return TENANT_PREFIX + _HASHED + digest[:32]


def is_driver_tenant(name):
    """Tenants the driver created and may therefore delete."""
    return name.startswith(TENANT_PREFIX)


def network_name(network_id):
    """The Neutron network id, or None when dclab could not carry it."""
    return network_id if is_valid(network_id) else None


def port_name(port_id):
    """The Neutron port id (= OvS iface-id), or None when it is no valid name."""
    return port_id if is_valid(port_id) else None
