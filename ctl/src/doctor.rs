//! `ctl doctor`: what this host needs to run dclab, each missing piece
//! named with the one command that fixes it.

use std::path::Path;

use serde::Serialize;

use crate::local::libvirtd::Libvirtd;
use crate::output::Format;

/// One check: what, whether it holds, and the fix when it does not.
#[derive(Debug, Serialize)]
pub struct Check {
    pub what: String,
    /// ok, missing, or none (nothing to check, not a fault).
    pub status: &'static str,
    pub detail: String,
    pub fix: String,
}

fn check(what: &str, ok: bool, detail: String, fix: &str) -> Check {
    Check {
        what: what.to_string(),
        status: if ok { "ok" } else { "missing" },
        detail,
        fix: if ok { String::new() } else { fix.to_string() },
    }
}

const INSTALL: &str = "scripts/install-deps.sh --vm";
/// Free memory and disk below these make lab images and nodes fail midway.
const MIN_MEMORY_MIB: u64 = 2048;
const MIN_DISK_GIB: u64 = 10;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn tools() -> Vec<Check> {
    let needed = [
        ("ovs-vsctl", "Open vSwitch (openvswitch-switch)"),
        ("ovs-ofctl", "Open vSwitch (openvswitch-switch)"),
        ("ovs-vswitchd", "Open vSwitch (openvswitch-switch)"),
        ("ip", "iproute2"),
        ("virsh", "libvirt (libvirt-clients)"),
        ("qemu-system-x86_64", "qemu (qemu-system-x86)"),
        ("mmdebstrap", "mmdebstrap, for Debian images"),
    ];
    needed
        .iter()
        .map(|(tool, from)| {
            let ok = on_path(tool);
            let detail = if ok {
                format!("{tool} found")
            } else {
                format!("{tool} not on PATH ({from})")
            };
            check(tool, ok, detail, INSTALL)
        })
        .collect()
}

fn libvirt() -> Vec<Check> {
    let running = Libvirtd::running();
    let mut checks = vec![check(
        "libvirtd",
        running.is_some(),
        if running.is_some() {
            "answers on qemu:///system and lxc:///system".into()
        } else {
            "does not answer on qemu:///system and lxc:///system".into()
        },
        "scripts/libvirtd.sh",
    )];
    if let Some(daemon) = running {
        let layout = daemon.check_containers();
        checks.push(check(
            "libvirtd cgroups",
            layout.is_ok(),
            match &layout {
                Ok(()) => "its LXC driver can start containers on this host".into(),
                Err(e) => e.to_string(),
            },
            "kill $(cat /run/libvirtd.pid) && scripts/libvirtd.sh",
        ));
    }
    checks
}

fn mem_available_mib() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

fn disk_free_gib(path: &Path) -> u64 {
    // The nearest directory that exists: images go to /var/lib/dclab.
    let mut at = path;
    while !at.exists() {
        at = at.parent().unwrap_or(Path::new("/"));
    }
    let Ok(c) = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs into a buffer of its own type, on a NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: statvfs succeeded and filled it.
    let st = unsafe { st.assume_init() };
    st.f_bavail * st.f_frsize / (1 << 30)
}

fn resources() -> Vec<Check> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tun = Path::new("/dev/net/tun").exists();
    let memory = mem_available_mib();
    let disk = disk_free_gib(Path::new("/var/lib/dclab"));
    vec![
        check(
            "root",
            root,
            if root {
                "running as root".into()
            } else {
                "not root: namespaces, OvS and libvirt need it".into()
            },
            "sudo ctl ...",
        ),
        check(
            "/dev/net/tun",
            tun,
            if tun {
                "present".into()
            } else {
                "absent: VM taps and OvS inside container nodes need it".into()
            },
            "modprobe tun (or run on a host whose kernel has it)",
        ),
        check(
            "memory",
            memory >= MIN_MEMORY_MIB,
            format!("{memory} MiB available (at least {MIN_MEMORY_MIB} MiB for a small lab)"),
            "stop what holds the memory, or give the machine more",
        ),
        check(
            "disk",
            disk >= MIN_DISK_GIB,
            format!("{disk} GiB free under /var/lib/dclab (at least {MIN_DISK_GIB} GiB for the images)"),
            "free space under /var/lib/dclab (old images: ls /var/lib/dclab/images)",
        ),
    ]
}

/// The coordinator ctl would talk to: reachable with the certificates it
/// found, or, when none is configured, nothing to check yet.
async fn coordinator(config: anyhow::Result<dclab_runtime::net::ClientConfig>, configured: bool) -> Check {
    let reached = match config {
        Err(e) => Err(e),
        Ok(c) => match c.connect().await {
            Err(e) => Err(e.into()),
            Ok(channel) => {
                let mut client = crate::client::Operator::new(channel);
                client
                    .status(dclab_proto::v1::StatusRequest {})
                    .await
                    .map(|s| s.into_inner().revision)
                    .map_err(crate::status_error)
            }
        },
    };
    match (reached, configured) {
        (Ok(revision), _) => check(
            "coordinator",
            true,
            format!("answers with the certificates found (revision {revision})"),
            "",
        ),
        (Err(_), false) => Check {
            what: "coordinator".into(),
            status: "none",
            detail: "none running or configured yet".into(),
            fix: "ctl local up --hosts 2 (or --coordinator URL with --pki-dir)".into(),
        },
        (Err(e), true) => check(
            "coordinator",
            false,
            format!("{e:#}"),
            "start it (ctl local up), or fix --coordinator / --pki-dir",
        ),
    }
}

/// Runs every check and prints them; exit 1 when something is missing.
pub async fn run(
    config: anyhow::Result<dclab_runtime::net::ClientConfig>,
    configured: bool,
    format: Format,
) -> anyhow::Result<()> {
    let mut checks = tools();
    checks.extend(libvirt());
    checks.extend(resources());
    checks.push(coordinator(config, configured).await);
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        println!("{:<20} {:<8} DETAIL", "CHECK", "STATUS");
        for c in &checks {
            println!("{:<20} {:<8} {}", c.what, c.status, c.detail);
            if !c.fix.is_empty() && c.status != "ok" {
                println!("{:<20} {:<8} fix: {}", "", "", c.fix);
            }
        }
    }
    let missing = checks.iter().filter(|c| c.status == "missing").count();
    if missing > 0 {
        if format != Format::Json {
            eprintln!("{missing} missing; each line above names its fix");
        }
        return Err(crate::ExitWith(1).into());
    }
    Ok(())
}
