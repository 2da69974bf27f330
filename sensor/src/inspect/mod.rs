//! Deep inspection of candidate packets: the kernel program hands over packets with a Stratum
//! signature and the first data packets of suspect flows (a per-flow budget of them), over AF_XDP
//! (`tap`) or as copies in a ring buffer (`inline`); here their Stratum JSON is parsed
//! (`deep`) and each miner login is counted by range, coin and agent family.
//!
//! No login (wallet, user name) is stored or exported: distinct miners are counted by a keyed
//! hash of the login (`deep::login_hash`), and only the hash appears in events.

pub mod deep;
pub mod frame;

use std::{
    collections::HashMap,
    io::Read as _,
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use sensor_common::{MAX_RANGES, RANGE_MASK};

use self::deep::Message;
use crate::{config::UNWATCHED, metrics::Metrics};

/// Flows remembered (the agent a `mining.subscribe` named before the login; whether the login
/// was counted, so that a retransmitted login segment counts once). Bounded; the oldest half is
/// forgotten when full.
const SEEN_FLOWS: usize = 65_536;
/// Distinct login hashes remembered over all ranges, at most: beyond it new miners are still
/// counted in `miner_logins_total` but not in the distinct gauge (and the agent says so).
const MAX_DISTINCT: usize = 1_000_000;

/// The login hash key: the first 32 bytes of `path`, or random bytes for this process's life.
pub fn login_key(path: Option<&Path>) -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    match path {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("inspect.login_key_file: cannot read {}", p.display()))?;
            if bytes.len() < 32 {
                bail!(
                    "inspect.login_key_file: {} holds {} bytes; it needs at least 32 (e.g. `head -c 32 /dev/urandom > {}`)",
                    p.display(),
                    bytes.len(),
                    p.display()
                );
            }
            key.copy_from_slice(&bytes[..32]);
        }
        None => {
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .context("reading a random login hash key from /dev/urandom")?;
        }
    }
    Ok(key)
}

/// The event line of a login.
#[derive(Serialize, Debug, Clone)]
pub struct LoginLine {
    pub ts: String,
    pub event: &'static str,
    pub range: String,
    pub ranges: Vec<String>,
    pub dialect: &'static str,
    pub coin: &'static str,
    pub agent: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    pub login_hash: String,
    /// `afxdp` or `copy`: how the packet reached userspace (replay reads the kernel's copies).
    pub path: &'static str,
    #[serde(flatten)]
    pub flow: crate::events::FlowFields,
}

type FlowId = (IpAddr, u16, IpAddr, u16, u8);

/// What earlier candidates of a flow said.
struct FlowNote {
    at: Instant,
    /// Stratum V1 names the miner software in `mining.subscribe`, before `mining.authorize`.
    agent: Option<deep::Agent>,
    logged_in: bool,
}

pub struct Inspector {
    key: [u8; 32],
    metrics: Metrics,
    window: Duration,
    seen: HashMap<FlowId, FlowNote>,
    /// Range label -> login hash -> last seen.
    distinct: HashMap<String, HashMap<String, Instant>>,
    distinct_entries: usize,
    distinct_full_warned: bool,
}

impl Inspector {
    pub fn new(key: [u8; 32], metrics: Metrics, window: Duration) -> Self {
        Self {
            key,
            metrics,
            window,
            seen: HashMap::new(),
            distinct: HashMap::new(),
            distinct_entries: 0,
            distinct_full_warned: false,
        }
    }

    /// Inspects one candidate frame that arrived over `path` at `now` (`wall` on the wall clock:
    /// replay passes the capture's time). `ranges_of` gives the watched ranges of an address as the
    /// kernel's tries hold them, `range_name` a range id's label. Returns the logins it counted, as
    /// event lines.
    #[allow(clippy::too_many_arguments)]
    pub fn frame(
        &mut self,
        bytes: &[u8],
        path: &'static str,
        iface: &str,
        now: Instant,
        wall: std::time::SystemTime,
        ranges_of: impl Fn(IpAddr) -> u64,
        range_name: impl Fn(usize) -> Option<String>,
    ) -> Vec<LoginLine> {
        self.metrics
            .inspected_packets
            .with_label_values(&[path])
            .inc();
        let Some(t) = frame::transport(bytes) else {
            return Vec::new();
        };
        if t.payload.is_empty() {
            return Vec::new();
        }
        let messages = deep::inspect(t.payload);
        if messages.is_empty() {
            return Vec::new();
        }
        let (a, b) = ((t.src, t.sport), (t.dst, t.dport));
        let id = if a <= b {
            (a.0, a.1, b.0, b.1, t.proto)
        } else {
            (b.0, b.1, a.0, a.1, t.proto)
        };
        if !self.seen.contains_key(&id) && self.seen.len() >= SEEN_FLOWS {
            self.forget_oldest_half();
        }
        let mut out = Vec::new();
        for m in &messages {
            let note = self.seen.entry(id).or_insert(FlowNote {
                at: now,
                agent: None,
                logged_in: false,
            });
            note.at = now;
            if m.agent.is_some() {
                note.agent = m.agent.clone();
            }
            // One login per flow: a retransmission counts once.
            if !m.is_login || note.logged_in {
                continue;
            }
            note.logged_in = true;
            let mut m = m.clone();
            if m.agent.is_none() {
                m.agent = note.agent.clone();
            }

            let ranges = (ranges_of(t.src) | ranges_of(t.dst)) & RANGE_MASK;
            let mut names: Vec<String> = (0..MAX_RANGES)
                .filter(|id| ranges & (1 << id) != 0)
                .filter_map(&range_name)
                .collect();
            if names.is_empty() {
                names.push(UNWATCHED.to_string());
            }
            out.push(self.count(&m, &names, &t, path, iface, now, wall));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        m: &Message,
        ranges: &[String],
        t: &frame::Transport<'_>,
        path: &'static str,
        iface: &str,
        now: Instant,
        wall: std::time::SystemTime,
    ) -> LoginLine {
        let coin = m.coin.label();
        let agent = m.agent.as_ref().map_or("unknown", |a| a.family);
        let hash = deep::login_hash(&self.key, m.login.as_deref().unwrap_or(""));
        for range in ranges {
            self.metrics
                .miner_logins
                .with_label_values(&[range, coin, agent])
                .inc();
            let known = self
                .distinct
                .get(range)
                .is_some_and(|h| h.contains_key(&hash));
            if known || self.distinct_entries < MAX_DISTINCT {
                if !known {
                    self.distinct_entries += 1;
                }
                self.distinct
                    .entry(range.clone())
                    .or_default()
                    .insert(hash.clone(), now);
            } else if !self.distinct_full_warned {
                self.distinct_full_warned = true;
                tracing::warn!(
                    "{MAX_DISTINCT} distinct miners remembered: new ones are counted as logins but not in mining_sensor_distinct_miners until older ones leave the window"
                );
            }
        }
        self.publish_distinct();
        LoginLine {
            ts: humantime::format_rfc3339_millis(wall).to_string(),
            event: "miner_login",
            range: ranges[0].clone(),
            ranges: ranges.to_vec(),
            dialect: m.dialect.name(),
            coin,
            agent,
            agent_version: m.agent.as_ref().and_then(|a| a.version.clone()),
            login_hash: hash,
            path,
            flow: crate::events::FlowFields::new(t.proto, t.src, t.sport, t.dst, t.dport, iface),
        }
    }

    fn forget_oldest_half(&mut self) {
        let mut times: Vec<Instant> = self.seen.values().map(|n| n.at).collect();
        times.sort_unstable();
        let cut = times[times.len() / 2];
        self.seen.retain(|_, n| n.at > cut);
    }

    /// Drops miners not seen within the window and updates the distinct-miners gauge.
    pub fn expire(&mut self, now: Instant) {
        let window = self.window;
        let mut entries = 0;
        for hashes in self.distinct.values_mut() {
            hashes.retain(|_, seen| now.duration_since(*seen) <= window);
            entries += hashes.len();
        }
        self.distinct_entries = entries;
        if entries < MAX_DISTINCT {
            self.distinct_full_warned = false;
        }
        let stale = now.checked_sub(window);
        self.seen.retain(|_, n| stale.is_none_or(|s| n.at > s));
        self.publish_distinct();
    }

    fn publish_distinct(&self) {
        for (range, hashes) in &self.distinct {
            self.metrics
                .distinct_miners
                .with_label_values(&[range])
                .set(hashes.len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use test_support::Packet;

    const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    fn login_frame(src: [u8; 4], sport: u16) -> Vec<u8> {
        let json = format!(
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\"]}}}}\n"
        );
        Packet::tcp4(
            src.into(),
            [203, 0, 113, 9].into(),
            sport,
            3333,
            json.as_bytes(),
        )
        .build()
    }

    #[test]
    fn a_login_counts_once_per_flow_by_coin_and_agent_without_the_wallet() {
        let metrics = Metrics::new();
        let mut i = Inspector::new([7; 32], metrics.clone(), Duration::from_secs(3600));
        let now = Instant::now();
        let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
        let name = |id: usize| (id == 0).then(|| "kp".to_string());
        let f = login_frame([198, 18, 0, 1], 40000);
        let lines = i.frame(&f, "afxdp", "eth0", now, SystemTime::now(), ranges, name);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (
                lines[0].coin,
                lines[0].agent,
                lines[0].agent_version.as_deref()
            ),
            ("monero", "xmrig", Some("6.16.0"))
        );
        // The same login again (a retransmission) counts nothing more; a second miner does.
        assert!(
            i.frame(&f, "afxdp", "eth0", now, SystemTime::now(), ranges, name)
                .is_empty()
        );
        let other = login_frame([198, 18, 0, 1], 40001);
        assert_eq!(
            i.frame(
                &other,
                "afxdp",
                "eth0",
                now,
                SystemTime::now(),
                ranges,
                name
            )
            .len(),
            1
        );
        let text = metrics.render();
        assert!(text.contains(
            "mining_sensor_miner_logins_total{agent=\"xmrig\",coin=\"monero\",range=\"kp\"} 2"
        ));
        assert!(text.contains("mining_sensor_inspected_packets_total{path=\"afxdp\"} 3"));
        // One wallet behind both logins: one distinct miner.
        assert!(text.contains("mining_sensor_distinct_miners{range=\"kp\"} 1"));
        assert!(!text.contains(WALLET));
        assert!(!serde_json::to_string(&lines).unwrap().contains(WALLET));

        // Outside every range: unwatched. After the window, nobody is left.
        let f = login_frame([198, 18, 0, 7], 40002);
        let lines = i.frame(&f, "copy", "eth0", now, SystemTime::now(), ranges, name);
        assert_eq!(lines[0].range, "unwatched");
        i.expire(now + Duration::from_secs(3601));
        assert!(
            metrics
                .render()
                .contains("mining_sensor_distinct_miners{range=\"kp\"} 0")
        );
    }

    #[test]
    fn a_stratum_v1_login_takes_the_agent_its_subscribe_named() {
        let metrics = Metrics::new();
        let mut i = Inspector::new([3; 32], metrics.clone(), Duration::from_secs(60));
        let seg = |payload: &[u8]| {
            Packet::tcp4(
                [198, 18, 0, 1].into(),
                [198, 18, 0, 2].into(),
                40000,
                4444,
                payload,
            )
            .build()
        };
        let now = Instant::now();
        let sub = seg(
            b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.10.0\"]}\n",
        );
        assert!(
            i.frame(&sub, "copy", "e", now, SystemTime::now(), |_| 0, |_| None)
                .is_empty()
        );
        let auth =
            seg(b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"w1\", \"x\"]}\n");
        let lines = i.frame(&auth, "copy", "e", now, SystemTime::now(), |_| 0, |_| None);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].agent, "cgminer");
        assert_eq!(lines[0].agent_version.as_deref(), Some("4.10.0"));
        assert_eq!(lines[0].dialect, "bitcoin");
    }

    #[test]
    fn garbage_and_non_stratum_frames_are_inspected_but_count_no_login() {
        let metrics = Metrics::new();
        let mut i = Inspector::new([1; 32], metrics.clone(), Duration::from_secs(60));
        let html = Packet::tcp4(
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
            80,
            40000,
            b"<p>{\"method\":\"login\",\"params\":{\"login\":\"x\"}}</p>",
        )
        .build();
        for f in [&html[..], &[0u8; 10][..], &html[..30]] {
            assert!(
                i.frame(
                    f,
                    "copy",
                    "eth0",
                    Instant::now(),
                    SystemTime::now(),
                    |_| 0,
                    |_| None
                )
                .is_empty()
            );
        }
        assert!(
            metrics
                .render()
                .contains("mining_sensor_inspected_packets_total{path=\"copy\"} 3")
        );
    }

    #[test]
    fn a_key_file_must_hold_32_bytes() {
        let dir = std::env::temp_dir().join(format!("ms-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, [1u8; 16]).unwrap();
        let e = login_key(Some(&short)).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        let good = dir.join("good");
        std::fs::write(&good, [9u8; 40]).unwrap();
        assert_eq!(login_key(Some(&good)).unwrap(), [9u8; 32]);
        assert_ne!(login_key(None).unwrap(), login_key(None).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
