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

name=dclab addr= gw= extra= dhcp=
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

# An OpenStack config drive (label config-2), an ISO 9660 cdrom on the IDE
# bus: mounted on /config when there is one. Its drivers load only here, so
# lab micro-VMs do not wait for an IDE probe.
mount_config_drive() {
    for m in scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs; do
        insmod "/lib/modules/$m.ko" 2>/dev/null
    done
    wait_for /dev/sr0 || return 1
    mkdir -p /config
    mount -t iso9660 -o ro /dev/sr0 /config 2>/dev/null
}
# "IP NETMASK GATEWAY" of the first static IPv4 network in the drive's
# network_data.json (Nova writes one when the subnet has no DHCP). One
# line of JSON: split at braces and commas, then pick the fields.
config_drive_address() {
    f=/config/openstack/latest/network_data.json
    [ -f "$f" ] || return 1
    tr '{},[]' '\n\n\n\n\n' < "$f" | awk -F'"' '
        $2 == "type" && $4 == "ipv4" { static = 1 }
        $2 == "ip_address" && static && ip == "" { ip = $4 }
        $2 == "netmask" && ip != "" && mask == "" { mask = $4 }
        $2 == "gateway" && gw == "" { gw = $4 }
        END { if (ip != "" && mask != "") print ip, mask, gw; else exit 1 }'
}

ip link set lo up
if [ "$addr" = dhcp ] && has_virtio 0x0001 && wait_for /sys/class/net/eth0; then
    ip link set eth0 up
    if mount_config_drive && set -- $(config_drive_address) && [ -n "$1" ]; then
        # An OpenStack instance on a subnet without DHCP (dclab's Neutron
        # backend): the address Neutron gave its port, from the config drive.
        ifconfig eth0 "$1" netmask "$2" up
        [ -n "$3" ] && ip route add default via "$3"
        echo "dclab-init: eth0 $1 netmask $2 from the config drive"
    else
        dhcp=1
    fi
fi
if [ -n "$dhcp" ]; then
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
    udhcpc -i eth0 -s /bin/dhcp-lease -t 10 -T 2 -b -q >/dev/null 2>&1 || echo "dclab-init: no DHCP lease"
elif [ -n "$addr" ] && [ "$addr" != dhcp ] && has_virtio 0x0001 && wait_for /sys/class/net/eth0; then
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

# A config drive's user data, when it is a shell script, runs once the
# machine is up, with its output on the console (Nova's console log).
if [ -f /config/openstack/latest/user_data ] &&
    head -c 2 /config/openstack/latest/user_data | grep -q '#!'; then
    (sleep 1; sh /config/openstack/latest/user_data > /dev/console 2>&1) &
fi

exec /bin/init
