//! Test support for mining-sensor, kept out of the product (a dev-dependency only): builds
//! Ethernet frames for tests, benchmarks and synthetic captures:
//! `Packet::tcp4(src, dst, sport, dport, payload).vlan(0x8100, 7).build()`.
//! Checksums are real, so the frames are valid on the wire and in capture tools too. `tools` names
//! the real programs the tests run (fetched by `cargo xtask setup`) and where they are found.
//! `sv2` (feature `sv2`, on for the sensor's tests) is a Stratum V2 device and pool built on the
//! reference implementation's protocol crates. `sign_test` is the benchmarks' comparison's
//! verdict. `shares` holds two real Stratum V1 shares (sha256d and scrypt) with their jobs.

use std::net::{Ipv4Addr, Ipv6Addr};

pub mod crafted;
pub mod mirror;
pub mod shares;
pub mod sign_test;
#[cfg(feature = "sv2")]
pub mod sv2;
pub mod tools;

#[derive(Clone, Debug)]
enum Net {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        /// Option bytes (multiple of 4, at most 40).
        options: Vec<u8>,
        frag_offset: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        /// Extension headers in order: (header type, total length in bytes, multiple of 8).
        ext: Vec<(u8, usize)>,
    },
}

#[derive(Clone, Debug)]
enum Transport {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Raw {
        proto: u8,
    },
}

#[derive(Clone, Debug)]
pub struct Packet {
    /// Source and destination Ethernet addresses.
    macs: ([u8; 6], [u8; 6]),
    vlans: Vec<(u16, u16)>,
    /// MPLS label entries after the VLAN tags, outermost first; the last gets the
    /// bottom-of-stack bit.
    labels: Vec<u32>,
    net: Net,
    transport: Transport,
    payload: Vec<u8>,
}

/// The Ethernet addresses of a frame unless `Packet::macs` says otherwise.
pub const DEFAULT_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub const TCP_PSH_ACK: u8 = 0x18;
pub const TCP_SYN: u8 = 0x02;

impl Packet {
    pub fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::new(
            Net::V4 {
                src,
                dst,
                options: Vec::new(),
                frag_offset: 0,
            },
            Transport::Tcp {
                sport,
                dport,
                flags: TCP_PSH_ACK,
                seq: 1,
            },
            payload,
        )
    }

    pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::new(
            Net::V4 {
                src,
                dst,
                options: Vec::new(),
                frag_offset: 0,
            },
            Transport::Udp { sport, dport },
            payload,
        )
    }

    pub fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::new(
            Net::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            Transport::Tcp {
                sport,
                dport,
                flags: TCP_PSH_ACK,
                seq: 1,
            },
            payload,
        )
    }

    pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::new(
            Net::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            Transport::Udp { sport, dport },
            payload,
        )
    }

    fn new(net: Net, transport: Transport, payload: &[u8]) -> Self {
        Self {
            macs: (DEFAULT_SRC_MAC, DEFAULT_DST_MAC),
            vlans: Vec::new(),
            labels: Vec::new(),
            net,
            transport,
            payload: payload.to_vec(),
        }
    }

    /// Sets the frame's source and destination Ethernet addresses (by default
    /// `DEFAULT_SRC_MAC` and `DEFAULT_DST_MAC`).
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.macs = (src, dst);
        self
    }

    /// Adds a VLAN tag outside the ones already added (call order: outermost first).
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid));
        self
    }

    /// Adds an MPLS label entry (20-bit `label`, TTL 64) inside the ones already added (call order:
    /// outermost first); the frame's EtherType becomes 0x8847 and the last entry marks the
    /// bottom of the stack.
    pub fn mpls(mut self, label: u32) -> Self {
        self.labels.push(label & 0xf_ffff);
        self
    }

    /// IPv4 options: `words` 32-bit words of NOPs ending in End-of-list (IHL = 5 + words).
    pub fn ipv4_options(mut self, words: usize) -> Self {
        if let Net::V4 { options, .. } = &mut self.net {
            *options = vec![1; words * 4];
            if let Some(last) = options.last_mut() {
                *last = 0;
            }
        }
        self
    }

    /// Marks an IPv4 packet as a fragment at `offset` (in 8-byte units), or adds an IPv6 fragment
    /// header with that offset.
    pub fn fragment(mut self, offset: u16) -> Self {
        match &mut self.net {
            Net::V4 { frag_offset, .. } => *frag_offset = offset,
            Net::V6 { ext, .. } => ext.push((44, offset as usize)),
        }
        self
    }

    /// Adds an IPv6 extension header (0 hop-by-hop, 43 routing, 60 destination options) of `len`
    /// bytes (a multiple of 8).
    pub fn ipv6_ext(mut self, kind: u8, len: usize) -> Self {
        if let Net::V6 { ext, .. } = &mut self.net {
            ext.push((kind, len));
        }
        self
    }

    pub fn tcp_flags(mut self, f: u8) -> Self {
        if let Transport::Tcp { flags, .. } = &mut self.transport {
            *flags = f;
        }
        self
    }

    pub fn tcp_seq(mut self, s: u32) -> Self {
        if let Transport::Tcp { seq, .. } = &mut self.transport {
            *seq = s;
        }
        self
    }

    /// Replaces the transport protocol with an opaque one (e.g. 47, GRE) carrying the payload.
    pub fn raw_proto(mut self, proto: u8) -> Self {
        self.transport = Transport::Raw { proto };
        self
    }

    fn transport_bytes(&self, pseudo: &[u8]) -> (u8, Vec<u8>) {
        match self.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
                seq,
            } => {
                let mut t = Vec::with_capacity(20 + self.payload.len());
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&1u32.to_be_bytes());
                t.push(5 << 4);
                t.push(flags);
                t.extend_from_slice(&64240u16.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]);
                t.extend_from_slice(&self.payload);
                let c = checksum(&[pseudo, &l4_pseudo_tail(6, t.len()), &t]);
                t[16..18].copy_from_slice(&c.to_be_bytes());
                (6, t)
            }
            Transport::Udp { sport, dport } => {
                let mut t = Vec::with_capacity(8 + self.payload.len());
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                t.extend_from_slice(&[0, 0]);
                t.extend_from_slice(&self.payload);
                let mut c = checksum(&[pseudo, &l4_pseudo_tail(17, t.len()), &t]);
                if c == 0 {
                    c = 0xffff;
                }
                t[6..8].copy_from_slice(&c.to_be_bytes());
                (17, t)
            }
            Transport::Raw { proto } => (proto, self.payload.clone()),
        }
    }

    /// The IP packet (no link layer).
    pub fn ip_bytes(&self) -> Vec<u8> {
        match &self.net {
            Net::V4 {
                src,
                dst,
                options,
                frag_offset,
            } => {
                let pseudo = [src.octets(), dst.octets()].concat();
                let (proto, l4) = self.transport_bytes(&pseudo);
                let ihl = 20 + options.len();
                let total = ihl + l4.len();
                let mut h = Vec::with_capacity(total);
                h.push(0x40 | (ihl / 4) as u8);
                h.push(0);
                h.extend_from_slice(&(total as u16).to_be_bytes());
                h.extend_from_slice(&0x1234u16.to_be_bytes());
                h.extend_from_slice(&(frag_offset & 0x1fff).to_be_bytes());
                h.push(64);
                h.push(proto);
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                h.extend_from_slice(options);
                let c = checksum(&[&h]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend_from_slice(&l4);
                h
            }
            Net::V6 { src, dst, ext } => {
                let pseudo = [src.octets(), dst.octets()].concat();
                let (proto, l4) = self.transport_bytes(&pseudo);
                let mut exts = Vec::new();
                for (i, &(kind, len)) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(proto, |e| e.0);
                    if kind == 44 {
                        // Fragment header: next, reserved, offset << 3, id.
                        exts.push(next);
                        exts.push(0);
                        exts.extend_from_slice(&((len as u16) << 3).to_be_bytes());
                        exts.extend_from_slice(&7u32.to_be_bytes());
                    } else {
                        let len = len.max(8);
                        exts.push(next);
                        exts.push((len / 8 - 1) as u8);
                        // PadN option filling the rest.
                        exts.push(1);
                        exts.push((len - 4) as u8);
                        exts.extend(std::iter::repeat_n(0, len - 4));
                    }
                }
                let first = ext.first().map_or(proto, |e| e.0);
                let payload_len = exts.len() + l4.len();
                let mut h = Vec::with_capacity(40 + payload_len);
                h.extend_from_slice(&[0x60, 0, 0, 0]);
                h.extend_from_slice(&(payload_len as u16).to_be_bytes());
                h.push(first);
                h.push(64);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                h.extend_from_slice(&exts);
                h.extend_from_slice(&l4);
                h
            }
        }
    }

    /// IP bytes as the contract counts them: IPv4 total length, IPv6 40 + payload length.
    pub fn ip_len(&self) -> u64 {
        self.ip_bytes().len() as u64
    }

    /// The Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let ip = self.ip_bytes();
        let mut f =
            Vec::with_capacity(14 + 4 * self.vlans.len() + 4 * self.labels.len() + ip.len());
        f.extend_from_slice(&self.macs.1);
        f.extend_from_slice(&self.macs.0);
        for &(tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        let ethertype: u16 = match self.net {
            _ if !self.labels.is_empty() => 0x8847,
            Net::V4 { .. } => 0x0800,
            Net::V6 { .. } => 0x86dd,
        };
        f.extend_from_slice(&ethertype.to_be_bytes());
        for (i, &label) in self.labels.iter().enumerate() {
            let bottom = (i + 1 == self.labels.len()) as u32;
            f.extend_from_slice(&(label << 12 | bottom << 8 | 64).to_be_bytes());
        }
        f.extend_from_slice(&ip);
        f
    }
}

/// Writes `packets` (capture time, frame) as a pcap stream of link type `link` into `out`: the
/// synthetic captures of tests and benchmarks. Returns `out`.
pub fn write_pcap<W: std::io::Write, B: AsRef<[u8]>>(
    out: W,
    link: pcap_file::DataLink,
    packets: impl IntoIterator<Item = (std::time::Duration, B)>,
) -> pcap_file::PcapResult<W> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let mut w = PcapWriter::with_header(
        out,
        PcapHeader {
            datalink: link,
            ..PcapHeader::default()
        },
    )?;
    for (ts, data) in packets {
        let data = data.as_ref();
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, data))?;
    }
    Ok(w.into_writer())
}

/// A DNS query (recursion desired, one question for `name`, type A, class IN): UDP payload for
/// tests of the `pool_dns` signal. `response` sets the QR bit (an answer without records).
pub fn dns_query(id: u16, name: &str, response: bool) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[
        if response { 0x81 } else { 0x01 },
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    out
}

/// A TLS ClientHello record (supported_groups and signature_algorithms extensions, plus
/// server_name when `sni` is given): TCP payload for tests of the `tls_no_sni` signal.
pub fn tls_client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut ext: Vec<u8> = vec![0, 10, 0, 4, 0, 2, 0, 29, 0, 13, 0, 4, 0, 2, 4, 3];
    if let Some(name) = sni {
        let mut d = vec![0, (name.len() + 3) as u8, 0, 0, name.len() as u8];
        d.extend_from_slice(name.as_bytes());
        ext.extend_from_slice(&[0, 0, 0, d.len() as u8]);
        ext.extend_from_slice(&d);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 1, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut rec = vec![22, 3, 1, 0, body.len() as u8 + 4, 1, 0, 0, body.len() as u8];
    rec.extend_from_slice(&body);
    rec
}

/// A TLS application-data record (`17 03 03`, then the length) whose length field is `len`:
/// TCP payload for tests of the `encrypted_stratum` shape. Its body stands for ciphertext: bytes
/// that follow no pattern a scanner could read (a multiplicative sequence seeded by `len`). With
/// `whole` the segment carries the whole record; else only its first `min(len, 64)` bytes, as the
/// first segment of a record split over several.
pub fn tls_app_data(len: u16, whole: bool) -> Vec<u8> {
    let mut rec = vec![23, 3, 3];
    rec.extend_from_slice(&len.to_be_bytes());
    let body = if whole {
        len as usize
    } else {
        (len as usize).min(64)
    };
    let mut x = u32::from(len) | 1;
    rec.extend((0..body).map(|_| {
        x = x.wrapping_mul(0x9e37_79b1).wrapping_add(0x7f4a_7c15);
        (x >> 24) as u8
    }));
    rec
}

/// A WebSocket final text frame around `message` (RFC 6455, section 5.2): masked with `key`, as a
/// client sends it, or not, as a server does; a 7-bit length, or 126 and a 16-bit one.
pub fn websocket_frame(message: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    let bit = if key.is_some() { 0x80 } else { 0 };
    let mut f = vec![0x81];
    if message.len() < 126 {
        f.push(bit | message.len() as u8);
    } else {
        f.push(bit | 126);
        f.extend_from_slice(&(message.len() as u16).to_be_bytes());
    }
    match key {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(message.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(message),
    }
    f
}

/// The frames of message `m` compressed with permessage-deflate (RFC 7692) in its direction's
/// stream `c` (context takeover), as Python's `websockets` sends it: the text cut into `parts`
/// pieces, each compressed and sync-flushed, the flush's last four bytes (`00 00 ff ff`) left off
/// the last piece only. One piece is one frame, `c1` (FIN, RSV1, text); several are a first frame
/// `41` (RSV1, text, no FIN: RSV1 is set on a message's first frame only), continuations `00`
/// and a last `80`. Masked with `key` when given.
pub fn deflated_frames(
    c: &mut flate2::Compress,
    m: &[u8],
    parts: usize,
    key: Option<[u8; 4]>,
) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = m.chunks(m.len().div_ceil(parts)).collect();
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut out = Vec::with_capacity(piece.len() + 64);
            c.compress_vec(piece, &mut out, flate2::FlushCompress::Sync)
                .expect("DEFLATE into a vector");
            if i + 1 == n {
                assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush's tail");
                out.truncate(out.len() - 4);
            }
            let mut f = websocket_frame(&out, key);
            f[0] = match (i, n) {
                (0, 1) => 0xc1,
                (0, _) => 0x41,
                (i, n) if i + 1 == n => 0x80,
                _ => 0x00,
            };
            f
        })
        .collect()
}

fn l4_pseudo_tail(proto: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0, proto];
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v
}

/// The Internet checksum over several byte strings laid end to end (each of even length but the
/// last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        if let [b] = chunks.remainder() {
            sum += (*b as u32) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071, section 3's worked example: the words 0001 f203 f4f5 f6f7 sum (with end-around
    /// carry) to ddf2, whose complement is the checksum.
    #[test]
    fn checksum_matches_rfc_1071s_example() {
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
        // Split across parts at even offsets, the same words give the same sum.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let p = Packet::tcp4(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
            40000,
            3333,
            b"{}\n",
        )
        .ipv4_options(2);
        let ip = p.ip_bytes();
        assert_eq!(ip[0], 0x47);
        // Worked out by hand (16-bit words, carries folded back in, then complemented):
        // IPv4: 4700 + 0033 (length 51) + 1234 (id) + 0000 + 4006 (TTL 64, TCP) + c000 0201
        //   (192.0.2.1) + c633 6402 (198.51.100.2) + 0101 0101 0101 0100 (NOPs, End) = 2_89a6;
        //   89a6 + 2 = 89a8, checksum !89a8 = 7657.
        // TCP, over the pseudo-header: c000 0201 c633 6402 + 0006 + 0017 (length 23) + 9c40
        //   (40000) + 0d05 (3333) + 0000 0001 (seq) + 0000 0001 (ack) + 5018 (offset 5,
        //   PSH|ACK) + faf0 (window 64240) + 0000 0000 + 7b7d 0a00 ("{}\n", padded) = 4_661f;
        //   661f + 4 = 6623, checksum !6623 = 99dc.
        #[rustfmt::skip]
        let want: [u8; 51] = [
            // IPv4 header with two words of options.
            0x47, 0x00, 0x00, 0x33, 0x12, 0x34, 0x00, 0x00, 0x40, 0x06, 0x76, 0x57,
            192, 0, 2, 1, 198, 51, 100, 2,
            0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
            // TCP header.
            0x9c, 0x40, 0x0d, 0x05, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xfa, 0xf0,
            0x99, 0xdc, 0x00, 0x00,
            // Payload.
            b'{', b'}', b'\n',
        ];
        assert_eq!(ip, want);
        assert_eq!(p.ip_len(), 28 + 20 + 3);
        let f = p.clone().vlan(0x88a8, 10).vlan(0x8100, 20).build();
        assert_eq!(f.len(), 14 + 8 + 51);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        // Two MPLS labels inside a VLAN tag: the tag's EtherType 0x8847, then label 16 (00010),
        // TC 0, S 0, TTL 64, and label 1000 (003e8) with S 1, then the IPv4 packet.
        let f = p.vlan(0x8100, 20).mpls(16).mpls(1000).build();
        assert_eq!(f.len(), 14 + 4 + 8 + 51);
        assert_eq!(
            &f[12..26],
            &[
                0x81, 0x00, 0x00, 0x14, 0x88, 0x47, 0x00, 0x01, 0x00, 0x40, 0x00, 0x3e, 0x81, 0x40
            ]
        );
        assert_eq!(&f[26..], &want[..]);
    }

    #[test]
    fn ipv6_with_extensions_chains_next_headers() {
        let p = Packet::udp6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            5353,
            53,
            b"x",
        )
        .ipv6_ext(0, 8)
        .ipv6_ext(60, 16);
        let ip = p.ip_bytes();
        assert_eq!(ip[6], 0); // first: hop-by-hop
        assert_eq!(ip[40], 60); // then destination options
        assert_eq!(ip[48], 17); // then UDP
        assert_eq!(p.ip_len(), 40 + 8 + 16 + 9);
    }
}
