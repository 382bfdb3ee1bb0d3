//! Registrations that change a host (its uplink, MAC or capacity) are
//! limited per host. Each change recompiles the flows of every host that
//! shares a network with it, so an agent (or a leaked agent key)
//! re-registering with new values in a loop would churn the whole
//! deployment. Registering again with the same values is free.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dclab_proto::ApiError;
use parking_lot::Mutex;

const WINDOW: Duration = Duration::from_secs(60);
const MAX_CHANGES: usize = 6;

#[derive(Default)]
pub struct RegisterLimit {
    changes: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RegisterLimit {
    /// Counts one change of `host`, or refuses it when the host changed
    /// MAX_CHANGES times within the last WINDOW.
    pub fn admit(&self, host: &str) -> Result<(), ApiError> {
        self.admit_at(host, Instant::now())
    }

    fn admit_at(&self, host: &str, now: Instant) -> Result<(), ApiError> {
        let mut changes = self.changes.lock();
        let recent = changes.entry(host.to_string()).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= MAX_CHANGES {
            return Err(ApiError::ResourceExhausted(format!(
                "host {host} changed its registration {MAX_CHANGES} times in the last {} s \
                 (each change recompiles every host that shares a network with it); \
                 register with the same values, or try again later",
                WINDOW.as_secs()
            )));
        }
        recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_may_change_a_few_times_a_minute_and_others_are_not_held_back() {
        let limit = RegisterLimit::default();
        let start = Instant::now();
        for i in 0..MAX_CHANGES {
            limit
                .admit_at("h1", start + Duration::from_secs(i as u64))
                .unwrap();
        }
        let err = limit.admit_at("h1", start + Duration::from_secs(10)).unwrap_err();
        assert!(
            err.to_string().contains("changed its registration 6 times"),
            "{err}"
        );
        limit.admit_at("h2", start + Duration::from_secs(10)).unwrap();
        // A minute after the first change, one more is admitted.
        limit.admit_at("h1", start + WINDOW).unwrap();
    }
}
