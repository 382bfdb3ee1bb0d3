//! The resident memory of a process (VmRSS), sampled in the background
//! while a test makes it work, to bound what that work costs it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(50);

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The highest VmRSS of a process since `start`.
pub struct RssPeak {
    pid: i32,
    before: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl RssPeak {
    pub fn start(pid: i32) -> RssPeak {
        let before = rss_kib(pid);
        let (peak, stop) = (Arc::new(AtomicU64::new(before)), Arc::new(AtomicBool::new(false)));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                        let kib = status
                            .lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
                        if let Some(kib) = kib {
                            peak.fetch_max(kib, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(EVERY);
                }
            })
        };
        RssPeak {
            pid,
            before,
            peak,
            stop,
            sampler: Some(sampler),
        }
    }

    /// How much above its start the process's VmRSS went, in MiB.
    pub fn growth_mib(mut self) -> f64 {
        self.finish();
        let peak = self.peak.load(Ordering::Relaxed).max(rss_kib(self.pid));
        (peak - self.before) as f64 / 1024.0
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.finish();
    }
}
