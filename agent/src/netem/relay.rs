//! The relay: sockets opened inside the namespace, then one thread per
//! direction that sleeps in ppoll until a frame arrives, one is due, or
//! stop is signalled.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::impair::{Impairer, Rng};
use super::sock::{self, Wake};
use super::stats::{bump, DirCounters};
use super::wire::{self, VnetHdr, VNET_HDR_LEN};
use super::{Netem, NetemError, RelayStats};

/// Frames read per wake-up before due frames get their turn again.
const BATCH: usize = 64;
/// The largest frame (a 64 KiB super-frame) plus its virtio-net header.
const BUF_LEN: usize = VNET_HDR_LEN + 65536;

/// Relays frames both ways between two interfaces, impairing each
/// direction; see the module documentation.
pub struct Relay {
    stop: Arc<OwnedFd>,
    /// Each direction hands its receiving socket back when it ends.
    threads: Vec<JoinHandle<OwnedFd>>,
    counters: Arc<[DirCounters; 2]>,
    /// Interfaces whose GRO the relay turned off, to turn on again.
    gro_off: Vec<String>,
    /// The sending sockets, one per interface; they also name the
    /// namespace for the ioctls after the threads end.
    tx: Vec<(String, Arc<OwnedFd>)>,
    stopped: bool,
}

/// One interface's sockets, opened in the relay's namespace.
struct Side {
    iface: String,
    rx: OwnedFd,
    tx: Arc<OwnedFd>,
}

impl Relay {
    /// Relays frames both ways between interfaces `a` and `b` in network
    /// namespace `netns` (a name under /run/netns; None = the caller's
    /// namespace). Frames a->b get `a_to_b`, b->a get `b_to_a`.
    ///
    /// Blocks for the setup (a few ms), as [`Relay::stop`] does for the
    /// teardown (~15 ms): from async code, call both off the runtime.
    pub fn start(
        netns: Option<&str>,
        a: &str,
        b: &str,
        a_to_b: Netem,
        b_to_a: Netem,
    ) -> Result<Relay, NetemError> {
        a_to_b.validate().map_err(|e| in_direction(e, "a_to_b"))?;
        b_to_a.validate().map_err(|e| in_direction(e, "b_to_a"))?;
        if a == b {
            return Err(NetemError::SameInterface(a.to_owned()));
        }
        let label = match netns {
            Some(ns) => format!("namespace {ns}"),
            None => "the caller's namespace".to_owned(),
        };
        // setns affects only the thread that calls it; sockets keep the
        // namespace they were made in, so only the setup needs to move.
        let (ns, a_name, b_name, l) = (
            netns.map(str::to_owned),
            a.to_owned(),
            b.to_owned(),
            label.clone(),
        );
        let (side_a, side_b) = thread::Builder::new()
            .name("netem-setup".into())
            .spawn(move || -> Result<(Side, Side), NetemError> {
                if let Some(ns) = &ns {
                    sock::enter_netns(ns).map_err(|source| NetemError::Netns {
                        netns: ns.clone(),
                        source,
                    })?;
                }
                Ok((open_side(&a_name, &l)?, open_side(&b_name, &l)?))
            })
            .map_err(NetemError::Thread)?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;

        let mut relay = Relay {
            stop: Arc::new(sock::eventfd().map_err(NetemError::Thread)?),
            threads: Vec::new(),
            counters: Arc::new([DirCounters::default(), DirCounters::default()]),
            gro_off: Vec::new(),
            tx: Vec::new(),
            stopped: false,
        };
        for side in [&side_a, &side_b] {
            relay.tx.push((side.iface.clone(), side.tx.clone()));
            if gro_turned_off(side, &label) {
                relay.gro_off.push(side.iface.clone());
            }
        }
        // On an error below, dropping `relay` stops what was started.
        let dirs = [
            (side_a.rx, side_b.tx.clone(), a_to_b, 0),
            (side_b.rx, side_a.tx.clone(), b_to_a, 1),
        ];
        for (rx, tx, netem, index) in dirs {
            let name = if index == 0 {
                format!("netem {a}>{b}")
            } else {
                format!("netem {b}>{a}")
            };
            let dir = Direction {
                rx,
                tx,
                stop: relay.stop.clone(),
                counters: relay.counters.clone(),
                index,
                impairer: Impairer::new(netem, Rng::from_clock(index as u64)),
            };
            let handle = thread::Builder::new()
                .name(name)
                .spawn(move || dir.run())
                .map_err(NetemError::Thread)?;
            relay.threads.push(handle);
        }
        info!(netns = %label, a, b, "netem relay started");
        Ok(relay)
    }

    /// Counters so far (frames received, sent, dropped, duplicated,
    /// corrupted, ... per direction).
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            a_to_b: self.counters[0].snapshot(),
            b_to_a: self.counters[1].snapshot(),
        }
    }

    /// Stops both directions, joins the threads, returns the final
    /// counters. Also done on Drop. Frames still queued are dropped.
    pub fn stop(mut self) -> RelayStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        sock::signal(&self.stop);
        let mut sockets: Vec<OwnedFd> = Vec::new();
        for handle in self.threads.drain(..) {
            // A panicked direction has dropped its socket already.
            sockets.extend(handle.join().ok());
        }
        for iface in &self.gro_off {
            let Some((_, fd)) = self.tx.iter().find(|(name, _)| name == iface) else {
                continue;
            };
            if let Err(err) = sock::set_gro(fd, iface, true) {
                debug!(iface, error = %err, "cannot turn GRO back on (interface gone?)");
            }
        }
        // The threads are gone, so these are the last references.
        sockets.extend(self.tx.drain(..).filter_map(|(_, fd)| Arc::into_inner(fd)));
        // Closing a packet socket waits for an RCU grace period (and ends
        // its promiscuous membership); closed together they share one,
        // which keeps stop well under 100 ms.
        thread::scope(|scope| {
            for fd in sockets {
                // Should spawning fail, the closure, fd and all, is
                // dropped right here instead.
                let _ = thread::Builder::new().spawn_scoped(scope, move || drop(fd));
            }
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn in_direction(err: NetemError, dir: &str) -> NetemError {
    match err {
        NetemError::Invalid {
            field,
            value,
            allowed,
        } => NetemError::Invalid {
            field: format!("{dir}.{field}"),
            value,
            allowed,
        },
        other => other,
    }
}

fn open_side(iface: &str, netns: &str) -> Result<Side, NetemError> {
    let err = |what: &'static str| {
        move |source| NetemError::Interface {
            iface: iface.to_owned(),
            netns: netns.to_owned(),
            what,
            source,
        }
    };
    let tx = sock::packet_socket(false).map_err(err("open a packet socket"))?;
    let index = sock::ifindex(&tx, iface).map_err(err("find it"))?;
    sock::bind(&tx, index, 0).map_err(err("bind a packet socket to it"))?;
    let rx = sock::packet_socket(true).map_err(err("open a packet socket"))?;
    sock::prepare_rx(&rx).map_err(err("set packet socket options"))?;
    // Bound to the interface before it sees anything, so no frame of
    // another interface slips in.
    sock::bind(&rx, index, libc::ETH_P_ALL as u16).map_err(err("bind a packet socket to it"))?;
    sock::promiscuous(&rx, index).map_err(err("make it promiscuous"))?;
    Ok(Side {
        iface: iface.to_owned(),
        rx,
        tx: Arc::new(tx),
    })
}

/// Turns GRO off if it is on, so frames are relayed as they arrived;
/// true when it must be turned on again. Failing is not fatal: what GRO
/// merges is split again in `wire`.
fn gro_turned_off(side: &Side, netns: &str) -> bool {
    let result = match sock::gro(&side.tx, &side.iface) {
        Ok(Some(true)) => sock::set_gro(&side.tx, &side.iface, false).map(|()| true),
        Ok(_) => Ok(false),
        Err(err) => Err(err),
    };
    result.unwrap_or_else(|err| {
        warn!(iface = %side.iface, netns, error = %err, "cannot turn GRO off; relaying merged frames split");
        false
    })
}

/// One direction: reads from `rx`, impairs, writes to `tx`.
struct Direction {
    rx: OwnedFd,
    tx: Arc<OwnedFd>,
    stop: Arc<OwnedFd>,
    counters: Arc<[DirCounters; 2]>,
    index: usize,
    impairer: Impairer,
}

impl Direction {
    /// Relays until stopped; returns the receiving socket for the caller
    /// to close.
    fn run(mut self) -> OwnedFd {
        let mut buf = vec![0u8; BUF_LEN];
        let mut frames = Vec::new();
        loop {
            self.send_due();
            let timeout = self
                .impairer
                .next_due()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match sock::wait(self.rx.as_raw_fd(), self.stop.as_raw_fd(), timeout) {
                Ok(Wake::Stop) => return self.rx,
                Ok(Wake::Timeout) => {}
                Ok(Wake::Readable) => self.drain(&mut buf, &mut frames),
                Err(err) => {
                    warn!(error = %err, "netem relay cannot wait for frames");
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn counters(&self) -> &DirCounters {
        &self.counters[self.index]
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        while let Some(frame) = self.impairer.pop_due(now) {
            match sock::send(&self.tx, &frame) {
                Ok(()) => bump(&self.counters().sent),
                Err(err) => {
                    bump(&self.counters().tx_errors);
                    debug!(error = %err, len = frame.len(), "netem relay cannot send a frame");
                }
            }
        }
    }

    fn drain(&mut self, buf: &mut [u8], frames: &mut Vec<Vec<u8>>) {
        for _ in 0..BATCH {
            let got = match sock::recv(&self.rx, buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(err) => {
                    // E.g. ENETDOWN when the interface went down; reading
                    // it cleared it.
                    bump(&self.counters().rx_errors);
                    debug!(error = %err, "netem relay cannot read a frame");
                    return;
                }
            };
            if got.outgoing {
                continue;
            }
            if got.truncated || got.len < VNET_HDR_LEN {
                bump(&self.counters().rx_errors);
                continue;
            }
            let (head, frame) = buf[..got.len].split_at(VNET_HDR_LEN);
            let hdr = VnetHdr::parse(head.try_into().expect("header length"));
            match wire::to_wire(&hdr, frame, frames) {
                Ok(true) => bump(&self.counters().segmented),
                Ok(false) => {}
                Err(err) => {
                    frames.clear();
                    bump(&self.counters().rx_errors);
                    debug!(?err, ?hdr, "netem relay cannot make wire frames of a frame");
                    continue;
                }
            }
            let now = Instant::now();
            let counters = &self.counters[self.index];
            for mut frame in frames.drain(..) {
                if let Some((tpid, tci)) = got.vlan {
                    wire::insert_vlan(&mut frame, tpid, tci);
                }
                bump(&counters.received);
                self.impairer.offer(frame, now, counters);
            }
            // Undelayed frames leave before the next read, so a burst of
            // super-frames does not pile up against the queue limit.
            self.send_due();
        }
    }
}
