//! New TCP connections per second between many address pairs: each
//! instance listens, and connects in a loop to every other one (connect,
//! send a byte, wait for the listener to close). Runs in this process, on
//! threads that each enter one instance's network namespace (`setns` moves
//! only the calling thread), so no helper binary is needed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::local::Cluster;

const PORT: u16 = 5301;
/// Bounds each connector's loop even if connections were very fast.
const MAX_PER_PAIR: u64 = 5_000_000;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ConnRate {
    pub per_second: f64,
    pub connections: u64,
    pub failures: u64,
}

/// Every instance of `members` (name, address) connects to every other one
/// for `seconds`; successful connections per second in total.
pub fn measure(cluster: &Cluster, members: &[(&str, &str)], seconds: u32) -> anyhow::Result<ConnRate> {
    let namespaces: Vec<String> = members
        .iter()
        .map(|(name, _)| cluster.instance_netns(name))
        .collect();
    for ns in &namespaces {
        // A wide port range, so a fast connector does not run out of ports.
        cluster.exec(ns, &["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"])?;
    }
    let listen_for = Duration::from_secs(u64::from(seconds) + 3);
    let connect_for = Duration::from_secs(u64::from(seconds));
    std::thread::scope(|scope| {
        let listeners: Vec<_> = namespaces
            .iter()
            .map(|ns| scope.spawn(move || in_netns(ns, || listen(listen_for))))
            .collect();
        // Listeners bind right away; a connection refused early would only
        // count as a failure, never break the run.
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let mut connectors = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            for (j, (_, ip)) in members.iter().enumerate() {
                if i == j {
                    continue;
                }
                let target: SocketAddr = format!("{ip}:{PORT}").parse().context("instance address")?;
                connectors.push(scope.spawn(move || in_netns(ns, || connect_loop(target, connect_for))));
            }
        }
        let mut total = ConnRate::default();
        for handle in connectors {
            let (ok, failed) = handle.join().expect("connector thread")?;
            total.connections += ok;
            total.failures += failed;
        }
        total.per_second = total.connections as f64 / start.elapsed().as_secs_f64();
        for handle in listeners {
            handle.join().expect("listener thread")?;
        }
        Ok(total)
    })
}

/// Runs `work` on this thread inside the named network namespace.
fn in_netns<T>(netns: &str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET switches only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot enter {netns}"));
    }
    work()
}

/// Accepts until `for_how_long` has passed: reads the connector's byte,
/// then closes.
fn listen(for_how_long: Duration) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).context("cannot listen")?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + for_how_long;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_millis(500)))?;
                let _ = stream.read(&mut [0u8; 1]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&listener, 100),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Blocks until a connection waits or `millis` have passed.
fn wait_readable(listener: &TcpListener, millis: i32) {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, millis) };
}

/// Connects to `target` again and again for `for_how_long`; counts the
/// connections that completed (byte sent, listener's close seen) and those
/// that did not.
fn connect_loop(target: SocketAddr, for_how_long: Duration) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + for_how_long;
    let (mut ok, mut failed) = (0u64, 0u64);
    while Instant::now() < deadline && ok + failed < MAX_PER_PAIR {
        if one_connection(target).is_ok() {
            ok += 1;
        } else {
            failed += 1;
            // A refused or lost connection should not spin the loop.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok((ok, failed))
}

fn one_connection(target: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"x")?;
    match stream.read(&mut [0u8; 1])? {
        0 => Ok(()),
        _ => Err(std::io::ErrorKind::InvalidData.into()),
    }
}
