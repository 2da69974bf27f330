//! Link-layer handling: which capture link types become which Ethernet frame, and why a record
//! that cannot become one is skipped. A Linux cooked record keeps its sender's Ethernet address
//! as the frame's source (what `[[peers]]` reads); other addresses are fixed stand-ins.

use pcap_file::DataLink;

/// The frame and its length on the wire: a record the capture cut short (its snap length) keeps
/// its original length, which the program checks IP lengths against, so the packet and its IP
/// bytes count as they did on the wire; only what the capture kept is inspected.
pub(super) fn to_ethernet(
    link: DataLink,
    data: &[u8],
    orig_len: u32,
) -> Result<(Vec<u8>, usize), RecordError> {
    let frame = link_to_ethernet(link, data)?;
    let wire_len = frame.len() + (orig_len as usize).saturating_sub(data.len());
    Ok((frame, wire_len))
}

/// Why a record cannot be replayed; `link_unsupported` when it is the file's link type, not the
/// record, so that the whole file is reported once.
pub(super) struct RecordError {
    msg: String,
    pub(super) link_unsupported: bool,
}

impl From<String> for RecordError {
    fn from(msg: String) -> Self {
        Self {
            msg,
            link_unsupported: false,
        }
    }
}

impl From<&str> for RecordError {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

/// The synthesized frame's addresses (destination, source) where the record names none.
const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/// ARPHRD_ETHER: a Linux cooked record whose address field holds an Ethernet address.
const ARPHRD_ETHER: u16 = 1;

/// The sender's Ethernet address of a Linux cooked record (hardware type, address length, the
/// 8-byte address field), so that `[[peers]]` can tell who delivered the packet; the destination
/// address is not in the record.
fn cooked_source(hatype: u16, halen: u8, addr: &[u8]) -> Option<[u8; 6]> {
    (hatype == ARPHRD_ETHER && halen == 6).then(|| addr[..6].try_into().expect("6 of 8 bytes"))
}

fn link_to_ethernet(link: DataLink, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let framed = |src: Option<[u8; 6]>, ethertype: u16, payload: &[u8]| {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&MACS[..6]);
        f.extend_from_slice(&src.unwrap_or(MACS[6..].try_into().expect("6 bytes")));
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let with_ethertype = |ethertype: u16, payload: &[u8]| framed(None, ethertype, payload);
    let by_version = |ip: &[u8]| match ip.first().map(|b| b >> 4) {
        Some(4) => Ok(with_ethertype(0x0800, ip)),
        Some(6) => Ok(with_ethertype(0x86dd, ip)),
        _ => Err("raw IP record with neither IPv4 nor IPv6 version".into()),
    };
    match link {
        // What no link delivers: the program cannot even be run over it.
        DataLink::ETHERNET if data.len() < 14 => Err(format!(
            "Ethernet record of {} bytes, shorter than its 14-byte header; skipped",
            data.len()
        )
        .into()),
        DataLink::ETHERNET => Ok(data.to_vec()),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => by_version(data),
        // Linux cooked capture v1: 16-byte header, protocol in the last two bytes.
        DataLink::LINUX_SLL => {
            if data.len() < 16 {
                return Err("Linux cooked (SLL) record shorter than its 16-byte header".into());
            }
            // pkttype, hatype, halen, address (8), protocol.
            Ok(framed(
                cooked_source(
                    u16::from_be_bytes([data[2], data[3]]),
                    data[5],
                    &data[6..14],
                ),
                u16::from_be_bytes([data[14], data[15]]),
                &data[16..],
            ))
        }
        // Linux cooked capture v2: 20-byte header, protocol first.
        DataLink::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err("Linux cooked (SLL2) record shorter than its 20-byte header".into());
            }
            // protocol, reserved, ifindex, hatype, pkttype, halen, address (8).
            Ok(framed(
                cooked_source(
                    u16::from_be_bytes([data[8], data[9]]),
                    data[11],
                    &data[12..20],
                ),
                u16::from_be_bytes([data[0], data[1]]),
                &data[20..],
            ))
        }
        // BSD loopback: 4-byte address family, then IP.
        DataLink::NULL | DataLink::LOOP => {
            if data.len() < 4 {
                return Err("loopback record shorter than its 4-byte header".into());
            }
            by_version(&data[4..])
        }
        other => Err(RecordError {
            msg: format!(
                "link type {other:?} is not supported (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP and loopback are)"
            ),
            link_unsupported: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooked_records_keep_their_senders_address() {
        let ip = [0x45u8, 0, 0, 20];
        // SLL v1: pkttype 0, hatype 1 (Ethernet), halen 6, 02:00:5e:10:00:01 and two pad bytes,
        // protocol 0x0800.
        let mut v1 = vec![0, 0, 0, 1, 0, 6, 2, 0, 0x5e, 0x10, 0, 1, 0, 0, 8, 0];
        v1.extend_from_slice(&ip);
        let f = link_to_ethernet(DataLink::LINUX_SLL, &v1).ok().unwrap();
        assert_eq!(f[..6], [2, 0, 0, 0, 0, 2]);
        assert_eq!(f[6..12], [2, 0, 0x5e, 0x10, 0, 1]);
        assert_eq!(f[12..14], [8, 0]);
        assert_eq!(f[14..], ip);
        // SLL v2: protocol, reserved, ifindex 3, hatype 1, pkttype 0, halen 6, the address.
        let mut v2 = vec![
            8, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0x5e, 0x10, 0, 2, 0, 0,
        ];
        v2.extend_from_slice(&ip);
        let f = link_to_ethernet(DataLink::LINUX_SLL2, &v2).ok().unwrap();
        assert_eq!(f[6..12], [2, 0, 0x5e, 0x10, 0, 2]);
        // Not an Ethernet address (hatype 772, loopback): the stand-in source.
        v2[8..10].copy_from_slice(&772u16.to_be_bytes());
        let f = link_to_ethernet(DataLink::LINUX_SLL2, &v2).ok().unwrap();
        assert_eq!(f[6..12], [2, 0, 0, 0, 0, 1]);
        // Raw IP: both stand-ins.
        let f = link_to_ethernet(DataLink::RAW, &ip).ok().unwrap();
        assert_eq!(f[..12], MACS);
    }
}
