//! The shape of a TLS flow over time, as the XDP program records it for the `encrypted_stratum`
//! decision (made by the agent, `sensor/src/shape/`). Stratum over TLS hides its content, not its
//! rhythm: a submit is one small client record answered by a smaller server record, a job is one
//! server record of near-constant size arriving unasked. The program records, per tracked flow,
//! the length, direction and time of the first [`SHAPE_RECORDS`] application-data records after
//! the opening ([`OPENING_MS`]; one per TCP segment: the record whose header opens the segment)
//! and a running sum of all of them.
//!
//! A flow is tracked from its ClientHello (which the program already reads), and only when it
//! involves a watched range, a configured pool address or a pool port: unwatched HTTPS pays no
//! lookup (see README, "Suspect flows").

/// Flows tracked at once (`TLS_SHAPES`, an LRU hash map): its memory is this many keys and
/// values, allocated when the program loads (see [`SHAPE_MAP_BYTES`]).
pub const SHAPE_FLOWS: u32 = 8192;
/// Application-data records kept per flow, in the order seen.
pub const SHAPE_RECORDS: usize = 64;
/// Records within this time of the ClientHello are the opening, summed but not kept: the rest of
/// the handshake (TLS 1.3 sends its certificate, Finished messages and session tickets as
/// application data), the login and the login reply, whose job makes it job-sized or larger. Two
/// to three round trips; 5 s covers a 1-second round trip with room. The kept records are then
/// all of the session's rhythm.
pub const OPENING_MS: u32 = 5_000;
/// [`OPENING_MS`] in ticks.
pub const OPENING_TICKS: u64 = OPENING_MS as u64 * 1_000_000 / TICK_NS;
/// A flow is recorded for at most this long after its ClientHello: the agent judges every flow by
/// then (see `sensor/src/shape/`), and a segment of a flow whose slot saw no ClientHello for
/// longer costs no lookup.
pub const RECORD_MS: u64 = 600_000;
/// Slots of `SHAPE_RECENT`, the program's filter in front of `TLS_SHAPES`: the time of the latest
/// ClientHello recorded on a flow hashed to each ([`shape_slot`]). An application-data segment
/// whose slot is older than [`RECORD_MS`] (most, once the flows of its slot are judged) is not
/// looked up: watched TLS traffic pays a hash and an array read, not a key build and a hash-table
/// lookup.
pub const SHAPE_SLOTS: usize = 1 << 16;

/// A flow's slot in `SHAPE_RECENT`, the same in both directions: its two addresses and two ports
/// each folded by XOR (symmetric), then mixed ([`crate::mix`]).
#[inline(always)]
pub fn shape_slot(a: &[u8; 16], b: &[u8; 16], pa: u16, pb: u16) -> u32 {
    let w = |x: &[u8; 16]| {
        let (hi, lo) = x.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let lo = lo.first_chunk::<8>().unwrap_or(&[0; 8]);
        (u64::from_ne_bytes(*hi), u64::from_ne_bytes(*lo))
    };
    let ((a0, a1), (b0, b1)) = (w(a), w(b));
    let h = crate::mix(
        crate::mix(crate::mix(0, a0 ^ b0), a1 ^ b1),
        (pa ^ pb) as u64,
    );
    (h >> 32) as u32 & (SHAPE_SLOTS as u32 - 1)
}
/// The unit of a record's time: 10 ms from the ClientHello, in 16 bits, so records up to
/// [`MAX_TICKS`] x 10 ms (655 s) after it are kept; later ones only count in the sums.
pub const TICK_NS: u64 = 10_000_000;
pub const MAX_TICKS: u64 = u16::MAX as u64;
/// A record's length field is at most 2^14 + 256 (RFC 8446, 5.2); kept in 15 bits.
pub const LEN_MASK: u32 = 0x7fff;
/// The direction bit of a packed record: set for the server's records.
pub const SERVER_BIT: u32 = 0x8000;

/// Direction index of [`TlsShape::bytes`]: the side that sent the ClientHello.
pub const CLIENT: usize = 0;
/// ... and the side that answered it.
pub const SERVER: usize = 1;

/// A TLS application-data record header (`17 03 0x`, x from 1 to 3: TLS 1.0 to 1.3, whose records
/// all say 1.2) in a segment's first three bytes.
#[inline(always)]
pub const fn app_data(b0: u8, b1: u8, b2: u8) -> bool {
    b0 == 23 && b1 == 3 && b2 >= 1 && b2 <= 3
}

/// One record, packed as the program keeps it: ticks since the ClientHello in the high 16 bits,
/// [`SERVER_BIT`], and the record's length field.
#[inline(always)]
pub const fn pack(ticks: u64, server: bool, len: u32) -> u32 {
    let t = if ticks > MAX_TICKS { MAX_TICKS } else { ticks };
    ((t as u32) << 16) | if server { SERVER_BIT } else { 0 } | (len & LEN_MASK)
}

/// A kept record, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Milliseconds since the ClientHello (in steps of 10).
    pub ms: u32,
    pub server: bool,
    /// The record's length field: its payload, the TLS overhead included, without the 5-byte
    /// header.
    pub len: u32,
}

#[inline(always)]
pub const fn unpack(r: u32) -> Record {
    Record {
        ms: (r >> 16) * (TICK_NS / 1_000_000) as u32,
        server: r & SERVER_BIT != 0,
        len: r & LEN_MASK,
    }
}

/// Value of `TLS_SHAPES`, keyed by the flow (`FlowKey`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsShape {
    /// The ClientHello's time (the program's clock: monotonic live, capture time in replay).
    pub first_ns: u64,
    /// Ranges of the ClientHello's source (the client) and destination, as bit sets: what the
    /// flow counts under, as the other suspect reasons count their packet's.
    pub src_ranges: u64,
    pub dst_ranges: u64,
    pub ifindex: u32,
    /// Application-data records seen, the opening's included.
    pub records: u32,
    /// Sum of the length fields of all records seen, client and server.
    pub bytes: [u32; 2],
    /// 1 when the client is the key's lower endpoint.
    pub client_is_lo: u8,
    /// Records after the opening kept in `first` (at most [`SHAPE_RECORDS`]).
    pub kept: u8,
    pub _pad: [u8; 2],
    /// Ticks from the ClientHello to the latest record, kept or not: how long the flow has lived
    /// once its kept records are full.
    pub last_tick: u32,
    /// Packed records ([`pack`]), the first `kept` after the opening.
    pub first: [u32; SHAPE_RECORDS],
}

/// Memory of one recorded flow: its key (a `FlowKey`, 40 bytes) and value.
pub const ENTRY_BYTES: u64 = 40 + core::mem::size_of::<TlsShape>() as u64;
/// Memory of `TLS_SHAPES` when full.
pub const SHAPE_MAP_BYTES: u64 = SHAPE_FLOWS as u64 * ENTRY_BYTES;

impl TlsShape {
    /// The kept records, in the order seen.
    pub fn kept(&self) -> impl Iterator<Item = Record> + '_ {
        let n = (self.kept as usize).min(SHAPE_RECORDS);
        self.first[..n].iter().map(|r| unpack(*r))
    }

    /// Milliseconds from the ClientHello to the latest record.
    pub fn last_ms(&self) -> u64 {
        self.last_tick as u64 * (TICK_NS / 1_000_000)
    }

    /// Whether no more records are kept.
    pub fn full(&self) -> bool {
        self.kept as usize >= SHAPE_RECORDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pack_and_unpack() {
        // 12.34 s after the ClientHello is 1,234 ticks; a 250-byte server record.
        let r = pack(1_234, true, 250);
        assert_eq!(r, (1_234 << 16) | 0x8000 | 250);
        assert_eq!(
            unpack(r),
            Record {
                ms: 12_340,
                server: true,
                len: 250
            }
        );
        // Past 655.35 s the time stays at the last tick; the largest legal length, 2^14 + 256 =
        // 16,640, fits the 15 bits.
        assert_eq!(unpack(pack(70_000, false, 16_640)).ms, 655_350);
        assert_eq!(unpack(pack(70_000, false, 16_640)).len, 16_640);
        // 5 s of 10 ms ticks.
        assert_eq!(OPENING_TICKS, 500);
    }

    #[test]
    fn a_flow_has_one_slot_both_ways() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert_eq!(
            shape_slot(&a, &b, 40000, 443),
            shape_slot(&b, &a, 443, 40000)
        );
        assert!(shape_slot(&a, &b, 40000, 443) < SHAPE_SLOTS as u32);
        // Another port, another slot (for these inputs).
        assert_ne!(
            shape_slot(&a, &b, 40000, 443),
            shape_slot(&a, &b, 40001, 443)
        );
    }

    #[test]
    fn app_data_headers() {
        assert!(app_data(0x17, 3, 3));
        assert!(app_data(0x17, 3, 1));
        assert!(!app_data(0x17, 3, 4));
        assert!(!app_data(0x16, 3, 3));
        assert!(!app_data(0x17, 2, 3));
    }

    #[test]
    fn layout() {
        // 3 x 8 + 4 + 4 + 2 x 4 + 1 + 1 + 2 + 4 + 64 x 4 = 304 bytes; with the 40-byte key, 8,192 flows
        // take 2,818,048 bytes.
        assert_eq!(core::mem::size_of::<TlsShape>(), 304);
        assert_eq!(ENTRY_BYTES, 344);
        assert_eq!(SHAPE_MAP_BYTES, 2_818_048);
    }
}
