//! Network namespaces, veth pairs and the Linux bridge that plays the
//! physical switch. Nothing here touches the root namespace's links.

use super::command::{run, run_in};

/// Name of the Linux bridge in the switch namespace.
pub const SWITCH_BRIDGE: &str = "phys";

/// Creates `netns`, brings `lo` up and disables IPv6 before any link exists,
/// so that new links inherit it and captures only show our IPv4/ARP.
pub fn create(netns: &str) -> anyhow::Result<()> {
    run(&["ip", "netns", "add", netns])?;
    run_in(netns, &["ip", "link", "set", "lo", "up"])?;
    run_in(
        netns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    )?;
    Ok(())
}

pub fn delete(netns: &str) -> anyhow::Result<()> {
    run(&["ip", "netns", "delete", netns])?;
    Ok(())
}

/// Names of all namespaces whose name starts with `prefix`.
pub fn list_with_prefix(prefix: &str) -> anyhow::Result<Vec<String>> {
    let listing = run(&["ip", "netns", "list"])?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

pub fn exists(netns: &str) -> bool {
    std::path::Path::new("/run/netns").join(netns).exists()
}

/// A veth pair whose two ends are born directly in their namespaces.
pub fn create_veth(netns_a: &str, name_a: &str, netns_b: &str, name_b: &str) -> anyhow::Result<()> {
    run(&[
        "ip", "link", "add", name_a, "netns", netns_a, "type", "veth", "peer", "name", name_b, "netns",
        netns_b,
    ])?;
    Ok(())
}

pub fn link_up(netns: &str, link: &str) -> anyhow::Result<()> {
    run_in(netns, &["ip", "link", "set", link, "up"])?;
    Ok(())
}

/// OvS's userspace datapath does not fill in checksums the kernel left
/// for the NIC to compute, so senders into OvS must compute them.
pub fn tx_checksum_off(netns: &str, link: &str) -> anyhow::Result<()> {
    run_in(netns, &["ethtool", "-K", link, "tx", "off"])?;
    Ok(())
}

/// The dumb physical switch: learning bridge, no STP, forwarding at once.
pub fn create_switch(netns: &str) -> anyhow::Result<()> {
    run_in(
        netns,
        &[
            "ip",
            "link",
            "add",
            SWITCH_BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "ageing_time",
            "30000",
        ],
    )?;
    link_up(netns, SWITCH_BRIDGE)
}

pub fn enslave_to_switch(netns: &str, link: &str) -> anyhow::Result<()> {
    run_in(netns, &["ip", "link", "set", link, "master", SWITCH_BRIDGE])?;
    link_up(netns, link)
}
