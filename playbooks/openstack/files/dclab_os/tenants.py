"""The paper's isolation matrix (DCPortalsNG, Table 4) through OpenStack's
APIs, for neutron_backend = dclab: two projects with one network each on
the same 10.0.0.0/24, instances on both compute nodes with the same
addresses, every instance probing every address of the subnet that is in
use. Each instance runs its probes at boot (a shell script as user data,
run by the micro-VM's init from the config drive) and writes the results
to its console; this reads them back with Nova's console-output action.

    setup           projects, networks, ports and instances (idempotent)
    matrix [S]      wait up to S seconds (300) for every instance's probes;
                    print the matrix as JSON; 0 when it is the expected one
    routers [S]     per project: a router with interfaces on tenant-net
                    (10.0.0.1) and on a second network (tenant-net2,
                    10.1.0.0/24, 10.1.0.1), and an endpoint: a port at
                    10.1.0.5 on tenant-net2 bound to this host, plugged as a
                    network namespace on br-dclab. Run on a compute node,
                    after matrix: each endpoint pings every probed address
                    through its router (waiting up to S seconds, 240, for the
                    first answer); prints JSON; 0 when each endpoint reaches
                    exactly its own project's instances and resolves its
                    gateway to its own router. The namespaces are removed at
                    the end; teardown removes the rest.
    teardown        delete the instances, routers, ports, networks and
                    projects
    burst [N [K]]   create N ports (20) named burst-1.. on the admin's
                    selfservice network, bound to compute2, four at a time,
                    and SIGKILL the dclab coordinator once K (5) were asked
                    for; print their ids, one per line
    unburst         delete the ports named burst-*

Expected: a probe of an address that an instance of the prober's own project
has answers, and the prober's ARP entry holds that instance's MAC (never the
other project's instance with the same address, which may sit on the same
compute node); a probe of an address only the other project uses fails; a
probe sent from a spoofed source address fails.

Uses dclab_os.check for the HTTP calls and the session.
"""
import base64
import concurrent.futures
import json
import os
import subprocess
import time

from . import check as oscheck

sh = oscheck.sh

CIDR = "10.0.0.0/24"
GATEWAY = "10.0.0.1"
# The routers' second network, and the endpoint on it that pings through.
CIDR2, GATEWAY2, ENDPOINT = "10.1.0.0/24", "10.1.0.1", "10.1.0.5"
SPOOFED = "10.0.0.99"
# (project, instance, compute node, address): every address of one project
# is also used by the other, except .14, which only project b has.
INSTANCES = [
    ("dclab-a", "a1", "compute1", "10.0.0.11"),
    ("dclab-a", "a2", "compute2", "10.0.0.12"),
    ("dclab-a", "a3", "compute1", "10.0.0.13"),
    ("dclab-b", "b1", "compute2", "10.0.0.11"),
    ("dclab-b", "b2", "compute1", "10.0.0.12"),
    ("dclab-b", "b3", "compute2", "10.0.0.13"),
    ("dclab-b", "b4", "compute1", "10.0.0.14"),
]
PROBED = sorted({ip for _, _, _, ip in INSTANCES})
PROJECTS = sorted({p for p, _, _, _ in INSTANCES})


# Tries per probe, one second each: the instances boot one after another,
# and a probe of a peer that is still booting must not count as a failure.
TRIES = 40


def probe_script(own_ip):
    """The instance's user data: probes, then a line that says it is done."""
    lines = [
        "#!/bin/sh",
        # probe TARGET [PING OPTIONS]: ok at the first answer within TRIES tries.
        "probe() { t=$1; shift; i=0; while [ $i -lt %d ]; do" % TRIES,
        "  ping -c 1 -W 1 \"$@\" $t >/dev/null 2>&1 && return 0; i=$((i + 1)); done; return 1; }",
    ]
    for ip in PROBED:
        lines.append(
            f"if probe {ip}; then r=ok; else r=fail; fi; "
            f"m=$(ip neigh show {ip} | awk '{{for (i = 1; i < NF; i++) if ($i == \"lladdr\") print $(i+1)}}'); "
            f"echo \"dclab-probe {ip} $r ${{m:-none}}\"")
    peer = next(ip for ip in PROBED if ip != own_ip)
    lines += [
        f"ip addr add {SPOOFED}/24 dev eth0",
        f"if probe {peer} -I {SPOOFED}; then r=ok; else r=fail; fi",
        f"echo \"dclab-probe spoofed:{peer} $r none\"",
        f"ip addr del {SPOOFED}/24 dev eth0",
        "echo dclab-probe done",
    ]
    return "\n".join(lines) + "\n"


def admin():
    return oscheck.Session(oscheck.openrc(os.environ.get("OPENRC", "/root/admin-openrc")))


def scoped(project):
    env = dict(oscheck.openrc(os.environ.get("OPENRC", "/root/admin-openrc")))
    env["OS_PROJECT_NAME"] = project
    return oscheck.Session(env)


def ok(status, what, *good):
    if status not in (good or (200, 201, 202, 204)):
        raise SystemExit(f"{what}: HTTP {status}")


def listed(s, service, path, key):
    status, _, reply = s.get(service, path)
    ok(status, "GET " + path, 200)
    return reply[key]


def ensure_project(s, name):
    found = listed(s, "identity", f"/projects?name={name}", "projects")
    if found:
        return found[0]["id"]
    status, _, reply = s.send("POST", "identity", "/projects",
                              {"project": {"name": name, "domain_id": "default"}})
    ok(status, "project create " + name, 201)
    pid = reply["project"]["id"]
    user = listed(s, "identity", "/users?name=admin", "users")[0]["id"]
    role = listed(s, "identity", "/roles?name=admin", "roles")[0]["id"]
    status, _, _ = s.send("PUT", "identity", f"/projects/{pid}/users/{user}/roles/{role}")
    ok(status, "role assignment", 204)
    return pid


def ensure_network(s, project_id, name="tenant-net", subnet_name="tenant-subnet",
                   cidr=CIDR, gateway=GATEWAY):
    nets = listed(s, "network", f"/v2.0/networks?name={name}&project_id={project_id}", "networks")
    if nets:
        net = nets[0]["id"]
    else:
        status, _, reply = s.send("POST", "network", "/v2.0/networks",
                                  {"network": {"name": name, "project_id": project_id}})
        ok(status, "network create", 201)
        net = reply["network"]["id"]
    subs = listed(s, "network", f"/v2.0/subnets?network_id={net}", "subnets")
    if subs:
        return net, subs[0]["id"]
    # No DHCP: Nova then writes the static address and the gateway (the
    # project's router, once `routers` made it) into the config drive.
    status, _, reply = s.send("POST", "network", "/v2.0/subnets", {"subnet": {
        "name": subnet_name, "network_id": net, "project_id": project_id,
        "ip_version": 4, "cidr": cidr, "enable_dhcp": False, "gateway_ip": gateway}})
    ok(status, "subnet create", 201)
    return net, reply["subnet"]["id"]


def ensure_port(s, project_id, net, subnet, name, ip, **extra):
    ports = listed(s, "network", f"/v2.0/ports?name={name}&network_id={net}", "ports")
    if ports:
        return ports[0]
    status, _, reply = s.send("POST", "network", "/v2.0/ports", {"port": {
        "name": name, "network_id": net, "project_id": project_id,
        "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}], **extra}})
    ok(status, "port create " + name, 201)
    return reply["port"]


def setup(env):
    s = admin()
    image = s.find("image", "/v2/images?name=micro", "images", "micro")
    flavor = s.find("compute", "/flavors", "flavors", "m1.micro")
    ids = {p: ensure_project(s, p) for p in PROJECTS}
    nets = {p: ensure_network(s, ids[p]) for p in PROJECTS}
    for project, name, host, ip in INSTANCES:
        net, subnet = nets[project]
        port = ensure_port(s, ids[project], net, subnet, "port-" + name, ip)
        ps = scoped(project)
        if oscheck.patiently(time.time() + 120, oscheck.servers_named, ps, name):
            continue
        body = {"server": {
            "name": name, "imageRef": image, "flavorRef": flavor,
            "availability_zone": "nova:" + host,
            "networks": [{"port": port["id"]}],
            "config_drive": True,
            "user_data": base64.b64encode(probe_script(ip).encode()).decode()}}
        try:
            status, _, _ = ps.send("POST", "compute", "/servers", body)
        except oscheck.NoAnswer:
            # nova-api may have taken it without answering in time: look for
            # it by name before asking once more.
            time.sleep(5)
            if oscheck.patiently(time.time() + 120, oscheck.servers_named, ps, name):
                continue
            status, _, _ = ps.send("POST", "compute", "/servers", body)
        ok(status, "server create " + name, 202)
        print(f"{name}: booting on {host} at {ip} in {project} (port {port['id']}, {port['mac_address']})")
    return 0


def port_macs(s):
    """(project name, address) -> MAC of the instance's port."""
    ids = {p: listed(s, "identity", f"/projects?name={p}", "projects")[0]["id"] for p in PROJECTS}
    macs = {}
    for project, name, _, ip in INSTANCES:
        port = listed(s, "network", f"/v2.0/ports?name=port-{name}&project_id={ids[project]}", "ports")[0]
        macs[(project, ip)] = port["mac_address"]
    return macs


def console(s, server_id):
    status, _, reply = s.send("POST", "compute", f"/servers/{server_id}/action",
                              {"os-getConsoleOutput": {"length": 400}})
    return reply.get("output", "") if status == 200 and reply else ""


def probes(text):
    """{target: (result, mac)} from dclab-probe lines, or None before done."""
    found, done = {}, False
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "dclab-probe":
            if parts[1] == "done":
                done = True
            elif len(parts) == 4:
                found[parts[1]] = (parts[2], parts[3])
    return found if done else None


def expected(project, own_ip, target, macs):
    """(result, mac or None) the matrix must show."""
    if target.startswith("spoofed:"):
        return "fail", None
    mac = macs.get((project, target))
    return ("ok", mac) if mac else ("fail", None)


def probe_results(project, name):
    """The instance's probes once they are all on its console, else None."""
    s = scoped(project)
    servers = oscheck.servers_named(s, name)
    if servers and servers[0]["status"] == "ACTIVE":
        return probes(console(s, servers[0]["id"]))
    return None


def matrix(env, wait=300):
    deadline = time.time() + float(wait)
    # A loaded nova-api can miss one 10 s timeout: ask again until the deadline.
    macs = oscheck.patiently(deadline, lambda: port_macs(admin()))
    results = {}
    while True:
        for project, name, _, ip in INSTANCES:
            if name in results:
                continue
            got = oscheck.patiently(deadline, probe_results, project, name)
            if got is not None:
                results[name] = got
        if len(results) == len(INSTANCES) or time.time() > deadline:
            break
        time.sleep(5)
    rows, good = [], True
    for project, name, host, ip in INSTANCES:
        got = results.get(name)
        if got is None:
            rows.append({"instance": name, "project": project, "host": host, "ip": ip,
                         "error": "no probe results on the console"})
            good = False
            continue
        for target in PROBED + [t for t in got if t.startswith("spoofed:")]:
            want_result, want_mac = expected(project, ip, target, macs)
            result, mac = got.get(target, ("missing", "none"))
            # An instance's probe of its own address never leaves it.
            right = result == want_result and (want_mac is None or target == ip or mac == want_mac)
            good &= right
            rows.append({"instance": name, "project": project, "host": host, "ip": ip,
                         "target": target, "result": result, "mac": mac,
                         "expected": want_result, "expected_mac": want_mac, "right": right})
    print(json.dumps({"rows": rows, "right": good}, indent=1))
    return 0 if good else 1


def ensure_router(s, project_id, nets):
    """The project's router, with an interface on each of NETS
    [(network, subnet, name of the interface's port, address)]."""
    found = listed(s, "network", f"/v2.0/routers?name=tenant-router&project_id={project_id}", "routers")
    if found:
        router = found[0]["id"]
    else:
        status, _, reply = s.send("POST", "network", "/v2.0/routers",
                                  {"router": {"name": "tenant-router", "project_id": project_id}})
        ok(status, "router create", 201)
        router = reply["router"]["id"]
    macs = {}
    for net, subnet, name, ip in nets:
        port = ensure_port(s, project_id, net, subnet, name, ip)
        if not port["device_id"]:
            status, _, _ = s.send("PUT", "network", f"/v2.0/routers/{router}/add_router_interface",
                                  {"port_id": port["id"]})
            ok(status, "router interface " + name, 200)
        macs[ip] = port["mac_address"]
    return router, macs


def ns_of(project):
    return "dclab-ep-" + project


def plug_endpoint(project, port):
    """PORT as a namespace on br-dclab, the way Nova plugs an instance."""
    ns, dev, inner = ns_of(project), "tap" + port["id"][:11], "ep" + port["id"][:11]
    unplug_endpoint(project, port)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", dev, "type", "veth", "peer", "name", inner)
    sh("ovs-vsctl", "add-port", "br-dclab", dev, "--", "set", "Interface", dev,
       f"external_ids:iface-id={port['id']}", f"external_ids:attached-mac={port['mac_address']}",
       "external_ids:iface-status=active")
    sh("ip", "link", "set", dev, "up")
    sh("ip", "link", "set", inner, "netns", ns)
    for cmd in (["ip", "link", "set", inner, "address", port["mac_address"]],
                ["ip", "addr", "add", ENDPOINT + "/24", "dev", inner],
                ["ip", "link", "set", inner, "up"],
                ["ip", "link", "set", "lo", "up"],
                ["ip", "route", "add", "default", "via", GATEWAY2]):
        sh("ip", "netns", "exec", ns, *cmd)


def unplug_endpoint(project, port):
    dev = "tap" + port["id"][:11]
    sh("ovs-vsctl", "--if-exists", "del-port", "br-dclab", dev, check=False)
    sh("ip", "link", "del", dev, check=False)
    sh("ip", "netns", "del", ns_of(project), check=False)


def pings(project, target, tries):
    for _ in range(tries):
        if subprocess.run(["ip", "netns", "exec", ns_of(project), "ping", "-c", "1", "-W", "1", target],
                          capture_output=True).returncode == 0:
            return True
    return False


def router_setup(s, ids, host):
    """Each project's router, its interfaces and the endpoint's port bound
    to HOST: {project: (router, {address: interface MAC}, port)}. Safe to
    ask again: everything is looked up by name before it is made."""
    made = {}
    for project in PROJECTS:
        net, subnet = ensure_network(s, ids[project])
        net2, subnet2 = ensure_network(s, ids[project], "tenant-net2", "tenant-subnet2",
                                       CIDR2, GATEWAY2)
        router, router_macs = ensure_router(s, ids[project], [
            (net, subnet, "router-net", GATEWAY), (net2, subnet2, "router-net2", GATEWAY2)])
        port = ensure_port(s, ids[project], net2, subnet2, "endpoint", ENDPOINT,
                           **{"binding:host_id": host})
        made[project] = (router, router_macs, port)
    return made


def routers(env, wait="240"):
    s = admin()
    deadline = time.time() + float(wait)
    macs = oscheck.patiently(deadline, port_macs, s)
    ids = oscheck.patiently(deadline, lambda: {
        p: listed(s, "identity", f"/projects?name={p}", "projects")[0]["id"] for p in PROJECTS})
    made = oscheck.patiently(deadline, router_setup, s, ids, os.uname().nodename)
    out, good, plugged = {}, True, []
    try:
        for project, (router, router_macs, port) in made.items():
            plugged.append((project, port))
            plug_endpoint(project, port)
            out[project] = {"router": router, "router_macs": router_macs,
                            "instance_macs": {ip: mac for (p, ip), mac in macs.items() if p == project},
                            "probes": {}}
        for project in PROJECTS:
            # The L3 agent sets the router up, the dclab agents map its
            # interfaces and the endpoint: the first answer may take a while.
            up = pings(project, GATEWAY2, max(1, int(deadline - time.time())))
            # Both of the router's addresses, then every probed instance.
            for target in [GATEWAY2, GATEWAY] + PROBED:
                want = "ok" if target in (GATEWAY, GATEWAY2) or (project, target) in macs else "fail"
                got = "ok" if up and pings(project, target, 10 if want == "ok" else 3) else "fail"
                good &= got == want
                out[project]["probes"][target] = {"result": got, "expected": want}
            neigh = sh("ip", "netns", "exec", ns_of(project), "ip", "neigh", "show", GATEWAY2).split()
            gw_mac = neigh[neigh.index("lladdr") + 1] if "lladdr" in neigh else "none"
            out[project]["gateway_mac"] = gw_mac
            good &= gw_mac == out[project]["router_macs"][GATEWAY2]
    finally:
        for project, port in plugged:
            unplug_endpoint(project, port)
    print(json.dumps({"projects": out, "right": good}, indent=1))
    return 0 if good else 1


def teardown(env):
    s = admin()
    for project, name, _, _ in INSTANCES:
        if listed(s, "identity", f"/projects?name={project}", "projects"):
            ps = scoped(project)
            for server in oscheck.servers_named(ps, name):
                ps.send("DELETE", "compute", "/servers/" + server["id"])
    deadline = time.time() + 240

    def left():
        return any(oscheck.servers_named(scoped(p), n) for p, n, _, _ in INSTANCES
                   if listed(s, "identity", f"/projects?name={p}", "projects"))
    while oscheck.patiently(deadline, left):
        if time.time() > deadline:
            raise SystemExit("instances still there after 240 s")
        time.sleep(3)
    for project in PROJECTS:
        found = listed(s, "identity", f"/projects?name={project}", "projects")
        if not found:
            continue
        pid = found[0]["id"]
        for router in listed(s, "network", f"/v2.0/routers?project_id={pid}", "routers"):
            for port in listed(s, "network", f"/v2.0/ports?device_id={router['id']}", "ports"):
                s.send("PUT", "network", f"/v2.0/routers/{router['id']}/remove_router_interface",
                       {"port_id": port["id"]})
            s.send("DELETE", "network", "/v2.0/routers/" + router["id"])
        for port in listed(s, "network", f"/v2.0/ports?project_id={pid}", "ports"):
            s.send("DELETE", "network", "/v2.0/ports/" + port["id"])
        for net in listed(s, "network", f"/v2.0/networks?project_id={pid}", "networks"):
            s.send("DELETE", "network", "/v2.0/networks/" + net["id"])
        s.send("DELETE", "identity", "/projects/" + pid)
    print("removed")
    return 0


def burst_port(s, net, name):
    """The id of port NAME, created bound to compute2 unless it is there; a
    create that got no answer (neutron-api under load, or taken without
    answering in time) is looked up by name before it is asked again."""
    deadline = time.time() + 240
    while True:
        try:
            found = listed(s, "network", f"/v2.0/ports?name={name}&network_id={net}", "ports")
            if found:
                return found[0]["id"]
            status, _, reply = s.send("POST", "network", "/v2.0/ports", {"port": {
                "name": name, "network_id": net, "binding:host_id": "compute2"}})
            ok(status, "port create " + name, 201)
            return reply["port"]["id"]
        except oscheck.NoAnswer:
            if time.time() > deadline:
                raise
            time.sleep(3)


def burst(env, count="20", kill_at="5"):
    # One process and four threads rather than twenty `openstack` clients:
    # on a loaded 2-core host those took minutes just to start.
    s = admin()
    net = s.find("network", "/v2.0/networks?name=selfservice", "networks", "selfservice")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = []
        for i in range(1, int(count) + 1):
            futures.append(pool.submit(burst_port, s, net, f"burst-{i}"))
            if i == int(kill_at):
                subprocess.run(["systemctl", "kill", "-s", "KILL", "dclab-coordinator"], check=True)
        ids = [f.result() for f in futures]
    print("\n".join(ids))
    return 0


def unburst(env):
    s = admin()
    ports = oscheck.patiently(time.time() + 120, listed, s, "network", "/v2.0/ports?fields=id&fields=name", "ports")
    for port in ports:
        if port.get("name", "").startswith("burst-"):
            oscheck.patiently(time.time() + 120, s.send, "DELETE", "network", "/v2.0/ports/" + port["id"])
    print("removed")
    return 0


CALLS = {"setup": (setup, 0, 0), "matrix": (matrix, 0, 1), "routers": (routers, 0, 1),
         "teardown": (teardown, 0, 0),
         "burst": (burst, 0, 2), "unburst": (unburst, 0, 0)}


def main(argv):
    """dclab-tenants-check ARGS (each call reads $OPENRC itself)."""
    return oscheck.dispatch(__doc__, CALLS, argv, lambda call_, args: call_(None, *args))
