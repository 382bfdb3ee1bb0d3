//! Notices what the database monitor cannot: an ovs-vswitchd that
//! restarted (after a crash or an upgrade the database is unchanged, same
//! ports and port numbers, but the new process starts with no flows, and
//! with fail_mode=secure forwards nothing) and flows deleted behind the
//! agent's back. One `ovs-ofctl monitor` holds an OpenFlow connection to
//! the bridge and prints every deleted flow as it happens; the connection
//! ends with ovs-vswitchd, and the watch connects again as soon as the
//! bridge's management socket accepts. Nothing is polled while the bridge
//! is well.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::ovs::Ovs;
use crate::render::COOKIE;

/// How often the management socket is tried while ovs-vswitchd is away:
/// one connect(2), no process.
const PROBE: Duration = Duration::from_millis(50);
/// Waits after a monitor that ended before it was monitoring (ovs-ofctl
/// missing, the bridge refusing OpenFlow 1.3), doubling up to the last.
const FAILED_FIRST: Duration = Duration::from_millis(100);
const FAILED_MAX: Duration = Duration::from_secs(10);
/// Deletions only, without actions: additions and changes are the
/// agent's own bundles, and a line per deleted flow is all it needs.
const WATCH: &str = "watch:!initial,!add,!modify,!actions";

/// What the watch saw since the reconciler last looked.
#[derive(Debug, Default)]
pub struct BridgeEvents {
    wake: Notify,
    reconnected: AtomicBool,
    deleted: AtomicBool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The bridge answers again after its connection ended: perhaps a new
    /// ovs-vswitchd, with no flows.
    pub reconnected: bool,
    /// Flows with the agent's cookie were deleted, perhaps by the agent's
    /// own bundle.
    pub deleted: bool,
}

impl BridgeEvents {
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// What was seen since the last call.
    pub fn take(&self) -> Seen {
        Seen {
            reconnected: self.reconnected.swap(false, Ordering::SeqCst),
            deleted: self.deleted.swap(false, Ordering::SeqCst),
        }
    }

    fn set(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Runs until aborted. The first connection is not reported: the agent
/// installs its flows at start anyway.
pub async fn watch_bridge(ovs: Ovs, events: Arc<BridgeEvents>) {
    let mut connected_before = false;
    let mut failed_wait = FAILED_FIRST;
    loop {
        wait_listening(&ovs.mgmt_path()).await;
        match monitor_once(&ovs, &events, connected_before).await {
            Ok(true) => {
                connected_before = true;
                failed_wait = FAILED_FIRST;
                warn!(bridge = %ovs.bridge, "lost the bridge's openflow connection (ovs-vswitchd stopped?); flows are reinstalled once it answers");
                continue;
            }
            Ok(false) => {
                warn!(bridge = %ovs.bridge, retry_in = ?failed_wait, "ovs-ofctl monitor ended before monitoring the bridge")
            }
            Err(err) => {
                warn!(bridge = %ovs.bridge, error = %err, retry_in = ?failed_wait, "cannot run ovs-ofctl monitor")
            }
        }
        tokio::time::sleep(failed_wait).await;
        failed_wait = (failed_wait * 2).min(FAILED_MAX);
    }
}

/// Until something accepts on the management socket (a stale socket file
/// of a killed ovs-vswitchd refuses).
async fn wait_listening(path: &Path) {
    while tokio::net::UnixStream::connect(path).await.is_err() {
        tokio::time::sleep(PROBE).await;
    }
}

/// Runs one monitor until its connection ends; whether it got as far as
/// monitoring.
async fn monitor_once(ovs: &Ovs, events: &BridgeEvents, report: bool) -> std::io::Result<bool> {
    let mut cmd = Command::new("ovs-ofctl");
    // The monitor's own control socket goes beside ovs-vswitchd's.
    cmd.env("OVS_RUNDIR", &ovs.rundir)
        .args(["-O", "OpenFlow13", "--no-names", "monitor", &ovs.mgmt(), WATCH])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    crate::monitor::ends_with_agent(&mut cmd);
    let mut child = cmd.spawn()?;
    // stdout gets the reply to the monitor request (from then on every
    // deletion is seen); the updates themselves go to stderr, unbuffered.
    let mut reply = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut updates = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let (mut reply_open, mut updates_open) = (true, true);
    let mut monitoring = false;
    while reply_open || updates_open {
        let (replied, update) = tokio::select! {
            line = reply.next_line(), if reply_open => {
                reply_open = line?.is_some();
                (reply_open, None)
            }
            line = updates.next_line(), if updates_open => {
                let line = line?;
                updates_open = line.is_some();
                (false, line)
            }
        };
        // Errors before connecting go to stderr too: they are no updates.
        let lost = update.as_deref().is_some_and(names_lost_flows);
        if (replied || lost) && !monitoring {
            monitoring = true;
            if report {
                info!(bridge = %ovs.bridge, "bridge answers again");
                events.set(&events.reconnected);
            }
        }
        if lost {
            events.set(&events.deleted);
        }
    }
    child.wait().await?;
    Ok(monitoring)
}

/// A deletion of one of the agent's flows, or the switch saying it paused
/// or resumed reporting (while paused it may have deleted some unseen).
fn names_lost_flows(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    let ours = line.contains(&format!("cookie={COOKIE}"));
    (line.contains("event=DELETED") && ours) || lower.contains("paused") || lower.contains("resumed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deletions_of_the_agents_flows_or_a_pause_count() {
        let ours = " event=DELETED reason=delete table=10 cookie=0xdc1ab ip,reg0=0x1,nw_dst=10.0.0.2";
        let theirs = " event=DELETED reason=delete table=0 cookie=0x5 in_port=1";
        assert!(names_lost_flows(ours));
        assert!(!names_lost_flows(theirs));
        assert!(!names_lost_flows("ONFST_FLOW_MONITOR reply (OF1.3) (xid=0x0):"));
        assert!(names_lost_flows("ONFT_FLOW_MONITOR_PAUSED (OF1.3) (xid=0x0):"));
        assert!(names_lost_flows("NXT_FLOW_MONITOR_RESUMED (xid=0x0):"));
    }

    #[test]
    fn take_reports_each_event_once() {
        let events = BridgeEvents::default();
        events.set(&events.deleted);
        assert_eq!(
            events.take(),
            Seen {
                reconnected: false,
                deleted: true
            }
        );
        assert_eq!(events.take(), Seen::default());
    }
}
