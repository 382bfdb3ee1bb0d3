//! `ctl snapshot`: whole-lab snapshots, consistent across hosts.

use clap::Subcommand;
use dclab_proto::v1;
use serde_json::json;

use crate::lab::remote::{resolve, status_error, Client};
use crate::output::{print, Format};

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Pause every node of the lab on every host, snapshot each (disk and
    /// memory), then resume them all.
    Create {
        name: String,
        /// The lab [default: the only lab there is].
        #[arg(long)]
        lab: Option<String>,
        /// Shut the nodes down for the snapshot and start them again (as the paper did).
        #[arg(long)]
        cold: bool,
        /// Go ahead although an experiment run (and its faults) is under way on the lab.
        #[arg(long)]
        force: bool,
    },
    /// Bring every node of the lab back to the snapshot, on every host.
    Restore {
        name: String,
        #[arg(long)]
        lab: Option<String>,
        /// Accepted for symmetry with create; a restore discards what runs, so it always
        /// stops the nodes in place (no graceful shutdown) before reverting.
        #[arg(long, hide = true)]
        cold: bool,
        /// Go ahead although an experiment run (and its faults) is under way on the lab.
        #[arg(long)]
        force: bool,
    },
    /// List snapshots (of one lab with --lab).
    Ls {
        #[arg(long)]
        lab: Option<String>,
    },
    /// Remove a snapshot from every node.
    Rm {
        name: String,
        #[arg(long)]
        lab: Option<String>,
    },
}

fn phases(s: &v1::Snapshot) -> String {
    let parts: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {:.2} s", p.phase, p.micros as f64 / 1e6))
        .collect();
    parts.join(", ")
}

fn timing_json(s: &v1::Snapshot) -> serde_json::Value {
    let phases: Vec<_> = s
        .phases
        .iter()
        .map(|p| json!({"phase": p.phase, "seconds": p.micros as f64 / 1e6}))
        .collect();
    json!({"lab": s.lab, "name": s.name, "cold": s.cold, "nodes": s.nodes, "hosts": s.hosts,
           "seconds": s.micros as f64 / 1e6, "phases": phases})
}

pub async fn run(mut client: Client, cmd: SnapshotCommand, format: Format) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create {
            name,
            lab,
            cold,
            force,
        } => {
            let lab = resolve(&mut client, lab).await?;
            eprintln!(
                "lab {lab}: taking snapshot {name}{}",
                if cold { " (cold)" } else { "" }
            );
            let s = client
                .create_snapshot(v1::SnapshotRequest {
                    lab,
                    name,
                    cold,
                    force,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report(format, "created", &s);
        }
        SnapshotCommand::Restore {
            name,
            lab,
            cold,
            force,
        } => {
            let lab = resolve(&mut client, lab).await?;
            eprintln!("lab {lab}: restoring snapshot {name}");
            let s = client
                .restore_snapshot(v1::SnapshotRequest {
                    lab,
                    name,
                    cold,
                    force,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report(format, "restored", &s);
        }
        SnapshotCommand::Ls { lab } => {
            if let Some(lab) = &lab {
                // An empty list must not hide a misspelt lab.
                crate::lab::remote::require_node(&mut client, lab, None).await?;
            }
            let snaps = client
                .list_snapshots(v1::ListSnapshotsRequest {
                    lab: lab.unwrap_or_default(),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .snapshots;
            let rows: Vec<Vec<String>> = snaps
                .iter()
                .map(|s| {
                    vec![
                        s.lab.clone(),
                        s.name.clone(),
                        s.nodes.to_string(),
                        s.hosts.join(","),
                        if s.cold { "cold" } else { "live" }.to_string(),
                        created(s.created_unix_ms),
                        format!("{:.2} s", s.micros as f64 / 1e6),
                    ]
                })
                .collect();
            let json = serde_json::Value::Array(snaps.iter().map(timing_json).collect());
            print(
                format,
                &["LAB", "NAME", "NODES", "HOSTS", "KIND", "CREATED", "TOOK"],
                &rows,
                json,
            );
        }
        SnapshotCommand::Rm { name, lab } => {
            let lab = resolve(&mut client, lab).await?;
            client
                .delete_snapshot(v1::SnapshotRequest {
                    lab: lab.clone(),
                    name: name.clone(),
                    cold: false,
                    force: false,
                })
                .await
                .map_err(status_error)?;
            eprintln!("lab {lab}: snapshot {name} removed");
        }
    }
    Ok(())
}

fn report(format: Format, verb: &str, s: &v1::Snapshot) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&timing_json(s)).expect("json")),
        Format::Table => println!(
            "snapshot {} of lab {} {verb} in {:.2} s ({} nodes on {}): {}",
            s.name,
            s.lab,
            s.micros as f64 / 1e6,
            s.nodes,
            s.hosts.join(", "),
            phases(s)
        ),
    }
}

fn created(unix_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix_ms.to_string())
}
