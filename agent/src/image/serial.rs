//! Host side of the micro-VM's serial command protocol (see the module doc of
//! `image`): connects to the unix socket qemu or libvirt exposes for ttyS0.

use anyhow::{bail, Context};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many console lines to keep for error messages.
const RECENT_LINES: usize = 20;
/// How often wait_ready asks the guest whether its command loop is up.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A guest's serial console, driven one command at a time.
pub struct SerialConsole {
    stream: UnixStream,
    path: PathBuf,
    pending: Vec<u8>,
    recent: VecDeque<String>,
    /// Unique per connection, so output of an earlier client's commands
    /// (or of stale probes) is never taken for ours.
    session: String,
    next_id: u64,
}

impl SerialConsole {
    /// Connects to the console socket, retrying until `timeout` while the
    /// hypervisor has not created it yet.
    pub fn connect(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| {
                        format!("connecting to serial console {} for {timeout:?}", path.display())
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let session = format!(
            "h{:x}{:x}{}",
            std::process::id(),
            nanos.subsec_nanos(),
            CONNECTIONS.fetch_add(1, Ordering::Relaxed)
        );
        Ok(SerialConsole {
            stream,
            path: path.to_path_buf(),
            pending: Vec::new(),
            recent: VecDeque::new(),
            session,
            next_id: 0,
        })
    }

    /// Waits until the guest's command loop answers: either its
    /// `DCLAB-READY` line, or the answer to a probe (output written while no
    /// client was connected is lost, so the READY line may have been missed).
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let probe_prefix = format!("DCLAB-END {}-p", self.session);
        let mut next_probe = Instant::now();
        loop {
            if Instant::now() >= next_probe {
                let id = format!("{}-p{}", self.session, self.next_id);
                self.next_id += 1;
                self.send(&format!("{id} true\n"))?;
                next_probe = Instant::now() + PROBE_EVERY;
            }
            match self.read_line(next_probe.min(deadline))? {
                Some(line) if line.starts_with("DCLAB-READY") => return Ok(()),
                Some(line) if line.starts_with(&probe_prefix) => return Ok(()),
                Some(_) => {}
                None if Instant::now() >= deadline => {
                    bail!("guest not ready after {timeout:?}{}", self.recent_text())
                }
                None => {}
            }
        }
    }

    /// Runs one shell command line in the guest and returns its exit code and
    /// its output (stdout and stderr together). On timeout, sends ^C to
    /// interrupt it (the guest restarts its command loop) and fails.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> anyhow::Result<(i32, String)> {
        if cmd.contains(['\n', '\r']) {
            bail!("serial commands are single lines: {cmd:?}");
        }
        let deadline = Instant::now() + timeout;
        let id = format!("{}-{}", self.session, self.next_id);
        self.next_id += 1;
        self.send(&format!("{id} {cmd}\n"))?;
        let begin = format!("DCLAB-BEGIN {id}");
        let mut output: Option<String> = None;
        loop {
            let Some(line) = self.read_line(deadline)? else {
                let _ = self.send("\x03");
                bail!("{cmd:?} did not finish within {timeout:?}{}", self.recent_text());
            };
            if line == begin {
                output = Some(String::new());
                continue;
            }
            let mut words = line.split(' ');
            if let (Some("DCLAB-END"), Some(end_id), Some(code)) = (words.next(), words.next(), words.next())
            {
                if end_id == id {
                    let code = code.parse().with_context(|| format!("bad end line {line:?}"))?;
                    return Ok((code, output.unwrap_or_default()));
                }
            }
            if let Some(out) = output.as_mut() {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }

    fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to serial console {}", self.path.display()))
    }

    /// The next full line (without CR/LF), or None once `deadline` passes.
    fn read_line(&mut self, deadline: Instant) -> anyhow::Result<Option<String>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                if self.recent.len() == RECENT_LINES {
                    self.recent.pop_front();
                }
                self.recent.push_back(line.clone());
                return Ok(Some(line));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => bail!(
                    "serial console {} closed (did the VM stop?){}",
                    self.path.display(),
                    self.recent_text()
                ),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading serial console"),
            }
        }
    }

    fn recent_text(&self) -> String {
        if self.recent.is_empty() {
            return "; nothing received on the console".to_string();
        }
        let lines: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        format!("; last console lines:\n  {}", lines.join("\n  "))
    }
}
