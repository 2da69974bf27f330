//! Time as the report shows it: civil dates, a fixed offset from UTC, and tick marks on
//! calendar boundaries (hours, days, weeks, months) in that offset.

use std::fmt;

use anyhow::Result;

/// A fixed offset from UTC in seconds (`--utc-offset +09:00`): the report's dates, ticks and
/// hour-of-week map are in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtcOffset(pub i32);

impl UtcOffset {
    /// `+09:00`, `-05:30`, `+0530`, `+9`, `Z` or `UTC`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
            return Ok(Self(0));
        }
        let bad = || {
            anyhow::anyhow!(
                "--utc-offset {text:?}: give the offset from UTC as +HH:MM or -HH:MM, e.g. +09:00 or -05:30, between -14:00 and +14:00"
            )
        };
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        let (Ok(h), Ok(m)) = (h.parse::<i32>(), m.parse::<i32>()) else {
            return Err(bad());
        };
        if !(0..=14).contains(&h) || !(0..60).contains(&m) || h * 60 + m > 14 * 60 {
            return Err(bad());
        }
        Ok(Self(sign * (h * 3600 + m * 60)))
    }

    pub fn seconds(self) -> f64 {
        self.0 as f64
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("UTC");
        }
        let sign = if self.0 < 0 { '-' } else { '+' };
        let a = self.0.abs();
        write!(f, "UTC{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    }
}

/// (year, month, day, seconds into the day) of `local` seconds since the epoch.
fn civil(local: f64) -> (i64, i64, i64, i64) {
    // Days since the epoch to a proleptic Gregorian date, without a date crate.
    let days = (local / 86_400.0).floor() as i64;
    let secs = (local - days as f64 * 86_400.0) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d, secs)
}

/// Seconds since the epoch of the first day of `month` (1-12) of `year`.
fn month_start(year: i64, month: i64) -> f64 {
    // The inverse of `civil` for day 1.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    ((era * 146_097 + doe - 719_468) * 86_400) as f64
}

/// `unix` as `YYYY-MM-DD HH:MM` in `offset`.
pub fn datetime(unix: f64, offset: UtcOffset) -> String {
    let (y, m, d, s) = civil(unix + offset.seconds());
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// Monday 0 .. Sunday 6 and the hour, of `unix` in `offset`.
pub fn hour_of_week(unix: f64, offset: UtcOffset) -> (usize, usize) {
    let local = unix + offset.seconds();
    let days = (local / 86_400.0).floor() as i64;
    // 1970-01-01 was a Thursday (3 days after a Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let hour = ((local - days as f64 * 86_400.0) / 3600.0).floor() as usize;
    (weekday, hour.min(23))
}

/// Tick marks for a time axis from `lo` to `hi` (unix seconds), at most about `max` of them, on
/// calendar boundaries in `offset`, each with its label: a date (`2019-03-01`) at a midnight, the
/// time of day (`06:00`) between, the first with its date (`2019-03-01 06:00`) so that every
/// axis names its day. Periods of two days or more are ticked at midnights only: every label a
/// date.
pub fn ticks(lo: f64, hi: f64, offset: UtcOffset, max: usize) -> Vec<(f64, String)> {
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 86_400.0;
    const STEPS: [f64; 12] = [
        300.0,
        900.0,
        1800.0,
        HOUR,
        2.0 * HOUR,
        3.0 * HOUR,
        6.0 * HOUR,
        12.0 * HOUR,
        DAY,
        2.0 * DAY,
        7.0 * DAY,
        14.0 * DAY,
    ];
    let span = (hi - lo).max(1.0);
    let max = max.max(2) as f64;
    let off = offset.seconds();
    let label = |t: f64| {
        let (y, m, d, s) = civil(t + off);
        if s == 0 {
            format!("{y:04}-{m:02}-{d:02}")
        } else {
            format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
        }
    };
    let shortest = if span >= 2.0 * DAY { DAY } else { 0.0 };
    if let Some(&step) = STEPS.iter().find(|&&s| s >= shortest && span / s <= max) {
        // Weeks start on Mondays: 1970-01-05 was one.
        let anchor = if step >= 7.0 * DAY { 4.0 * DAY } else { 0.0 };
        let first = ((lo + off - anchor) / step).ceil() * step + anchor - off;
        let mut out: Vec<(f64, String)> = (0..)
            .map(|i| first + i as f64 * step)
            .take_while(|&t| t <= hi)
            .map(|t| (t, label(t)))
            .collect();
        if let Some(first) = out.first_mut()
            && first.1.len() == 5
        {
            first.1 = datetime(first.0, offset);
        }
        return out;
    }
    // Months: the first of every 1, 2, 3, 6 or 12 months.
    let months_span = span / (30.44 * DAY);
    let every = [1, 2, 3, 6, 12]
        .into_iter()
        .find(|&k| months_span / k as f64 <= max)
        .unwrap_or(12);
    let (y0, m0, _, _) = civil(lo + off);
    let mut out = Vec::new();
    let (mut y, mut m) = (y0, m0);
    loop {
        let t = month_start(y, m) - off;
        if t > hi {
            break;
        }
        if t >= lo && (m - 1) % every == 0 {
            out.push((t, label(t)));
        }
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(datetime(0.0, UtcOffset(0)), "1970-01-01 00:00");
        assert_eq!(datetime(1_551_398_400.0, UtcOffset(0)), "2019-03-01 00:00");
        assert_eq!(
            datetime(1_559_347_200.0 + 3_660.0, UtcOffset(0)),
            "2019-06-01 01:01"
        );
        assert_eq!(datetime(951_782_400.0, UtcOffset(0)), "2000-02-29 00:00");
        // Nine hours ahead of 2019-03-01 00:00 UTC.
        assert_eq!(
            datetime(1_551_398_400.0, UtcOffset(9 * 3600)),
            "2019-03-01 09:00"
        );
        assert_eq!(month_start(2019, 3), 1_551_398_400.0);
        assert_eq!(month_start(2000, 2), 949_363_200.0);
    }

    #[test]
    fn offsets() {
        assert_eq!(UtcOffset::parse("+09:00").unwrap(), UtcOffset(32_400));
        assert_eq!(UtcOffset::parse("-05:30").unwrap(), UtcOffset(-19_800));
        assert_eq!(UtcOffset::parse("+0530").unwrap(), UtcOffset(19_800));
        assert_eq!(UtcOffset::parse("UTC").unwrap(), UtcOffset(0));
        assert_eq!(UtcOffset(-19_800).to_string(), "UTC-05:30");
        for bad in ["9", "+15:00", "+09:60", "+x", ""] {
            let e = UtcOffset::parse(bad).unwrap_err().to_string();
            assert!(e.contains("+HH:MM"), "{e}");
        }
    }

    #[test]
    fn hours_of_the_week() {
        // 2019-03-01 was a Friday (4); 13:00 UTC is 22:00 in +09:00, still Friday.
        let t = 1_551_398_400.0 + 13.0 * 3600.0;
        assert_eq!(hour_of_week(t, UtcOffset(0)), (4, 13));
        assert_eq!(hour_of_week(t, UtcOffset(9 * 3600)), (4, 22));
        // 2019-03-04 00:30 UTC: Monday.
        assert_eq!(hour_of_week(1_551_659_400.0, UtcOffset(0)), (0, 0));
    }

    #[test]
    fn ticks_fall_on_calendar_boundaries() {
        let day = 86_400.0;
        let t0 = 1_551_398_400.0; // 2019-03-01 00:00 UTC
        // Three days: a tick each midnight, labelled with the date.
        let t = ticks(t0 + 3600.0, t0 + 3.0 * day, UtcOffset(0), 8);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["2019-03-02", "2019-03-03", "2019-03-04"]);
        assert_eq!(t[0].0, t0 + day);
        // A day and a half: every 6 hours, the first with its date.
        let t = ticks(t0 + 3600.0, t0 + 37.0 * 3600.0, UtcOffset(0), 8);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "2019-03-01 06:00",
                "12:00",
                "18:00",
                "2019-03-02",
                "06:00",
                "12:00"
            ]
        );
        // Six hours in +09:00: ticks on local hours, midnight local labelled with the date.
        let t = ticks(
            t0 + 13.0 * 3600.0,
            t0 + 19.0 * 3600.0,
            UtcOffset(9 * 3600),
            8,
        );
        assert_eq!(t[0].1, "2019-03-01 22:00");
        assert_eq!(t[2].1, "2019-03-02");
        assert_eq!(t[2].0, t0 + 15.0 * 3600.0);
        // A year: months.
        let t = ticks(t0, t0 + 365.0 * day, UtcOffset(0), 8);
        assert_eq!(t[0].1, "2019-03-01");
        assert_eq!(t[1].1, "2019-05-01");
        assert!(t.len() <= 8, "{t:?}");
        // A month: weeks from Mondays (2019-03-04).
        let t = ticks(t0, t0 + 30.0 * day, UtcOffset(0), 8);
        assert_eq!(t[0].1, "2019-03-04");
        assert_eq!(t[1].1, "2019-03-11");
    }
}
