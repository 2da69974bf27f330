//! `RECENT`, the program's marks of recent flow slots (`sensor_common::recent`), mapped into the
//! agent (the map is `BPF_F_MMAPABLE`) so that it stores single bytes, as the program does: a
//! mark stored through the map's syscalls would rewrite its whole word, and a mark the program
//! stored in that word meanwhile (another slot's) would be lost.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU8, Ordering},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};

use sensor_common::recent::{STRATUM, WORDS, place};

/// `RECENT`, mapped.
pub struct RecentSlots {
    bytes: NonNull<AtomicU8>,
}

// SAFETY: shared memory read and written only a byte at a time, atomically; it lives until
// `drop`.
unsafe impl Send for RecentSlots {}
// SAFETY: as above.
unsafe impl Sync for RecentSlots {}

/// Bytes mapped: the array's words.
const BYTES: usize = WORDS * 8;

impl RecentSlots {
    /// Maps the program's `RECENT` (`map`, found by that name). An error for an object whose
    /// `RECENT` has another layout (an older build's).
    pub fn of(map: &Map) -> Result<Self> {
        let data: &MapData = match map {
            Map::Array(m) => m,
            _ => bail!("map RECENT is not an array"),
        };
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the map's fd at offset 0, of the array's size; the kernel
        // checks that the map is mappable and the size in range.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context(
                "mapping RECENT (an array map of sensor_common::recent::WORDS words, made with \
                 BPF_F_MMAPABLE)",
            );
        }
        let bytes = NonNull::new(p.cast::<AtomicU8>()).context("mmap gave NULL")?;
        Ok(Self { bytes })
    }

    /// `slot`'s Stratum mark (`place`).
    fn stratum(&self, slot: u32) -> &AtomicU8 {
        let (word, byte) = place(slot);
        let at = 8 * word as usize + byte as usize;
        assert!(at < BYTES);
        // SAFETY: in bounds (above) of a page-aligned mapping of `BYTES` bytes, alive while
        // `self` is.
        unsafe { self.bytes.add(at).as_ref() }
    }

    /// Marks `slot` as having carried a Stratum packet at `now` (the program's clock).
    pub fn stratum_passed(&self, slot: u32, now: u64) {
        self.stratum(slot)
            .store(STRATUM.mark(now), Ordering::Relaxed);
    }

    /// Unmarks `slot`'s Stratum mark (benchmarks: `clear_flows`).
    pub fn forget_stratum(&self, slot: u32) {
        self.stratum(slot).store(0, Ordering::Relaxed);
    }
}

impl Drop for RecentSlots {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping `of` made; nothing refers to it past `self`.
        unsafe { libc::munmap(self.bytes.as_ptr().cast(), BYTES) };
    }
}
