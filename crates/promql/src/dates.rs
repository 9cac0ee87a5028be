//! The calendar behind PromQL's date functions (`year()`, `month()`, `day_of_week()`, …),
//! computed as Prometheus's Go code does: `time.Unix(int64(v), 0).UTC()`.
//!
//! Two things make this differ from a calendar library: Go converts a float to `int64` by
//! truncating toward zero (so `-0.5` is second 0, 1970-01-01, not 1969-12-31), and Go's
//! `time` keeps a second count offset into `uint64` ("absolute" time, from the year
//! −292277022399), so every `int64` second has a date, however far from now, and the
//! conversion of NaN, ±Inf or a float beyond `int64` (which is `i64::MIN` on amd64, where
//! Prometheus runs) lands on a date too instead of failing.

/// Seconds from the absolute zero (1 January −292277022399, a year ≡ 1 mod 400) to the
/// Unix epoch: Go's `unixToInternal + internalToAbsolute`.
const UNIX_TO_ABSOLUTE: u64 = 62_135_596_800 + 730_692_556 * DAYS_PER_400_YEARS * SECONDS_PER_DAY;
/// The year of the absolute zero.
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 146_097;
const DAYS_PER_100_YEARS: u64 = 36_524;
const DAYS_PER_4_YEARS: u64 = 1_461;

/// Go's `int64(x)` on amd64: truncation toward zero, and `i64::MIN` for NaN and for
/// anything outside the `int64` range (Rust's `as` saturates instead).
pub(crate) fn go_int64(x: f64) -> i64 {
    // 2^63: the first float above the int64 range
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() || !(-LIMIT..LIMIT).contains(&x) { i64::MIN } else { x as i64 }
}

/// A moment broken down as Go's `time.Time` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    /// 1–12.
    pub(crate) month: u32,
    /// 1–31.
    pub(crate) day: u32,
    /// 1–366.
    pub(crate) yday: u32,
    /// 0 (Sunday) – 6.
    pub(crate) weekday: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Civil {
    /// The UTC date and time of Unix second `secs`, as Go's `time.Unix(secs, 0).UTC()`
    /// reports it (the absolute second count wraps as Go's unsigned arithmetic does).
    pub(crate) fn from_unix(secs: i64) -> Civil {
        let abs = (secs as u64).wrapping_add(UNIX_TO_ABSOLUTE);
        let tod = abs % SECONDS_PER_DAY;
        // 1 January of the absolute zero year was a Monday
        let weekday = (abs.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY)) / SECONDS_PER_DAY;
        let mut d = abs / SECONDS_PER_DAY;
        let n400 = d / DAYS_PER_400_YEARS;
        d -= n400 * DAYS_PER_400_YEARS;
        // the last century and year of a cycle hold one day more
        let n100 = (d / DAYS_PER_100_YEARS).min(3);
        d -= n100 * DAYS_PER_100_YEARS;
        let n4 = d / DAYS_PER_4_YEARS;
        d -= n4 * DAYS_PER_4_YEARS;
        let n1 = (d / 365).min(3);
        d -= n1 * 365;
        // at most 292277022399 + 2^64 / 31556952 ≈ 8.8e11: no overflow
        let year = ABSOLUTE_ZERO_YEAR + (400 * n400 + 100 * n100 + 4 * n4 + n1) as i64;
        let yday = d as u32; // < 366
        let (mut month, mut rest) = (1, yday);
        while rest >= days_in_month(year, month) {
            rest -= days_in_month(year, month);
            month += 1;
        }
        Civil {
            year,
            month,
            day: rest + 1,
            yday: yday + 1,
            weekday: weekday as u32,
            hour: (tod / 3600) as u32,
            minute: (tod % 3600 / 60) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_conversion_truncates_and_wraps() {
        assert_eq!(go_int64(-0.5), 0);
        assert_eq!(go_int64(-1.5), -1);
        assert_eq!(go_int64(1.9), 1);
        assert_eq!(go_int64(f64::NAN), i64::MIN);
        assert_eq!(go_int64(f64::INFINITY), i64::MIN);
        assert_eq!(go_int64(f64::NEG_INFINITY), i64::MIN);
        assert_eq!(go_int64(9.3e18), i64::MIN);
        assert_eq!(go_int64(i64::MIN as f64), i64::MIN);
        assert_eq!(go_int64(-9.3e18), i64::MIN);
    }

    /// Dates as Prometheus 2.42 (Go 1.19, amd64) returns them.
    #[test]
    fn dates_as_go_computes_them() {
        let c = |s| Civil::from_unix(s);
        let epoch = c(0);
        assert_eq!((epoch.year, epoch.month, epoch.day, epoch.weekday, epoch.yday), (1970, 1, 1, 4, 1));
        let before = c(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.hour, before.minute),
            (1969, 12, 31, 23, 59)
        );
        assert_eq!((before.weekday, before.yday), (3, 365));
        let leap = c(951_782_400); // 2000-02-29
        assert_eq!((leap.month, leap.day, days_in_month(leap.year, leap.month)), (2, 29, 29));
        assert_eq!(c(1e15 as i64).year, 31_690_708);
        assert_eq!(c(-1e15 as i64).year, -31_686_769);
        assert_eq!(c(-62_135_596_801).year, 0);
        assert_eq!(c(-9.2e18 as i64).year, -291_536_392_293);
        let far = c(-1e17 as i64);
        assert_eq!((far.yday, days_in_month(far.year, far.month)), (117, 30));
        // NaN: int64 minimum, whose absolute time wraps to the end of the range
        let nan = c(go_int64(f64::NAN));
        assert_eq!((nan.year, nan.month, nan.day, nan.weekday), (292_277_026_596, 12, 4, 0));
    }
}
