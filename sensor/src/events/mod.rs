//! Flow events: the kernel reports each new Stratum flow once through a ring buffer; the agent
//! writes one JSON line per event to standard output or to a file rotated by size.
//!
//! ```json
//! {"ts":"2026-11-24T21:30:01.123Z","event":"stratum_flow","range":"kp","direction":"from",
//!  "ranges":[{"range":"kp","direction":"from"}],"dialect":"monero","proto":"tcp",
//!  "src":"175.45.178.10","sport":50000,"dst":"198.51.100.5","dport":3333,"iface":"eth0"}
//! ```
//!
//! Deep inspection adds one `miner_login` line per login it reads (see `inspect::LoginLine`):
//!
//! ```json
//! {"ts":"2026-11-24T21:30:01.125Z","event":"miner_login","range":"kp","ranges":["kp"],
//!  "dialect":"monero","coin":"monero","agent":"xmrig","agent_version":"6.16.0",
//!  "login_hash":"3f1c0e9a4b2d7788","path":"afxdp","proto":"tcp","src":"175.45.178.10",
//!  "sport":50000,"dst":"198.51.100.5","dport":3333,"iface":"eth0"}
//! ```
//!
//! `src`/`dst` are those of the flow's first Stratum packet. `range`/`direction` name the first
//! watched range it involves (`unwatched`/`none` for none); `ranges` lists all of them.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result};
use sensor_common::{EVENT_STRATUM_FLOW, EVENT_SUSPECT_FLOW, Event, Reason, stratum::Dialect};
use serde::Serialize;

use crate::{config::EventSink, metrics::monotonic_ns};

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct RangeDirection {
    pub range: String,
    pub direction: &'static str,
}

#[derive(Serialize, Debug)]
pub struct EventLine {
    pub ts: String,
    pub event: &'static str,
    pub range: String,
    pub direction: &'static str,
    pub ranges: Vec<RangeDirection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(flatten)]
    pub flow: FlowFields,
}

/// The fields every event line ends with: the flow's endpoints as its first packet showed them,
/// and the interface it came in on.
#[derive(Serialize, Debug, Clone)]
pub struct FlowFields {
    pub proto: &'static str,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub iface: String,
}

impl FlowFields {
    /// `proto` is the IP protocol number: 17 is UDP, anything else TCP (the only two flows have).
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, iface: &str) -> Self {
        Self {
            proto: if proto == 17 { "udp" } else { "tcp" },
            src,
            sport,
            dst,
            dport,
            iface: iface.to_string(),
        }
    }
}

fn addr(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

/// The JSON line of `e`, with range names by id and the interface name by index.
pub fn line(e: &Event, range_name: impl Fn(usize) -> Option<String>, iface: &str) -> EventLine {
    // The event's monotonic time, on the wall clock.
    let age = Duration::from_nanos(monotonic_ns().saturating_sub(e.ts_ns));
    let wall = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::now());
    line_at(e, range_name, iface, wall)
}

/// The JSON line of `e` at wall-clock time `wall` (replay: the packet's capture time).
pub fn line_at(
    e: &Event,
    range_name: impl Fn(usize) -> Option<String>,
    iface: &str,
    wall: SystemTime,
) -> EventLine {
    let (src, sport, dst, dport) = if e.src_is_lo != 0 {
        (&e.key.addr_lo, e.key.port_lo, &e.key.addr_hi, e.key.port_hi)
    } else {
        (&e.key.addr_hi, e.key.port_hi, &e.key.addr_lo, e.key.port_lo)
    };
    let mut ranges = Vec::new();
    for (mask, direction) in [(e.src_ranges, "from"), (e.dst_ranges, "to")] {
        for id in 0..64 {
            if mask & (1 << id) != 0
                && let Some(range) = range_name(id)
            {
                ranges.push(RangeDirection { range, direction });
            }
        }
    }
    let (range, direction) = ranges
        .first()
        .map(|r| (r.range.clone(), r.direction))
        .unwrap_or_else(|| (crate::config::UNWATCHED.to_string(), "none"));
    EventLine {
        ts: humantime::format_rfc3339_millis(wall).to_string(),
        event: match e.kind {
            EVENT_STRATUM_FLOW => "stratum_flow",
            EVENT_SUSPECT_FLOW => "suspect_flow",
            _ => "unknown",
        },
        range,
        direction,
        ranges,
        dialect: (e.kind == EVENT_STRATUM_FLOW)
            .then(|| Dialect::from_index(e.dialect).map_or("unknown", Dialect::name)),
        reason: (e.kind == EVENT_SUSPECT_FLOW).then(|| {
            Reason::NAMES
                .get(e.dialect as usize)
                .copied()
                .unwrap_or("unknown")
        }),
        flow: FlowFields::new(
            e.key.proto,
            addr(e.key.family, src),
            sport,
            addr(e.key.family, dst),
            dport,
            iface,
        ),
    }
}

/// Where event lines go.
pub enum Writer {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        written: u64,
        max_bytes: u64,
        keep: u32,
    },
    None,
}

impl Writer {
    pub fn open(sink: &EventSink) -> Result<Self> {
        Ok(match sink {
            EventSink::Stdout => Self::Stdout,
            EventSink::None => Self::None,
            EventSink::File {
                path,
                max_bytes,
                keep,
            } => {
                let file = open_append(path)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Self::File {
                    path: path.clone(),
                    file,
                    written,
                    max_bytes: *max_bytes,
                    keep: *keep,
                }
            }
        })
    }

    /// Writes one line (a flow event, or a login from deep inspection); rotates a file sink that
    /// reached its size first.
    pub fn write(&mut self, line: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        match self {
            Self::None => Ok(()),
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
                Ok(())
            }
            Self::File {
                path,
                file,
                written,
                max_bytes,
                keep,
            } => {
                if *written > 0 && *written + text.len() as u64 > *max_bytes {
                    rotate(path, *keep)?;
                    *file = open_append(path)?;
                    *written = 0;
                }
                file.write_all(text.as_bytes())
                    .with_context(|| format!("writing events to {}", path.display()))?;
                *written += text.len() as u64;
                Ok(())
            }
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the event file {}", path.display()))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// `path` becomes `path.1`, `path.1` becomes `path.2`..., keeping `keep` rotated files.
fn rotate(path: &Path, keep: u32) -> Result<()> {
    if keep == 0 {
        std::fs::remove_file(path).with_context(|| format!("rotating {}", path.display()))?;
        return Ok(());
    }
    let _ = std::fs::remove_file(numbered(path, keep));
    for n in (1..keep).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    std::fs::rename(path, numbered(path, 1)).with_context(|| format!("rotating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::FlowKey;

    fn event() -> Event {
        let mut key = FlowKey {
            family: 4,
            proto: 6,
            port_lo: 3333,
            port_hi: 50000,
            ..FlowKey::default()
        };
        key.addr_lo[..4].copy_from_slice(&[175, 45, 178, 10]);
        key.addr_hi[..4].copy_from_slice(&[198, 51, 100, 5]);
        Event {
            ts_ns: monotonic_ns(),
            key,
            src_ranges: 0b1,
            dst_ranges: 0,
            ifindex: 3,
            kind: EVENT_STRATUM_FLOW,
            dialect: 0,
            src_is_lo: 1,
            _pad: 0,
        }
    }

    #[test]
    fn an_event_becomes_its_json_line() {
        let l = line(&event(), |id| (id == 0).then(|| "kp".to_string()), "eth0");
        let v: serde_json::Value = serde_json::to_value(&l).unwrap();
        assert_eq!(v["event"], "stratum_flow");
        assert_eq!(v["range"], "kp");
        assert_eq!(v["direction"], "from");
        assert_eq!(v["dialect"], "monero");
        assert_eq!(v["src"], "175.45.178.10");
        assert_eq!(v["sport"], 3333);
        assert_eq!(v["dst"], "198.51.100.5");
        assert_eq!(v["dport"], 50000);
        assert_eq!(v["iface"], "eth0");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        let mut other = event();
        other.src_ranges = 0;
        let l = line(&other, |_| None, "eth0");
        assert_eq!((l.range.as_str(), l.direction), ("unwatched", "none"));
    }

    #[test]
    fn the_file_sink_rotates_and_keeps_what_it_should() {
        let dir = std::env::temp_dir().join(format!("ms-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let l = line(&event(), |id| (id == 0).then(|| "kp".to_string()), "eth0");
        let size = serde_json::to_string(&l).unwrap().len() as u64 + 1;
        let mut w = Writer::open(&EventSink::File {
            path: path.clone(),
            max_bytes: size * 3,
            keep: 2,
        })
        .unwrap();
        for _ in 0..10 {
            w.write(&l).unwrap();
        }
        // 10 lines, 3 per file: the current file holds 1, .1 and .2 hold 3 each, older ones gone.
        let lines = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        assert_eq!(lines(&path), 1);
        assert_eq!(lines(&numbered(&path, 1)), 3);
        assert_eq!(lines(&numbered(&path, 2)), 3);
        assert!(!numbered(&path, 3).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
