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
//!
//! - `line`: an event as its JSON line (the fields above, and the ones deep inspection reuses).
//! - `sink`: where lines go: standard output, a file rotated by size, or nowhere.

mod line;
mod sink;

pub use line::{EventLine, FlowFields, RangeDirection, line, line_at};
pub use sink::Writer;

/// A Stratum flow from 175.45.178.10:3333 (range 0) to 198.51.100.5:50000, seen just now.
#[cfg(test)]
fn event() -> sensor_common::Event {
    let mut key = sensor_common::FlowKey {
        family: 4,
        proto: 6,
        port_lo: 3333,
        port_hi: 50000,
        ..Default::default()
    };
    key.addr_lo[..4].copy_from_slice(&[175, 45, 178, 10]);
    key.addr_hi[..4].copy_from_slice(&[198, 51, 100, 5]);
    sensor_common::Event {
        ts_ns: crate::bpf::monotonic_ns(),
        key,
        src_ranges: 0b1,
        dst_ranges: 0,
        ifindex: 3,
        kind: sensor_common::EVENT_STRATUM_FLOW,
        dialect: 0,
        src_is_lo: 1,
        _pad: 0,
    }
}
