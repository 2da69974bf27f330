//! Flows the agent opens in the program's flow table: Stratum the program cannot read (WebSocket
//! messages compressed with permessage-deflate, inflated by deep inspection; an HTTP body whose
//! JSON runs over several chunks, joined by deep inspection; a login padded past the program's
//! window on a flow whose pool's messages carry no marker either) is found in userspace, and its
//! flow goes into `FLOWS` there, so that it counts in `mining_flows` and in
//! `stratum_flows_total` once, whichever side finds it first (an insert only where no entry is).
//!
//! A flow opened here also marks its slot in `RECENT`, as the program marks it at a Stratum
//! packet: a later segment of the flow that opens with `{` and matches no marker (a pool's bare
//! reply, a padded message) is then handed over as on any flow the program found.
//!
//! Own handles (a duplicated file descriptor, as for `shapes`; `RECENT` mapped, `RecentSlots`).

use std::{net::IpAddr, os::fd::AsFd as _, time::SystemTime};

use anyhow::{Context as _, Result, bail};
use aya::maps::{HashMap, Map, MapData};

use sensor_common::{FlowKey, FlowState, IPPROTO_TCP};

use super::{Kernel, RecentSlots};

/// `BPF_NOEXIST`: insert only a key that is not there; `BPF_EXIST`: update only one that is.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// `FLOWS`, owned, `RECENT` mapped, and the clock their times are on.
pub struct FlowTable {
    flows: HashMap<MapData, FlowKey, FlowState>,
    recent: RecentSlots,
    replay: bool,
}

impl Kernel {
    /// A handle of the flow table for the agent to open flows in; `replay` when the program's
    /// times are the capture's (nanoseconds since the Unix epoch) rather than CLOCK_MONOTONIC.
    pub fn flow_table(&self, replay: bool) -> Result<FlowTable> {
        let data = match self.ebpf.map("FLOWS").context("map FLOWS")? {
            Map::LruHashMap(m) => m,
            _ => bail!("map FLOWS is not an LRU hash map"),
        };
        let data = MapData::from_fd(data.fd().as_fd().try_clone_to_owned()?)?;
        let recent = RecentSlots::of(self.ebpf.map("RECENT").context("map RECENT")?)?;
        Ok(FlowTable {
            flows: HashMap::try_from(Map::LruHashMap(data))?,
            recent,
            replay,
        })
    }
}

/// The flow key of a TCP segment from `src` to `dst`, as the program writes it (lower endpoint
/// first, an IPv4 address in the first 4 bytes).
pub fn tcp_flow_key(src: (IpAddr, u16), dst: (IpAddr, u16)) -> FlowKey {
    let bytes = |a: IpAddr| -> [u8; 16] {
        match a {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                b
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    };
    let (a, b) = ((bytes(src.0), src.1), (bytes(dst.0), dst.1));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    FlowKey {
        addr_lo: lo.0,
        addr_hi: hi.0,
        port_lo: lo.1,
        port_hi: hi.1,
        proto: IPPROTO_TCP,
        family: if src.0.is_ipv4() { 4 } else { 6 },
        _pad: [0; 2],
    }
}

impl FlowTable {
    /// The program's clock at `wall`.
    fn now(&self, wall: SystemTime) -> u64 {
        if self.replay {
            wall.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        } else {
            super::monotonic_ns()
        }
    }
}

impl crate::inspect::OpenFlows for FlowTable {
    fn touch(&mut self, key: &FlowKey, wall: SystemTime) {
        let now = self.now(wall);
        if let Ok(mut state) = self.flows.get(key, 0)
            && now > state.last_seen_ns
        {
            state.last_seen_ns = now;
            // Evicted meanwhile: not put back.
            let _ = self.flows.insert(key, state, BPF_EXIST);
        }
    }

    fn open(&mut self, key: &FlowKey, ranges: u64, dialect: u8, wall: SystemTime) -> bool {
        let now = self.now(wall);
        let state = FlowState {
            first_seen_ns: now,
            last_seen_ns: now,
            ranges,
            stratum_packets: 0,
            dialect,
            _pad: [0; 3],
        };
        // The slot first, then the flow: the program hands a segment that matches nothing over on
        // a known flow only when its slot is recent, so a flow known before its slot was marked
        // lost the pool's answer that passed in between (a share `unknown`: 1 of 1,200 in a loaded
        // CI run of the padded ethproxy replay). Marked for a flow the program found first, the
        // slot is what the program marked itself.
        self.recent
            .stratum_passed(sensor_common::recent_slot(key), now);
        // An entry already there: the program found the flow first and counted it.
        self.flows.insert(key, state, BPF_NOEXIST).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn keys_as_the_program_writes_them() {
        let (m, p) = (Ipv4Addr::new(198, 18, 22, 2), Ipv4Addr::new(198, 18, 23, 2));
        // 198.18.22.2 < 198.18.23.2 by bytes: the miner is the lower endpoint either way.
        let k = tcp_flow_key((m.into(), 40000), (p.into(), 8181));
        assert_eq!(k, tcp_flow_key((p.into(), 8181), (m.into(), 40000)));
        assert_eq!(&k.addr_lo[..5], &[198, 18, 22, 2, 0]);
        assert_eq!(
            (k.port_lo, k.port_hi, k.proto, k.family),
            (40000, 8181, 6, 4)
        );
        // Same address: the lower port first.
        let k = tcp_flow_key((m.into(), 9), (m.into(), 8));
        assert_eq!((k.port_lo, k.port_hi), (8, 9));
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let k = tcp_flow_key((a.into(), 1), (b.into(), 2));
        assert_eq!((k.family, k.addr_lo[15], k.port_lo), (6, 1, 2));
    }
}
