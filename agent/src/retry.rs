//! The agent's streams from the coordinator (rules, nodes) kept open: one
//! attempt after another until stopped, waiting between them 100 ms
//! doubling to 2 s, back to 100 ms once an attempt made progress.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Told by an attempt that it got somewhere (a message arrived): the next
/// wait starts over from the first.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicBool>);

impl Progress {
    pub fn made(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The waits between attempts: doubling from the first to the cap, from
/// the first again after a reset.
#[derive(Debug)]
struct Waits {
    next: Duration,
}

impl Waits {
    fn new() -> Waits {
        Waits { next: FIRST_BACKOFF }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(MAX_BACKOFF);
        wait
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// Runs `attempt` again and again until `stop`; `ended` hears how each one
/// ended before the wait.
pub async fn with_backoff<A, F, E>(stop: &CancellationToken, mut attempt: A, mut ended: impl FnMut(E))
where
    A: FnMut(Progress) -> F,
    F: Future<Output = E>,
{
    let progress = Progress::default();
    let mut waits = Waits::new();
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt(progress.clone()) => r,
        };
        ended(result);
        if progress.take() {
            waits.reset();
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(waits.next()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_start_over_after_a_reset() {
        let mut waits = Waits::new();
        let ms: Vec<u128> = (0..7).map(|_| waits.next().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        waits.reset();
        assert_eq!(waits.next(), FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn attempts_go_on_until_stopped_and_progress_resets_the_wait() {
        let stop = CancellationToken::new();
        let mut attempts = 0;
        let mut ended = Vec::new();
        let started = std::time::Instant::now();
        with_backoff(
            &stop,
            |progress: Progress| {
                attempts += 1;
                let n = attempts;
                let stop = stop.clone();
                async move {
                    // Every attempt gets a message: each wait is the first.
                    progress.made();
                    if n == 4 {
                        // Ends only by the stop.
                        stop.cancel();
                        std::future::pending::<()>().await;
                    }
                    n
                }
            },
            |n| ended.push(n),
        )
        .await;
        assert_eq!(ended, [1, 2, 3]);
        // Three waits of 100 ms, not 100 + 200 + 400.
        let took = started.elapsed();
        assert!(
            took >= 3 * FIRST_BACKOFF && took < Duration::from_millis(700),
            "{took:?}"
        );
    }
}
