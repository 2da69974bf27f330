//! The shape of a TLS flow over time, as the XDP program records it for the `encrypted_stratum`
//! decision (made by the agent, `sensor/src/shape/`). Stratum over TLS hides its content, not its
//! rhythm: a submit is one small client record answered by a smaller server record, a job is one
//! server record of near-constant size arriving unasked. The program records, per tracked flow,
//! the length, direction and time of the first [`SHAPE_RECORDS`] application-data records (one
//! per TCP segment: the record whose header opens the segment) and a running sum of all of them.
//!
//! A flow is tracked from its ClientHello (which the program already reads), and only when it
//! involves a watched range, a configured pool address or a pool port: unwatched HTTPS pays no
//! lookup (see README, "Suspect flows").

/// Flows tracked at once (`TLS_SHAPES`, an LRU hash map): its memory is this many keys and
/// values, allocated when the program loads (see [`SHAPE_MAP_BYTES`]).
pub const SHAPE_FLOWS: u32 = 8192;
/// Application-data records kept per flow, in the order seen.
pub const SHAPE_RECORDS: usize = 64;
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
    /// Application-data records seen: the first [`SHAPE_RECORDS`] are in `first`.
    pub records: u32,
    /// Sum of the length fields of all records seen, client and server.
    pub bytes: [u32; 2],
    /// 1 when the client is the key's lower endpoint.
    pub client_is_lo: u8,
    pub _pad: [u8; 7],
    /// Packed records ([`pack`]).
    pub first: [u32; SHAPE_RECORDS],
}

/// Memory of one recorded flow: its key (a `FlowKey`, 40 bytes) and value.
pub const ENTRY_BYTES: u64 = 40 + core::mem::size_of::<TlsShape>() as u64;
/// Memory of `TLS_SHAPES` when full.
pub const SHAPE_MAP_BYTES: u64 = SHAPE_FLOWS as u64 * ENTRY_BYTES;

impl TlsShape {
    /// The kept records, in the order seen.
    pub fn kept(&self) -> impl Iterator<Item = Record> + '_ {
        let n = (self.records as usize).min(SHAPE_RECORDS);
        self.first[..n].iter().map(|r| unpack(*r))
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
        // 3 x 8 + 4 + 4 + 2 x 4 + 1 + 7 + 64 x 4 = 304 bytes; with the 40-byte key, 8,192 flows
        // take 2,818,048 bytes.
        assert_eq!(core::mem::size_of::<TlsShape>(), 304);
        assert_eq!(ENTRY_BYTES, 344);
        assert_eq!(SHAPE_MAP_BYTES, 2_818_048);
    }
}
