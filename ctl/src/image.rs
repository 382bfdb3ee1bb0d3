//! `ctl image`: the images lab nodes boot. Agents build them on their own
//! host on first use; this builds one here ahead of time, with the agent
//! binary (which owns image building).

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Build (or refresh) the micro-VM image: kernel, initrd, scratch disk.
    BuildMicro {
        #[arg(long, default_value = "/var/lib/dclab/images/micro")]
        dir: PathBuf,
    },
}

pub fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::BuildMicro { dir } => {
            let agent = crate::local::find_binary("agent")?;
            let status = std::process::Command::new(&agent)
                .arg("build-micro")
                .arg("--dir")
                .arg(&dir)
                .status()
                .with_context(|| format!("cannot run {}", agent.display()))?;
            anyhow::ensure!(
                status.success(),
                "building the micro image in {} failed",
                dir.display()
            );
            Ok(())
        }
    }
}
