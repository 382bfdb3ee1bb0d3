//! Brings up a device that joined the bridge down because of a race in
//! userspace Open vSwitch. When ovs-vswitchd adds a port to a netdev
//! bridge it turns IFF_PROMISC on from the flags it read when it opened the
//! device; an IFF_UP set in between is cleared again. Nova hits it: os-vif
//! adds an instance's port before libvirt creates the tap, and libvirt sets
//! the tap up right after creating it. In the OpenStack lab one tap of
//! seven stayed down that way, its instance cut off.
//!
//! Only a device that joins while the agent runs, is down and promiscuous
//! (OvS already set its flags), and only once: a device someone sets down
//! later, or that was down before the agent started, stays as it is, and
//! so does a lab node's tap a fault holds (a cut is the tap set down).

use std::collections::BTreeSet;

use tokio::process::Command;
use tracing::{info, warn};

use crate::nodes::FaultedTaps;
use crate::ovs::Interface;

/// OpenFlow's reserved port numbers start here.
const OFPP_MAX: i64 = 0xff00;

pub struct JoinedDown {
    /// ovs-vswitchd's namespace, where the devices are (None: the agent's).
    netns: Option<String>,
    /// Taps a fault holds (a cut is a tap set down): left alone.
    faulted: FaultedTaps,
    /// The bridge's ports as last seen: (name, OpenFlow port number).
    seen: Option<BTreeSet<(String, i64)>>,
}

impl JoinedDown {
    pub fn new(netns: Option<String>, faulted: FaultedTaps) -> JoinedDown {
        JoinedDown {
            netns,
            faulted,
            seen: None,
        }
    }

    /// Looks at the ports that joined since the last call and brings up
    /// those the race left down. The first call only records.
    pub async fn repair(&mut self, host_id: &str, uplink: &str, ifaces: &[Interface]) {
        let now: BTreeSet<(String, i64)> = ifaces
            .iter()
            // Not the bridge's own port (OFPP_LOCAL, 65534), nor the uplink.
            .filter(|i| i.ofport > 0 && i.ofport < OFPP_MAX && i.name != uplink)
            .map(|i| (i.name.clone(), i.ofport))
            .collect();
        let Some(before) = self.seen.replace(now.clone()) else {
            return;
        };
        for (name, _) in now.difference(&before) {
            if self.faulted.lock().unwrap().contains(name) {
                continue;
            }
            match self.flags(name).await {
                Ok(f) if left_down(&f) => match self.ip(&["link", "set", "dev", name, "up"]).await {
                    Ok(_) => warn!(host = %host_id, device = %name,
                        "device joined the bridge down and promiscuous (userspace OvS's flag race); set it up"),
                    Err(e) => warn!(host = %host_id, device = %name, error = %e, "could not set a device up"),
                },
                Ok(_) => {}
                // Gone again, or not in this namespace: nothing to repair.
                Err(e) => info!(host = %host_id, device = %name, error = %e, "device not inspected"),
            }
        }
    }

    /// The device's flags as `ip -json link` names them.
    async fn flags(&self, name: &str) -> Result<Vec<String>, String> {
        parse_flags(&self.ip(&["-json", "link", "show", "dev", name]).await?)
    }

    /// `ip ARGS` in ovs-vswitchd's namespace; stdout, or stderr as the error.
    async fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let out = cmd.args(args).output().await.map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// The race's mark: OvS set PROMISC and the device is not UP.
pub fn left_down(flags: &[String]) -> bool {
    let has = |f: &str| flags.iter().any(|x| x == f);
    has("PROMISC") && !has("UP")
}

pub fn parse_flags(json: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let flags = doc[0]["flags"].as_array().ok_or("no flags in ip's answer")?;
    Ok(flags
        .iter()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_promiscuous_device_that_is_down_bears_the_mark() {
        let f = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(left_down(&f(&["BROADCAST", "MULTICAST", "PROMISC"])));
        assert!(!left_down(&f(&[
            "BROADCAST",
            "MULTICAST",
            "PROMISC",
            "UP",
            "LOWER_UP"
        ])));
        assert!(!left_down(&f(&["BROADCAST", "MULTICAST"])));
    }

    #[test]
    fn flags_come_from_ip_json() {
        let json = r#"[{"ifindex":7,"ifname":"tap89569e65-23","flags":["BROADCAST","MULTICAST","PROMISC"],"mtu":1450}]"#;
        assert_eq!(parse_flags(json).unwrap(), ["BROADCAST", "MULTICAST", "PROMISC"]);
        assert!(parse_flags("[]").is_err());
    }
}
