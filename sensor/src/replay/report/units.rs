//! Figures as people read them: SI prefixes (H/s, kH/s, MH/s, ...) with three significant digits.

/// `value` with an SI prefix and `unit`, three significant digits: `1.23 kH/s`, `450 B`, `0`.
pub fn si(value: f64, unit: &str) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let sep = if unit.is_empty() { "" } else { " " };
    if value == 0.0 || !value.is_finite() {
        return format!("0{sep}{unit}");
    }
    let mut v = value.abs();
    let mut p = 0;
    // Round first, so that 999.96 becomes 1.00 k rather than 1000.
    while p + 1 < PREFIXES.len() && round3(v) >= 1000.0 {
        v /= 1000.0;
        p += 1;
    }
    let v = round3(v) * value.signum();
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{v:.digits$}");
    // 12.0 k reads as 12 k; 1.50 stays (three significant digits).
    if p == 0 && v.fract() == 0.0 {
        text = format!("{v:.0}");
    }
    let prefix = PREFIXES[p];
    if prefix.is_empty() && unit.is_empty() {
        text
    } else {
        format!("{text} {prefix}{unit}")
    }
}

/// `v` rounded to three significant digits.
fn round3(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A ratio as the report prints it: `10.0×`, or words where the first figure is zero.
pub fn ratio(first: f64, last: f64) -> String {
    if first > 0.0 {
        format!("{:.1}×", last / first)
    } else if last > 0.0 {
        "rise from none".to_string()
    } else {
        "none in either".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_digits() {
        assert_eq!(si(0.0, "H/s"), "0 H/s");
        assert_eq!(si(7.0, "H/s"), "7 H/s");
        assert_eq!(si(1.5, "H/s"), "1.50 H/s");
        assert_eq!(si(450.0, "B"), "450 B");
        assert_eq!(si(1234.0, "H/s"), "1.23 kH/s");
        assert_eq!(si(12_000.0, "H/s"), "12.0 kH/s");
        assert_eq!(si(999_960.0, "H/s"), "1.00 MH/s");
        assert_eq!(si(2_880_270.0, ""), "2.88 M");
        assert_eq!(si(42.0, ""), "42");
        assert_eq!(si(3.2e9, "B"), "3.20 GB");
    }

    #[test]
    fn ratios_in_words_where_the_first_is_zero() {
        assert_eq!(ratio(10.0, 100.0), "10.0×");
        assert_eq!(ratio(1.0, 0.0), "0.0×");
        assert_eq!(ratio(0.0, 3.0), "rise from none");
        assert_eq!(ratio(0.0, 0.0), "none in either");
    }
}
