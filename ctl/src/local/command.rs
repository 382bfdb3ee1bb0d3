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

/// `N packets transmitted, M received` from ping's summary; zeros when
/// there is none.
pub fn ping_counts(output: &str) -> (u32, u32) {
    let line = output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let mut next = || numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (next(), next())
}
