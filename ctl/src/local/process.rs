//! Starting detached daemons and stopping them by recorded pid only. A pid
//! is killed only while `/proc/<pid>/cmdline` still names the program we
//! started, so a reused pid is never hit.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::state::ProcRecord;

/// Starts `program` in its own session (so it outlives ctl and its terminal),
/// with stdout and stderr appended to `log`.
pub fn spawn_detached(program: &Path, args: &[String], log: &Path) -> anyhow::Result<ProcRecord> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok(ProcRecord {
        pid: child.id() as i32,
        program: program_name(program),
    })
}

fn program_name(program: &Path) -> String {
    program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True while the pid runs (not a zombie) and still is `record.program`.
pub fn is_alive(record: &ProcRecord) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", record.pid)).unwrap_or_default();
    // The state letter follows the last ')' of the command name.
    let zombie_or_gone = match stat.rfind(')') {
        Some(i) => matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X') | None),
        None => true,
    };
    (!zombie_or_gone || threads_left(record.pid)) && names_program(record)
}

/// Whether threads other than the main one still run: a killed process
/// whose main thread is already a zombie keeps its files (ovs-vswitchd's
/// locked pidfile) until the last of its threads has exited.
fn threads_left(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| tasks.count() > 1)
}

fn names_program(record: &ProcRecord) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", record.pid)) else {
        return false;
    };
    // An exiting process has released its memory (and with it cmdline)
    // but may still hold files and locks: it is not gone yet.
    if cmdline.is_empty() {
        return true;
    }
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    Path::new(argv0.as_ref())
        .file_name()
        .is_some_and(|name| name.to_string_lossy() == record.program)
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL. Returns whether
/// there was anything to stop.
pub fn stop(record: &ProcRecord, grace: Duration) -> bool {
    if !is_alive(record) {
        reap(record.pid);
        return false;
    }
    signal(record, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(record.pid);
        if !is_alive(record) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(record, libc::SIGKILL);
    for _ in 0..40 {
        reap(record.pid);
        if !is_alive(record) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Waits up to `timeout` for the process to be gone; whether it is.
pub fn wait_gone(record: &ProcRecord, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reap(record.pid);
        if !is_alive(record) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` if the pid still is the recorded program.
pub fn signal(record: &ProcRecord, sig: i32) -> bool {
    if !is_alive(record) {
        return false;
    }
    // SAFETY: plain syscall on a pid we verified just above.
    unsafe { libc::kill(record.pid, sig) == 0 }
}

/// Collects the exit status if the pid is our own child (tests spawn the
/// coordinator and agents directly), so it does not linger as a zombie.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: WNOHANG never blocks; ECHILD for foreign pids is ignored.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// Reads an OvS pidfile written by `--pidfile`.
pub fn read_pidfile(path: &Path, program: &str) -> anyhow::Result<ProcRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read pidfile {}", path.display()))?;
    let pid = text
        .trim()
        .parse()
        .with_context(|| format!("bad pidfile {}", path.display()))?;
    Ok(ProcRecord {
        pid,
        program: program.to_string(),
    })
}

/// Where dclab's own binaries live: `$DCLAB_BIN_DIR`, else next to the
/// running executable (its parent when that is cargo's `deps` directory).
pub fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("DCLAB_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().context("cannot locate the running executable")?;
            let mut dir = exe.parent().context("executable has no directory")?.to_path_buf();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "binary {name:?} not found in {} (run `cargo build --workspace`, or set DCLAB_BIN_DIR)",
            dir.display()
        );
    }
    Ok(path)
}

/// The last lines of a log file, to put into error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
