//! The XDP program from userspace: load it (sized from configuration), fill its maps, attach it to
//! interfaces, run it over test packets, and read its counters back.
//!
//! - `load`: the object, its two builds of the program (`may_goto`, or `bpf_loop` where the
//!   kernel refuses that), and loading one of them;
//! - `attach`: attaching to and detaching from interfaces, interface names and indexes;
//! - `maps`: filling the maps from configuration (range tries and their filter, pool ports, pool
//!   domains, interface slots) and reading the tries back;
//! - `filter`: the user-side copy of the prefix filter in front of the tries;
//! - `peers`: the neighbours' keys, their peer indexes across reloads, their counters;
//! - `counters`: the per-CPU counters and the flow table, summed and read;
//! - `recent`: the program's marks of recent flow slots, mapped for the agent's byte stores;
//! - `testrun`: BPF_PROG_TEST_RUN over single frames and replay batches, and the benchmark programs;
//! - `rings`: the event and sample ring buffers, their records, and the task that reads a ring;
//! - `ranges`: watched ranges as LPM-trie entries.

mod attach;
mod counters;
mod filter;
mod load;
mod maps;
pub mod opened;
mod peers;
pub mod ranges;
mod recent;
mod rings;
pub mod shapes;
mod testrun;

use aya::Ebpf;

pub use attach::{AttachedMode, available_interfaces, ifindex};
pub use load::{OBJECT, Variant};
pub use maps::RangeLookup;
pub use peers::PeerIds;
pub use recent::RecentSlots;
pub(crate) use rings::spawn_ring_reader;
pub use rings::{RING_POLL, event_from, sample_from};
pub use testrun::{BatchPacket, BatchRunner, batch_input, batch_linear_max};

use crate::bpf::{filter::Filter, ranges::TrieEntries};

/// The loaded program and its maps.
pub struct Kernel {
    ebpf: Ebpf,
    variant: Variant,
    installed: TrieEntries,
    /// The quick-rejection filter as written to the kernel.
    filter: Filter,
    /// `POOL_DOMAIN_FILTER` as written to the kernel.
    domain_filter: Vec<u64>,
    /// `POOL_PORTS` as written to the kernel.
    pool_ports: Vec<u64>,
    /// `PEER_KINDS` as written to the kernel.
    peer_kinds: u32,
    /// Tests' reads of the rings in place (`read_samples`, `read_events`): what was read from the
    /// sample ring and not yet asked for.
    read: ReadRecords,
}

/// Sample records read from the ring in place and not yet handed out (`Kernel::read_samples`):
/// their samples, and the events they carried (`Kernel::read_events`).
#[derive(Default)]
struct ReadRecords {
    samples: Vec<sensor_common::Sample>,
    carried: Vec<sensor_common::Event>,
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel program's times, which it reads with
/// `bpf_ktime_get_coarse_ns` (the same clock at a tick's resolution).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
