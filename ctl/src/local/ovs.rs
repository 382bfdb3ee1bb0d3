//! One Open vSwitch instance per simulated host, each with its own db,
//! sockets, pidfiles and logs under the host's run directory. ovs-vswitchd
//! runs inside the host namespace so the userspace datapath sees its links.

use std::path::Path;

use anyhow::Context;

use super::command::run;
use super::process::read_pidfile;
use super::state::ProcRecord;

/// The integration bridge every host's ports and uplink join.
pub const BRIDGE: &str = "br-int";

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// `unix:DIR/db.sock`, the database address vsctl and the agent use.
pub fn db_address(dir: &Path) -> String {
    format!("unix:{}", path(dir, "db.sock"))
}

/// `unix:DIR/br-int.mgmt`, where ovs-ofctl reaches the bridge.
pub fn mgmt_address(dir: &Path) -> String {
    format!("unix:{}", path(dir, &format!("{BRIDGE}.mgmt")))
}

/// Creates the db and starts ovsdb-server in the root namespace.
pub fn start_ovsdb(dir: &Path) -> anyhow::Result<ProcRecord> {
    let db = path(dir, "conf.db");
    run(&["ovsdb-tool", "create", &db, SCHEMA])?;
    let rundir = format!("OVS_RUNDIR={}", dir.display());
    run(&[
        "env",
        &rundir,
        "ovsdb-server",
        &db,
        &format!("--remote=punix:{}", path(dir, "db.sock")),
        &format!("--pidfile={}", path(dir, "ovsdb.pid")),
        &format!("--unixctl={}", path(dir, "ovsdb.ctl")),
        &format!("--log-file={}", path(dir, "ovsdb.log")),
        "--detach",
    ])
    .with_context(|| format!("ovsdb-server did not start; see {}", path(dir, "ovsdb.log")))?;
    let record = read_pidfile(&dir.join("ovsdb.pid"), "ovsdb-server")?;
    run(&[
        "ovs-vsctl",
        &format!("--db={}", db_address(dir)),
        "--no-wait",
        "init",
    ])?;
    Ok(record)
}

/// Starts ovs-vswitchd inside `netns`, talking to the host's ovsdb-server.
pub fn start_vswitchd(netns: &str, dir: &Path) -> anyhow::Result<ProcRecord> {
    let rundir = format!("OVS_RUNDIR={}", dir.display());
    run(&[
        "ip",
        "netns",
        "exec",
        netns,
        "env",
        &rundir,
        "ovs-vswitchd",
        &db_address(dir),
        &format!("--pidfile={}", path(dir, "vswitchd.pid")),
        &format!("--unixctl={}", path(dir, "vswitchd.ctl")),
        &format!("--log-file={}", path(dir, "vswitchd.log")),
        "--detach",
    ])
    .with_context(|| format!("ovs-vswitchd did not start; see {}", path(dir, "vswitchd.log")))?;
    read_pidfile(&dir.join("vswitchd.pid"), "ovs-vswitchd")
}

/// `ovs-vsctl --db=unix:DIR/db.sock ARGS...`; waits for vswitchd to apply.
pub fn vsctl(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let db = format!("--db={}", db_address(dir));
    let mut argv = vec!["ovs-vsctl", &db, "--timeout=10"];
    argv.extend_from_slice(args);
    run(&argv)
}

/// `ovs-ofctl -O OpenFlow13 [OPTIONS] COMMAND unix:DIR/br-int.mgmt REST...`:
/// leading `-`-arguments (e.g. `--bundle`) stay before the command.
pub fn ofctl(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let options = args.iter().take_while(|a| a.starts_with('-')).count();
    let (command, rest) = args[options..]
        .split_first()
        .context("ofctl needs a command, e.g. dump-flows")?;
    let target = mgmt_address(dir);
    let mut argv = vec!["ovs-ofctl", "-O", "OpenFlow13"];
    argv.extend_from_slice(&args[..options]);
    argv.extend_from_slice(&[command, &target]);
    argv.extend_from_slice(rest);
    run(&argv)
}

/// The plain baseline: a netdev bridge with the uplink and one NORMAL flow.
pub fn setup_plain_bridge(dir: &Path, uplink: &str) -> anyhow::Result<()> {
    vsctl(
        dir,
        &[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "protocols=OpenFlow13",
            "fail_mode=secure",
            "--",
            "add-port",
            BRIDGE,
            uplink,
        ],
    )?;
    ofctl(dir, &["add-flow", "priority=0,actions=NORMAL"])?;
    Ok(())
}

/// Plugs an instance's host-side veth into br-int, tagged for the agent.
pub fn add_instance_port(dir: &Path, link: &str, iface_id: &str) -> anyhow::Result<()> {
    vsctl(
        dir,
        &[
            "--may-exist",
            "add-port",
            BRIDGE,
            link,
            "--",
            "set",
            "interface",
            link,
            &format!("external_ids:iface-id={iface_id}"),
        ],
    )?;
    Ok(())
}

pub fn del_port(dir: &Path, link: &str) -> anyhow::Result<()> {
    vsctl(dir, &["--if-exists", "del-port", BRIDGE, link])?;
    Ok(())
}
