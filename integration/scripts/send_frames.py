#!/usr/bin/python3
"""Sends hand-built Ethernet frames from a tenant instance (scapy).

    send_frames.py IFACE KIND SRC_MAC SRC_IP DST_MAC DST_IP

KIND: plain (the control: an ordinary ICMP echo, id 4242), or tagged (the
same echo behind an 802.1Q tag, a priority tag, 802.1ad over 802.1Q and two
802.1Q tags, plus a tagged ARP request). Each frame is sent three times.
"""
import sys

from scapy.all import ARP, ICMP, IP, Dot1AD, Dot1Q, Ether, sendp

iface, kind, src_mac, src_ip, dst_mac, dst_ip = sys.argv[1:7]


def echo(icmp_id):
    return IP(src=src_ip, dst=dst_ip) / ICMP(id=icmp_id) / b"dclab-vlan-probe"


eth = Ether(src=src_mac, dst=dst_mac)
if kind == "plain":
    frames = [eth / echo(4242)]
elif kind == "tagged":
    frames = [
        eth / Dot1Q(vlan=100) / echo(4343),
        eth / Dot1Q(vlan=0, prio=5) / echo(4344),
        Ether(src=src_mac, dst=dst_mac, type=0x88A8) / Dot1AD(vlan=200) / Dot1Q(vlan=100) / echo(4345),
        eth / Dot1Q(vlan=100) / Dot1Q(vlan=101) / echo(4346),
        Ether(src=src_mac, dst="ff:ff:ff:ff:ff:ff")
        / Dot1Q(vlan=100)
        / ARP(op=1, hwsrc=src_mac, psrc=src_ip, pdst=dst_ip),
    ]
else:
    sys.exit(f"unknown kind {kind!r}: plain or tagged")
sendp(frames, iface=iface, count=3, inter=0.05, verbose=False)
