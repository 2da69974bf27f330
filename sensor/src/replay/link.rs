//! Link-layer handling: which capture link types become which Ethernet frame, and why a record
//! that cannot become one is skipped.

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

fn link_to_ethernet(link: DataLink, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    let with_ethertype = |ethertype: u16, payload: &[u8]| {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&MACS);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
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
            Ok(with_ethertype(
                u16::from_be_bytes([data[14], data[15]]),
                &data[16..],
            ))
        }
        // Linux cooked capture v2: 20-byte header, protocol first.
        DataLink::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err("Linux cooked (SLL2) record shorter than its 20-byte header".into());
            }
            Ok(with_ethertype(
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
