//! The Stratum scanner (the code the XDP program runs, compiled for the host) on any payload: no
//! panic, and the token-at-a-time scan agrees with scanning byte by byte, on a payload of any flow,
//! of a flow already known to be Stratum, and of a new flow whose login stops at its method.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::stratum::{
    Prior, WINDOW, Window, scan_byte_wise, scan_byte_wise_flow, scan_flow, scan_slice,
};

fuzz_target!(|data: &[u8]| {
    let fast = scan_slice(data);
    let slow = scan_byte_wise(data, data.len());
    assert_eq!(fast.map(|d| d as u8 + 1).unwrap_or(0), slow);
    let mut buf = Window::new();
    let n = data.len().min(WINDOW);
    buf.bytes_mut()[..n].copy_from_slice(&data[..n]);
    for prior in [Prior::KnownFlow, Prior::PoolLogin] {
        assert_eq!(
            scan_flow(&mut buf, n, prior),
            scan_byte_wise_flow(data, data.len(), prior)
        );
    }
});
