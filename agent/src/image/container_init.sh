#!/bin/busybox sh
# /sbin/init of the dclab micro container (agent/src/image/micro_rootfs.rs).
# libvirt has mounted /proc, /sys and /dev and configured the interfaces;
# this names the node and hands PID 1 to busybox init, which reaps orphans.
/bin/busybox --install -s /bin
export PATH=/bin
hostname "${DCLAB_HOSTNAME:-dclab}"
echo "127.0.0.1 localhost $(hostname)" > /etc/hosts
mkdir -p /data /tmp /root
exec /bin/busybox init
