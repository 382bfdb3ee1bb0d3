"""dclab's small OpenStack client for experiment checks: plain HTTP and
JSON against the APIs (python3's standard library only), credentials from
/root/admin-openrc (OPENRC in the environment names another). Each call
prints what it saw and exits 0 when the answer is the good one, 1 when an
API answered otherwise, 2 when one did not answer.

    token-issue               print a new token
    token-validate TOKEN      print the HTTP status of validating TOKEN
    apis                      every API's status; 0 when all answer
    compute-services          nova's services; 0 when every one is up
    network-agents            neutron's agents; 0 when every one is alive
    hypervisors               nova's hypervisors; 0 when at least one is up
    server-create NAME [S]    boot NAME (image micro, flavor m1.micro, network
                              selfservice) and wait up to S seconds (300) for
                              ACTIVE, booting once more if it ends in ERROR;
                              print the status and the address
    server-show NAME          print NAME's status, power state and host
    server-delete NAME        delete every server named NAME, asking again and
                              resetting one that stays; wait up to 240 s
    server-ping NAME          ping NAME from its network's DHCP namespace
                              (run on the network node; while the APIs are
                              down, at the address it last found)
    horizon-login             GET the dashboard's login page
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

TIMEOUT = 10


class NoAnswer(Exception):
    pass


def openrc(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export "):].split("=", 1)
                env[key] = value.strip("'\"")
    return env


def call(method, url, body=None, headers=None):
    """(status, headers, parsed body or None); NoAnswer when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            raw = resp.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return resp.status, resp.headers, parsed
    except urllib.error.HTTPError as e:
        return e.code, e.headers, None
    except (urllib.error.URLError, OSError) as e:
        raise NoAnswer(f"no answer from {url}: {e}")


class Session:
    def __init__(self, env):
        self.env = env
        self.token, self.catalog = self.issue()

    def issue(self):
        env = self.env
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env["OS_USERNAME"],
                "domain": {"name": env.get("OS_USER_DOMAIN_NAME", "Default")},
                "password": env["OS_PASSWORD"]}}},
            "scope": {"project": {
                "name": env["OS_PROJECT_NAME"],
                "domain": {"name": env.get("OS_PROJECT_DOMAIN_NAME", "Default")}}}}}
        status, headers, reply = call("POST", env["OS_AUTH_URL"] + "/auth/tokens", body)
        if status != 201:
            raise SystemExit(f"token issue: HTTP {status}")
        return headers.get("X-Subject-Token"), reply["token"].get("catalog", [])

    def url(self, service_type):
        for service in self.catalog:
            if service["type"] == service_type:
                for ep in service["endpoints"]:
                    if ep["interface"] == "public":
                        return ep["url"].rstrip("/")
        raise SystemExit(f"no {service_type} endpoint in the catalog")

    def get(self, service_type, path):
        return call("GET", self.url(service_type) + path, headers={"X-Auth-Token": self.token})

    def send(self, method, service_type, path, body=None):
        return call(method, self.url(service_type) + path, body, headers={"X-Auth-Token": self.token})

    def find(self, service_type, path, key, name):
        status, _, reply = self.get(service_type, path)
        if status != 200:
            raise SystemExit(f"GET {path}: HTTP {status}")
        for item in reply[key]:
            if item.get("name") == name:
                return item["id"]
        raise SystemExit(f"no {key[:-1]} named {name!r}")


def token_issue(env):
    print(Session(env).token)
    return 0


def token_validate(env, token):
    # A fresh token asks, so that the token under test need not be able to
    # authorize its own validation.
    try:
        asker = Session(env).token
    except SystemExit as e:
        print(f"{e} (no token to validate with)")
        return 1
    status, _, _ = call("GET", env["OS_AUTH_URL"] + "/auth/tokens",
                        headers={"X-Auth-Token": asker, "X-Subject-Token": token})
    print(status, "valid" if status == 200 else "invalid")
    return 0 if status == 200 else 1


APIS = [("identity", ""), ("compute", "/servers"), ("network", "/v2.0/networks"),
        ("image", "/v2/images"), ("placement", "/")]


def apis(env):
    s = Session(env)
    bad = 0
    for service_type, path in APIS:
        try:
            status, _, _ = s.get(service_type, path)
        except NoAnswer:
            status = 0
        print(service_type, status or "no answer")
        bad += not 200 <= status < 300
    return 0 if bad == 0 else 1


def compute_services(env):
    status, _, reply = Session(env).get("compute", "/os-services")
    if status != 200:
        print("HTTP", status)
        return 1
    down = 0
    for svc in reply["services"]:
        print(svc["binary"], svc["host"], svc["state"], svc["status"])
        down += svc["state"] != "up"
    return 0 if down == 0 else 1


def network_agents(env):
    status, _, reply = Session(env).get("network", "/v2.0/agents")
    if status != 200:
        print("HTTP", status)
        return 1
    dead = 0
    for agent in reply["agents"]:
        print(agent["agent_type"].replace(" ", "-"), agent["host"], "alive" if agent["alive"] else "dead")
        dead += not agent["alive"]
    return 0 if dead == 0 else 1


def hypervisors(env):
    status, _, reply = Session(env).get("compute", "/os-hypervisors/detail")
    if status != 200:
        print("HTTP", status)
        return 1
    up = 0
    for h in reply["hypervisors"]:
        print(h["hypervisor_hostname"], h["state"], h["status"])
        up += h["state"] == "up"
    return 0 if up else 1


def servers_named(s, name):
    status, _, reply = s.get("compute", "/servers/detail?name=^" + name + "$")
    if status != 200:
        raise SystemExit(f"server list: HTTP {status}")
    return reply["servers"]


def sh(*args, check=True):
    """Runs ARGS; its stdout (the node-side checks plug and probe with it)."""
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def patiently(deadline, call, *args):
    """call(*args), asked again while the API does not answer (a loaded
    nova-api can miss one 10 s timeout) until `deadline`."""
    while True:
        try:
            return call(*args)
        except NoAnswer:
            if time.time() > deadline:
                raise
            time.sleep(2)


def describe(server):
    addrs = [a["addr"] for nets in server.get("addresses", {}).values() for a in nets]
    return " ".join([server["status"], f"power={server.get('OS-EXT-STS:power_state')}",
                     f"host={server.get('OS-EXT-SRV-ATTR:host')}"] + addrs)


def server_create(env, name, wait=300):
    """Boot NAME and wait for ACTIVE; a boot that ends in ERROR is
    deleted and tried once more within the same wait."""
    s = Session(env)
    body = {"server": {
        "name": name,
        "imageRef": s.find("image", "/v2/images?name=micro", "images", "micro"),
        "flavorRef": s.find("compute", "/flavors", "flavors", "m1.micro"),
        "networks": [{"uuid": s.find("network", "/v2.0/networks?name=selfservice", "networks", "selfservice")}]}}
    deadline = time.time() + float(wait)
    for attempt in (1, 2):
        status, _, reply = s.send("POST", "compute", "/servers", body)
        if status != 202:
            print("server create: HTTP", status)
            return 1
        sid = reply["server"]["id"]
        while True:
            status, _, reply = patiently(deadline, s.get, "compute", "/servers/" + sid)
            server = reply["server"] if status == 200 else {"status": f"HTTP {status}"}
            if server["status"] in ("ACTIVE", "ERROR") or time.time() > deadline:
                break
            time.sleep(2)
        print(describe(server) if status == 200 else server["status"])
        if server["status"] == "ACTIVE":
            return 0
        if server["status"] != "ERROR" or attempt == 2 or time.time() > deadline:
            return 1
        print("attempt", attempt, "ended in ERROR; deleting it and booting again")
        patiently(deadline, s.send, "DELETE", "compute", "/servers/" + sid)
    return 1


def server_show(env, name):
    found = servers_named(Session(env), name)
    for server in found:
        print(describe(server))
    if not found:
        print("no server named", name)
    return 0 if found else 1


def server_delete(env, name, wait=240):
    """Delete and ask again until gone: a DELETE that nova takes while a
    compute node is away, or refuses (409) while a task runs, can leave the
    server for ever; after STUCK seconds its state is reset to error, which
    nova always lets an admin delete."""
    s = Session(env)
    start = time.time()
    deadline = start + float(wait)
    asked = {}
    while True:
        found = patiently(deadline, servers_named, s, name)
        if not found:
            print("gone")
            return 0
        now = time.time()
        if now - start > float(wait):
            print("still there after", wait, "s:", "; ".join(describe(x) for x in found))
            return 1
        for server in found:
            sid = server["id"]
            if now - asked.get(sid, 0) < ASK_AGAIN:
                continue
            if sid in asked and now - start > STUCK:
                patiently(deadline, s.send, "POST", "compute", f"/servers/{sid}/action",
                          {"os-resetState": {"state": "error"}})
            asked[sid] = now
            patiently(deadline, s.send, "DELETE", "compute", "/servers/" + sid)
        time.sleep(2)


# How often server-delete asks again, and after how long it resets the
# state of a server that does not go.
ASK_AGAIN = 15
STUCK = 60


# Where server-ping remembers each instance's address and namespace, so
# that it still pings an instance while the APIs are down.
KNOWN = "/var/tmp/dclab-os-check.json"


def where(env, name):
    """(address, namespace) of NAME, from the APIs or else as last seen."""
    try:
        known = json.load(open(KNOWN))
    except (OSError, ValueError):
        known = {}
    try:
        s = Session(env)
    except NoAnswer:
        if name in known:
            return tuple(known[name])
        raise
    found = servers_named(s, name)
    if not found:
        raise SystemExit(f"no server named {name}")
    status, _, reply = s.get("network", "/v2.0/ports?device_id=" + found[0]["id"])
    if status != 200 or not reply["ports"]:
        raise SystemExit(f"no port of {name}")
    port = reply["ports"][0]
    known[name] = (port["fixed_ips"][0]["ip_address"], "qdhcp-" + port["network_id"])
    with open(KNOWN + ".tmp", "w") as f:
        json.dump(known, f)
    os.replace(KNOWN + ".tmp", KNOWN)
    return tuple(known[name])


def server_ping(env, name):
    ip, ns = where(env, name)
    done = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-W", "1", ip],
                          capture_output=True, text=True)
    summary = [l for l in done.stdout.splitlines() if "packets transmitted" in l]
    print(ip, summary[0] if summary else done.stderr.strip())
    return 0 if done.returncode == 0 else 1


def horizon_login(env):
    status, _, body = call("GET", "http://controller/horizon/auth/login/")
    ok = status == 200 and isinstance(body, str) and "Log in" in body
    print(status, "login page" if ok else "no login page")
    return 0 if ok else 1


CALLS = {
    "token-issue": (token_issue, 0, 0), "token-validate": (token_validate, 1, 1),
    "apis": (apis, 0, 0), "compute-services": (compute_services, 0, 0),
    "network-agents": (network_agents, 0, 0), "hypervisors": (hypervisors, 0, 0),
    "server-create": (server_create, 1, 2), "server-show": (server_show, 1, 1),
    "server-delete": (server_delete, 1, 1), "server-ping": (server_ping, 1, 1),
    "horizon-login": (horizon_login, 0, 0),
}


def dispatch(doc, calls, argv, invoke):
    """The front of dclab-os-check and dclab-tenants-check: --help, a known
    call with a fitting number of arguments (calls: name -> (function,
    fewest, most)), and the exit codes of the docstring: 0 good, 1 an API
    answered otherwise, 2 no answer or a bad call. `invoke(function,
    args)` runs the call."""
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(doc.strip())
        return 0 if len(argv) >= 2 else 2
    call_ = calls.get(argv[1])
    args = argv[2:]
    if call_ is None or not call_[1] <= len(args) <= call_[2]:
        print(f"unknown call {' '.join(argv[1:])!r}; see --help", file=sys.stderr)
        return 2
    try:
        return invoke(call_[0], args)
    except NoAnswer as e:
        print(e)
        return 2
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code)
            return 1
        raise


def main(argv):
    """dclab-os-check ARGS: credentials from $OPENRC (/root/admin-openrc)."""
    return dispatch(__doc__, CALLS, argv,
                    lambda call_, args: call_(openrc(os.environ.get("OPENRC", "/root/admin-openrc")), *args))
