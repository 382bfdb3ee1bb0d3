//! `ctl image`: the images lab nodes boot (built by the agent library, so
//! an agent can build them on its own host too).

use std::path::PathBuf;

use dclab_agent::image::build_micro;

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
            let image = build_micro(&dir)?;
            println!("kernel  {} ({})", image.kernel.display(), image.kernel_version);
            println!("initrd  {}", image.initrd.display());
            println!("disk    {}", image.disk.display());
            Ok(())
        }
    }
}
