//! Relay counters: atomics the relay threads bump, plain copies for callers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// One direction's counters, in wire frames (a super-frame from an
/// offloading peer counts as the frames it was split into).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirStats {
    /// Frames read from the source interface.
    pub received: u64,
    /// Frames written to the destination interface (duplicates included).
    pub sent: u64,
    /// Frames dropped by `loss_pct`.
    pub dropped: u64,
    /// Frames sent twice by `duplicate_pct`.
    pub duplicated: u64,
    /// Frames with a bit flipped by `corrupt_pct`.
    pub corrupted: u64,
    /// Frames dropped because the queue held `limit` frames already.
    pub overflowed: u64,
    /// Offloaded super-frames split into wire frames.
    pub segmented: u64,
    /// Frames that could not be read or made sense of (truncated,
    /// malformed, an offload the relay cannot split).
    pub rx_errors: u64,
    /// Frames the destination refused (down, too big, its queue full).
    pub tx_errors: u64,
}

/// Both directions' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    pub a_to_b: DirStats,
    pub b_to_a: DirStats,
}

/// What a relay thread updates while [`super::Relay::stats`] reads.
#[derive(Debug, Default)]
pub(crate) struct DirCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub corrupted: AtomicU64,
    pub overflowed: AtomicU64,
    pub segmented: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// Adds one; counters need no ordering with anything else.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl DirCounters {
    pub fn snapshot(&self) -> DirStats {
        DirStats {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            corrupted: self.corrupted.load(Relaxed),
            overflowed: self.overflowed.load(Relaxed),
            segmented: self.segmented.load(Relaxed),
            rx_errors: self.rx_errors.load(Relaxed),
            tx_errors: self.tx_errors.load(Relaxed),
        }
    }
}
