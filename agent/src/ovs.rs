//! The local Open vSwitch, driven through its own tools: ovs-vsctl for the
//! database, ovs-ofctl bundles for atomic flow replacement.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::process::Command;

/// One OvS instance and the bridge the agent owns in it.
#[derive(Debug, Clone)]
pub struct Ovs {
    /// ovsdb remote, e.g. `unix:/run/openvswitch/db.sock`.
    pub db: String,
    /// Where ovs-vswitchd puts `<bridge>.mgmt`.
    pub rundir: PathBuf,
    pub bridge: String,
    /// `netdev` (userspace) or `system` (kernel module).
    pub datapath: String,
    /// ovs-vswitchd's control socket for ovs-appctl; None: the default
    /// one in `rundir` (found through its pidfile).
    pub unixctl: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    #[error("cannot run {tool}: {source}")]
    Spawn { tool: String, source: std::io::Error },
    #[error("{tool} {args} failed: {stderr}")]
    Failed {
        tool: String,
        args: String,
        stderr: String,
    },
    #[error("unexpected output from ovs-vsctl: {0}")]
    Parse(String),
}

/// An OvS interface as the agent cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ofport: i64,
    pub iface_id: Option<String>,
}

impl Ovs {
    pub async fn vsctl(&self, args: &[&str]) -> Result<String, OvsError> {
        let db = format!("--db={}", self.db);
        run("ovs-vsctl", &[&[db.as_str(), "--timeout=10"], args].concat()).await
    }

    pub async fn ofctl(&self, command: &str, extra: &[&str]) -> Result<String, OvsError> {
        let target = self.mgmt();
        // Bundles make flow-table edits atomic.
        let bundle: &[&str] = if command == "replace-flows" {
            &["--bundle"]
        } else {
            &[]
        };
        let args = [bundle, &["-O", "OpenFlow13", command, target.as_str()], extra].concat();
        run("ovs-ofctl", &args).await
    }

    /// `ovs-appctl` against this instance's ovs-vswitchd.
    pub async fn appctl(&self, args: &[&str]) -> Result<String, OvsError> {
        let target = match &self.unixctl {
            Some(path) => path.display().to_string(),
            None => "ovs-vswitchd".to_string(),
        };
        let rundir = format!("OVS_RUNDIR={}", self.rundir.display());
        run(
            "env",
            &[&[rundir.as_str(), "ovs-appctl", "-t", target.as_str()], args].concat(),
        )
        .await
    }

    /// What the bridge does with a packet (`ofproto/trace`), as OvS prints it.
    pub async fn trace(&self, flow: &str) -> Result<String, OvsError> {
        self.appctl(&["ofproto/trace", &self.bridge, flow]).await
    }

    /// The bridge's datapath port numbers: datapath port → OpenFlow port.
    pub async fn datapath_ports(&self) -> Result<BTreeMap<u32, u32>, OvsError> {
        let out = self.appctl(&["dpif/show"]).await?;
        Ok(parse_dpif_show(&out, &self.bridge))
    }

    /// The flows installed now, without counters.
    pub async fn dump_flows(&self) -> Result<String, OvsError> {
        self.ofctl("dump-flows", &["--no-stats"]).await
    }

    pub fn mgmt(&self) -> String {
        format!("unix:{}", self.mgmt_path().display())
    }

    /// The bridge's OpenFlow management socket.
    pub fn mgmt_path(&self) -> PathBuf {
        self.rundir.join(format!("{}.mgmt", self.bridge))
    }

    /// How many of the agent's flows (its cookie) the bridge holds now: one
    /// aggregate reply, however many flows there are.
    pub async fn flow_count(&self) -> Result<u64, OvsError> {
        let cookie = format!("cookie={}/-1", crate::render::COOKIE);
        let out = self.ofctl("dump-aggregate", &[&cookie]).await?;
        parse_flow_count(&out).ok_or_else(|| OvsError::Parse(out.chars().take(200).collect()))
    }

    /// Creates the bridge and attaches the uplink unless they exist. With
    /// fail_mode=secure the bridge forwards nothing until flows arrive, and
    /// keeps its flows when nobody manages it.
    pub async fn ensure_bridge(&self, uplink: &str) -> Result<(), OvsError> {
        let br = self.bridge.as_str();
        let datapath = format!("datapath_type={}", self.datapath);
        self.vsctl(&[
            "--may-exist",
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            &datapath,
            "fail_mode=secure",
            "protocols=OpenFlow13",
            "--",
            "--may-exist",
            "add-port",
            br,
            uplink,
        ])
        .await?;
        Ok(())
    }

    /// The uplink's MAC once OvS has opened it; None while it has not.
    pub async fn mac_of(&self, iface: &str) -> Result<Option<String>, OvsError> {
        let out = self.vsctl(&["get", "Interface", iface, "mac_in_use"]).await?;
        let mac = out.trim().trim_matches('"').to_string();
        Ok((!mac.is_empty() && mac != "[]").then_some(mac))
    }

    pub async fn interfaces(&self) -> Result<Vec<Interface>, OvsError> {
        let out = self
            .vsctl(&[
                "--format=json",
                "--columns=name,ofport,external_ids",
                "list",
                "Interface",
            ])
            .await?;
        parse_interfaces(&out)
    }

    /// Replaces the bridge's flows with `path`'s in one bundle: packets see
    /// the old table or the new one, and unchanged flows are left alone.
    pub async fn replace_flows(&self, path: &str) -> Result<(), OvsError> {
        self.ofctl("replace-flows", &[path]).await.map(|_| ())
    }
}

async fn run(tool: &str, args: &[&str]) -> Result<String, OvsError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .await
        .map_err(|source| OvsError::Spawn {
            tool: tool.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(OvsError::Failed {
            tool: tool.to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `ovs-vsctl --format=json list Interface` (columns name, ofport,
/// external_ids). Maps are `["map", [[k, v], ...]]`.
pub fn parse_interfaces(json: &str) -> Result<Vec<Interface>, OvsError> {
    let bad = || OvsError::Parse(json.chars().take(200).collect());
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|_| bad())?;
    let rows = doc["data"].as_array().ok_or_else(bad)?;
    rows.iter()
        .map(|row| {
            let name = row[0].as_str().ok_or_else(bad)?.to_string();
            // An interface not yet given a port number shows as ["set", []].
            let ofport = row[1].as_i64().unwrap_or(-1);
            let ids: BTreeMap<String, String> = row[2][1]
                .as_array()
                .map(|pairs| {
                    pairs
                        .iter()
                        .filter_map(|kv| Some((kv[0].as_str()?.to_string(), kv[1].as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Interface {
                name,
                ofport,
                iface_id: ids.get("iface-id").cloned(),
            })
        })
        .collect()
}

/// `flow_count=N` of an `ovs-ofctl dump-aggregate` reply.
pub fn parse_flow_count(reply: &str) -> Option<u64> {
    reply
        .split_whitespace()
        .find_map(|field| field.strip_prefix("flow_count="))
        .and_then(|n| n.parse().ok())
}

/// Parses `ovs-appctl dpif/show`: under `  BRIDGE:`, lines `    NAME OFPORT/ODPPORT: (TYPE)`.
pub fn parse_dpif_show(text: &str, bridge: &str) -> BTreeMap<u32, u32> {
    let mut ports = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if indent <= 2 {
            inside = line == format!("{bridge}:");
            continue;
        }
        let numbers = line.split_whitespace().nth(1).map(|n| n.trim_end_matches(':'));
        if let Some((ofport, odp)) = numbers.and_then(|n| n.split_once('/')) {
            if let (true, Ok(ofport), Ok(odp)) = (inside, ofport.parse(), odp.parse()) {
                ports.insert(odp, ofport);
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpif_show() {
        let text = "netdev@ovs-netdev: hit:0 missed:0\n  br0:\n    br0 65534/2: (tap)\n    ta 1/1: (system)\n    tc 2/3: (system)\n  br1:\n    x 1/4: (system)\n";
        let ports = parse_dpif_show(text, "br0");
        assert_eq!(ports, BTreeMap::from([(2, 65534), (1, 1), (3, 2)]));
    }

    #[test]
    fn parses_dump_aggregate() {
        let reply = "OFPST_AGGREGATE reply (OF1.3) (xid=0x2): packet_count=7 byte_count=588 flow_count=25\n";
        assert_eq!(parse_flow_count(reply), Some(25));
        assert_eq!(parse_flow_count("OFPST_AGGREGATE reply (OF1.3)"), None);
    }

    #[test]
    fn parses_vsctl_json() {
        let json = r#"{"data":[["i-vm1",2,["map",[["iface-id","vm1"]]]],["up0",1,["map",[]]],["new",["set",[]],["map",[]]]],"headings":["name","ofport","external_ids"]}"#;
        let ifaces = parse_interfaces(json).unwrap();
        assert_eq!(ifaces.len(), 3);
        assert_eq!(ifaces[0].iface_id.as_deref(), Some("vm1"));
        assert_eq!(ifaces[1].ofport, 1);
        assert_eq!(ifaces[2].ofport, -1);
        assert!(parse_interfaces("not json").is_err());
    }
}
