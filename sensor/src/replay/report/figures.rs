//! The figures the page and the terminal summary show, read from a replay's [`Report`]: every
//! bucket of the period on one grid (empty ones at zero), per-range series, the first-third /
//! last-third comparison and the top coins, miner families and pools.

use std::collections::BTreeMap;

use super::super::results::{Report, is_gauge};
use crate::{
    config::{OTHER_PEER, UNWATCHED},
    metrics::names,
};

/// Every bucket of the capture period, in order: bucket `i` covers
/// `[ends[i] - bucket, ends[i])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub bucket: f64,
    pub ends: Vec<f64>,
}

impl Grid {
    fn of(report: &Report) -> Self {
        let bucket = report.bucket_seconds;
        let ends = match (report.buckets.first(), report.buckets.last()) {
            (Some(a), Some(b)) if bucket > 0.0 => {
                let n = ((b.end - a.end) / bucket).round() as usize + 1;
                (0..n).map(|i| a.end + i as f64 * bucket).collect()
            }
            _ => Vec::new(),
        };
        Self { bucket, ends }
    }

    fn index(&self, end: f64) -> Option<usize> {
        let first = *self.ends.first()?;
        let i = ((end - first) / self.bucket).round();
        (i >= 0.0 && (i as usize) < self.ends.len()).then_some(i as usize)
    }

    pub fn start(&self) -> f64 {
        self.ends.first().map_or(0.0, |e| e - self.bucket)
    }

    pub fn end(&self) -> f64 {
        self.ends.last().copied().unwrap_or(0.0)
    }
}

/// Values per bucket of one named series (a label value: a result, a direction, a reason).
pub type Series = BTreeMap<String, Vec<f64>>;

/// Everything the page shows of one range.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeFigures {
    pub range: String,
    /// Hashes per bucket (all coins).
    pub hashes: Vec<f64>,
    /// The rate miners reported of themselves at each bucket's end (hashes per second), where any
    /// did.
    pub reported_rate: Option<Vec<f64>>,
    /// Shares per bucket by `result`.
    pub shares: Series,
    /// IP bytes per bucket by `direction`.
    pub bytes: Series,
    /// New Stratum flows per bucket.
    pub flows: Vec<f64>,
    /// Suspect flows per bucket by `reason`.
    pub suspects: Series,
    /// IP bytes per bucket by neighbour (`peer`, both directions), where neighbours are configured.
    pub peers: Series,
    pub headline: Headline,
}

/// What the page and the terminal summary say first about a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// Capture period, unix seconds (first and last packet of the whole replay).
    pub period: Option<(f64, f64)>,
    pub hashes: f64,
    pub shares: f64,
    /// Hashes over the period's length: the mean hash rate.
    pub mean_rate: Option<f64>,
    /// Hashes in the first and last thirds of the period.
    pub hash_thirds: Option<(f64, f64)>,
    /// New Stratum flows in the first and last thirds of the period.
    pub flow_thirds: Option<(f64, f64)>,
    pub top_coin: Option<String>,
    pub top_agent: Option<String>,
    pub top_pool: Option<String>,
    /// The neighbour that carried most of the range's bytes, and its share of them (0 to 1).
    pub top_peer: Option<(String, f64)>,
}

/// One row of a "top" table: a name, its hashes and shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub name: String,
    pub hashes: f64,
    pub shares: u64,
}

pub struct Figures {
    pub grid: Grid,
    pub ranges: Vec<RangeFigures>,
}

/// The ranges a report names, watched ones in name order and `unwatched` last.
fn ranges(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report
        .totals
        .iter()
        .filter_map(|s| s.labels.get("range").cloned())
        .collect();
    names.sort_by(|a, b| (a == UNWATCHED, a).cmp(&(b == UNWATCHED, b)));
    names.dedup();
    names
}

/// Per-bucket values of `metric` for `range`, summed per value of label `by` (all in one series
/// named "" without it): counters as the rise over each bucket, gauges as the value at its end.
fn series(report: &Report, grid: &Grid, metric: &str, range: &str, by: Option<&str>) -> Series {
    let gauge = is_gauge(metric);
    let mut out = Series::new();
    let mut before: BTreeMap<String, f64> = BTreeMap::new();
    for b in &report.buckets {
        let Some(i) = grid.index(b.end) else {
            continue;
        };
        let mut now: BTreeMap<String, f64> = BTreeMap::new();
        for s in b.samples.iter().filter(|s| {
            s.metric == metric && s.labels.get("range").map(String::as_str) == Some(range)
        }) {
            let key = by
                .and_then(|k| s.labels.get(k).cloned())
                .unwrap_or_default();
            *now.entry(key).or_default() += s.value as f64;
        }
        for (key, v) in &now {
            let values = out
                .entry(key.clone())
                .or_insert_with(|| vec![0.0; grid.ends.len()]);
            values[i] = if gauge {
                *v
            } else {
                v - before.get(key).copied().unwrap_or(0.0)
            };
        }
        before = now;
    }
    // Label sets that exist but never moved (pre-created series) are no series to draw.
    out.retain(|_, v| v.iter().any(|x| *x != 0.0));
    out
}

fn one(mut s: Series, len: usize) -> Vec<f64> {
    s.remove("").unwrap_or_else(|| vec![0.0; len])
}

/// How much of `values` (per bucket of `grid`) falls in the first and in the last third of the
/// period from `first` to `last`: a bucket's value is spread evenly over the part of the bucket
/// inside the period, and shared between thirds in proportion.
pub fn thirds(grid: &Grid, values: &[f64], first: f64, last: f64) -> Option<(f64, f64)> {
    if last <= first {
        return None;
    }
    let third = (last - first) / 3.0;
    let (a_end, b_start) = (first + third, last - third);
    let (mut a, mut b) = (0.0, 0.0);
    for (end, v) in grid.ends.iter().zip(values) {
        if *v == 0.0 {
            continue;
        }
        let (lo, hi) = ((end - grid.bucket).max(first), end.min(last));
        if hi <= lo {
            // The period touches this bucket at one instant (its first or last packet).
            let t = lo.clamp(first, last);
            if t <= a_end {
                a += v;
            } else if t >= b_start {
                b += v;
            }
            continue;
        }
        let overlap = |s: f64, e: f64| (hi.min(e) - lo.max(s)).max(0.0) / (hi - lo);
        a += v * overlap(first, a_end);
        b += v * overlap(b_start, last);
    }
    Some((a, b))
}

/// The top names of `key` (coin, agent or pool) in a range's activity, most hashes first (then
/// most shares).
pub fn top(
    report: &Report,
    range: &str,
    key: fn(&super::super::results::Activity) -> String,
) -> Vec<Top> {
    let mut by: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for a in report.activity.iter().filter(|a| a.who.range == range) {
        let e = by.entry(key(a)).or_default();
        e.0 += a.work.hashes;
        e.1 += a.work.shares;
    }
    let mut rows: Vec<Top> = by
        .into_iter()
        .map(|(name, (hashes, shares))| Top {
            name,
            hashes,
            shares,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.hashes
            .total_cmp(&a.hashes)
            .then(b.shares.cmp(&a.shares))
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

pub fn coin(a: &super::super::results::Activity) -> String {
    a.who.coin.to_string()
}

pub fn agent(a: &super::super::results::Activity) -> String {
    a.who.agent.to_string()
}

pub fn pool(a: &super::super::results::Activity) -> String {
    a.who.pool.clone()
}

/// The most logins of a range by label `key` (`coin` or `agent`): where no share was seen, what
/// the logins say.
fn top_login(report: &Report, range: &str, key: &str) -> Option<String> {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for s in report.totals.iter().filter(|s| {
        s.metric == names::MINER_LOGINS && s.labels.get("range").map(String::as_str) == Some(range)
    }) {
        if let Some(v) = s.labels.get(key) {
            *by.entry(v).or_default() += s.value;
        }
    }
    by.into_iter()
        .filter(|(_, n)| *n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.to_string())
}

/// The neighbour with the most bytes and its share of all the neighbours' bytes (which add up to
/// the range's, `other` included).
fn top_peer(peers: &Series) -> Option<(String, f64)> {
    let totals: Vec<(&String, f64)> = peers.iter().map(|(k, v)| (k, v.iter().sum())).collect();
    let all: f64 = totals.iter().map(|t| t.1).sum();
    totals
        .into_iter()
        .filter(|t| t.1 > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(k, v)| (k.clone(), v / all))
}

/// Each series' share (in percent) of the sum of all of them, bucket by bucket (0 where the sum is).
pub fn shares_of(series: &Series) -> Series {
    let n = series.values().next().map_or(0, Vec::len);
    let totals: Vec<f64> = (0..n)
        .map(|i| series.values().map(|v| v[i]).sum())
        .collect();
    series
        .iter()
        .map(|(k, v)| {
            let pct = v
                .iter()
                .zip(&totals)
                .map(|(x, t)| if *t > 0.0 { 100.0 * x / t } else { 0.0 })
                .collect();
            (k.clone(), pct)
        })
        .collect()
}

pub fn figures(report: &Report) -> Figures {
    let grid = Grid::of(report);
    let n = grid.ends.len();
    let period = report.first_packet.zip(report.last_packet);
    let ranges = ranges(report)
        .into_iter()
        .map(|range| {
            let r = range.as_str();
            let hashes: Vec<f64> = {
                let by_coin = series(report, &grid, names::SHARE_HASHES, r, None);
                one(by_coin, n)
            };
            let reported = one(series(report, &grid, names::REPORTED_HASHRATE, r, None), n);
            let flows = one(series(report, &grid, names::STRATUM_FLOWS, r, None), n);
            let shares = series(report, &grid, names::SHARES, r, Some("result"));
            let mut peers = series(report, &grid, names::PEER_BYTES, r, Some("peer"));
            // Without a configured neighbour every byte is `other`: nothing to tell apart.
            if peers.keys().all(|p| p == OTHER_PEER) {
                peers.clear();
            }
            let total_hashes: f64 = hashes.iter().sum();
            let total_shares: f64 = shares.values().flatten().sum();
            let first = |rows: Vec<Top>| rows.into_iter().next().map(|t| t.name);
            let headline = Headline {
                period,
                hashes: total_hashes,
                shares: total_shares,
                mean_rate: period
                    .filter(|(a, b)| b > a)
                    .map(|(a, b)| total_hashes / (b - a)),
                hash_thirds: period.and_then(|(a, b)| thirds(&grid, &hashes, a, b)),
                flow_thirds: period.and_then(|(a, b)| thirds(&grid, &flows, a, b)),
                top_coin: first(top(report, r, coin)).or_else(|| top_login(report, r, "coin")),
                top_agent: first(top(report, r, agent)).or_else(|| top_login(report, r, "agent")),
                top_pool: first(top(report, r, pool)),
                top_peer: top_peer(&peers),
            };
            RangeFigures {
                range: range.clone(),
                reported_rate: reported.iter().any(|v| *v > 0.0).then_some(reported),
                hashes,
                shares,
                bytes: series(report, &grid, names::BYTES, r, Some("direction")),
                flows,
                suspects: series(report, &grid, names::SUSPECT_FLOWS, r, Some("reason")),
                peers,
                headline,
            }
        })
        .collect();
    Figures { grid, ranges }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> Grid {
        Grid {
            bucket: 3600.0,
            ends: (1..=n).map(|i| i as f64 * 3600.0).collect(),
        }
    }

    #[test]
    fn thirds_of_whole_buckets() {
        // Nine hourly buckets from 0 to 9 h: the first three in the first third, the last three
        // in the last.
        let g = grid(9);
        let v = [1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 10.0, 10.0, 10.0];
        assert_eq!(thirds(&g, &v, 0.0, 9.0 * 3600.0), Some((3.0, 30.0)));
    }

    #[test]
    fn a_bucket_across_a_boundary_is_shared() {
        // Period 0..6 h, thirds of 2 h; one bucket 1.5 h..2.5 h would straddle. With hourly
        // buckets and a period from 0.5 h to 6.5 h: thirds end at 2.5 h and start at 4.5 h.
        let g = grid(7);
        let v = [2.0, 0.0, 4.0, 0.0, 8.0, 0.0, 0.0];
        // Bucket 0..1 h holds 2, its part inside the period is 0.5..1 h, all in the first third.
        // Bucket 2..3 h holds 4: half of it (2..2.5 h) in the first third, 2.
        // Bucket 4..5 h holds 8: half (4.5..5 h) in the last third, 4.
        assert_eq!(thirds(&g, &v, 1800.0, 6.5 * 3600.0), Some((4.0, 4.0)));
    }

    #[test]
    fn neighbour_shares_add_up_per_bucket() {
        let mut s = Series::new();
        s.insert("a".into(), vec![30.0, 0.0, 10.0]);
        s.insert("other".into(), vec![10.0, 0.0, 30.0]);
        let p = shares_of(&s);
        assert_eq!(p["a"], [75.0, 0.0, 25.0]);
        assert_eq!(p["other"], [25.0, 0.0, 75.0]);
        // a 40 of 80 bytes in all, other 40: a tie goes to the first name.
        assert_eq!(top_peer(&s), Some(("a".to_string(), 0.5)));
    }

    #[test]
    fn no_period_no_thirds() {
        assert_eq!(thirds(&grid(1), &[1.0], 5.0, 5.0), None);
    }
}

/// Hashes per hour of the week (Monday first, hours in `offset`), or `None` when buckets are
/// longer than an hour (a day's bucket cannot say at which hour its work was done). A bucket
/// across an hour's boundary is shared in proportion.
pub fn week(grid: &Grid, hashes: &[f64], offset: super::time::UtcOffset) -> Option<[[f64; 24]; 7]> {
    if grid.bucket > 3600.0 {
        return None;
    }
    let mut cells = [[0.0; 24]; 7];
    let off = offset.seconds();
    for (end, v) in grid.ends.iter().zip(hashes) {
        if *v == 0.0 {
            continue;
        }
        let (start, end) = (end - grid.bucket, *end);
        let mut t = start;
        while t < end {
            // The next local hour boundary after t.
            let next = (((t + off) / 3600.0).floor() + 1.0) * 3600.0 - off;
            let until = next.min(end);
            let (d, h) = super::time::hour_of_week(t, offset);
            cells[d][h] += v * (until - t) / grid.bucket;
            t = until;
        }
    }
    Some(cells)
}

#[cfg(test)]
mod week_tests {
    use super::{super::time::UtcOffset, *};

    #[test]
    fn a_session_lights_its_hour() {
        // 2019-03-01 (a Friday) 13:00-14:00 UTC in 5-minute buckets: 12 buckets of 1,000 hashes.
        let t0 = 1_551_398_400.0 + 13.0 * 3600.0;
        let grid = Grid {
            bucket: 300.0,
            ends: (1..=12).map(|i| t0 + i as f64 * 300.0).collect(),
        };
        let cells = week(&grid, &[1000.0; 12], UtcOffset(0)).unwrap();
        assert_eq!(cells[4][13], 12_000.0);
        assert_eq!(cells.iter().flatten().sum::<f64>(), 12_000.0);
        // In +05:30 the hour is split: 13:00-13:30 UTC is 18:30-19:00, 13:30-14:00 is 19:00-19:30.
        let cells = week(&grid, &[1000.0; 12], UtcOffset(19_800)).unwrap();
        assert_eq!((cells[4][18], cells[4][19]), (6000.0, 6000.0));
        // Daily buckets cannot say the hour.
        let daily = Grid {
            bucket: 86_400.0,
            ends: vec![t0],
        };
        assert_eq!(week(&daily, &[1.0], UtcOffset(0)), None);
    }
}
