//! Prometheus-style durations (`15d`, `1h30m`, `500ms`) for flags and the config file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written the way Prometheus writes them: one or more `<integer><unit>`
/// with units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 days), largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

/// Units and their milliseconds, largest first (the order they must be written in).
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

impl std::str::FromStr for PromDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a valid duration string: {s:?}");
        if s == "0" {
            return Ok(PromDuration(Duration::ZERO));
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut last_rank = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (rank, (unit, ms)) = UNITS
                .iter()
                .enumerate()
                .find(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
                .ok_or_else(bad)?;
            if last_rank != usize::MAX && rank <= last_rank {
                return Err(bad());
            }
            last_rank = rank;
            rest = &rest[unit.len()..];
            total = n.checked_mul(*ms).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
        }
        if s.is_empty() {
            return Err(bad());
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }
}

/// As Prometheus's `model.Duration` prints it: `1m30s`, `15s`, `1s500ms`, `0s`.
impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u128 {
        s.parse::<PromDuration>().unwrap().0.as_millis()
    }

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(ms("15d"), 15 * 86_400_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("1m0s"), 60_000);
        assert_eq!(ms("1y"), 365 * 86_400_000);
        assert_eq!(ms("0s"), 0);
        assert_eq!(ms("1s500ms"), 1500);
        for bad in ["", "5", "d", "1.5h", "30m1h", "1x", "-1s", "500ms1s"] {
            assert!(bad.parse::<PromDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_as_prometheus() {
        let show = |ms: u64| PromDuration(Duration::from_millis(ms)).to_string();
        assert_eq!(show(90_000), "1m30s");
        assert_eq!(show(1500), "1s500ms");
        assert_eq!(show(3_600_000), "1h");
        assert_eq!(show(0), "0s");
        assert_eq!(show(15_000), "15s");
    }
}
