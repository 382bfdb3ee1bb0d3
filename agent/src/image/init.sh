#!/bin/busybox sh
# /init of the dclab micro-VM (built by ctl/src/image/mod.rs, which documents
# the serial protocol). Sets up the machine, then hands PID 1 to busybox init,
# which reaps orphans and respawns the serial command loop on ttyS0.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Keep kernel messages off the console so they do not interleave with output.
echo 1 > /proc/sys/kernel/printk

# Dependency order; a failure is reported but not fatal (the lab may not need it).
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
    failover net_failover virtio_net virtio_blk; do
    insmod "/lib/modules/$m.ko" || echo "dclab-init: insmod $m failed"
done

name=dclab addr= gw= extra=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        dclab.hostname=*) name="${arg#*=}" ;;
        dclab.ip=*) addr="${arg#*=}" ;;
        # dclab.ipN=ADDR/PREFIX for ethN, kept as "N:ADDR/PREFIX".
        dclab.ip[1-9]=*) n="${arg%%=*}"; extra="$extra ${n#dclab.ip}:${arg#*=}" ;;
        dclab.gw=*) gw="${arg#*=}" ;;
    esac
done
hostname "$name"
echo "127.0.0.1 localhost $name" > /etc/hosts

# Waits up to 3 s for a device node that a driver creates as it probes.
wait_for() {
    i=0
    while [ ! -e "$1" ] && [ "$i" -lt 30 ]; do usleep 100000; i=$((i + 1)); done
    [ -e "$1" ]
}
# Virtio device ids: 0x0001 network, 0x0002 block.
has_virtio() { grep -qx "$1" /sys/bus/virtio/devices/*/device 2>/dev/null; }

ip link set lo up
if [ "$addr" = dhcp ] && has_virtio 0x0001 && wait_for /sys/class/net/eth0; then
    # An OpenStack instance: its address, prefix and router from Neutron's DHCP.
    cat > /bin/dhcp-lease <<'EOS'
#!/bin/sh
case "$1" in
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/$mask" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}"
        ;;
esac
EOS
    chmod 755 /bin/dhcp-lease
    ip link set eth0 up
    udhcpc -i eth0 -s /bin/dhcp-lease -t 10 -T 2 -b -q >/dev/null 2>&1 || echo "dclab-init: no DHCP lease"
elif [ -n "$addr" ] && has_virtio 0x0001 && wait_for /sys/class/net/eth0; then
    ip link set eth0 up
    ip addr add "$addr" dev eth0
    [ -n "$gw" ] && ip route add default via "$gw"
fi
for e in $extra; do
    dev="eth${e%%:*}"
    if wait_for "/sys/class/net/$dev"; then
        ip link set "$dev" up
        ip addr add "${e#*:}" dev "$dev"
    else
        echo "dclab-init: no $dev for ${e#*:}"
    fi
done
# Synchronous writes so a snapshot taken right after a command sees its data.
if has_virtio 0x0002 && wait_for /dev/vda; then
    mount -t ext4 -o sync /dev/vda /data || echo "dclab-init: cannot mount /dev/vda"
fi

exec /bin/init
