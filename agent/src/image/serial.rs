//! Host side of the micro-VM's serial command protocol (see the module doc of
//! `image`): connects to the unix socket qemu or libvirt exposes for ttyS0.

use anyhow::{bail, Context};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::serial_frame::{Answer, Lines};
use crate::exec_output::CommandOutput;

/// How often wait_ready asks the guest whether its command loop is up.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often a running command looks whether its reader went away; also
/// the silence after which a streamed output's last newline is let go.
const READER_CHECK: Duration = Duration::from_millis(50);
const READ_CHUNK: usize = 16 * 1024;

/// A guest's serial console, driven one command at a time.
pub struct SerialConsole {
    stream: UnixStream,
    path: PathBuf,
    lines: Lines,
    buf: Vec<u8>,
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
            lines: Lines::default(),
            buf: vec![0; READ_CHUNK],
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
            let n = self.read(next_probe.min(deadline))?;
            for &byte in &self.buf[..n] {
                if let Some(line) = self.lines.push(byte) {
                    if line.starts_with("DCLAB-READY") || line.starts_with(&probe_prefix) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!("guest not ready after {timeout:?}{}", self.lines.recent_text())
            }
        }
    }

    /// Runs one shell command line in the guest and returns its exit code;
    /// its output (stdout and stderr together) goes to `out` as it comes.
    /// On timeout, or when the reader of a streamed output goes away, sends
    /// ^C to interrupt it (the guest restarts its command loop) and fails.
    pub fn run(&mut self, cmd: &str, timeout: Duration, out: &mut CommandOutput) -> anyhow::Result<i32> {
        if cmd.contains(['\n', '\r']) {
            bail!("serial commands are single lines: {cmd:?}");
        }
        let deadline = Instant::now() + timeout;
        let id = format!("{}-{}", self.session, self.next_id);
        self.next_id += 1;
        self.send(&format!("{id} {cmd}\n"))?;
        let mut answer = Answer::new(&id);
        let mut output = Vec::with_capacity(READ_CHUNK);
        loop {
            let n = self.read(deadline.min(Instant::now() + READER_CHECK))?;
            output.clear();
            answer.feed(&self.buf[..n], &mut self.lines, &mut output);
            if n == 0 && out.is_streamed() {
                answer.release_newline(&mut output);
            }
            let reader_here = out.push(&output) && !out.reader_gone();
            if let Some(code) = answer.code() {
                return Ok(code);
            }
            let why = if !reader_here {
                "lost the reader of its output".to_string()
            } else if Instant::now() >= deadline {
                format!("did not finish within {:.1} s", timeout.as_secs_f64())
            } else {
                continue;
            };
            let _ = self.send("\x03");
            let seen = if answer.began() {
                String::new()
            } else {
                self.lines.recent_text()
            };
            bail!("{cmd:?} {why}; it was interrupted{seen}");
        }
    }

    fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to serial console {}", self.path.display()))
    }

    /// Reads what the console has into `buf` (0 bytes once `until` passes).
    fn read(&mut self, until: Instant) -> anyhow::Result<usize> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(0);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut self.buf) {
                Ok(0) => bail!(
                    "serial console {} closed (did the VM stop?){}",
                    self.path.display(),
                    self.lines.recent_text()
                ),
                Ok(n) => return Ok(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading serial console"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec_output::MAX_KEPT;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    /// A guest's side of the protocol on a real socket: answers one
    /// command with `output`, written in pieces as a console would.
    fn guest(listener: UnixListener, output: Vec<u8>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let id = line.split(' ').next().unwrap().to_string();
            let mut w = stream;
            write!(w, "noise\nDCLAB-BEGIN {id}\n").unwrap();
            for piece in output.chunks(4096) {
                w.write_all(piece).unwrap();
            }
            write!(w, "\nDCLAB-END {id} 7\n").unwrap();
        })
    }

    #[test]
    fn an_output_without_newlines_is_kept_bounded_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut output = b"start ".to_vec();
        output.resize(8 << 20, 0);
        output.extend_from_slice(b" end");
        let guest = guest(listener, output.clone());
        let mut console = SerialConsole::connect(&path, Duration::from_secs(5)).unwrap();
        let mut out = CommandOutput::kept(MAX_KEPT);
        let code = console
            .run("cat /dev/zero", Duration::from_secs(30), &mut out)
            .unwrap();
        guest.join().unwrap();
        assert_eq!(code, 7);
        assert_eq!(out.total(), output.len() as u64);
        assert_eq!(out.dropped(), (output.len() - MAX_KEPT) as u64);
        let text = out.text();
        assert!(text.starts_with("start \0") && text.ends_with("\0 end"));
        assert!(text.len() < MAX_KEPT + 100, "{}", text.len());
    }
}
