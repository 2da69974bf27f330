//! Frames as a remote mirror session delivers them: an outer Ethernet and IP header from the
//! switch that copies a frame to the sensor, a tunnel's headers, then the frame. The switch and
//! the sensor are 198.51.100.200 and .201 (2001:db8:ff::1 and ::2 over IPv6), so that no test
//! range holds them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol numbers of the tunnels.
pub const GRE: u8 = 47;
pub const UDP: u8 = 17;

/// GRE with a sequence number (flags 0x1000, sequence 7), then an ERSPAN type II header
/// (version 1, VLAN 0, session 1, index 0).
pub const ERSPAN2: [u8; 16] = [
    0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7, //
    0x10, 0x00, 0x00, 0x01, 0, 0, 0, 0,
];

/// A UDP header to `dport` from port 49153 and a VXLAN header (I flag, network 42); the UDP
/// length and checksum are left 0 (the sensor reads neither).
pub fn vxlan(dport: u16) -> Vec<u8> {
    [
        &[0xc0, 0x01][..],
        &dport.to_be_bytes(),
        &[0, 0, 0, 0],
        &[0x08, 0, 0, 0, 0, 0, 0x2a, 0],
    ]
    .concat()
}

/// `inner` in an outer IPv4 (or IPv6, `v6`) packet of protocol `proto` whose payload begins with
/// `tunnel`.
pub fn mirrored(v6: bool, proto: u8, tunnel: &[u8], inner: &[u8]) -> Vec<u8> {
    let body = [tunnel, inner].concat();
    let mut f = vec![0x02, 0, 0, 0, 0, 0x20, 0x02, 0, 0, 0, 0, 0x21];
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&"2001:db8:ff::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"2001:db8:ff::2".parse::<Ipv6Addr>().unwrap().octets());
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&Ipv4Addr::new(198, 51, 100, 200).octets());
        f.extend_from_slice(&Ipv4Addr::new(198, 51, 100, 201).octets());
    }
    f.extend_from_slice(&body);
    f
}

/// `inner` in ERSPAN type II over IPv4.
pub fn erspan2(inner: &[u8]) -> Vec<u8> {
    mirrored(false, GRE, &ERSPAN2, inner)
}
