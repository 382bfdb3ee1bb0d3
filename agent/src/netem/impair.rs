//! One direction's impairment: netem's per-frame decisions and its delay
//! queue, free of sockets so it can be tested with a fake clock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::stats::{bump, DirCounters};
use super::Netem;

/// Bytes of the Ethernet header, never corrupted.
const ETH_HLEN: usize = 14;

/// splitmix64: tiny, fast, and good enough to draw probabilities.
pub struct Rng(u64);

impl Rng {
    /// A fixed seed, for tests that count draws.
    #[cfg(test)]
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Seeded from the clock, so two relays do not share their draws.
    pub fn from_clock(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos ^ salt.rotate_left(32) ^ u64::from(std::process::id()))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `pct` percent (never for 0, always for 100).
    pub fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.unit() * 100.0 < pct
    }

    /// Uniform in 0..n (n > 0); the modulo bias is negligible for frames.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A frame waiting for its release time; ties leave in arrival order.
struct Pending {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and the earliest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Impairer {
    netem: Netem,
    limit: usize,
    rng: Rng,
    queue: BinaryHeap<Pending>,
    seq: u64,
    /// When the rate-limited "link" finishes the last frame given to it.
    link_free_at: Option<Instant>,
}

impl Impairer {
    pub fn new(netem: Netem, rng: Rng) -> Self {
        Impairer {
            limit: netem.queue_limit(),
            netem,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            link_free_at: None,
        }
    }

    /// Takes a frame that arrived at `now`: drops, duplicates, corrupts and
    /// queues it as netem's enqueue does.
    pub fn offer(&mut self, frame: Vec<u8>, now: Instant, counters: &DirCounters) {
        self.enqueue(frame, now, counters, true);
    }

    fn enqueue(&mut self, mut frame: Vec<u8>, now: Instant, c: &DirCounters, may_dup: bool) {
        // netem counts copies: a duplicate and a loss on the same frame
        // cancel out into one frame.
        let mut copies = 1;
        if may_dup && self.rng.chance(self.netem.settings.duplicate_pct) {
            copies += 1;
        }
        if self.rng.chance(self.netem.settings.loss_pct) {
            copies -= 1;
        }
        if copies == 0 {
            bump(&c.dropped);
            return;
        }
        if copies > 1 {
            bump(&c.duplicated);
            // Like netem's clone re-enqueued at the root: its own draws.
            self.enqueue(frame.clone(), now, c, false);
        }
        if self.rng.chance(self.netem.settings.corrupt_pct) && frame.len() > ETH_HLEN {
            let byte = ETH_HLEN + self.rng.below(frame.len() - ETH_HLEN);
            frame[byte] ^= 1 << self.rng.below(8);
            bump(&c.corrupted);
        }
        if self.queue.len() >= self.limit {
            bump(&c.overflowed);
            return;
        }
        let at = self.release_time(frame.len(), now);
        self.seq += 1;
        self.queue.push(Pending {
            at,
            seq: self.seq,
            frame,
        });
    }

    fn release_time(&mut self, len: usize, now: Instant) -> Instant {
        let n = &self.netem.settings;
        // netem sends the reorder share at once, past the delay and rate.
        if n.delay_ms > 0.0 && self.rng.chance(n.reorder_pct) {
            return now;
        }
        let mut ms = n.delay_ms;
        if n.jitter_ms > 0.0 {
            ms += (self.rng.unit() * 2.0 - 1.0) * n.jitter_ms;
        }
        let mut at = now + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        if n.rate_kbit > 0 {
            // Queued behind the frame still on the link, then serialized.
            let start = self.link_free_at.map_or(at, |free| free.max(at));
            at = start + serialization(len, n.rate_kbit);
            self.link_free_at = Some(at);
        }
        at
    }

    /// When the next frame is due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }

    /// The next frame due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.peek()?.at > now {
            return None;
        }
        self.queue.pop().map(|p| p.frame)
    }
}

/// How long `len` bytes take at `kbit` (1000 bit/s each).
pub fn serialization(len: usize, kbit: u64) -> Duration {
    let nanos = len as u128 * 8 * 1_000_000 / u128::from(kbit);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
