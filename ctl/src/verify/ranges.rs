//! Sets of IPv4 addresses as sorted, disjoint, inclusive intervals: the
//! destinations a trace has not told apart yet.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

pub const ALL_V4: (u64, u64) = (0, 0xffff_ffff);

impl Ranges {
    pub fn all() -> Ranges {
        Ranges(vec![ALL_V4])
    }

    pub fn point(v: u64) -> Ranges {
        Ranges(vec![(v, v)])
    }

    pub fn empty() -> Ranges {
        Ranges(vec![])
    }

    /// The addresses `a & mask == value`, for a prefix mask; None for a
    /// mask with holes (not an interval).
    pub fn masked(value: u64, mask: u64) -> Option<Ranges> {
        let host = !mask & 0xffff_ffff;
        if host & (host + 1) != 0 {
            return None;
        }
        Some(Ranges(vec![(value & mask, (value & mask) | host)]))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn min(&self) -> Option<u64> {
        self.0.first().map(|r| r.0)
    }

    pub fn contains(&self, v: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < v);
        self.0.get(i).is_some_and(|r| r.0 <= v)
    }

    pub fn intersect(&self, other: &Ranges) -> Ranges {
        let (mut out, mut i, mut j) = (Vec::new(), 0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Ranges(out)
    }

    pub fn subtract(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        let mut j = 0;
        for &(lo, hi) in &self.0 {
            let mut start = lo;
            while j < other.0.len() && other.0[j].1 < start {
                j += 1;
            }
            let mut k = j;
            while k < other.0.len() && other.0[k].0 <= hi {
                let (olo, ohi) = other.0[k];
                if olo > start {
                    out.push((start, olo - 1));
                }
                if ohi >= hi {
                    start = hi + 1;
                    break;
                }
                start = ohi + 1;
                k += 1;
            }
            if start <= hi {
                out.push((start, hi));
            }
        }
        Ranges(out)
    }

    /// Some value of the set that is none of `avoid` (a representative
    /// for reports), else the smallest.
    pub fn sample(&self, avoid: &[u64]) -> Option<u64> {
        for &(lo, hi) in &self.0 {
            let mut v = lo;
            while v <= hi && avoid.contains(&v) && v - lo < 64 {
                v += 1;
            }
            if v <= hi && !avoid.contains(&v) {
                return Some(v);
            }
        }
        self.min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_split_and_join_like_sets() {
        let all = Ranges::all();
        let net = Ranges::masked(0x0a00_0000, 0xffff_ff00).unwrap();
        assert_eq!(net, Ranges(vec![(0x0a00_0000, 0x0a00_00ff)]));
        let rest = all.subtract(&net);
        assert_eq!(rest, Ranges(vec![(0, 0x09ff_ffff), (0x0a00_0100, 0xffff_ffff)]));
        assert!(rest.intersect(&net).is_empty());
        let hole = net.subtract(&Ranges::point(0x0a00_0005));
        assert!(!hole.contains(0x0a00_0005) && hole.contains(0x0a00_0004) && hole.contains(0x0a00_0006));
        assert_eq!(
            hole.intersect(&Ranges::point(0x0a00_0006)),
            Ranges::point(0x0a00_0006)
        );
        assert!(Ranges::masked(0, 0xff00_ff00).is_none(), "a mask with holes");
        assert_eq!(hole.sample(&[0x0a00_0000]), Some(0x0a00_0001));
        assert!(Ranges::point(7).subtract(&Ranges::point(7)).is_empty());
    }
}
