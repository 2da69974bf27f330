//! Who did the work: shares and hashes per range, coin, miner family and pool endpoint.
//!
//! The metrics carry no pool label (one series per pool address would be unbounded on a live
//! link), so the analyst report's "top miners and pools by hashes" cannot come from them. Replay
//! keeps this tally beside the metrics instead: bounded, with whatever arrives once
//! [`MAX_ROWS`] rows exist counted under the pool `other`, so that totals still add up.

use std::collections::HashMap;

use serde::Serialize;

/// Distinct (range, coin, agent, pool) rows kept; later pools are counted as `other`.
pub const MAX_ROWS: usize = 4096;

/// The pool label of shares whose row did not fit.
pub const OTHER_POOL: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Who {
    pub range: String,
    pub coin: &'static str,
    pub agent: &'static str,
    /// The address and port the shares were sent to.
    pub pool: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Work {
    /// Shares submitted (whatever the pool's verdict).
    pub shares: u64,
    /// Hashes those shares stand for (shares before any difficulty add none).
    pub hashes: f64,
}

#[derive(Debug, Default)]
pub struct Tally {
    rows: HashMap<Who, Work>,
}

impl Tally {
    /// One share sent to `who.pool`, worth `hashes` when the flow's difficulty was known.
    pub fn share(&mut self, mut who: Who, hashes: Option<f64>) {
        if !self.rows.contains_key(&who) && self.rows.len() >= MAX_ROWS {
            who.pool = OTHER_POOL.to_string();
        }
        let w = self.rows.entry(who).or_default();
        w.shares += 1;
        w.hashes += hashes.unwrap_or(0.0);
    }

    /// The rows, most hashes first (ties in label order, so every run writes the same list).
    pub fn rows(&self) -> Vec<(Who, Work)> {
        let mut rows: Vec<(Who, Work)> = self.rows.iter().map(|(k, v)| (k.clone(), *v)).collect();
        rows.sort_by(|a, b| {
            b.1.hashes
                .total_cmp(&a.1.hashes)
                .then_with(|| a.0.cmp(&b.0))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(pool: &str) -> Who {
        Who {
            range: "kp".into(),
            coin: "monero",
            agent: "xmrig",
            pool: pool.into(),
        }
    }

    #[test]
    fn adds_shares_and_hashes_per_row() {
        let mut t = Tally::default();
        t.share(who("203.0.113.5:3333"), Some(10_000.0));
        t.share(who("203.0.113.5:3333"), Some(10_000.0));
        t.share(who("203.0.113.5:3333"), None);
        t.share(who("198.51.100.7:443"), Some(40_000.0));
        let rows = t.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0.pool, "198.51.100.7:443");
        assert_eq!(
            rows[0].1,
            Work {
                shares: 1,
                hashes: 40_000.0
            }
        );
        // Three shares, the third before any difficulty: 2 x 10,000 hashes.
        assert_eq!(
            rows[1].1,
            Work {
                shares: 3,
                hashes: 20_000.0
            }
        );
    }

    #[test]
    fn rows_beyond_the_bound_count_as_other() {
        let mut t = Tally::default();
        for i in 0..MAX_ROWS + 10 {
            t.share(who(&format!("pool{i}")), Some(1.0));
        }
        let rows = t.rows();
        // MAX_ROWS distinct pools fit; the 10 later ones share one `other` row.
        assert_eq!(rows.len(), MAX_ROWS + 1);
        let other = rows.iter().find(|r| r.0.pool == OTHER_POOL).unwrap();
        assert_eq!(
            other.1,
            Work {
                shares: 10,
                hashes: 10.0
            }
        );
        let total: u64 = rows.iter().map(|r| r.1.shares).sum();
        assert_eq!(total, MAX_ROWS as u64 + 10);
    }
}
