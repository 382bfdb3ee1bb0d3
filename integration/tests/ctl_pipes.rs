//! ctl and its pipes and sockets: a reader that goes away ends ctl
//! quietly, and a peer that dies under a socket is an error ctl reports,
//! never a silent death by SIGPIPE (issue 23, item 10: exit 141 and no
//! word from `ctl bench control-plane` when it restarted its coordinator).

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ctl() -> Command {
    Command::new(dclab_integration::built_bins(&["ctl"]).join("ctl"))
}

/// A pipe whose reading end is already closed: every write to it fails.
fn closed_pipe() -> std::fs::File {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds this function then owns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds are ours; the reading end is closed at once.
    unsafe {
        libc::close(fds[0]);
        std::os::fd::FromRawFd::from_raw_fd(fds[1])
    }
}

#[test]
fn a_reader_that_goes_away_ends_ctl_quietly() {
    // Commands that print tables (println!) and the completion script.
    for args in [&["experiment", "ls", "--builtin"][..], &["completions", "bash"]] {
        let out = ctl()
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), None, "ctl {args:?} was killed by a signal");
        assert_eq!(out.status.code(), Some(0), "ctl {args:?}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A "coordinator" that takes each connection, reads what the client
/// sends for a moment, then resets it: the client's next writes meet a
/// dead peer.
fn resetting_peer() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        loop {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            // SO_LINGER 0: close sends RST, not FIN.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket fd and a linger struct of the right size.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::setsockopt(
                    conn.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as u32,
                );
            }
        }
    });
    (port, server)
}

/// Whether `pid` ignores SIGPIPE (its SigIgn mask from /proc).
fn ignores_sigpipe(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(mask, 16).unwrap();
    mask & (1 << (libc::SIGPIPE - 1)) != 0
}

#[test]
fn a_peer_that_dies_is_an_error_not_a_signal() {
    // A write to a socket whose peer is gone must fail, not kill: ctl
    // keeps SIGPIPE ignored while it talks to a coordinator (here one
    // that accepts and never answers).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut waiting = ctl()
        .args(["--insecure", "--coordinator", &url, "host", "ls"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_conn, _) = silent.accept().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ignored = ignores_sigpipe(waiting.id());
    waiting.kill().unwrap();
    waiting.wait().unwrap();
    assert!(
        ignored,
        "ctl does not ignore SIGPIPE: a dead peer would kill it without a word"
    );

    let (port, _server) = resetting_peer();
    for _ in 0..4 {
        let out = ctl()
            .args([
                "--insecure",
                "--coordinator",
                &format!("http://127.0.0.1:{port}"),
                "host",
                "ls",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            None,
            "ctl was killed by a signal: {:?}",
            out.status
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error: the coordinator closed the connection during the call"),
            "{stderr}"
        );
    }
}

#[test]
fn version_names_the_commit_and_help_lists_commands_in_the_order_people_use_them() {
    let out = ctl().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("no commit in {version:?}"));
    let expected = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if expected.is_empty() {
        assert_eq!(commit, "unknown", "{version}");
    } else {
        assert_eq!(
            commit, expected,
            "ctl was built from another commit than the checkout's"
        );
    }

    let help = String::from_utf8_lossy(&ctl().arg("--help").output().unwrap().stdout).into_owned();
    assert!(help.starts_with("dclab: virtual cloud labs"), "{help}");
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let order = [
        "lab",
        "experiment",
        "snapshot",
        "image",
        "verify",
        "trace",
        "host",
    ];
    assert_eq!(&listed[..order.len()], order, "{help}");
}

#[test]
fn with_no_coordinator_anywhere_ctl_says_how_to_get_one() {
    let out = ctl()
        .args(["host", "ls"])
        .env("DCLAB_LOCAL_CLUSTER", "no-such-cluster")
        .env_remove("DCLAB_COORDINATOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: no coordinator to talk to"), "{stderr}");
    assert!(stderr.contains("ctl local up --hosts 2"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let out = ctl()
        .args(["--insecure", "--coordinator", "http://127.0.0.1:1", "host", "ls"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is it running? (`ctl local up`"), "{stderr}");
}

#[test]
fn the_install_script_puts_the_binaries_and_completions_in_place() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    dclab_integration::built_bins(&["ctl", "coordinator", "agent"]);
    let dir = tempfile::tempdir().unwrap();
    let (prefix, completions) = (dir.path().join("usr"), dir.path().join("bash_completion.d"));
    let out = Command::new(root.join("scripts/install.sh"))
        .arg("--no-build")
        .env("PREFIX", &prefix)
        .env("BASH_COMPLETION_DIR", &completions)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for bin in ["ctl", "coordinator", "agent"] {
        let version = Command::new(prefix.join("bin").join(bin))
            .arg("--version")
            .output()
            .unwrap();
        assert!(version.status.success(), "{bin} --version");
    }
    let script = std::fs::read_to_string(completions.join("ctl")).unwrap();
    assert!(script.contains("_ctl"), "not a completion script");
}
