//! The `ctl` binary, run against a local cluster the way an operator would.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::Cluster;

pub struct Ctl {
    bin: PathBuf,
    cluster: String,
}

/// What a ctl run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ctl {
    /// The ctl built next to the test binary, aimed at `cluster`.
    pub fn new(cluster: &Cluster) -> Ctl {
        let bin = crate::built_bins(&["ctl"]).join("ctl");
        Ctl {
            bin,
            cluster: cluster.name().to_string(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(&[], args)
    }

    /// The ctl command aimed at the cluster, to spawn and control.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("DCLAB_LOCAL_CLUSTER", &self.cluster).args(args);
        cmd
    }

    /// Runs with extra environment variables.
    pub fn run_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        Command::new(&self.bin)
            .env("DCLAB_LOCAL_CLUSTER", &self.cluster)
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("ctl runs")
            .into()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.ok(),
            "ctl {args:?} failed ({}):\n{}{}",
            run.code,
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// `ctl -o json ...`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(&[&["-o", "json"], args].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ctl {args:?}: not JSON ({e}):\n{out}"))
    }
}
