//! Human units for command-line values: durations (`300`, `1.5s`, `250ms`, `5m`, `1h`), byte
//! counts (`1MiB`, `100KiB`, `64k`, `1M`), counts; `0` or `none` turns a setting off.

use std::time::Duration;

/// A setting that `0` or `none` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting<T>(pub Option<T>);

fn off(s: &str) -> bool {
    let s = s.trim();
    s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off")
}

/// The number and unit of a setting that is on: `None` for `0` (with any unit) and `none`.
fn on(s: &str) -> Result<Option<(f64, &str)>, String> {
    if off(s) {
        return Ok(None);
    }
    let (n, unit) = number_and_unit(s)?;
    Ok((n != 0.0).then_some((n, unit)))
}

/// Splits `12.5KiB` into `(12.5, "KiB")`.
fn number_and_unit(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a number with an optional unit"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok((n, unit.trim()))
}

/// A duration: seconds by default, or with `ms`, `s`, `m`, `h`; `0`/`none`: off.
pub fn duration(s: &str) -> Result<Setting<Duration>, String> {
    let Some((n, unit)) = on(s)? else {
        return Ok(Setting(None));
    };
    let secs = match unit {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{s}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs)
        .map(|d| Setting(Some(d)))
        .map_err(|_| format!("`{s}` is out of range"))
}

/// A byte count: bytes by default, or with `k`/`KB` (1000), `KiB` (1024), `M`/`MB`, `MiB`,
/// `G`/`GB`, `GiB` (a trailing `/s` is allowed); `0`/`none`: off.
pub fn bytes(s: &str) -> Result<Setting<u64>, String> {
    let Some((n, unit)) = on(s)? else {
        return Ok(Setting(None));
    };
    let unit = unit.strip_suffix("/s").unwrap_or(unit);
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{s}` (use KiB, MiB, GiB, k, M, G)"
            ));
        }
    };
    let v = (n * scale).round();
    if v < 1.0 || v > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Setting(Some(v as u64)))
}

/// A count; `0`/`none`: off.
pub fn count(s: &str) -> Result<Setting<u32>, String> {
    if off(s) {
        return Ok(Setting(None));
    }
    s.trim()
        .parse::<u32>()
        .map(|n| Setting((n != 0).then_some(n)))
        .map_err(|_| format!("`{s}` is not a count (a whole number, or none)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| duration(s).map(|x| x.0);
        assert_eq!(d("300"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(d("1.5s"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(d("250ms"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(d("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(d("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(d("0"), Ok(None));
        assert_eq!(d("00"), Ok(None));
        assert_eq!(d("none"), Ok(None));
        assert_eq!(d("0ms"), Ok(None));
        assert!(d("").is_err());
        assert!(d("-1").is_err());
        assert!(d("5x").is_err());
        assert!(d("abc").is_err());
        assert!(d("inf").is_err());
        assert!(d("1e999").is_err());
        assert!(d("99999999999999999999999").is_err());
    }

    #[test]
    fn byte_counts() {
        let b = |s| bytes(s).map(|x| x.0);
        assert_eq!(b("1MiB"), Ok(Some(1 << 20)));
        assert_eq!(b("100KiB"), Ok(Some(102_400)));
        assert_eq!(b("100kib/s"), Ok(Some(102_400)));
        assert_eq!(b("64k"), Ok(Some(64_000)));
        assert_eq!(b("1.5M"), Ok(Some(1_500_000)));
        assert_eq!(b("4096"), Ok(Some(4096)));
        assert_eq!(b("none"), Ok(None));
        assert_eq!(b("0"), Ok(None));
        assert!(b("0.1").is_err(), "less than a byte per second");
        assert!(b("1TiB").is_err());
        assert!(b("MiB").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(count("256").map(|x| x.0), Ok(Some(256)));
        assert_eq!(count("0").map(|x| x.0), Ok(None));
        assert_eq!(count("none").map(|x| x.0), Ok(None));
        assert!(count("-3").is_err());
        assert!(count("1.5").is_err());
    }
}
