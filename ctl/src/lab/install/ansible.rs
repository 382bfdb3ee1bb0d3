//! Ansible for `ctl lab install`: ansible-core from PyPI, pinned, in a
//! virtualenv of its own made on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The pinned release: runs on Python 3.10–3.12 here and drives Debian
/// 12's Python 3.11 on the nodes.
pub const ANSIBLE_CORE: &str = "2.17.14";

/// Written last, so a venv cut short by a failure or ^C is made again.
const COMPLETE: &str = ".dclab-complete";

/// The venv's Python, with ansible-core installed in it.
pub fn ensure(state: &Path) -> anyhow::Result<PathBuf> {
    let venv = state.join("ansible").join(format!("ansible-core-{ANSIBLE_CORE}"));
    let python = venv.join("bin").join("python3");
    if venv.join(COMPLETE).exists() {
        return Ok(python);
    }
    eprintln!(
        "installing ansible-core {ANSIBLE_CORE} from PyPI into {} (once)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    std::fs::create_dir_all(venv.parent().expect("venv has a parent"))?;
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (install python3 and python3-venv)",
    )?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("ansible-core=={ANSIBLE_CORE}"),
        ]),
        "pip install ansible-core (needs PyPI)",
    )?;
    std::fs::write(venv.join(COMPLETE), ANSIBLE_CORE)?;
    Ok(python)
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
