//! The demo's second half: a lab of container nodes across the demo's
//! simulated hosts, broken on purpose by the `partition` experiment, with
//! its verdict, its HTML report and the lab's picture. Runs this same ctl
//! binary for each step, so what it prints is what a user's commands print.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::local::libvirtd::Libvirtd;

pub const LAB: &str = "demo-lab";
const EXPERIMENT: &str = "partition";

/// Three micro containers, one per host, on one network.
fn lab_file() -> String {
    let mut text = format!(
        "[lab]\nname = \"{LAB}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n"
    );
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        text.push_str(&format!(
            "\n[[node]]\nname = \"n{n}\"\nkind = \"container\"\nmemory = \"128MiB\"\nhost = \"{host}\"\n\
             interfaces = [{{ network = \"lan\", ip = \"10.0.0.{ip}\" }}]\n",
            n = i + 1,
            ip = 11 + i
        ));
    }
    text
}

/// This ctl, pointed at the demo's local setup.
fn ctl(cluster: &str) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("finding this ctl binary")?);
    cmd.env("DCLAB_LOCAL_CLUSTER", cluster);
    Ok(cmd)
}

pub fn step(cluster: &str, args: &[&str]) -> anyhow::Result<bool> {
    println!("\n$ ctl {}", args.join(" "));
    let status = ctl(cluster)?.args(args).status()?;
    Ok(status.success())
}

pub fn newest_run(cluster: &str, lab: &str) -> anyhow::Result<String> {
    let out = ctl(cluster)?
        .args(["-o", "json", "experiment", "ls", "--lab", lab])
        .output()?;
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "reading `ctl experiment ls`: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let id = runs
        .as_array()
        .and_then(|r| r.iter().max_by_key(|r| r["started_unix_ms"].as_u64()))
        .and_then(|r| r["id"].as_str())
        .context("the experiment left no run record")?;
    Ok(id.to_string())
}

/// Brings the lab up, runs the experiment, writes its report and the lab's
/// picture into `out_dir`, and takes the lab down unless `keep`. Returns
/// whether the experiment went as expected.
pub fn run(cluster: &str, out_dir: &Path, keep: bool) -> anyhow::Result<bool> {
    let libvirtd =
        Libvirtd::ensure().context("the lab part needs libvirtd (scripts/install-deps.sh --vm)")?;
    if let Err(e) = libvirtd.check_containers() {
        bail!("{e:#}");
    }
    println!("\n== a lab: three container nodes, one on each simulated host, on one network");
    let file = std::env::temp_dir().join(format!("dclab-demo-lab-{}.toml", std::process::id()));
    std::fs::write(&file, lab_file())?;
    let result = lab_steps(cluster, &file, out_dir);
    let _ = std::fs::remove_file(&file);
    if !keep && !step(cluster, &["lab", "down", LAB])? {
        eprintln!("the demo lab was not removed: `ctl lab down {LAB}` removes it");
    }
    if keep {
        // The lab's nodes need the daemons this demo may have started.
        std::mem::forget(libvirtd);
    }
    result
}

fn lab_steps(cluster: &str, file: &Path, out_dir: &Path) -> anyhow::Result<bool> {
    let file = file.to_str().context("a temporary path that is not UTF-8")?;
    if !step(cluster, &["lab", "up", file])? {
        bail!("the demo lab did not come up; `ctl lab status {LAB}` shows why");
    }
    let picture = out_dir.join("dclab-demo-lab.html");
    step(cluster, &["lab", "graph", LAB, "--out", path(&picture)?])?;
    println!("\n== break it on purpose: the {EXPERIMENT} experiment splits two nodes, checks, heals, checks");
    let report = out_dir.join("dclab-demo-report.html");
    let run = ["experiment", "run", EXPERIMENT, "--lab", LAB, "--seed", "1"];
    run_and_report(cluster, LAB, &run, &report, &picture)
}

/// Runs the experiment `run_args` names, writes the newest run's HTML
/// report to `report`, and prints the verdict and where both pages are.
pub fn run_and_report(
    cluster: &str,
    lab: &str,
    run_args: &[&str],
    report: &Path,
    picture: &Path,
) -> anyhow::Result<bool> {
    let as_expected = step(cluster, run_args)?;
    let run = newest_run(cluster, lab)?;
    let out = path(report)?;
    step(
        cluster,
        &["experiment", "report", &run, "--format", "html", "--out", out],
    )?;
    let verdict = if as_expected {
        "went as expected"
    } else {
        "DEVIATED from what it expected"
    };
    println!("\nthe experiment {verdict}");
    println!("report: {}\nlab picture: {}", report.display(), picture.display());
    Ok(as_expected)
}

pub fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a path that is not UTF-8")
}
