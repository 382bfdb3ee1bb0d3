//! Running the system tools (ip, ovs-*, ethtool) with errors that show the
//! exact command line and what it printed.

use std::process::{Command, Output};

use anyhow::{bail, Context};

/// Runs `argv` to completion; fails on a non-zero exit, quoting stderr.
pub fn run(argv: &[&str]) -> anyhow::Result<String> {
    let output = output(argv)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `argv` to completion and returns its output whatever the exit status.
pub fn output(argv: &[&str]) -> anyhow::Result<Output> {
    let (program, args) = argv.split_first().context("empty command line")?;
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is it installed? see scripts/install-deps.sh)"))
}

/// Runs `argv` inside network namespace `netns`; fails on a non-zero exit.
pub fn run_in(netns: &str, argv: &[&str]) -> anyhow::Result<String> {
    run(&netns_argv(netns, argv))
}

/// `ip netns exec NETNS argv...`
pub fn netns_argv<'a>(netns: &'a str, argv: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["ip", "netns", "exec", netns];
    full.extend_from_slice(argv);
    full
}
