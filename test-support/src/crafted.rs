//! The worst packets a flooder can craft against the XDP program (issue "Cost and abuse"), one
//! per family: the benchmark's `crafted_*` rows and the flood test send the same payloads.
//!
//! The Stratum scanner reads a 512-byte window; each JSON-looking payload fills it with what it
//! can only take a byte at a step, or with a decision call at every token, and completes no rule,
//! so none of them makes a Stratum flow.

/// One crafted payload: its family (the benchmark row's name), transport and destination port.
pub struct Crafted {
    pub family: &'static str,
    pub udp: bool,
    pub dport: u16,
    pub payload: Vec<u8>,
}

/// The pool port the JSON-looking payloads go to (a default pool port).
pub const POOL_PORT: u16 = 3333;

/// Every family, in a fixed order.
pub fn crafted() -> Vec<Crafted> {
    let tcp = |family, payload| Crafted {
        family,
        udp: false,
        dport: POOL_PORT,
        payload,
    };
    // Blanks and line ends before any `{`: a message may still begin, byte by byte.
    let blanks = b" \r\n\t".repeat(128);
    // One string of `\u` escapes: every byte through the byte-wise step.
    let mut escapes = b"{\"".to_vec();
    while escapes.len() + 6 <= 512 {
        escapes.extend_from_slice(b"\\u0041");
    }
    // Pretty-printed JSON that never ends: line ends inside an open message.
    let mut pretty = b"{".to_vec();
    pretty.extend(b"\n".repeat(511));
    // A marker at every token: `"pass"` (7 bytes with its comma) calls the decision function
    // each time and completes no rule alone.
    let mut markers = b"{".to_vec();
    while markers.len() + 7 <= 512 {
        markers.extend_from_slice(b"\"pass\",");
    }
    // The escapes inside a masked WebSocket text frame (a client's): unmasked, then scanned.
    let websocket = crate::websocket_frame(&escapes, Some([0x37, 0xfa, 0x21, 0x3d]));
    // The longest DNS name the walk follows: 16 labels of 14 letters (239 bytes with dots), in
    // no pool domain.
    let name = vec!["abcdefghijklmn"; 16].join(".");
    vec![
        tcp("crafted_json_blanks", blanks),
        tcp("crafted_json_escapes", escapes),
        tcp("crafted_json_pretty", pretty),
        tcp("crafted_json_markers", markers),
        tcp("crafted_websocket", websocket),
        Crafted {
            family: "crafted_dns_name",
            udp: true,
            dport: 53,
            payload: crate::dns_query(0x4242, &name, false),
        },
        Crafted {
            family: "crafted_client_hello",
            udp: false,
            dport: 443,
            payload: client_hello(),
        },
    ]
}

/// The server name of the crafted ClientHello: 16 labels, the most the pool-domain walk follows,
/// 14 of 15 letters then `supportxmr.com` (a default pool domain): 14 x 16 + 14 = 238 bytes.
pub const HELLO_NAME_LABELS: usize = 14;

/// A ClientHello with as many extensions as the walk looks at (31 empty ones of an unassigned
/// type, then server_name) and a long server name in a pool domain (the `tls_pool_sni` signal).
fn client_hello() -> Vec<u8> {
    let mut name = vec!["abcdefghijklmno"; HELLO_NAME_LABELS].join(".");
    name.push_str(".supportxmr.com");
    let mut ext = Vec::new();
    for i in 0..31u16 {
        ext.extend_from_slice(&(0xfa00 + i).to_be_bytes());
        ext.extend_from_slice(&[0, 0]);
    }
    let n = name.len() as u16;
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&(n + 5).to_be_bytes());
    ext.extend_from_slice(&(n + 3).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&n.to_be_bytes());
    ext.extend_from_slice(name.as_bytes());
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 1, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let hs_len = body.len() as u32;
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&((hs_len + 4) as u16).to_be_bytes());
    rec.push(1);
    rec.extend_from_slice(&hs_len.to_be_bytes()[1..]);
    rec.extend_from_slice(&body);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_payloads_have_their_sizes() {
        let c = crafted();
        let len = |f: &str| c.iter().find(|c| c.family == f).unwrap().payload.len();
        // 128 x 4 blanks; 2 + 85 x 6 escapes = 512; 1 + 511 line ends; 1 + 73 x 7 markers = 512.
        assert_eq!(len("crafted_json_blanks"), 512);
        assert_eq!(len("crafted_json_escapes"), 512);
        assert_eq!(len("crafted_json_pretty"), 512);
        assert_eq!(len("crafted_json_markers"), 512);
        // The WebSocket header: 0x81, 126, a 16-bit length, a 4-byte key: 8 + 512.
        assert_eq!(len("crafted_websocket"), 520);
        // DNS: 12-byte header, 16 x (1 + 14) label bytes, the root, type and class: 12 + 240 + 5.
        assert_eq!(len("crafted_dns_name"), 257);
        // The name: 14 x 16 + 14 = 238; server_name: 4 + 2 + 1 + 2 + 238 = 247; 31 x 4 = 124
        // more of extensions: 371; the body: 2 + 32 + 1 + 8 + 2 + 371 = 416; the record: 5 + 4 +
        // 416 = 425.
        assert_eq!(len("crafted_client_hello"), 425);
    }
}
