//! The `pool_dns` walk (the code the XDP program runs, compiled for the host) on any UDP payload:
//! no panic, and what it concludes agrees with an independent decoding of the question name keyed
//! by `name_key`, the function the agent uses for configured domains. Also `name_key` on any
//! bytes (configured domain names are operator input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::{
    dns::{COMPLETE, HEADER, MAX_LABELS, QueryName, is_query, name_key},
    stratum::{WINDOW, Window},
};

/// The question name's labels, decoded the plain way; `None` where the walk must not match.
fn labels(payload: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = HEADER;
    loop {
        let len = *payload.get(at)? as usize;
        if len == 0 {
            return (!out.is_empty()).then_some(out);
        }
        if len > 63 || out.len() >= MAX_LABELS {
            return None;
        }
        out.push(payload.get(at + 1..at + 1 + len)?);
        at += 1 + len;
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = name_key(data);
    let n = data.len().min(WINDOW);
    let mut buf = [0u8; WINDOW];
    buf[..n].copy_from_slice(&data[..n]);
    if n >= HEADER {
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&buf[..HEADER]);
        let _ = is_query(&h);
    }
    let mut window = Window::new();
    window.bytes_mut()[..WINDOW].copy_from_slice(&buf);
    // What an earlier packet left past this one's bytes: the walk must not read it.
    window.bytes_mut()[n..].fill(0x41);
    let mut q = QueryName::new(HEADER as u32, n as u32);
    for _ in 0..WINDOW {
        if q.step(&window) {
            break;
        }
    }
    let reference = labels(&data[..n]);
    assert_eq!(q.state == COMPLETE, reference.is_some(), "{q:?}");
    let Some(labels) = reference else { return };
    // Every suffix the walk offers is the key of the same suffix of the decoded name, in order
    // from the shortest (names with dots inside a label cannot be written dotted; skip those).
    // (Names over 253 bytes are not DNS names and never configured: `name_key` refuses them.)
    if labels.iter().any(|l| l.contains(&b'.')) || labels.join(&b'.').len() > 253 {
        return;
    }
    let mut offered = Vec::new();
    q.any_suffix(|k| {
        offered.push(k);
        false
    });
    let expected: Vec<u64> = (0..labels.len())
        .rev()
        .map(|i| name_key(&labels[i..].join(&b'.')).expect("a decodable name has a key"))
        .collect();
    assert_eq!(offered, expected);
});
