//! The ClientHello walk, its split-segment variants (`split`, `split_extensions`), and the server name's copy into a
//! query name (the code the XDP program
//! runs for `tls_no_sni` and `tls_pool_sni`, compiled for the host) on any TCP payload: no panic,
//! and what they conclude agrees with an independent reading: the name found is the first
//! server_name entry's bytes, and the pool-domain walk over the copy offers the keys `name_key`
//! gives the same dotted name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::{
    dns::{COMPLETE, HEADER, QueryName, name_key},
    stratum::{WINDOW, Window},
    tls::{
        HAS_SNI, HELLO_WINDOW, HostCopy, MAX_HOST, Split, client_hello, host_to_query, split,
        split_extensions,
    },
};

fuzz_target!(|data: &[u8]| {
    let n = data.len().min(HELLO_WINDOW);
    let mut buf = [0u8; HELLO_WINDOW];
    buf[..n].copy_from_slice(&data[..n]);
    // The first segment of a split ClientHello: where its walk stops lies after the fixed part
    // and before the extensions' end, past the segment only when an extension's body runs on; a
    // name it reads (one not whole has no length) lies in the segment.
    match split(&buf, n) {
        Split::Cut { at, end } => assert!(43 < at && at <= end && end > n, "{at} {end} {n}"),
        Split::Decided(h) => assert!(
            h.sni != HAS_SNI || h.name_len == 0 || h.name_at + h.name_len <= n,
            "{h:?}"
        ),
        Split::Early => assert!(n >= 6),
        Split::Not => {}
    }
    // The walk going on from a held rest (a second or third segment): the first 4 bytes say
    // where it starts and where the extensions end. It stops at or after its start, at the
    // extensions' end it was given, past the bytes only when cut; a name it reads lies in them.
    if n >= 4 {
        let (off, end) = (
            usize::from(u16::from_be_bytes([data[0], data[1]])),
            usize::from(u16::from_be_bytes([data[2], data[3]])),
        );
        match split_extensions(&buf, n, off, end) {
            Split::Cut { at, end: e } => assert!(off <= at && e == end && end > n, "{at} {e}"),
            Split::Decided(h) => assert!(
                h.sni != HAS_SNI || h.name_len == 0 || h.name_at + h.name_len <= n,
                "{h:?}"
            ),
            other => assert!(end > n, "{other:?}"),
        }
    }
    let h = client_hello(&buf, n);
    if h.sni != HAS_SNI || h.name_len == 0 {
        return;
    }
    // The name lies inside the bytes the walk was given, right after its 2-byte length.
    assert!(h.name_at + h.name_len <= n, "{h:?}");
    assert_eq!(
        usize::from(u16::from_be_bytes([
            data[h.name_at - 2],
            data[h.name_at - 1]
        ])),
        h.name_len
    );
    let name = &data[h.name_at..h.name_at + h.name_len];
    let mut window = Window::new();
    // What an earlier packet left there: the copy and the walk must not depend on it.
    window.bytes_mut().fill(0x41);
    let end = host_to_query(
        &buf,
        h.name_at,
        h.name_len,
        window.bytes_mut(),
        &mut HostCopy::default(),
    );
    if h.name_len > MAX_HOST {
        assert_eq!(end, 0);
        return;
    }
    assert_eq!(end, HEADER + 2 + h.name_len);
    let mut q = QueryName::new(HEADER as u32, end as u32);
    for _ in 0..WINDOW {
        if q.step(&window) {
            break;
        }
    }
    // A dotted name the agent could configure (`name_key` accepts it, no trailing dot, no zero
    // byte that would end the copied name early): the walk completes and offers its key last.
    let plain = !name.ends_with(b".") && !name.contains(&0);
    if let (true, Some(key)) = (plain, name_key(name)) {
        assert_eq!(q.state, COMPLETE, "{q:?}");
        let mut last = None;
        q.any_suffix(|k| {
            last = Some(k);
            false
        });
        assert_eq!(last, Some(key));
    }
});
