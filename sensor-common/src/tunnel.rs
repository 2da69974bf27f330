//! The tunnels a remote mirror session delivers its frames in (`decapsulate`): ERSPAN (types I, II
//! and III, inside GRE), Ethernet inside GRE (transparent Ethernet bridging) and VXLAN. A mirrored
//! frame arrives as an outer Ethernet, IP and GRE or UDP header from the switch that copies it,
//! then the frame as it was on the mirrored port; with `decapsulate` set, the XDP program moves the
//! frame's start to that inner frame before it reads anything, and back before it passes it on,
//! so that what it counts and hands to deep inspection is the mirrored traffic, not the mirror's
//! transport. The header layouts, one place for the XDP program and the agent's tests:
//! - GRE (RFC 2784, RFC 2890): 2 bytes of flags and version, 2 of protocol type, then 4 bytes for
//!   each of the checksum (C), key (K) and sequence number (S) present; version 0 and no routing
//!   (R) only.
//! - ERSPAN type I: GRE protocol 0x88be without a sequence number, no header of its own (the
//!   Ethernet frame follows GRE). Type II: 0x88be with a sequence number, an 8-byte header. Type
//!   III: 0x22eb, a 12-byte header, and 8 bytes more (a platform-specific subheader) when its O
//!   flag, the lowest bit of its twelfth byte, is set (draft-foschiano-erspan-03; Linux
//!   `include/net/erspan.h`).
//! - GRE protocol 0x6558, transparent Ethernet bridging: the Ethernet frame follows GRE.
//! - VXLAN (RFC 7348): UDP to port 4789, an 8-byte header whose first byte has the I flag (0x08),
//!   then the Ethernet frame.

/// `decapsulate`'s bits, as the agent sets the XDP program's `DECAP`: ERSPAN and Ethernet in GRE.
pub const DECAP_GRE: u32 = 1;
/// VXLAN to UDP port [`VXLAN_PORT`].
pub const DECAP_VXLAN: u32 = 2;

/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// VXLAN's UDP destination port (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Bytes of the VXLAN header.
pub const VXLAN_HEADER: usize = 8;
/// VXLAN's I flag (a valid network identifier), in its first byte.
pub const VXLAN_I: u8 = 0x08;

/// GRE protocol types whose payload is a mirrored Ethernet frame (after an ERSPAN header).
pub const ETH_P_ERSPAN: u16 = 0x88be;
pub const ETH_P_ERSPAN3: u16 = 0x22eb;
pub const ETH_P_TEB: u16 = 0x6558;

/// Bytes of an ERSPAN type II header, and of a type III one without its platform subheader.
pub const ERSPAN2_HEADER: usize = 8;
pub const ERSPAN3_HEADER: usize = 12;
/// Bytes of ERSPAN type III's platform-specific subheader, present when the O flag is set.
pub const ERSPAN3_PLATFORM: usize = 8;

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

/// The length of a GRE header from its first two bytes (flags and version, big endian), and
/// whether it carries a sequence number; `None` for a version other than 0 or a routing header
/// (RFC 1701's, which no mirror sends).
pub const fn gre(flags: u16) -> Option<(usize, bool)> {
    if flags & (GRE_R | GRE_VERSION) != 0 {
        return None;
    }
    let words = 1
        + (flags & GRE_C != 0) as usize
        + (flags & GRE_K != 0) as usize
        + (flags & GRE_S != 0) as usize;
    Some((4 * words, flags & GRE_S != 0))
}

/// Bytes between a GRE header of protocol `proto` and the mirrored Ethernet frame, when `proto`
/// carries one: ERSPAN type I (no sequence number) 0, type II 8, type III 12 (to which the
/// caller adds [`ERSPAN3_PLATFORM`] when the header's O flag is set: [`erspan3_platform`]),
/// Ethernet in GRE 0. `None` for any other protocol (IP in GRE, which has no Ethernet frame, is
/// read as the outer packet).
pub const fn erspan(proto: u16, has_seq: bool) -> Option<usize> {
    match proto {
        ETH_P_ERSPAN if has_seq => Some(ERSPAN2_HEADER),
        ETH_P_ERSPAN | ETH_P_TEB => Some(0),
        ETH_P_ERSPAN3 => Some(ERSPAN3_HEADER),
        _ => None,
    }
}

/// Whether an ERSPAN type III header whose twelfth byte is `b` is followed by its platform
/// subheader (the O flag, the byte's lowest bit).
pub const fn erspan3_platform(b: u8) -> bool {
    b & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_headers_by_their_flags() {
        // No option: 4 bytes. ERSPAN II's usual GRE (sequence number only, 0x1000): 8. Checksum,
        // key and sequence (0xb000): 16. Key only (0x2000): 8.
        assert_eq!(gre(0x0000), Some((4, false)));
        assert_eq!(gre(0x1000), Some((8, true)));
        assert_eq!(gre(0xb000), Some((16, true)));
        assert_eq!(gre(0x2000), Some((8, false)));
        // Version 1 (PPTP's enhanced GRE) and a routing header are not read.
        assert_eq!(gre(0x3001), None);
        assert_eq!(gre(0x4000), None);
    }

    #[test]
    fn erspan_headers_by_type() {
        assert_eq!(erspan(0x88be, false), Some(0)); // type I
        assert_eq!(erspan(0x88be, true), Some(8)); // type II
        assert_eq!(erspan(0x22eb, true), Some(12)); // type III
        assert_eq!(erspan(0x6558, false), Some(0)); // Ethernet in GRE
        assert_eq!(erspan(0x0800, false), None); // IPv4 in GRE: no Ethernet frame
        // Type III's twelfth byte: hardware id, direction, granularity, then O in bit 0.
        assert!(erspan3_platform(0b0000_0001));
        assert!(!erspan3_platform(0b1111_1110));
    }
}
