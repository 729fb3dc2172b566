//! Human-friendly durations (`500ms`, `30s`, `10m`, `1h`) and sizes
//! (`512KiB`, `4MiB`, `1GiB`, or plain bytes).

use std::time::Duration;

/// Parses `N` followed by `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a duration: expected a whole number and a unit (ms, s, m, h), e.g. `30s`")
    })?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}` has no valid unit: use ms, s, m or h, e.g. `30s`")),
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Parses a byte size: plain bytes, or `N` followed by `B`, `KiB`, `MiB`, `GiB`
/// (`KB`/`MB`/`GB` are taken as the binary units too, as users mean them).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size: expected a whole number and a unit, e.g. `4MiB`"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}` has no valid unit: use B, KiB, MiB or GiB, e.g. `4MiB`")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "10", "1.5s", "-1s", "10 days", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1mb"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        for bad in ["", "MiB", "1.5MiB", "4 TB", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
