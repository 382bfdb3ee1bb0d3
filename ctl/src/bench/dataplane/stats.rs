//! Summaries of measured samples, in the units they were measured in.

use serde::Serialize;

/// Mean and median of a set of samples (milliseconds for times).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub p50: f64,
    pub samples: usize,
}

impl Summary {
    /// None when there are no samples: a figure that was not measured.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: sorted[sorted.len() / 2],
            samples: sorted.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn mean_and_median() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.mean, 4.0);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.samples, 4);
        assert!(Summary::of(&[]).is_none());
    }
}
