//! Userspace reading of a captured frame, for deep inspection: the same header walk as the kernel
//! program (Ethernet, up to four VLAN tags, up to eight MPLS label entries, IPv4 with options, IPv6
//! with up to six extension headers, TCP or UDP), down to the transport payload. A frame handed over by the kernel passed
//! that walk already; this one tolerates a frame cut short by the copy (`inline` samples keep
//! `SAMPLE_BYTES`), giving the payload bytes present.
//!
//! Written here rather than taken from a packet-parsing crate because it must follow the kernel's
//! rules exactly (the number of VLAN tags and extension headers it follows), so that both sides
//! agree on which flow a packet belongs to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sensor_common::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_MC, ETH_P_MPLS_UC,
    ETH_P_QINQ_LEGACY, IPPROTO_TCP, IPPROTO_UDP, IPV6_AUTH, IPV6_DSTOPTS, IPV6_FRAGMENT,
    IPV6_HOPOPTS, IPV6_ROUTING, MAX_IPV6_EXT, MAX_MPLS_LABELS, MAX_VLAN_TAGS, mpls_bottom,
    mpls_ip_version,
};

/// The transport view of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// The transport payload present in the frame (possibly cut short by the capture).
    pub payload: &'a [u8],
    /// TCP: the segment's sequence number (0 for UDP).
    pub seq: u32,
    /// Whether `payload` is the whole payload the IP header announces (not cut by a snap length or
    /// a sample's size).
    pub whole: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The EtherType after `frame`'s VLAN tags (up to `MAX_VLAN_TAGS`) and where it begins.
fn vlan_tags(frame: &[u8]) -> Option<(u16, usize)> {
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY) {
            break;
        }
        ethertype = be16(frame, l3 + 2)?;
        l3 += 4;
    }
    Some((ethertype, l3))
}

/// Walks `frame` to its TCP or UDP payload; `None` for anything else (not IP, a fragment, an
/// unknown extension chain, headers cut short).
pub fn transport(frame: &[u8]) -> Option<Transport<'_>> {
    let (mut ethertype, mut l3) = vlan_tags(frame)?;
    if matches!(ethertype, ETH_P_MPLS_UC | ETH_P_MPLS_MC) {
        let mut bottom = false;
        for _ in 0..MAX_MPLS_LABELS {
            let entry = frame.get(l3..l3 + 4)?.try_into().ok()?;
            l3 += 4;
            if mpls_bottom(entry) {
                bottom = true;
                break;
            }
        }
        if !bottom {
            return None;
        }
        ethertype = match mpls_ip_version(*frame.get(l3)?) {
            4 => ETH_P_IPV4,
            6 => ETH_P_IPV6,
            _ => return None,
        };
    }
    let (src, dst, proto, l4, end) = match ethertype {
        ETH_P_IPV4 => {
            let h = frame.get(l3..l3 + 20)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            if h[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
                return None;
            }
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            if total < ihl {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            (src, dst, h[9], l3 + ihl, l3 + total)
        }
        ETH_P_IPV6 => {
            let h = frame.get(l3..l3 + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&h[8..24]);
            let src = IpAddr::V6(Ipv6Addr::from(addr));
            addr.copy_from_slice(&h[24..40]);
            let dst = IpAddr::V6(Ipv6Addr::from(addr));
            let mut next = h[6];
            let mut off = l3 + 40;
            let mut l4 = None;
            for _ in 0..MAX_IPV6_EXT {
                match next {
                    IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                        next = *frame.get(off)?;
                        off += (*frame.get(off + 1)? as usize + 1) * 8;
                    }
                    IPV6_AUTH => {
                        next = *frame.get(off)?;
                        off += (*frame.get(off + 1)? as usize + 2) * 4;
                    }
                    IPV6_FRAGMENT => {
                        let e = frame.get(off..off + 8)?;
                        if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                            return None;
                        }
                        next = e[0];
                        off += 8;
                    }
                    _ => {
                        l4 = Some(off);
                        break;
                    }
                }
            }
            (src, dst, next, l4?, l3 + 40 + payload)
        }
        _ => return None,
    };
    if l4 > end {
        return None;
    }
    let (sport, dport, payload, seq) = match proto {
        IPPROTO_TCP => {
            let doff = ((*frame.get(l4 + 12)? >> 4) as usize) * 4;
            if doff < 20 || l4 + doff > end {
                return None;
            }
            let seq = u32::from_be_bytes(frame.get(l4 + 4..l4 + 8)?.try_into().ok()?);
            (be16(frame, l4)?, be16(frame, l4 + 2)?, l4 + doff, seq)
        }
        IPPROTO_UDP => {
            if l4 + 8 > end {
                return None;
            }
            (be16(frame, l4)?, be16(frame, l4 + 2)?, l4 + 8, 0)
        }
        _ => return None,
    };
    let present = end.min(frame.len());
    Some(Transport {
        src,
        dst,
        proto,
        sport,
        dport,
        payload: frame.get(payload..present).unwrap_or(&[]),
        seq,
        whole: present == end,
    })
}

/// The tunnel `frame` is in, when it is one `decapsulate` reads (`sensor_common::tunnel`): its
/// outer header walked as the kernel's tunnel walk does (Ethernet, VLAN tags, IPv4 or IPv6
/// without extension headers), to GRE carrying ERSPAN or Ethernet, or UDP to VXLAN's port.
/// Replay names such frames when `decapsulate` does not (`replay`'s problems).
pub fn tunnel_of(frame: &[u8]) -> Option<crate::config::Tunnel> {
    use sensor_common::tunnel::{ETH_P_ERSPAN, ETH_P_ERSPAN3, ETH_P_TEB, IPPROTO_GRE, VXLAN_PORT};
    let (ethertype, l3) = vlan_tags(frame)?;
    let (proto, l4) = match ethertype {
        ETH_P_IPV4 => {
            let h = frame.get(l3..l3 + 20)?;
            (h[9], l3 + ((h[0] & 0x0f) as usize) * 4)
        }
        ETH_P_IPV6 => (*frame.get(l3 + 6)?, l3 + 40),
        _ => return None,
    };
    match proto {
        IPPROTO_GRE => matches!(
            be16(frame, l4 + 2)?,
            ETH_P_ERSPAN | ETH_P_ERSPAN3 | ETH_P_TEB
        )
        .then_some(crate::config::Tunnel::Erspan),
        IPPROTO_UDP => (be16(frame, l4 + 2)? == VXLAN_PORT).then_some(crate::config::Tunnel::Vxlan),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::Packet;

    /// A JSON line from 198.18.0.1:40000 to 198.18.0.2:3333.
    fn login_segment() -> Packet {
        Packet::tcp4(
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
            40000,
            3333,
            b"{\"id\":1}\n",
        )
    }

    /// `abc` from [2001:db8::1]:5353 to [2001:db8::2]:53.
    fn dns_datagram() -> Packet {
        Packet::udp6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            5353,
            53,
            b"abc",
        )
    }

    #[test]
    fn reaches_the_payload_through_vlan_tags_and_ipv6() {
        let v4 = login_segment()
            .vlan(0x88a8, 10)
            .vlan(0x8100, 20)
            .vlan(0x8100, 30)
            .ipv4_options(2)
            .build();
        let t = transport(&v4).expect("parsed");
        assert_eq!(t.src, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((t.proto, t.sport, t.dport), (6, 40000, 3333));
        assert_eq!(t.payload, b"{\"id\":1}\n");

        let v6 = dns_datagram().ipv6_ext(60, 8).build();
        let t = transport(&v6).expect("parsed");
        assert_eq!((t.proto, t.dport, t.payload), (17, 53, &b"abc"[..]));
    }

    #[test]
    fn mpls_label_stacks_are_stepped_over_as_the_kernel_does() {
        let p = login_segment();
        let f = p.clone().vlan(0x8100, 5).mpls(16).mpls(7).build();
        let t = transport(&f).expect("parsed");
        assert_eq!(
            (t.sport, t.dport, t.payload),
            (40000, 3333, &b"{\"id\":1}\n"[..])
        );
        let mut eight = dns_datagram();
        for label in 0..8 {
            eight = eight.mpls(100 + label);
        }
        let f = eight.clone().build();
        let t = transport(&f).expect("parsed");
        assert_eq!((t.proto, t.dport, t.payload), (17, 53, &b"abc"[..]));
        // A ninth label is more than the kernel follows: not read here either.
        assert!(transport(&eight.mpls(108).build()).is_none());
        // A pseudowire's control word after the stack: not IP.
        let plain = p.build();
        let mut pw = plain[..12].to_vec();
        pw.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0]);
        pw.extend_from_slice(&plain);
        assert!(transport(&pw).is_none());
    }

    #[test]
    fn a_frame_cut_short_gives_the_payload_present_and_garbage_gives_none() {
        let f = Packet::tcp4(
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
            1,
            2,
            &[b'x'; 100],
        )
        .build();
        let cut = &f[..f.len() - 40];
        assert_eq!(transport(cut).expect("parsed").payload.len(), 60);
        // Cut inside the headers: nothing, or (once the ports and data offset are in) no payload.
        for n in 0..54 {
            assert!(
                transport(&f[..n]).is_none_or(|t| t.payload.is_empty()),
                "{n} bytes"
            );
        }
        assert!(transport(&f[..46]).is_none());
        assert!(transport(&[0xff; 64]).is_none());
    }

    #[test]
    fn tunnels_replay_names_when_decapsulate_does_not() {
        use test_support::mirror::{ERSPAN2, GRE, UDP, erspan2, mirrored, vxlan};

        use crate::config::Tunnel;
        let inner = test_support::Packet::tcp4(
            "198.18.1.20".parse().unwrap(),
            "198.51.100.50".parse().unwrap(),
            45000,
            3333,
            b"{}\n",
        )
        .build();
        assert_eq!(tunnel_of(&erspan2(&inner)), Some(Tunnel::Erspan));
        assert_eq!(
            tunnel_of(&mirrored(true, GRE, &ERSPAN2, &inner)),
            Some(Tunnel::Erspan)
        );
        assert_eq!(
            tunnel_of(&mirrored(false, UDP, &vxlan(4789), &inner)),
            Some(Tunnel::Vxlan)
        );
        // VXLAN-GPE's port, IP in GRE, and the inner frame itself: none.
        assert_eq!(tunnel_of(&mirrored(false, UDP, &vxlan(4790), &inner)), None);
        assert_eq!(
            tunnel_of(&mirrored(false, GRE, &[0, 0, 0x08, 0x00], &inner[14..])),
            None
        );
        assert_eq!(tunnel_of(&inner), None);
    }
}
