//! Durations and sizes as experiment and lab files write them, and the
//! line of a TOML span for their errors.

/// Line (1-based) of a byte offset.
pub fn line_of(text: &str, span: &std::ops::Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

/// "100ms", "5s", "2m", "1h" → milliseconds; None when malformed or 0.
pub fn millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|ms| *ms > 0)
}

/// "512MiB", "4GiB" or a plain number of MiB; None when malformed or 0.
pub fn mib(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("GiB") {
        (n, 1024)
    } else if let Some(n) = text.strip_suffix("MiB") {
        (n, 1)
    } else {
        (text, 1)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(factor))
}

/// "10mbit", "500kbit", "1gbit" → kbit/s.
pub fn kbit(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, factor) = if let Some(n) = text.strip_suffix("gbit") {
        (n.to_string(), 1_000_000)
    } else if let Some(n) = text.strip_suffix("mbit") {
        (n.to_string(), 1000)
    } else if let Some(n) = text.strip_suffix("kbit") {
        (n.to_string(), 1)
    } else {
        return None;
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(factor))
}

/// A byte count for people: "512 bytes", "64.0 KiB", "3.9 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(64 * 1024), "64.0 KiB");
        assert_eq!(bytes(4_190_000_000), "3.9 GiB");
    }

    #[test]
    fn units_parse_and_refuse() {
        assert_eq!(millis("100ms"), Some(100));
        assert_eq!(millis("5s"), Some(5000));
        assert_eq!(millis("2m"), Some(120_000));
        for bad in ["", "5", "0s", "-1s", "1.5s", "5 parsecs", "99999999999999999999h"] {
            assert_eq!(millis(bad), None, "{bad}");
        }
        assert_eq!(mib("4GiB"), Some(4096));
        assert_eq!(mib("18446744073709551615GiB"), None);
        assert_eq!(kbit("10mbit"), Some(10_000));
        assert_eq!(kbit("10"), None);
    }
}
