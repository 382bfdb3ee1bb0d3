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

/// The median (the upper middle of an even count); 0 for no samples.
pub fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).map_or(0.0, |s| s.p50)
}

/// The median of a[i] / b[i]: each pair was measured back to back, so the
/// machine's swings cancel in each ratio. None unless both have as many
/// samples and at least one.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() || b.contains(&0.0) {
        return None;
    }
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Some(median(&ratios))
}

#[cfg(test)]
mod tests {
    use super::{paired_ratio, Summary};

    #[test]
    fn paired_ratios_cancel_what_both_saw() {
        let plain = [1000.0, 1500.0, 1200.0];
        let dclab = [980.0, 1470.0, 1176.0];
        assert!((paired_ratio(&dclab, &plain).unwrap() - 0.98).abs() < 1e-9);
        assert!(paired_ratio(&dclab[..2], &plain).is_none());
        assert!(paired_ratio(&[], &[]).is_none());
    }

    #[test]
    fn mean_and_median() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.mean, 4.0);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.samples, 4);
        assert!(Summary::of(&[]).is_none());
    }
}
