"""Neutron port create to "agent applied" on this compute node, port after
port, the way Nova plugs an instance: create the port bound to this host,
plug a device for it as soon as the create answers, and time until the
host's network agent has applied it.

    dclab-neutron-bench PORTS [OPENRC]

"Applied" is what each backend's agent itself does last:
- dclab: the dclab agent's flows for the port (a flow matching the
  device's OvS port number) are on the bridge br-dclab;
- linuxbridge or openvswitch: Neutron's own agent reported the device up
  and Neutron set the port ACTIVE (the agent's report is the only sign of
  "applied" that Neutron has; iptables and bridge state come before it).

The ports go on a network of their own without DHCP (dclab-bench,
10.99.0.0/24), so no DHCP agent's provisioning block is in the figure.
Everything made is removed at the end, also after a failure. Prints one
JSON object: the backend and, per port, create and applied in ms.

Uses dclab_os.check for the HTTP calls and the session.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

from . import check as oscheck

sh = oscheck.sh

NETWORK = "dclab-bench"
CIDR = "10.99.0.0/24"
BRIDGE = "br-dclab"
APPLIED_WITHIN = 60.0


def need(status, what, *good):
    if status not in good:
        raise SystemExit(f"{what}: HTTP {status}")


def backend(s, host):
    """dclab when this host has the dclab bridge, else the Neutron agent's type."""
    if subprocess.run(["ovs-vsctl", "br-exists", BRIDGE], capture_output=True).returncode == 0:
        return "dclab"
    status, _, reply = s.get("network", f"/v2.0/agents?host={host}")
    need(status, "agent list", 200)
    for agent in reply["agents"]:
        if agent["agent_type"] == "Linux bridge agent":
            return "linuxbridge"
        if agent["agent_type"] == "Open vSwitch agent":
            return "openvswitch"
    raise SystemExit(f"no dclab bridge and no Neutron L2 agent on {host}")


def make_network(s, kind):
    # neutron-server may be restarting: ask again while it does not answer.
    status, _, reply = oscheck.patiently(time.time() + 120, s.get, "network",
                                         f"/v2.0/networks?name={NETWORK}")
    need(status, "network list", 200)
    # What a run cut short left: its ports, their devices, the network.
    for net in reply["networks"]:
        status, _, ports = s.get("network", f"/v2.0/ports?network_id={net['id']}")
        need(status, "port list", 200)
        for port in ports["ports"]:
            unplug(kind, port["id"])
            s.send("DELETE", "network", "/v2.0/ports/" + port["id"])
        s.send("DELETE", "network", "/v2.0/networks/" + net["id"])
    status, _, reply = s.send("POST", "network", "/v2.0/networks", {"network": {"name": NETWORK}})
    need(status, "network create", 201)
    net = reply["network"]["id"]
    status, _, _ = s.send("POST", "network", "/v2.0/subnets", {"subnet": {
        "name": NETWORK, "network_id": net, "ip_version": 4, "cidr": CIDR,
        "enable_dhcp": False, "gateway_ip": None}})
    need(status, "subnet create", 201)
    return net


def device(port_id):
    """Nova's device name for the port (linuxbridge finds ports by it)."""
    return "tap" + port_id[:11]


def plug(kind, port_id, mac):
    dev = device(port_id)
    sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "bp" + port_id[:11])
    sh("ip", "link", "set", dev, "up")
    if kind == "dclab":
        sh("ovs-vsctl", "add-port", BRIDGE, dev, "--", "set", "Interface", dev,
           f"external_ids:iface-id={port_id}")
    elif kind == "openvswitch":
        sh("ovs-vsctl", "add-port", "br-int", dev, "--", "set", "Interface", dev,
           f"external_ids:iface-id={port_id}", "external_ids:iface-status=active",
           "external_ids:attached-mac=" + mac)


def unplug(kind, port_id):
    dev = device(port_id)
    if kind in ("dclab", "openvswitch"):
        sh("ovs-vsctl", "--if-exists", "del-port", dev, check=False)
    sh("ip", "link", "del", dev, check=False)


def applied(kind, s, port_id):
    if kind == "dclab":
        ofport = sh("ovs-vsctl", "get", "Interface", device(port_id), "ofport").strip()
        if not ofport.isdigit() or int(ofport) <= 0:
            return False
        # The bridge speaks OpenFlow 1.3 only.
        flows = sh("ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", BRIDGE)
        return re.search(rf"\bin_port={ofport}[, ]", flows) is not None
    status, _, reply = s.get("network", f"/v2.0/ports/{port_id}?fields=status")
    return status == 200 and reply["port"]["status"] == "ACTIVE"


def bench(count, openrc):
    s = oscheck.Session(oscheck.openrc(openrc))
    host = socket.gethostname()
    kind = backend(s, host)
    net = make_network(s, kind)
    made, samples = [], []
    try:
        for i in range(count):
            t0 = time.monotonic()
            status, _, reply = s.send("POST", "network", "/v2.0/ports", {"port": {
                "name": f"bench-{i}", "network_id": net, "binding:host_id": host,
                "device_owner": "dclab:bench", "device_id": f"dclab-bench-{i}"}})
            need(status, f"port create bench-{i}", 201)
            created = time.monotonic()
            port_id = reply["port"]["id"]
            made.append(port_id)
            plug(kind, port_id, reply["port"]["mac_address"])
            pause = 0.02 if kind == "dclab" else 0.05
            while not applied(kind, s, port_id):
                if time.monotonic() - t0 > APPLIED_WITHIN:
                    raise SystemExit(f"port {port_id} not applied by the {kind} agent "
                                     f"within {APPLIED_WITHIN:.0f} s")
                time.sleep(pause)
            done = time.monotonic()
            samples.append({"create_ms": (created - t0) * 1000, "applied_ms": (done - t0) * 1000})
            print(f"port {i + 1}/{count}: applied after {(done - t0) * 1000:.0f} ms", file=sys.stderr)
    finally:
        for port_id in made:
            unplug(kind, port_id)
            oscheck.patiently(time.time() + 60, s.send, "DELETE", "network", "/v2.0/ports/" + port_id)
        oscheck.patiently(time.time() + 60, s.send, "DELETE", "network", "/v2.0/networks/" + net)
    print(json.dumps({"backend": kind, "host": host, "samples": samples}))
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help") or not argv[1].isdigit() or int(argv[1]) < 1:
        print(__doc__.strip(), file=sys.stderr if len(argv) < 2 else sys.stdout)
        return 0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2
    try:
        return bench(int(argv[1]), argv[2] if len(argv) > 2 else "/root/admin-openrc")
    except oscheck.NoAnswer as e:
        print(e, file=sys.stderr)
        return 2
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        raise

