"""dclab's helpers on OpenStack nodes: `check`, the small OpenStack client
the experiments check with (dclab-os-check), `tenants`, the isolation
matrix through OpenStack's APIs (dclab-tenants-check), and `bench`, Neutron
port create to applied (dclab-neutron-bench). Python's standard library
only. The identity chapter installs the package in /usr/local/lib/dclab and
the three commands, thin entry points, in /usr/local/bin."""
