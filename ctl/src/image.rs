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
    /// Build a Debian 12 image for container nodes (or, with --vm, VM nodes) from Debian's packages (mmdebstrap, about
    /// 40 s for the base): systemd, SSH, Python for Ansible, and the packages of a lab role.
    /// Named `debian` (base) or `debian-<role>` in lab files. The first build freezes the package
    /// lists and keeps every .deb in the cache dir: later builds get the same versions, offline.
    Build {
        /// Only `debian` is built here.
        #[arg(value_parser = ["debian"])]
        distribution: String,
        /// base, controller, network, compute, object-storage or aptcache.
        #[arg(long, default_value = "base")]
        role: String,
        /// Where agents look for images (their --image-dir).
        #[arg(long, default_value = "/var/lib/dclab/images")]
        image_dir: PathBuf,
        /// The host's package cache (the agents' --cache-dir).
        #[arg(long, default_value = "/var/lib/dclab/cache")]
        cache_dir: PathBuf,
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// Take new package lists (newer versions) instead of the frozen ones.
        #[arg(long)]
        refresh: bool,
        /// Build again even if the image exists.
        #[arg(long)]
        rebuild: bool,
        /// The VM variant instead: `<name>.qcow2` (ext4, no partitions) with the cloud kernel
        /// and cloud-init, and `<name>.kernel` / `<name>.initrd` for direct kernel boot.
        #[arg(long)]
        vm: bool,
    },
}

pub fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    let (args, what) = match cmd {
        ImageCommand::BuildMicro { dir } => (
            vec!["build-micro".into(), "--dir".into(), dir.display().to_string()],
            format!("the micro image in {}", dir.display()),
        ),
        ImageCommand::Build {
            distribution: _,
            role,
            image_dir,
            cache_dir,
            mirror,
            refresh,
            rebuild,
            vm,
        } => {
            let mut args = vec![
                "build-debian".to_string(),
                "--role".into(),
                role.clone(),
                "--image-dir".into(),
                image_dir.display().to_string(),
                "--cache-dir".into(),
                cache_dir.display().to_string(),
                "--mirror".into(),
                mirror,
            ];
            args.extend(refresh.then(|| "--refresh".to_string()));
            args.extend(rebuild.then(|| "--rebuild".to_string()));
            args.extend(vm.then(|| "--vm".to_string()));
            (args, format!("the Debian image of role {role}"))
        }
    };
    // The agent binary owns image building; its progress goes to our stderr.
    let agent = crate::local::find_binary("agent")?;
    let status = std::process::Command::new(&agent)
        .args(&args)
        .status()
        .with_context(|| format!("cannot run {}", agent.display()))?;
    anyhow::ensure!(status.success(), "building {what} failed");
    Ok(())
}
