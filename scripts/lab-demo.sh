#!/bin/sh
# A lab on a fresh Debian 12 machine: two micro-VMs on two simulated hosts,
# pinged across hosts, snapshotted and restored as a whole, then removed.
# Then a lab of two containers beside a micro-VM. Starts libvirtd if it is
# not running (scripts/libvirtd.sh), and stops what it started.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --vm
cargo build --workspace --bins
ctl=target/debug/ctl
export DCLAB_LOCAL_CLUSTER=labdemo

started=""
if ! virsh -c lxc:///system version >/dev/null 2>&1; then
    scripts/libvirtd.sh
    started="$(cat /run/libvirtd.pid) $(cat /run/virtlogd.pid)"
fi
cleanup() {
    $ctl lab down pair >/dev/null 2>&1 || true
    $ctl lab down mixed >/dev/null 2>&1 || true
    $ctl local down --name labdemo >/dev/null 2>&1 || true
    # Only the daemons this script started, by their pids.
    [ -n "$started" ] && kill $started 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
step "two simulated hosts, a coordinator and two agents"
$ctl local up --name labdemo --hosts 2 >/dev/null
step "ctl lab up examples/micro-pair.toml --snapshot initial"
$ctl lab up examples/micro-pair.toml --snapshot initial
step "a (on h1) pings b (on h2) over the lab network"
$ctl lab exec pair a -- ping -c 3 10.0.0.2
step "write /data/marker in b, then restore the whole lab to 'initial'"
$ctl lab exec pair b -- 'echo hello > /data/marker && ls /data'
$ctl snapshot restore initial
$ctl lab exec pair b -- 'ls /data; test ! -e /data/marker && echo "marker gone"'
step "ctl snapshot ls; ctl lab ls"
$ctl snapshot ls
$ctl lab ls
step "ctl lab down pair"
$ctl lab down pair
step "ctl lab up examples/mixed.toml: two containers and a micro-VM"
$ctl lab up examples/mixed.toml
step "containers run at once; the micro-VM boots under TCG: wait for its console"
$ctl lab exec mixed vm --timeout 120 -- true
step "container c1 (on h1) pings container c2 and the VM (on h2)"
$ctl lab exec mixed c1 -- 'ping -c 2 10.0.0.12 && ping -c 2 10.0.0.13'
step "a whole-lab snapshot of both kinds, a marker, a restore"
$ctl snapshot create s1 --lab mixed
$ctl lab exec mixed c2 -- 'echo hello > /root/marker'
$ctl snapshot restore s1 --lab mixed
$ctl lab exec mixed c2 -- 'test ! -e /root/marker && echo "marker gone"'
step "ctl lab down mixed"
$ctl lab down mixed
