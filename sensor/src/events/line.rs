//! An event as its JSON line: the kernel's [`Event`] with range names, addresses in order and the
//! wall-clock time.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, SystemTime},
};

use sensor_common::{EVENT_STRATUM_FLOW, EVENT_SUSPECT_FLOW, Event, Reason, stratum::Dialect};
use serde::Serialize;

use crate::{bpf::monotonic_ns, metrics::names};

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
    for (mask, direction) in [(e.src_ranges, names::FROM), (e.dst_ranges, names::TO)] {
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
        .unwrap_or_else(|| (crate::config::UNWATCHED.to_string(), names::NONE));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event;

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
}
