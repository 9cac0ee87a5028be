//! Numbers as Prometheus reads them: floats as Go's `strconv.ParseFloat` accepts them (less the
//! hexadecimal and underscore forms, which Prometheus refuses), integers as `strconv.ParseInt`.

/// Prometheus's "normal" NaN (`value.NormalNaN`), which every NaN sample value becomes.
const NORMAL_NAN: u64 = 0x7ff8_0000_0000_0001;

/// Why a number could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// Not a number.
    Syntax,
    /// A number too large for its type.
    Range,
}

impl NumberError {
    /// `invalid {what} "<token>"`, or `{what} "<token>" out of range`.
    pub(crate) fn describe(self, what: &str, token: &[u8]) -> String {
        let token = crate::lex::quote(token);
        match self {
            NumberError::Syntax => format!("invalid {what} {token}"),
            NumberError::Range => format!("{what} {token} out of range"),
        }
    }
}

/// A float: `[+-]?(d+|d+.d*|.d+)([eE][+-]?d+)?`, or case-insensitively `[+-]?inf`,
/// `[+-]?infinity`, `nan`. A finite number whose magnitude rounds above `f64::MAX` is a range
/// error, as in Go; one that rounds to zero or a subnormal is not.
pub(crate) fn parse_float(token: &[u8]) -> Result<f64, NumberError> {
    let (negative, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, token),
    };
    // Most values are small integers, which an f64 holds exactly.
    if (1..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let n = digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        let value = n as f64;
        return Ok(if negative { -value } else { value });
    }
    if digits.eq_ignore_ascii_case(b"inf") || digits.eq_ignore_ascii_case(b"infinity") {
        return Ok(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if token.eq_ignore_ascii_case(b"nan") {
        return Ok(f64::from_bits(NORMAL_NAN));
    }
    if !is_decimal(digits) {
        return Err(NumberError::Syntax);
    }
    // `is_decimal` admits only ASCII, in a grammar Rust's parser also reads.
    let text = std::str::from_utf8(token).map_err(|_| NumberError::Syntax)?;
    let value: f64 = text.parse().map_err(|_| NumberError::Syntax)?;
    if value.is_infinite() {
        return Err(NumberError::Range);
    }
    Ok(value)
}

/// Whether `s` is `(d+|d+.d*|.d+)([eE][+-]?d+)?`.
fn is_decimal(s: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let int = digits(s);
    let mut i = int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        frac = digits(s.get(i + 1..).unwrap_or_default());
        i += 1 + frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits(s.get(i..).unwrap_or_default());
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    i == s.len()
}

/// An unsigned decimal integer (one or more ASCII digits), as an `i64`.
pub(crate) fn parse_int(digits: &[u8]) -> Result<i64, NumberError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::Syntax);
    }
    digits.iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10).and_then(|n| n.checked_add(i64::from(d - b'0'))).ok_or(NumberError::Range)
    })
}

/// An OpenMetrics timestamp: float seconds, as milliseconds truncated toward zero (saturating at
/// the ends of the `i64` range). NaN and infinities are errors.
pub(crate) fn parse_seconds_as_millis(token: &[u8]) -> Result<i64, NumberError> {
    let seconds = parse_float(token)?;
    if !seconds.is_finite() {
        return Err(NumberError::Syntax);
    }
    Ok((seconds * 1000.0) as i64)
}

/// A float as Prometheus 3 writes `le` and `quantile` label values (its
/// `formatOpenMetricsFloat`): Go's shortest `'g'` form, with `.0` added when that has neither
/// a `.` nor an exponent (`1` → `1.0`, `0.25` → `0.25`, `1e-05`, `1e+06`, `+Inf`).
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's precision -1 does
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Go's 'g' with the shortest precision uses %e below 1e-4 and from 1e6 (precision 6)
    let out = if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{first}{dot}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    };
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(s: &str) -> Result<f64, NumberError> {
        parse_float(s.as_bytes())
    }

    #[test]
    fn floats_go_accepts() {
        let cases: &[(&str, f64)] = &[
            ("0", 0.0),
            ("1", 1.0),
            ("-1", -1.0),
            ("+1", 1.0),
            ("123456789012345", 123_456_789_012_345.0),
            ("1234567890123456789", 1_234_567_890_123_456_789.0),
            ("1.5", 1.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("1.5e-3", 0.0015),
            ("0.0000001", 1e-7),
            ("1.7976931348623157e308", f64::MAX),
            ("5e-324", 5e-324),
            ("1e-400", 0.0),
            ("Inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
            ("-INFINITY", f64::NEG_INFINITY),
            ("+infinity", f64::INFINITY),
        ];
        for &(s, want) in cases {
            assert_eq!(float(s).map(f64::to_bits), Ok(want.to_bits()), "{s}");
        }
        assert_eq!(float("-0").map(f64::to_bits), Ok((-0.0f64).to_bits()));
        for s in ["NaN", "nan", "NAN"] {
            assert_eq!(float(s).map(f64::to_bits), Ok(NORMAL_NAN), "{s}");
        }
    }

    #[test]
    fn floats_go_refuses() {
        for s in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.5.5",
            "--1",
            "+-1",
            "1_000",
            "0x10",
            "0x1p3",
            "1p3",
            "+NaN",
            "-nan",
            "nana",
            "in",
            "infinit",
            "infinityy",
            " 1",
            "1 ",
            "1\r",
            "１",
            "1,5",
        ] {
            assert_eq!(float(s), Err(NumberError::Syntax), "{s:?}");
        }
        assert_eq!(float("1e400"), Err(NumberError::Range));
        assert_eq!(float("-1.8e308"), Err(NumberError::Range));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int(b"0"), Ok(0));
        assert_eq!(parse_int(b"1520879607789"), Ok(1_520_879_607_789));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), Err(NumberError::Range));
        assert_eq!(parse_int(b""), Err(NumberError::Syntax));
        assert_eq!(parse_int(b"-1"), Err(NumberError::Syntax));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds_as_millis(b"1520879607.789"), Ok(1_520_879_607_789));
        assert_eq!(parse_seconds_as_millis(b"1520879607"), Ok(1_520_879_607_000));
        assert_eq!(parse_seconds_as_millis(b"-1.5"), Ok(-1500));
        assert_eq!(parse_seconds_as_millis(b"0.0009"), Ok(0));
        assert_eq!(parse_seconds_as_millis(b"1e300"), Ok(i64::MAX));
        assert_eq!(parse_seconds_as_millis(b"NaN"), Err(NumberError::Syntax));
        assert_eq!(parse_seconds_as_millis(b"+Inf"), Err(NumberError::Syntax));
    }

    #[test]
    fn openmetrics_floats_as_prometheus_writes_them() {
        let cases = [
            (1.0, "1.0"),
            (0.25, "0.25"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (2.5e-7, "2.5e-07"),
            (-1.5, "-1.5"),
            (0.0, "0.0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (123.456, "123.456"),
        ];
        for (f, want) in cases {
            assert_eq!(format_openmetrics_float(f), want, "{f}");
        }
    }
}
