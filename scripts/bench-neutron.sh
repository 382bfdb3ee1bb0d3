#!/bin/sh
# `ctl bench neutron` from nothing: two OpenStack labs from
# examples/openstack-dclab-containers.toml on a local 2-host setup, one
# installed with neutron_backend=dclab and one with Neutron's own linuxbridge
# agent, both measured in one run; then both removed. About 25 minutes on a
# 2-core machine (images built once, two installs of about 6 minutes).
#   PORTS=50 scripts/bench-neutron.sh
set -eu
cd "$(dirname "$0")/.."
ports=${PORTS:-50}
cargo build --release --bins
ctl=target/release/ctl
export DCLAB_LOCAL_CLUSTER=nbench
chapters=environment,identity,image,placement,compute,networking
work=$(mktemp -d /var/tmp/dclab-nbench.XXXXXX)

started=""
if ! virsh -c lxc:///system version >/dev/null 2>&1; then
    scripts/libvirtd.sh
    started="$(cat /run/libvirtd.pid) $(cat /run/virtlogd.pid)"
fi
cleanup() {
    $ctl lab down nb-dclab >/dev/null 2>&1 || true
    $ctl lab down nb-linuxbridge >/dev/null 2>&1 || true
    $ctl local down --name nbench >/dev/null 2>&1 || true
    rm -rf "$work"
    # Only the daemons this script started, by their pids.
    [ -n "$started" ] && kill $started 2>/dev/null || true
}
trap cleanup EXIT

$ctl local up --name nbench --hosts 2 >/dev/null
for lab in nb-dclab nb-linuxbridge; do
    sed "s/^name = \"openstack-dclab\"/name = \"$lab\"/" examples/openstack-dclab-containers.toml >"$work/$lab.toml"
    $ctl lab up "$work/$lab.toml" --timeout 1500
done
$ctl lab install nb-dclab --var neutron_backend=dclab --chapters $chapters --state-dir "$work/state"
$ctl lab install nb-linuxbridge --chapters $chapters --state-dir "$work/state"
$ctl bench neutron nb-dclab nb-linuxbridge --ports "$ports"
