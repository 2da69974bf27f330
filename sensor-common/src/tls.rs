//! Whether a TLS ClientHello names a server (the server_name extension, SNI), and which. XMRig
//! connects to `stratum+ssl` pools without SNI unless configured otherwise: a ClientHello without
//! it, towards a pool port or a pool address, is the `tls_no_sni` signal. Other clients, proxies
//! and browser miners name the pool: a server name in a pool domain, on any port, is the
//! `tls_pool_sni` signal ([`host_to_query`] hands the name to the pool-domain walk of `pool_dns`).
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

/// What a ClientHello says of its server: `sni` is [`NOT_DECIDED`], [`HAS_SNI`] or [`NO_SNI`];
/// with `HAS_SNI`, the first host name is `name_len` bytes at `name_at` in the window (`name_len`
/// is 0 when the name is not whole in the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub sni: u8,
    pub name_at: usize,
    pub name_len: usize,
}

impl Hello {
    const fn decided(sni: u8) -> Self {
        Self {
            sni,
            name_at: 0,
            name_len: 0,
        }
    }
}

/// Looks at the first `len` bytes of a TCP payload, held in a window of `N` bytes (a power of
/// two).
#[inline(always)]
pub fn client_hello_sni<const N: usize>(buf: &[u8; N], len: usize) -> u8 {
    client_hello(buf, len).sni
}

/// [`client_hello_sni`], with where the server name is.
#[inline(always)]
pub fn client_hello<const N: usize>(buf: &[u8; N], len: usize) -> Hello {
    let len = if len > N { N } else { len };
    // Record header: handshake (22), version 3.x, length; then handshake type 1 (ClientHello).
    if len < 43 || byte(buf, 0) != 22 || byte(buf, 1) != 3 || byte(buf, 5) != 1 {
        return Hello::decided(NOT_DECIDED);
    }
    // 5 record + 4 handshake header + 2 version + 32 random = 43: the session id.
    let mut off = 43;
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return Hello::decided(NOT_DECIDED);
    }
    off += 2 + be16(buf, off);
    if off + 1 > len {
        return Hello::decided(NOT_DECIDED);
    }
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return Hello::decided(NOT_DECIDED);
    }
    let end = off + 2 + be16(buf, off);
    off += 2;
    if end > len {
        return Hello::decided(NOT_DECIDED);
    }
    extensions(buf, len, off, end)
}

/// The walk over a ClientHello's extensions from `off` to their end `end` (offsets in `buf`,
/// whose first `len` bytes are real; `end` at most `len`): what [`client_hello`] concludes from
/// them, also for the second segment of a ClientHello split over two ([`split`]).
#[inline(always)]
pub fn extensions<const N: usize>(buf: &[u8; N], len: usize, off: usize, end: usize) -> Hello {
    let len = if len > N { N } else { len };
    if end > len {
        return Hello::decided(NOT_DECIDED);
    }
    let mut off = off;
    let mut i = 0;
    while i < MAX_EXTENSIONS {
        if off == end {
            return Hello::decided(NO_SNI);
        }
        if off + 4 > end {
            return Hello::decided(NOT_DECIDED);
        }
        if be16(buf, off) == 0 {
            // server_name: list length (2), name type (1, 0 = host_name), name length (2), name.
            let (at, n) = (off + 9, be16(buf, off + 7));
            let whole = off + 9 <= end && byte(buf, off + 6) == 0 && at + n <= len;
            return Hello {
                sni: HAS_SNI,
                name_at: at,
                name_len: if whole { n } else { 0 },
            };
        }
        off += 4 + be16(buf, off + 2);
        i += 1;
    }
    Hello::decided(NOT_DECIDED)
}

/// What the first segment of a ClientHello cut by the segment's end says ([`split`]), or a held
/// rest and the segment after it ([`split_extensions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Not a ClientHello cut by the segment's end (a whole one, or none).
    Not,
    /// Decided from the bytes so far: its server_name extension is whole in them, or the
    /// extensions' lengths say none follows (what is cut is the body of its last extension).
    Decided(Hello),
    /// Cut before its extensions can be walked (the segment ends before their length field):
    /// the whole segment goes with the next.
    Early,
    /// Cut in its extensions: the first extension not whole in the segment begins at `at` and
    /// the extensions end at `end` (offsets in `buf`: from the record's start for [`split`],
    /// `end` past the bytes walked).
    Cut { at: usize, end: usize },
}

/// The first segment (`len` bytes of `buf`) of a ClientHello split over segments: where the
/// walk over its extensions stopped, so that the next segment can go on from there (the XDP
/// program holds the bytes from `at` on, at most a server_name extension's, with its opening
/// map, see `sensor-ebpf/src/hello.rs`).
#[inline(always)]
pub fn split<const N: usize>(buf: &[u8; N], len: usize) -> Split {
    let len = if len > N { N } else { len };
    if len < 6 || byte(buf, 0) != 22 || byte(buf, 1) != 3 || byte(buf, 5) != 1 {
        return Split::Not;
    }
    // The record's length: a segment holding all of it is no split.
    if 5 + be16(buf, 3) <= len {
        return Split::Not;
    }
    if len < 43 {
        return Split::Early;
    }
    let mut off = 43;
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return Split::Early;
    }
    off += 2 + be16(buf, off);
    if off + 1 > len {
        return Split::Early;
    }
    off += 1 + byte(buf, off);
    if off + 2 > len {
        return Split::Early;
    }
    let end = off + 2 + be16(buf, off);
    off += 2;
    if end <= len {
        // The extensions end inside the segment: the record's length says more follows (a
        // malformed or padded record); `client_hello` decides on what is here.
        return Split::Not;
    }
    split_extensions(buf, len, off, end)
}

/// The walk over a cut ClientHello's extensions from `off` (their end at `end`) over the first
/// `len` bytes of `buf`: [`split`]'s after the extensions' length, and the walk over a held rest
/// and the segment that continues it (`sensor-ebpf/src/hello.rs`), which may be cut again (a
/// hello over three segments). With `end` within `len` nothing more is needed: `Decided` with
/// what [`extensions`] concludes (`NOT_DECIDED` for a malformed walk).
#[inline(always)]
pub fn split_extensions<const N: usize>(
    buf: &[u8; N],
    len: usize,
    off: usize,
    end: usize,
) -> Split {
    let len = if len > N { N } else { len };
    if end <= len {
        return Split::Decided(extensions(buf, len, off, end));
    }
    let mut off = off;
    let mut i = 0;
    while i < MAX_EXTENSIONS {
        if off == end {
            return Split::Decided(Hello::decided(NO_SNI));
        }
        if off > end {
            return Split::Not;
        }
        if off + 4 > len {
            return Split::Cut { at: off, end };
        }
        let elen = be16(buf, off + 2);
        if be16(buf, off) == 0 {
            if off + 4 + elen > len {
                return Split::Cut { at: off, end };
            }
            return Split::Decided(extensions(buf, len, off, off + 4 + elen));
        }
        off += 4 + elen;
        i += 1;
    }
    Split::Not
}

/// Longest host name a server_name (and a DNS name) holds.
pub const MAX_HOST: usize = 253;

/// Where [`host_to_query`] is in a name: the current label's length byte and its length so far.
/// Kept in memory and re-read each byte (the kernel keeps it in its scratch map): the BPF verifier
/// tracks no values in map memory, so a byte's two paths (a dot or not) end in the same state and
/// the loop is verified in a few thousand instructions rather than one path per possible name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCopy {
    pub len_at: u32,
    pub label: u32,
}

/// Writes the host name `hello[at..at + len]` into `out` as a DNS query holds its name, from
/// `dns::HEADER` on (length-prefixed labels, then the root's 0), so that the pool-domain walk of
/// `pool_dns` reads it as it reads a query. Returns the end of the name in `out`, or 0 when there
/// is no name to match (empty, longer than [`MAX_HOST`], or not fitting `out`). Byte by byte,
/// forwards, every index checked (`out` need not be a power of two long): the verifier's way, and
/// the host's.
#[inline(always)]
pub fn host_to_query<const H: usize, const W: usize>(
    hello: &[u8; H],
    at: usize,
    len: usize,
    out: &mut [u8; W],
    st: &mut HostCopy,
) -> usize {
    use core::ptr::{read_volatile, write_volatile};
    let start = crate::dns::HEADER;
    if len == 0 || len > MAX_HOST || start + len + 2 > W {
        return 0;
    }
    // SAFETY (every volatile access below): `st` is a valid, exclusive reference.
    unsafe {
        write_volatile(&mut st.len_at, start as u32);
        write_volatile(&mut st.label, 0);
    }
    let mut i = 0;
    while i < MAX_HOST {
        if i >= len {
            break;
        }
        let c = hello[(at + i) & (H - 1)];
        unsafe {
            if c == b'.' {
                let label = read_volatile(&st.label) as u8;
                put(out, read_volatile(&st.len_at) as usize, label);
                write_volatile(&mut st.len_at, (start + 1 + i) as u32);
                write_volatile(&mut st.label, 0);
            } else {
                put(out, start + 1 + i, c);
                write_volatile(&mut st.label, read_volatile(&st.label).wrapping_add(1));
            }
        }
        i += 1;
    }
    unsafe {
        let label = read_volatile(&st.label) as u8;
        put(out, read_volatile(&st.len_at) as usize, label);
    }
    put(out, start + 1 + len, 0);
    start + 2 + len
}

#[inline(always)]
fn put<const W: usize>(out: &mut [u8; W], at: usize, v: u8) {
    if at < W {
        out[at] = v;
    }
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
    fn the_server_name_is_found_and_written_as_a_query_name() {
        let h = hello(&[(10, vec![0, 2, 0, 29]), sni("Pool.SupportXMR.com")]);
        let mut buf = [0u8; HELLO_WINDOW];
        buf[..h.len()].copy_from_slice(&h);
        let found = client_hello(&buf, h.len());
        assert_eq!(found.sni, HAS_SNI);
        assert_eq!(
            &h[found.name_at..found.name_at + found.name_len],
            b"Pool.SupportXMR.com"
        );
        let mut out = [0xeeu8; 512];
        let end = host_to_query(
            &buf,
            found.name_at,
            found.name_len,
            &mut out,
            &mut HostCopy::default(),
        );
        // 12 header bytes, then 4 "Pool" 10 "SupportXMR" 3 "com" 0: 1 + 19 + 1 bytes.
        assert_eq!(end, 12 + 21);
        assert_eq!(&out[12..end], b"\x04Pool\x0aSupportXMR\x03com\x00");
        // The pool-domain walk reads it as a query for the same name: it is under supportxmr.com
        // (labels are compared without case), not under xmr.com.
        let mut window = crate::stratum::Window::new();
        let end = host_to_query(
            &buf,
            found.name_at,
            found.name_len,
            window.bytes_mut(),
            &mut HostCopy::default(),
        );
        let mut q = crate::dns::QueryName::new(crate::dns::HEADER as u32, end as u32);
        for _ in 0..512 {
            if q.step(&window) {
                break;
            }
        }
        let key = |d: &str| crate::dns::name_key(d.as_bytes()).unwrap();
        assert_eq!((q.state, q.labels), (crate::dns::COMPLETE, 3), "{q:?}");
        assert!(q.any_suffix(|k| k == key("supportxmr.com")));
        assert!(!q.any_suffix(|k| k == key("xmr.com")));
        // Cut inside the name: undecided, as any ClientHello whose extensions are cut.
        assert_eq!(client_hello(&buf, found.name_at + 4).sni, NOT_DECIDED);
        // A server_name whose entry is not a host name (type 1): a server is named, not one
        // that can be read.
        let mut odd = sni("pool.supportxmr.com");
        odd.1[2] = 1;
        let h = hello(&[odd]);
        buf[..h.len()].copy_from_slice(&h);
        let found = client_hello(&buf, h.len());
        assert_eq!((found.sni, found.name_len), (HAS_SNI, 0));
        // No name, or one longer than a DNS name: nothing to match.
        assert_eq!(
            host_to_query(&buf, 0, 0, &mut out, &mut HostCopy::default()),
            0
        );
        assert_eq!(
            host_to_query(&buf, 0, MAX_HOST + 1, &mut out, &mut HostCopy::default()),
            0
        );
    }

    /// Extensions: supported_groups (4 + 4 bytes), signature_algorithms (4 + 4), a 1,220-byte key
    /// share (4 + 1,220), then server_name (4 + 21 for "pool.example.org").
    fn post_quantum_extensions() -> Vec<(u16, Vec<u8>)> {
        vec![
            (10u16, vec![0, 2, 0, 29]),
            (13, vec![0, 2, 4, 3]),
            (51, vec![0x11; 1220]),
            sni("pool.example.org"),
        ]
    }

    #[test]
    fn a_client_hello_split_in_two_goes_on_where_its_first_segment_stopped() {
        // Extensions: supported_groups (4 + 4 bytes), signature_algorithms (4 + 4), a 1,220-byte
        // key share (4 + 1,220), then server_name (4 + 21 for "pool.example.org": 2 + 1 + 2 +
        // 16). The hello's fixed part: 5 record + 4 handshake + 2 + 32 + 1 + 32 session id + 2 +
        // 10 suites + 2 compression = 90, the extensions' length 2: the first extension at 92.
        let exts = post_quantum_extensions();
        let h = hello(&exts);
        let (first, key_share, name) = (92, 92 + 8 + 8, 92 + 8 + 8 + 1224);
        assert_eq!(h.len(), name + 25);
        let mut buf = [0u8; HELLO_WINDOW];
        let cut = |buf: &mut [u8; HELLO_WINDOW], n: usize| {
            buf[..n].copy_from_slice(&h[..n]);
            split(buf, n)
        };
        let end = h.len();
        // Cut inside the key share's body (at 1,000 bytes): the walk goes on at the server_name
        // extension, past the segment's end.
        assert_eq!(cut(&mut buf, 1000), Split::Cut { at: name, end });
        // Cut inside an extension header, or inside server_name: from that extension on.
        assert_eq!(
            cut(&mut buf, key_share + 2),
            Split::Cut { at: key_share, end }
        );
        assert_eq!(cut(&mut buf, name + 10), Split::Cut { at: name, end });
        // Cut before the extensions' length: the whole segment goes on.
        assert_eq!(cut(&mut buf, 20), Split::Early);
        assert_eq!(cut(&mut buf, first - 1), Split::Early);
        // server_name first and whole in the segment: named at once.
        let mut named = exts.clone();
        named.insert(0, named[3].clone());
        named.pop();
        let hn = hello(&named);
        buf[..1000].copy_from_slice(&hn[..1000]);
        match split(&buf, 1000) {
            Split::Decided(found) => {
                assert_eq!(found.sni, HAS_SNI);
                assert_eq!(
                    &hn[found.name_at..found.name_at + found.name_len],
                    b"pool.example.org"
                );
            }
            other => panic!("{other:?}"),
        }
        // Without server_name, cut in the last extension's body: the lengths say no extension
        // follows: no name, at once.
        let plain = hello(&exts[..3]);
        buf[..1000].copy_from_slice(&plain[..1000]);
        assert_eq!(split(&buf, 1000), Split::Decided(Hello::decided(NO_SNI)));
        // Whole, or no ClientHello: no split.
        buf[..end].copy_from_slice(&h);
        assert_eq!(split(&buf, end), Split::Not);
        assert_eq!(split(&[0u8; HELLO_WINDOW], 100), Split::Not);
        // The second segment, after the bytes carried from `at` (cut at name + 10: the window
        // starts at `name`, the extensions end 25 bytes further): the walk from there decides.
        let mut w = [0u8; HELLO_WINDOW];
        w[..25].copy_from_slice(&h[name..]);
        let found = extensions(&w, 25, 0, 25);
        assert_eq!(found.sni, HAS_SNI);
        assert_eq!(
            &w[found.name_at..found.name_at + found.name_len],
            b"pool.example.org"
        );
        // Cut at an extension boundary with no server_name after: the rest ends the walk.
        let mut no_name = exts[..3].to_vec();
        no_name.push((43, vec![2, 3, 4]));
        let hx = hello(&no_name);
        buf[..1000].copy_from_slice(&hx[..1000]);
        assert_eq!(
            split(&buf, 1000),
            Split::Cut {
                at: name,
                end: name + 7
            }
        );
        w[..7].copy_from_slice(&hx[name..]);
        assert_eq!(extensions(&w, 7, 0, 7).sni, NO_SNI);
    }

    /// What the XDP program carries from a cut walk to the next segment (`hello_split`): the
    /// bytes from `at` on that are in the window, how many more to skip, where the extensions
    /// end past them.
    fn carry(w: &[u8], n: usize, s: Split) -> (Vec<u8>, usize, usize) {
        let Split::Cut { at, end } = s else {
            panic!("{s:?}")
        };
        let base = at.min(n);
        (w[base..n].to_vec(), at - base, end - base)
    }

    /// The next window: the carried bytes, then the segment.
    fn join(carried: &[u8], seg: &[u8]) -> ([u8; HELLO_WINDOW], usize) {
        let mut w = [0u8; HELLO_WINDOW];
        w[..carried.len()].copy_from_slice(carried);
        w[carried.len()..carried.len() + seg.len()].copy_from_slice(seg);
        (w, carried.len() + seg.len())
    }

    #[test]
    fn a_client_hello_over_three_segments_is_walked_segment_by_segment() {
        // The hello of the two-segment test: server_name's extension at 1,332 (92 + 8 + 8 +
        // 1,224), 25 bytes to 1,357.
        let exts = post_quantum_extensions();
        let h = hello(&exts);
        assert_eq!(h.len(), 1357);
        let mut buf = [0u8; HELLO_WINDOW];
        // At a 536-byte MSS: 0..536, 536..1,072, 1,072..1,357. The first stops in the key
        // share: on at 1,332, that is 1,332 - 536 = 796 bytes into the next window, the
        // extensions' end 821.
        buf[..536].copy_from_slice(&h[..536]);
        let first = split(&buf, 536);
        assert_eq!(
            first,
            Split::Cut {
                at: 1332,
                end: 1357
            }
        );
        let (c, skip, end) = carry(&buf, 536, first);
        assert_eq!((c.len(), skip, end), (0, 796, 821));
        // The second (536 bytes) ends before 796: cut again, nothing carried, 260 more to skip
        // in the third, the extensions' end at 285 of it.
        let (w, n) = join(&c, &h[536..1072]);
        let second = split_extensions(&w, n, skip, end);
        assert_eq!(second, Split::Cut { at: 796, end: 821 });
        let (c, skip, end) = carry(&w, n, second);
        assert_eq!((c.len(), skip, end), (0, 260, 285));
        // The third (285 bytes) holds the extension whole: the name at 260 + 9.
        let (w, n) = join(&c, &h[1072..]);
        assert_eq!(n, 285);
        let Split::Decided(found) = split_extensions(&w, n, skip, end) else {
            panic!()
        };
        assert_eq!(
            (found.sni, found.name_at, found.name_len),
            (HAS_SNI, 269, 16)
        );
        assert_eq!(&w[269..285], b"pool.example.org");
        // The second cut inside the name's extension (0..536, 536..1,340, 1,340..1,357): its
        // first 8 bytes (1,332..1,340) are carried, and the third (17 bytes) completes it: the
        // window is the extension's 25 bytes, the name at 9.
        let (w, n) = join(&[], &h[536..1340]);
        let second = split_extensions(&w, n, 796, 821);
        assert_eq!(second, Split::Cut { at: 796, end: 821 });
        let (c, skip, end) = carry(&w, n, second);
        assert_eq!((c.len(), skip, end), (8, 0, 25));
        assert_eq!(c, &h[1332..1340]);
        let (w, n) = join(&c, &h[1340..]);
        let Split::Decided(found) = split_extensions(&w, n, skip, end) else {
            panic!()
        };
        assert_eq!((found.sni, found.name_at, found.name_len), (HAS_SNI, 9, 16));
        // With the extensions' end in the window, the walk is `extensions`': no name after the
        // key share (a hello of the first three extensions, 1,332 bytes, its second segment
        // 536..1,332) is no name.
        let plain = hello(&exts[..3]);
        let (w, n) = join(&[], &plain[536..]);
        assert_eq!(
            split_extensions(&w, n, 796, 796),
            Split::Decided(Hello::decided(NO_SNI))
        );
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
