//! `RECENT`, the program's marks of recent flow slots (`sensor_common::recent`), mapped into the
//! agent (the map is `BPF_F_MMAPABLE`) so that it stores single bytes, as the program does: a
//! mark stored through the map's syscalls would rewrite its whole word, and a mark the program
//! stored in that word meanwhile (another slot's) would be lost.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::atomic::{AtomicU8, Ordering},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};

use sensor_common::recent::{STRATUM, WORDS, place};

use crate::mapping::Area;

/// `RECENT`, mapped.
pub struct RecentSlots {
    area: Area,
}

// SAFETY: shared memory read and written only a byte at a time, atomically; it lives as long as
// the value.
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
        let area = Area::shared(data.fd().as_fd().as_raw_fd(), BYTES).context(
            "mapping RECENT (an array map of sensor_common::recent::WORDS words, made with \
             BPF_F_MMAPABLE)",
        )?;
        Ok(Self { area })
    }

    /// `slot`'s Stratum mark (`place`).
    fn stratum(&self, slot: u32) -> &AtomicU8 {
        let (word, byte) = place(slot);
        let at = 8 * word as usize + byte as usize;
        assert!(at < BYTES);
        // SAFETY: in bounds (above) of a page-aligned mapping of `BYTES` bytes, alive while
        // `self` is; shared with the program, it is only read and written a byte at a time,
        // atomically.
        unsafe { self.area.ptr().add(at).cast::<AtomicU8>().as_ref() }
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
