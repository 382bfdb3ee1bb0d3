//! `ctl lab install`: runs a playbook of `playbooks/` against a lab with
//! Ansible, reaching every node through the coordinator (`ctl lab proxy`
//! as SSH ProxyCommand), with a progress line per play and host, the full
//! log kept in the lab's install directory, and the time per chapter.

mod ansible;
mod files;
mod manifest;
mod progress;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use dclab_proto::v1;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::remote::{status_error, take_initial, Client};
use crate::output::{print, Format};
use files::Layout;
use manifest::Manifest;
use progress::{Event, Progress, MARK};

pub use ansible::ANSIBLE_CORE;

/// The playbooks of this source tree, unless `--playbooks` or
/// `DCLAB_PLAYBOOKS` says otherwise.
pub const PLAYBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../playbooks");

pub struct InstallOptions {
    /// A directory of `playbooks/` (e.g. `openstack`).
    pub playbook: String,
    /// Only these chapters (in the playbook's order); all when empty.
    pub chapters: Vec<String>,
    pub snapshot: Option<String>,
    pub playbooks: PathBuf,
    /// Where labs' install directories and Ansible's venv live.
    pub state: PathBuf,
    /// This ctl and its connection options, for the ProxyCommand.
    pub ctl_argv: Vec<String>,
    /// `--var KEY=VALUE`, laid over the ones remembered in the lab's install dir.
    pub vars: Vec<String>,
}

/// `$DCLAB_STATE`, else `~/.local/state/dclab`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DCLAB_STATE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".local/state/dclab")
}

fn pick_chapters(all: Vec<String>, wanted: &[String], manifest: &Path) -> anyhow::Result<Vec<String>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    if let Some(bad) = wanted.iter().find(|w| !all.contains(w)) {
        bail!(
            "no chapter {bad:?} in {}; its chapters are {}",
            manifest.display(),
            all.join(", ")
        );
    }
    Ok(all.into_iter().filter(|c| wanted.contains(c)).collect())
}

pub async fn install(
    mut client: Client,
    lab: &str,
    opts: InstallOptions,
    format: Format,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if opts.playbook.is_empty() || opts.playbook.contains('/') || opts.playbook.starts_with('.') {
        bail!(
            "--playbook {:?}: give the name of a directory of {}",
            opts.playbook,
            opts.playbooks.display()
        );
    }
    let book = opts.playbooks.join(&opts.playbook);
    let manifest_path = manifest::path(&book);
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "no playbook {:?}: cannot read {} (--playbooks DIR points elsewhere)",
            opts.playbook,
            manifest_path.display()
        )
    })?;
    let manifest = Manifest::parse(&manifest_text, &manifest_path)?;
    let chapters = pick_chapters(manifest.chapter_names(), &opts.chapters, &manifest_path)?;
    let given_vars = files::parse_vars(&opts.vars)?;
    let status = client
        .get_lab(v1::GetLabRequest { name: lab.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    if !status.ready {
        bail!("lab {lab} is not ready: `ctl lab status {lab}` shows which nodes do not run yet");
    }
    let layout = Layout {
        dir: opts.state.join("labs").join(lab),
    };
    std::fs::create_dir_all(layout.control_dir())
        .with_context(|| format!("creating {}", layout.dir.display()))?;
    let state = opts.state.clone();
    let python = tokio::task::spawn_blocking(move || ansible::ensure(&state)).await??;

    let public_key = files::node_key(&layout)?;
    authorize(&mut client, lab, &status, &public_key).await?;
    write_files(&layout, &status, &opts, lab, &manifest.secrets())?;
    let remembered = std::fs::read_to_string(layout.vars()).ok();
    let vars = files::vars(remembered.as_deref(), &given_vars)?;
    files::write_file(&layout.vars(), &serde_json::to_string_pretty(&vars)?, 0o644)?;
    if !vars.is_empty() {
        let shown: Vec<String> = vars
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        eprintln!(
            "lab {lab}: variables {} (kept in {})",
            shown.join(" "),
            layout.vars().display()
        );
    }

    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let log_path = layout.dir.join(format!("install-{stamp}.log"));
    eprintln!(
        "lab {lab}: installing {} ({}); full log in {}",
        opts.playbook,
        chapters.join(", "),
        log_path.display()
    );
    let files: Vec<String> = chapters.iter().map(|c| format!("{c}.yml")).collect();
    let mut run = Run::start(&python, &layout, &book, &files, &log_path).await?;
    let followed = run.follow().await;
    close_masters(&layout, &status).await;
    let (progress, code) = followed?;
    let stderr_tail: Vec<String> = run.stderr_tail.drain(..).collect();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(f) = &progress.failure {
        bail!(
            "install of lab {lab} failed on node {} at task \"{}\" (play \"{}\"): {}\n\
             full log: {}; the lab is left as it is for inspection (`ctl lab ssh {lab} {}`)",
            f.host,
            f.task,
            f.play,
            f.msg,
            log_path.display(),
            f.host
        );
    }
    if code < 0 {
        bail!(
            "ansible-playbook was killed by signal {}; full log: {}",
            -code,
            log_path.display()
        );
    }
    if code != 0 {
        bail!(
            "ansible-playbook exited with {code} before any task failed: {}; full log: {}",
            stderr_tail.join(" / "),
            log_path.display()
        );
    }
    let snapshot = match &opts.snapshot {
        Some(name) => Some(take_initial(&mut client, lab, name).await?),
        None => None,
    };
    let summary = json!({
        "lab": lab, "playbook": opts.playbook, "seconds": seconds, "changed": progress.changed,
        "chapters": progress.chapters.iter().map(|(c, s)| json!({"chapter": c, "seconds": s})).collect::<Vec<_>>(),
        "log": log_path, "snapshot": snapshot,
    });
    files::write_file(
        &layout.dir.join("last-install.json"),
        &serde_json::to_string_pretty(&summary)?,
        0o644,
    )?;
    eprintln!(
        "lab {lab}: {} installed in {seconds:.1} s, {} tasks changed",
        opts.playbook, progress.changed
    );
    let rows: Vec<Vec<String>> = progress
        .chapters
        .iter()
        .map(|(c, s)| vec![c.clone(), format!("{s:.1} s")])
        .collect();
    print(format, &["CHAPTER", "TIME"], &rows, summary);
    Ok(())
}

/// Puts the install key into root's authorized_keys on every node, through
/// the node's own exec (no SSH needed yet).
async fn authorize(client: &mut Client, lab: &str, status: &v1::Lab, key: &str) -> anyhow::Result<()> {
    let script = format!(
        "mkdir -p /root/.ssh && chmod 700 /root/.ssh && touch /root/.ssh/authorized_keys && \
         chmod 600 /root/.ssh/authorized_keys && \
         (grep -qxF '{key}' /root/.ssh/authorized_keys || echo '{key}' >> /root/.ssh/authorized_keys)"
    );
    for node in status.nodes.iter().filter_map(|n| n.spec.as_ref()) {
        let reply = client
            .exec_node(v1::ExecNodeRequest {
                lab: lab.into(),
                node: node.name.clone(),
                command: script.clone(),
                timeout_ms: 30_000,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        if reply.exit_code != 0 {
            bail!(
                "cannot put the install key on node {}: exit {}: {}",
                node.name,
                reply.exit_code,
                reply.output.trim()
            );
        }
    }
    Ok(())
}

/// Ends the SSH master connections Ansible left (ControlPersist), so no
/// ssh or ctl proxy process outlives the install.
async fn close_masters(layout: &Layout, status: &v1::Lab) {
    for node in status.nodes.iter().filter_map(|n| n.spec.as_ref()) {
        let socket = layout.control_socket(&node.name);
        if !socket.exists() {
            continue;
        }
        let _ = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(layout.ssh_config())
            .arg("-o")
            .arg(format!("ControlPath={}", socket.display()))
            .args(["-O", "exit", &node.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

fn write_files(
    layout: &Layout,
    status: &v1::Lab,
    opts: &InstallOptions,
    lab: &str,
    secret_names: &[String],
) -> anyhow::Result<()> {
    let inventory = serde_json::to_string_pretty(&files::inventory(status))?;
    files::write_file(&layout.inventory(), &inventory, 0o644)?;
    let proxy: Vec<String> = opts
        .ctl_argv
        .iter()
        .map(|a| super::tunnel::shell_quote(a))
        .collect();
    files::write_file(
        &layout.ssh_config(),
        &files::ssh_config(layout, &proxy.join(" "), lab),
        0o644,
    )?;
    files::write_file(
        &layout.ansible_cfg(),
        &files::ansible_cfg(layout, &opts.playbooks),
        0o644,
    )?;
    let existing = std::fs::read_to_string(layout.secrets()).ok();
    let secrets = files::secrets(existing.as_deref(), secret_names)?;
    files::write_file(&layout.secrets(), &serde_json::to_string_pretty(&secrets)?, 0o600)
}

/// A running ansible-playbook: its output goes to the log, its events to
/// the progress lines.
struct Run {
    child: tokio::process::Child,
    log: tokio::fs::File,
    /// The last lines Ansible wrote to stderr, for an error before any task.
    stderr_tail: std::collections::VecDeque<String>,
}

impl Run {
    async fn start(
        python: &Path,
        layout: &Layout,
        book: &Path,
        files: &[String],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log = tokio::fs::File::create(log)
            .await
            .with_context(|| format!("creating {}", log.display()))?;
        let child = tokio::process::Command::new(python)
            .args(["-m", "ansible.cli.playbook"])
            .arg("-e")
            .arg(format!("@{}", layout.secrets().display()))
            .arg("-e")
            .arg(format!("@{}", layout.vars().display()))
            .arg("-e")
            .arg(format!("dclab_install_dir={}", layout.dir.display()))
            .arg("-e")
            .arg(format!("dclab_ctl={}", std::env::current_exe()?.display()))
            .args(files)
            .current_dir(book)
            .env("ANSIBLE_CONFIG", layout.ansible_cfg())
            .env("ANSIBLE_NOCOLOR", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        Ok(Run {
            child,
            log,
            stderr_tail: Default::default(),
        })
    }

    async fn follow(&mut self) -> anyhow::Result<(Progress, i32)> {
        let mut out = BufReader::new(self.child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(self.child.stderr.take().expect("piped")).lines();
        let mut progress = Progress::default();
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                line = out.next_line(), if out_open => match line? {
                    Some(l) => match l.strip_prefix(MARK) {
                        Some(event) => match serde_json::from_str::<Event>(event) {
                            Ok(e) => progress.take(e).iter().for_each(|l| eprintln!("  {l}")),
                            Err(e) => self.log(&format!("(unreadable event {event}: {e})")).await?,
                        },
                        None => self.log(&l).await?,
                    },
                    None => out_open = false,
                },
                line = err.next_line(), if err_open => match line? {
                    Some(l) => {
                        self.log(&l).await?;
                        if self.stderr_tail.len() == 3 {
                            self.stderr_tail.pop_front();
                        }
                        self.stderr_tail.push_back(l);
                    }
                    None => err_open = false,
                },
            }
        }
        let status = self.child.wait().await?;
        self.log.flush().await?;
        use std::os::unix::process::ExitStatusExt;
        // A signal is told apart from an exit code by its sign.
        Ok((
            progress,
            status.code().unwrap_or_else(|| -status.signal().unwrap_or(0)),
        ))
    }

    async fn log(&mut self, line: &str) -> anyhow::Result<()> {
        self.log.write_all(line.as_bytes()).await?;
        self.log.write_all(b"\n").await?;
        Ok(())
    }
}
