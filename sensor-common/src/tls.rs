//! Whether a TLS ClientHello names a server (the server_name extension, SNI). XMRig connects to
//! `stratum+ssl` pools without SNI unless configured otherwise: a ClientHello without it, towards a
//! pool port or a pool address, is the `tls_no_sni` signal.
//!
//! Written for the BPF verifier as for the host: a fixed window, masked indices, a bounded loop
//! over the extensions. A ClientHello longer than the window is undecidable and reported as such.
//! The window is `HELLO_WINDOW` bytes, not the Stratum scanner's 512: clients with post-quantum key
//! shares (X25519MLKEM768, the default of OpenSSL 3.5, Go 1.24 and rustls) send ClientHellos of
//! about 1,300 bytes, still in one segment.

/// Bytes of a TCP payload the ClientHello walk reads (a power of two).
pub const HELLO_WINDOW: usize = 2048;

/// Not a TLS ClientHello at the start of the window, or cut before its extensions end.
pub const NOT_DECIDED: u8 = 0;
/// A ClientHello with a server_name extension.
pub const HAS_SNI: u8 = 1;
/// A complete ClientHello without server_name.
pub const NO_SNI: u8 = 2;

/// Extensions looked at before giving up (real ClientHellos carry 10 to 20).
const MAX_EXTENSIONS: usize = 32;

#[inline(always)]
fn byte<const N: usize>(buf: &[u8; N], at: usize) -> usize {
    buf[at & (N - 1)] as usize
}

#[inline(always)]
fn be16<const N: usize>(buf: &[u8; N], at: usize) -> usize {
    (byte(buf, at) << 8) | byte(buf, at + 1)
}

/// Looks at the first `len` bytes of a TCP payload, held in a window of `N` bytes (a power of
/// two).
#[inline(always)]
pub fn client_hello_sni<const N: usize>(buf: &[u8; N], len: usize) -> u8 {
    let len = if len > N { N } else { len };
    // Record header: handshake (22), version 3.x, length; then handshake type 1 (ClientHello).
    if len < 43 || byte(buf, 0) != 22 || byte(buf, 1) != 3 || byte(buf, 5) != 1 {
        return NOT_DECIDED;
    }
    // 5 record + 4 handshake header + 2 version + 32 random = 43: the session id.
    let mut off = 43;
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return NOT_DECIDED;
    }
    off += 2 + be16(buf, off);
    if off + 1 > len {
        return NOT_DECIDED;
    }
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return NOT_DECIDED;
    }
    let end = off + 2 + be16(buf, off);
    off += 2;
    if end > len {
        return NOT_DECIDED;
    }
    let mut i = 0;
    while i < MAX_EXTENSIONS {
        if off == end {
            return NO_SNI;
        }
        if off + 4 > end {
            return NOT_DECIDED;
        }
        if be16(buf, off) == 0 {
            return HAS_SNI;
        }
        off += 4 + be16(buf, off + 2);
        i += 1;
    }
    NOT_DECIDED
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with the given extensions (type, data).
    fn hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (t, d) in extensions {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&(d.len() as u16).to_be_bytes());
            ext.extend_from_slice(d);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0x5a; 32]);
        body.push(32);
        body.extend_from_slice(&[0x11; 32]);
        let suites = [0x13u8, 1, 0x13, 2, 0x13, 3, 0xc0, 0x2b, 0xc0, 0x2f];
        body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
        body.extend_from_slice(&suites);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend_from_slice(&hs);
        rec
    }

    fn check(payload: &[u8]) -> u8 {
        let mut buf = [0u8; HELLO_WINDOW];
        let n = payload.len().min(HELLO_WINDOW);
        buf[..n].copy_from_slice(&payload[..n]);
        client_hello_sni(&buf, n)
    }

    fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut d = vec![0, (name.len() + 3) as u8, 0, 0, name.len() as u8];
        d.extend_from_slice(name.as_bytes());
        (0, d)
    }

    #[test]
    fn with_and_without_server_name() {
        let others = vec![
            (10u16, vec![0, 2, 0, 29]),
            (13, vec![0, 2, 4, 3]),
            (43, vec![2, 3, 4]),
        ];
        assert_eq!(check(&hello(&others)), NO_SNI);
        let mut with = others.clone();
        with.insert(1, sni("pool.example.org"));
        assert_eq!(check(&hello(&with)), HAS_SNI);
        assert_eq!(check(&hello(&[])), NO_SNI);
        // A post-quantum hybrid key share (1,216 bytes of X25519MLKEM768) after the other
        // extensions, as OpenSSL 3.5 sends it: well past 512 bytes, still decided.
        let mut pq = others.clone();
        pq.push((51, vec![0x11; 1220]));
        assert!(hello(&pq).len() > 1300);
        assert_eq!(check(&hello(&pq)), NO_SNI);
        pq.insert(0, sni("pool.example.org"));
        assert_eq!(check(&hello(&pq)), HAS_SNI);
    }

    #[test]
    fn cut_or_not_a_client_hello_is_not_decided() {
        let h = hello(&[(10, vec![0, 2, 0, 29]), (13, vec![0, 2, 4, 3])]);
        for n in 0..h.len() {
            assert_eq!(check(&h[..n]), NOT_DECIDED, "{n}");
        }
        // Longer than the window: its end cannot be seen.
        let big = hello(&[(21, vec![0; HELLO_WINDOW])]);
        assert_eq!(check(&big), NOT_DECIDED);
        let mut server_hello = hello(&[]);
        server_hello[5] = 2;
        assert_eq!(check(&server_hello), NOT_DECIDED);
        assert_eq!(check(b"{\"id\":1}"), NOT_DECIDED);
    }
}
