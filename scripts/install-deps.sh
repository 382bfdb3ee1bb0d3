#!/bin/sh
# Installs the system packages dclab needs on Debian 12 (run as root).
#
#   scripts/install-deps.sh          build + local multi-host setup (ctl local ...)
#   scripts/install-deps.sh --vm     also libvirt and qemu for the lab's micro-VMs
#
# Idempotent: apt-get skips what is installed. Nothing is started here; the
# local setup starts its own OvS instances (userspace datapath) per host
# namespace, and libvirtd/virtlogd are started by scripts/libvirtd.sh (there
# is no systemd).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi

with_vm=0
for arg in "$@"; do
    case "$arg" in
        --vm) with_vm=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "install-deps.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

# Build: a C toolchain for crates with build scripts; libvirt's headers for
# the agent's virt crate (its unit tests use libvirt's built-in test driver).
packages="build-essential pkg-config ca-certificates libvirt-dev"
# Local multi-host setup: namespaces, veths, the Linux bridge switch, OvS,
# checksum offload control, and the traffic/capture tools tests use.
packages="$packages iproute2 procps openvswitch-switch ethtool iputils-ping fping iperf3 tcpdump"
# Hand-built frames (VLAN-tagged, forged) in the dataplane tests.
packages="$packages python3-scapy"
# systemd-analyze checks the units in deploy/systemd (nothing is started).
packages="$packages systemd"
# The Neutron ML2 driver (neutron/networking-dclab) and its tests: grpcio,
# protobuf and protoc 3.21 (tests/test_generated.py regenerates the committed
# dclab_pb2.py with it and compares; scripts/gen-proto.sh writes it),
# neutron-lib with SQLAlchemy, oslo and eventlet as neutron-server has them,
# pip and setuptools to install the package.
packages="$packages python3-grpcio python3-protobuf protobuf-compiler python3-neutron-lib python3-sqlalchemy python3-eventlet python3-pip python3-setuptools"
if [ "$with_vm" -eq 1 ]; then
    # The virt crate links libvirt; guests run under TCG (KVM guests stall here).
    packages="$packages libvirt-dev libvirt-daemon-system qemu-system-x86 qemu-utils e2fsprogs linux-image-cloud-amd64 busybox-static"
    # genisoimage: the cloud-init NoCloud seed ISOs of cloud-image nodes.
    packages="$packages genisoimage"
    # Container nodes: libvirt's LXC driver; Debian rootfs images built by
    # mmdebstrap; ssh and curl reach nodes through `ctl lab ssh/forward`;
    # e2fsprogs writes Debian VM disks; dpkg-dev and python3 serve the apt
    # cache test's repository.
    # python3-venv: `ctl lab install` puts ansible-core from PyPI in a venv.
    packages="$packages libvirt-daemon-driver-lxc mmdebstrap openssh-client curl e2fsprogs dpkg-dev python3 python3-venv"
    # What a person looks at (lab pictures, experiment reports) is checked in
    # headless Chromium; `ctl lab graph --format dot` output through Graphviz.
    packages="$packages chromium graphviz"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
pins=""
if [ "$with_vm" -eq 1 ]; then
    # Machine images may carry a newer qemu-utils from backports, which
    # blocks Debian 12's qemu-system-x86: keep both at the same version.
    qemu=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    [ -n "$qemu" ] && [ "$qemu" != "(none)" ] && pins="qemu-utils=$qemu"
fi
# shellcheck disable=SC2086 # the lists are meant to split into words
apt-get install -y --no-install-recommends --allow-downgrades $packages $pins

# Sanity checks for what the local setup relies on.
for tool in ip ethtool ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl iperf3 tcpdump; do
    command -v "$tool" >/dev/null || { echo "install-deps.sh: $tool still missing" >&2; exit 1; }
done
test -f /usr/share/openvswitch/vswitch.ovsschema || {
    echo "install-deps.sh: OvS schema /usr/share/openvswitch/vswitch.ovsschema missing" >&2
    exit 1
}
echo "dependencies installed"
