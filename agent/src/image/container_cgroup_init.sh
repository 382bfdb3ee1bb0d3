#!/bin/sh
# /.dclab/init of container nodes (agent/src/nodes/driver/lxc.rs), run by
# libvirt as the container's init before the image's own /sbin/init.
# libvirt puts the container into a cgroup of its own in the controllers
# it manages but leaves it at the root of name=systemd, where the node's
# systemd would then create its units: outside the node's memory and CPU
# limits, in the host's cgroup tree. Joining the same cgroup path in every
# hierarchy first roots the node's systemd inside its limits.
own=
while IFS=: read -r _ controllers path; do
    [ "$controllers" = memory ] && own=$path
done < /proc/self/cgroup
if [ -n "$own" ] && [ "$own" != / ]; then
    for hierarchy in /sys/fs/cgroup/*/; do
        [ -e "${hierarchy}cgroup.procs" ] || continue
        mkdir -p "$hierarchy${own#/}" 2>/dev/null && echo $$ > "$hierarchy${own#/}/cgroup.procs" 2>/dev/null
    done
fi
# Images ship without SSH host keys, so no two nodes share them.
if command -v ssh-keygen >/dev/null 2>&1; then
    ssh-keygen -A >/dev/null 2>&1
fi
exec /sbin/init "$@"
