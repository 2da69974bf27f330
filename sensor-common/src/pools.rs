//! Pool endpoints: the addresses and ports that lately took a miner's whole login. A new flow's
//! login needs evidence beyond its method before it counts (`pass`, and an `agent` or a
//! wallet-long string: `stratum::RULES`), which keeps a web API's `login` method silent, and
//! reading that far is most of what a new flow's first message costs. A login that met its rule
//! teaches the XDP program its destination (`POOL_ENDPOINTS`, a direct-mapped table of
//! [`SLOTS`] entries); for [`TTL_NS`] after, a new flow's login to that endpoint is decided at its
//! method, as on a flow already counted (`stratum::Prior::PoolLogin`). Many connections to one
//! pool or proxy, the case the sensor exists for, then pay the evidence once an hour each.
//!
//! Only a login that met its rule on a new flow teaches: one decided at its method by this table
//! does not keep its endpoint known, so an endpoint is known at most [`TTL_NS`] after the last
//! login with its evidence. Two endpoints of one slot replace each other (the later login's
//! stays); the entry is compared whole (address, port, family), so a slot never makes another
//! endpoint known. CPUs writing one slot at once may leave a mix of two pool endpoints' fields in
//! it, which is known then: an endpoint that is neither of them, both of them pools.

use crate::{FlowKey, mix};

/// Entries of the table: 128 KiB.
pub const SLOTS: usize = 1 << 12;

/// How long an endpoint stays known after the last login with its evidence: an hour.
pub const TTL_NS: u64 = 3600 * 1_000_000_000;

/// One entry: an endpoint and when a login with its evidence last went to it (0: empty).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolEndpoint {
    pub endpoint: Endpoint,
    pub seen_ns: u64,
}

/// An address and port, as a flow key holds them (IPv4 in the address's first 4 bytes, the
/// port in host byte order), the address as two native-endian words: compared and hashed a
/// word at a time (as `[u8; 16]` the XDP program read it a byte at a time).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: [u64; 2],
    pub port: u16,
    pub family: u8,
    pub _pad: [u8; 5],
}

const _: () = assert!(core::mem::size_of::<PoolEndpoint>() == 32);

/// The destination endpoint of a packet of flow `key`, `dst_is_lo` telling which of the key's
/// endpoints that is.
#[inline(always)]
pub fn destination(key: &FlowKey, dst_is_lo: bool) -> Endpoint {
    let words = key.words();
    let (addr, port) = if dst_is_lo {
        ([words[0], words[1]], key.port_lo)
    } else {
        ([words[2], words[3]], key.port_hi)
    };
    Endpoint {
        addr,
        port,
        family: key.family,
        _pad: [0; 5],
    }
}

/// An endpoint's slot: [`mix`] over its address's two words and its port and family.
#[inline(always)]
pub fn slot(e: &Endpoint) -> u32 {
    let h = mix(
        mix(mix(0, e.addr[0]), e.addr[1]),
        e.port as u64 | (e.family as u64) << 16,
    );
    (h >> 32) as u32 & (SLOTS as u32 - 1)
}

/// Whether `entry` holds the endpoint `e`, seen within [`TTL_NS`] of `now` (read only when the
/// endpoint is the entry's: the clock is not read for the many payloads whose slot holds another
/// endpoint or none).
#[inline(always)]
pub fn holds(entry: &PoolEndpoint, e: &Endpoint, now: impl FnOnce() -> u64) -> bool {
    let have = &entry.endpoint;
    entry.seen_ns != 0
        && have.port == e.port
        && have.family == e.family
        && have.addr[0] == e.addr[0]
        && have.addr[1] == e.addr[1]
        && now().saturating_sub(entry.seen_ns) <= TTL_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lo: [u8; 4], port_lo: u16, hi: [u8; 4], port_hi: u16) -> FlowKey {
        let mut k = FlowKey {
            addr_lo: [0; 16],
            addr_hi: [0; 16],
            port_lo,
            port_hi,
            proto: 6,
            family: 4,
            _pad: [0; 2],
        };
        k.addr_lo[..4].copy_from_slice(&lo);
        k.addr_hi[..4].copy_from_slice(&hi);
        k
    }

    #[test]
    fn an_endpoint_is_held_whole_and_for_an_hour() {
        // A miner at 198.51.100.7:40000 (the key's lower endpoint) logs in to 203.0.113.20:3333.
        let k = key([198, 51, 100, 7], 40000, [203, 0, 113, 20], 3333);
        let e = destination(&k, false);
        let addr = |a: [u8; 4]| [u32::from_ne_bytes(a) as u64, 0];
        assert_eq!(
            (e.addr, e.port, e.family),
            (addr([203, 0, 113, 20]), 3333, 4)
        );
        let seen = 1_000_000_000;
        let entry = PoolEndpoint {
            endpoint: e,
            seen_ns: seen,
        };
        assert!(holds(&entry, &e, || seen));
        // An hour later still (3,600 s), not a nanosecond after.
        assert!(holds(&entry, &e, || seen + 3_600_000_000_000));
        assert!(!holds(&entry, &e, || seen + 3_600_000_000_001));
        // Another port, address or family of the same slot's entry is not held; nor is an empty
        // entry, whatever it compares equal to.
        assert!(!holds(&entry, &Endpoint { port: 3334, ..e }, || seen));
        let other = Endpoint {
            addr: addr([203, 0, 113, 21]),
            ..e
        };
        assert!(!holds(&entry, &other, || seen));
        assert!(!holds(&entry, &Endpoint { family: 6, ..e }, || seen));
        assert!(!holds(&PoolEndpoint::default(), &Endpoint::default(), || 5));
        // The miner's side of the key is the destination of the pool's packets.
        let e = destination(&k, true);
        assert_eq!((e.addr, e.port), (addr([198, 51, 100, 7]), 40000));
    }

    #[test]
    fn slots_spread_the_ports_of_one_address() {
        // 4,096 slots; the ports 3333..3333+64 of one pool address: 64 endpoints. With a good
        // mix, few of them share a slot (a birthday bound: about 64 * 63 / 2 / 4096 = 0.5 pairs
        // expected); a mix that dropped the port would put all 64 in one.
        let k = key([198, 51, 100, 7], 40000, [203, 0, 113, 20], 3333);
        let e = destination(&k, false);
        let mut slots: Vec<u32> = (0..64)
            .map(|p| {
                slot(&Endpoint {
                    port: 3333 + p,
                    ..e
                })
            })
            .collect();
        slots.sort();
        slots.dedup();
        assert!(slots.len() >= 60, "{} distinct slots", slots.len());
        assert!(slots.iter().all(|&s| (s as usize) < SLOTS));
    }
}
