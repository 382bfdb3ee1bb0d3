//! Wakes the reconcile loop when OvS's Interface table changes, instead of
//! polling it: `ovsdb-client monitor` prints a line per change; each line
//! only says "look again", so no update is parsed or kept.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;
use tracing::warn;

/// Runs forever, restarting the monitor when it ends; `changed` is
/// notified on every line it prints.
pub async fn watch_interfaces(db: String, changed: Arc<Notify>) {
    loop {
        if let Err(err) = monitor_once(&db, &changed).await {
            warn!(db = %db, error = %err, "interface monitor failed, restarting");
        }
        changed.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn monitor_once(db: &str, changed: &Notify) -> std::io::Result<()> {
    let mut cmd = Command::new("ovsdb-client");
    cmd.args([
        "monitor",
        db,
        "Open_vSwitch",
        "Interface",
        "name,ofport,external_ids",
        "--format=json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    ends_with_agent(&mut cmd);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    while lines.next_line().await?.is_some() {
        changed.notify_one();
    }
    child.wait().await?;
    Ok(())
}

/// A child that lives only as long as the agent: dropped with its handle,
/// and ended by the kernel when the agent is killed with SIGKILL.
pub(crate) fn ends_with_agent(cmd: &mut Command) {
    cmd.kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}
