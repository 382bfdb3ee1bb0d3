//! Plugging nodes' taps into the bridge. libvirt creates each tap in its
//! own (the root) namespace, fresh on every qemu start. With `--vm-netns`
//! (simulated hosts whose ovs-vswitchd runs in a named namespace) the tap
//! moves there first. Then it joins the bridge as the dclab port named by
//! `external_ids:iface-id`, which the flow reconciler matches.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use dclab_proto::v1::NodeNic;
use tokio::process::Command;

use crate::ovs::{Interface, Ovs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub up: bool,
}

/// Links in the agent's (root) namespace and the OvS interfaces, read once
/// and shared by the nodes of a pass.
#[derive(Debug, Clone, Default)]
pub struct TapView {
    pub links: HashMap<String, Link>,
    pub ifaces: HashMap<String, Interface>,
}

impl TapView {
    pub async fn fetch(ovs: &Ovs) -> anyhow::Result<TapView> {
        let links = parse_links(&run("ip", &["-j", "link", "show"]).await?)?;
        let ifaces = ovs
            .interfaces()
            .await
            .context("listing OvS interfaces")?
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        Ok(TapView { links, ifaces })
    }
}

/// Parses `ip -j link show`.
pub fn parse_links(json: &str) -> anyhow::Result<HashMap<String, Link>> {
    let doc: serde_json::Value = serde_json::from_str(json).context("`ip -j link show` printed no JSON")?;
    let rows = doc.as_array().context("`ip -j link show` printed no list")?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name = row["ifname"].as_str()?.to_string();
            let ifindex = row["ifindex"].as_u64()? as u32;
            let up = row["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f.as_str() == Some("UP")));
            Some((name, Link { ifindex, up }))
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// A fresh tap in the root namespace: move it into the VM namespace,
    /// bring it up, (re)attach it.
    MoveAndAttach,
    /// Bring it up where it is and (re)attach it.
    Attach,
}

/// What a tap needs, given where it is. `remembered` is the ifindex the
/// tap had when this agent last plugged it (root namespace mode), to
/// notice a tap qemu made anew under the same name.
pub fn decide(nic: &NodeNic, netns: bool, view: &TapView, remembered: Option<u32>) -> Result<Action, String> {
    let attached = view
        .ifaces
        .get(&nic.tap)
        .is_some_and(|i| i.ofport > 0 && i.iface_id.as_deref() == Some(nic.port.as_str()));
    let link = view.links.get(&nic.tap);
    if netns {
        return Ok(match link {
            Some(_) => Action::MoveAndAttach,
            None if attached => Action::Nothing,
            None => Action::Attach,
        });
    }
    let Some(link) = link else {
        return Err(format!(
            "tap {} does not exist although the domain is active; is libvirtd in another namespace (then pass --vm-netns)?",
            nic.tap
        ));
    };
    let same_tap = remembered.is_none_or(|r| r == link.ifindex);
    Ok(if attached && link.up && same_tap {
        Action::Nothing
    } else {
        Action::Attach
    })
}

pub struct Taps {
    ovs: Ovs,
    netns: Option<String>,
    /// tap → ifindex when plugged (root namespace mode only).
    plugged: Mutex<HashMap<String, u32>>,
    /// Taps a fault owns (cut, or behind a netem relay): left as they are,
    /// here and by the rule reconciler's `JoinedDown`.
    faulted: FaultedTaps,
}

/// The taps faults own, shared by the node reconciler and the rule one.
pub type FaultedTaps = std::sync::Arc<Mutex<std::collections::HashSet<String>>>;

impl Taps {
    pub fn new(ovs: Ovs, netns: Option<String>, faulted: FaultedTaps) -> Taps {
        Taps {
            ovs,
            netns,
            plugged: Mutex::new(HashMap::new()),
            faulted,
        }
    }

    pub fn ovs(&self) -> &Ovs {
        &self.ovs
    }

    /// The namespace taps live in (None: the agent's own).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// A fault owns the tap until `release_fault`: plugging leaves it alone.
    pub fn hold_for_fault(&self, tap: &str) {
        self.faulted.lock().unwrap().insert(tap.to_string());
    }

    pub fn release_fault(&self, tap: &str) {
        self.faulted.lock().unwrap().remove(tap);
    }

    pub fn is_faulted(&self, tap: &str) -> bool {
        self.faulted.lock().unwrap().contains(tap)
    }

    /// `ip ARGS` in the taps' namespace.
    pub async fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        match &self.netns {
            Some(ns) => run("ip", &[&["-n", ns.as_str()], args].concat()).await,
            None => run("ip", args).await,
        }
    }

    /// Attaches `tap` to the bridge as `port` (its iface-id), up.
    pub async fn attach(&self, tap: &str, port: &str) -> anyhow::Result<()> {
        let nic = NodeNic {
            tap: tap.to_string(),
            port: port.to_string(),
            ..NodeNic::default()
        };
        self.act(&nic, Action::Attach).await
    }

    /// Plugs every nic of an active domain that needs it; errors name the tap.
    pub async fn plug(&self, nics: &[NodeNic], view: &TapView) -> anyhow::Result<()> {
        for nic in nics {
            if self.faulted.lock().unwrap().contains(&nic.tap) {
                continue;
            }
            let remembered = self.plugged.lock().unwrap().get(&nic.tap).copied();
            let action = decide(nic, self.netns.is_some(), view, remembered).map_err(anyhow::Error::msg)?;
            self.act(nic, action)
                .await
                .with_context(|| format!("plugging tap {} into bridge {}", nic.tap, self.ovs.bridge))?;
            if let (None, Some(link)) = (&self.netns, view.links.get(&nic.tap)) {
                self.plugged.lock().unwrap().insert(nic.tap.clone(), link.ifindex);
            }
        }
        Ok(())
    }

    async fn act(&self, nic: &NodeNic, action: Action) -> anyhow::Result<()> {
        let tap = nic.tap.as_str();
        match (action, &self.netns) {
            (Action::Nothing, _) => return Ok(()),
            (Action::MoveAndAttach, Some(ns)) => {
                // The fresh tap is in the root namespace, so one of the same
                // name in the host's is stale: the end of a previous start
                // whose pair the kernel has not torn down yet (seen when a
                // lab came back right after `lab down`). It goes first.
                let _ = run("ip", &["-n", ns, "link", "del", tap]).await;
                run("ip", &["link", "set", tap, "netns", ns]).await?;
                run("ip", &["-n", ns, "link", "set", tap, "up"]).await?;
            }
            (Action::Attach, Some(ns)) => run("ip", &["-n", ns, "link", "set", tap, "up"]).await.map(drop)?,
            (_, None) => run("ip", &["link", "set", tap, "up"]).await.map(drop)?,
        }
        let br = self.ovs.bridge.as_str();
        let iface_id = format!("external_ids:iface-id={}", nic.port);
        // Two transactions: a del-port and add-port of the same name in one
        // leaves ovs-vswitchd holding the dead tap qemu had before.
        self.ovs.vsctl(&["--if-exists", "del-port", br, tap]).await?;
        self.ovs
            .vsctl(&[
                "--",
                "add-port",
                br,
                tap,
                "--",
                "set",
                "Interface",
                tap,
                &iface_id,
            ])
            .await?;
        tracing::info!(tap, port = %nic.port, bridge = br, "tap plugged");
        Ok(())
    }

    /// Removes the taps' OvS ports (the taps themselves go with qemu).
    pub async fn unplug(&self, taps: &[String]) -> anyhow::Result<()> {
        for tap in taps {
            self.plugged.lock().unwrap().remove(tap);
            self.ovs.vsctl(&["--if-exists", "del-port", tap]).await?;
        }
        Ok(())
    }
}

async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic() -> NodeNic {
        NodeNic {
            tap: "dl-web-0".into(),
            port: "lab1.web.0".into(),
            ..Default::default()
        }
    }

    fn view(link: Option<(u32, bool)>, iface: Option<(i64, &str)>) -> TapView {
        let mut v = TapView::default();
        if let Some((ifindex, up)) = link {
            v.links.insert("dl-web-0".into(), Link { ifindex, up });
        }
        if let Some((ofport, id)) = iface {
            v.ifaces.insert(
                "dl-web-0".into(),
                Interface {
                    name: "dl-web-0".into(),
                    ofport,
                    iface_id: Some(id.into()),
                },
            );
        }
        v
    }

    #[test]
    fn in_a_vm_namespace_only_fresh_or_detached_taps_are_plugged() {
        let n = nic();
        let fresh = view(Some((7, false)), Some((3, "lab1.web.0")));
        assert_eq!(decide(&n, true, &fresh, None), Ok(Action::MoveAndAttach));
        let settled = view(None, Some((3, "lab1.web.0")));
        assert_eq!(decide(&n, true, &settled, None), Ok(Action::Nothing));
        let detached = view(None, None);
        assert_eq!(decide(&n, true, &detached, None), Ok(Action::Attach));
        let broken = view(None, Some((-1, "lab1.web.0")));
        assert_eq!(decide(&n, true, &broken, None), Ok(Action::Attach));
        let wrong_port = view(None, Some((3, "other")));
        assert_eq!(decide(&n, true, &wrong_port, None), Ok(Action::Attach));
    }

    #[test]
    fn in_the_root_namespace_a_new_tap_under_the_same_name_is_replugged() {
        let n = nic();
        let ok = view(Some((7, true)), Some((3, "lab1.web.0")));
        assert_eq!(
            decide(&n, false, &ok, None),
            Ok(Action::Nothing),
            "agent restarted"
        );
        assert_eq!(decide(&n, false, &ok, Some(7)), Ok(Action::Nothing));
        assert_eq!(
            decide(&n, false, &ok, Some(5)),
            Ok(Action::Attach),
            "qemu restarted"
        );
        let down = view(Some((7, false)), Some((3, "lab1.web.0")));
        assert_eq!(decide(&n, false, &down, Some(7)), Ok(Action::Attach));
        let new = view(Some((7, false)), None);
        assert_eq!(decide(&n, false, &new, None), Ok(Action::Attach));
        let err = decide(&n, false, &view(None, None), None).unwrap_err();
        assert!(err.contains("tap dl-web-0 does not exist"), "{err}");
    }

    #[test]
    fn parses_ip_link_json() {
        let json = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"]},
            {"ifindex":9,"ifname":"dl-web-0","flags":["BROADCAST","MULTICAST"],"link_netnsid":0}]"#;
        let links = parse_links(json).unwrap();
        assert_eq!(links["lo"], Link { ifindex: 1, up: true });
        assert_eq!(
            links["dl-web-0"],
            Link {
                ifindex: 9,
                up: false
            }
        );
        assert!(parse_links("nope").is_err());
    }
}
