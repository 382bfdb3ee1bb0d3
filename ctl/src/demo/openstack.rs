//! `ctl demo --openstack`: the full headline. The paper's OpenStack
//! architecture as containers on two simulated hosts, installed by Ansible
//! through `ctl lab install` (snapshot `initial`), and the paper's
//! `compute-unreachable` run on it, with its verdict, HTML report and the
//! lab's picture. About 13 minutes cold on a 2-core machine (four role
//! images are built first), 6 warm. Runs this same ctl for each step.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};

use super::lab::{path, run_and_report, step};
use crate::local::libvirtd::Libvirtd;
use crate::local::{Cluster, UpOptions};

pub const CLUSTER: &str = "demoos";
const LAB: &str = "openstack-hpi";
const EXPERIMENT: &str = "compute-unreachable";

/// The lab file, from the repository this ctl was built in or the current directory.
fn lab_file() -> anyhow::Result<String> {
    let name = "examples/openstack-hpi-containers.toml";
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name),
        Path::new(name).to_path_buf(),
    ];
    let found = candidates
        .iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found: run the demo from the dclab repository"))?;
    Ok(found.to_str().context("a path that is not UTF-8")?.to_string())
}

pub fn run(out_dir: &Path, keep: bool) -> anyhow::Result<bool> {
    let file = lab_file()?;
    let libvirtd =
        Libvirtd::ensure().context("the OpenStack demo needs libvirtd (scripts/install-deps.sh --vm)")?;
    libvirtd.check_containers()?;
    let started = Instant::now();
    println!("== the paper's OpenStack architecture: 6 container nodes on 2 simulated hosts");
    Cluster::up(&UpOptions::new(CLUSTER, 2)).with_context(|| {
        format!("cannot bring up the local setup {CLUSTER}; if one is left over, run `ctl local down --name {CLUSTER}`")
    })?;
    let result = steps(&file, out_dir);
    println!(
        "\n(the OpenStack demo took {:.1} min)",
        started.elapsed().as_secs_f64() / 60.0
    );
    if keep {
        println!("\nthe lab is still up: export DCLAB_LOCAL_CLUSTER={CLUSTER}; ctl lab status {LAB}; ctl lab forward {LAB} controller 80");
        std::mem::forget(libvirtd);
    } else {
        step(CLUSTER, &["lab", "down", LAB])?;
        Cluster::down(CLUSTER)?;
    }
    result
}

fn steps(file: &str, out_dir: &Path) -> anyhow::Result<bool> {
    println!("\n(role images are built on first use, a few minutes each)");
    if !step(CLUSTER, &["lab", "up", file, "--timeout", "1800"])? {
        bail!("the OpenStack lab did not come up; `DCLAB_LOCAL_CLUSTER={CLUSTER} ctl lab status {LAB}` shows why");
    }
    let picture = out_dir.join("dclab-demo-openstack-lab.html");
    step(CLUSTER, &["lab", "graph", LAB, "--out", path(&picture)?])?;
    println!("\n== OpenStack Zed from Debian's packages, chapter by chapter, then the snapshot `initial`");
    if !step(CLUSTER, &["lab", "install", LAB, "--snapshot", "initial"])? {
        bail!("the install failed; the line above names the node, task and log");
    }
    println!("\n== the paper's experiment: compute nodes unreachable");
    let report = out_dir.join("dclab-demo-openstack-report.html");
    let run = ["experiment", "run", EXPERIMENT, "--lab", LAB, "--yes"];
    run_and_report(CLUSTER, LAB, &run, &report, &picture)
}
