#!/bin/sh
# Starts virtlogd and libvirtd the way dclab's container nodes need them
# (run as root, on hosts without systemd managing libvirtd):
#
#   scripts/libvirtd.sh          start both unless libvirtd answers already
#   scripts/libvirtd.sh --check  exit 1 if the running libvirtd cannot start containers
#
# On the hybrid cgroup layout (cgroup v1 controllers plus a cgroup2 mount at
# /sys/fs/cgroup/unified), libvirt 9's LXC driver fails with "Unable to
# create directory /sys/fs/cgroup/unified". libvirtd then runs in a private
# mount namespace without that mount; the host's own mounts are untouched.
# The agent mounts container rootfs overlays inside that namespace.
set -eu
unified=/sys/fs/cgroup/unified

hybrid() { awk -v m="$unified" '$5 == m && / - cgroup2 / {found=1} END {exit !found}' "/proc/$1/mountinfo"; }

check() {
    hybrid self || return 0
    pid=$(cat /run/libvirtd.pid 2>/dev/null) || { echo "libvirtd.sh: libvirtd is not running" >&2; return 1; }
    if hybrid "$pid"; then
        echo "libvirtd.sh: libvirtd (pid $pid) sees $unified and cannot start containers; stop it and run $0" >&2
        return 1
    fi
}

if [ "${1:-}" = "--check" ]; then
    check
    exit
fi
if virsh -c lxc:///system version >/dev/null 2>&1; then
    check
    exit
fi
kill -0 "$(cat /run/virtlogd.pid 2>/dev/null)" 2>/dev/null || virtlogd -d
if hybrid self; then
    unshare --mount --propagation private sh -c "umount $unified && exec libvirtd -d"
else
    libvirtd -d
fi
i=0
until virsh -c lxc:///system version >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 75 ] || { echo "libvirtd.sh: libvirtd does not answer" >&2; exit 1; }
    sleep 0.2
done
echo "libvirtd running (pid $(cat /run/libvirtd.pid))"
