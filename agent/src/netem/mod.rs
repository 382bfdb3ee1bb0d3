//! Network impairment ("netem") for a lab node's link, in user space.
//!
//! This host's kernel has no `sch_netem` (and no classifiers, no prio, no
//! modules), so a [`Relay`] stands in for the wire: it sits between two
//! interfaces, reads every frame from one with an AF_PACKET socket, impairs
//! it as tc-netem(8) would, and writes it to the other, in both directions.
//!
//! ```text
//!  node ── veth ── a ═╗ Relay (a_to_b: Netem) ╔═ b ── veth ── peer
//!                     ╚══════ (b_to_a: Netem) ═╝
//! ```
//!
//! # Semantics (per direction, per wire frame)
//!
//! Netem's order: duplicate and loss are drawn first (a duplicate goes
//! through loss, corruption and delay on its own, but is never duplicated
//! again), then corruption, then the queue limit (default 1000 frames, like
//! netem's `limit`), then the release time: arrival + delay ± uniform
//! jitter (never below arrival), or arrival itself for the `reorder_pct`
//! share. With `rate_kbit` a frame leaves no earlier than the previous one
//! plus its own serialization time (bits / rate). Frames leave in release
//! order, so jitter reorders as netem's does.
//!
//! # Offloads
//!
//! Peers with TSO, checksum offload or GRO hand frames over as 64 KiB
//! super-frames with partial checksums, whatever the relay's own interfaces
//! are set to. The relay asks for the kernel's virtio-net header on every
//! frame and finishes the job itself (`wire.rs`): checksums are completed
//! and TCP/UDP super-frames split into the frames the wire would carry, so
//! impairments hit each wire frame and a corrupted frame fails its checksum.
//! GRO is turned off on both relay interfaces while the relay runs (it
//! would only merge what is then split again) and restored on stop.

mod impair;
mod relay;
pub(crate) mod sock;
mod stats;
mod wire;

#[cfg(test)]
mod tests;

use std::io;

use dclab_proto::v1;

pub use relay::Relay;
pub use stats::{DirStats, RelayStats};

/// Frames a direction may hold (delayed or rate-limited) before it drops
/// new ones, when [`Netem::limit`] is 0; netem's default.
pub const DEFAULT_LIMIT: usize = 1000;

/// The largest delay or jitter accepted: a minute, far above any real link.
const MAX_DELAY_MS: f64 = 60_000.0;

/// One direction's impairment: the knobs of tc-netem(8) as the fault
/// carries them (`v1::NetemFault`, the one netem type of the experiment
/// file, the coordinator and the agent), and the relay's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Netem {
    pub settings: v1::NetemFault,
    /// Frames held at most (netem's `limit`); 0 = [`DEFAULT_LIMIT`].
    pub limit: u32,
}

impl Netem {
    /// `settings` with the default queue.
    pub fn of(settings: v1::NetemFault) -> Netem {
        Netem { settings, limit: 0 }
    }

    /// Checks the ranges; the error names the field and what it allows.
    pub fn validate(&self) -> Result<(), NetemError> {
        let ms = "a number of milliseconds in 0..=60000";
        let pct = "a percentage in 0..=100";
        let s = &self.settings;
        check("delay_ms", s.delay_ms, MAX_DELAY_MS, ms)?;
        check("jitter_ms", s.jitter_ms, MAX_DELAY_MS, ms)?;
        check("loss_pct", s.loss_pct, 100.0, pct)?;
        check("duplicate_pct", s.duplicate_pct, 100.0, pct)?;
        check("corrupt_pct", s.corrupt_pct, 100.0, pct)?;
        check("reorder_pct", s.reorder_pct, 100.0, pct)?;
        // As tc refuses it: without a delay there is nothing to overtake.
        if s.reorder_pct > 0.0 && s.delay_ms == 0.0 {
            return Err(NetemError::Invalid {
                field: "reorder_pct".into(),
                value: s.reorder_pct.to_string(),
                allowed: "0 unless delay_ms is set (reordering needs a delay)",
            });
        }
        Ok(())
    }

    /// True when frames pass untouched (the relay then only forwards).
    pub fn is_noop(&self) -> bool {
        self.settings == v1::NetemFault::default()
    }

    pub(crate) fn queue_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n as usize,
        }
    }
}

fn check(field: &str, value: f64, max: f64, allowed: &'static str) -> Result<(), NetemError> {
    // `contains` is false for NaN, so NaN is refused with the rest.
    if (0.0..=max).contains(&value) {
        return Ok(());
    }
    Err(NetemError::Invalid {
        field: field.into(),
        value: value.to_string(),
        allowed,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum NetemError {
    #[error("netem {field} = {value} is out of range: must be {allowed}")]
    Invalid {
        /// The field, prefixed by the direction when from [`Relay::start`]
        /// (`b_to_a.loss_pct`).
        field: String,
        value: String,
        allowed: &'static str,
    },
    #[error("a relay needs two different interfaces, got {0} for both")]
    SameInterface(String),
    #[error("cannot enter network namespace {netns}: {source}")]
    Netns {
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("interface {iface} in {netns}: cannot {what}: {source}")]
    Interface {
        iface: String,
        /// "namespace NAME" or "the caller's namespace".
        netns: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a relay thread: {0}")]
    Thread(#[source] io::Error),
}
