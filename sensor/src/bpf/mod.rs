//! The XDP program from userspace: load it (sized from configuration), fill its maps, attach it to
//! interfaces, run it over test packets, and read its counters back.

pub mod ranges;

use std::{collections::HashSet, os::fd::AsFd as _};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray, ProgramArray, RingBuf, XskMap,
        lpm_trie::Key,
    },
    programs::{TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use tracing::{debug, info, warn};

use sensor_common::{
    Counter, Event, FILTER_V4_ALL, FILTER_V4_MIN_LEN, FILTER_V6_ALL, FILTER_V6_MIN_LEN,
    FILTER_WORDS, FlowKey, FlowState, IFINDEX_DIRECT, POOL_PORT_WORDS, ParseEvent, Stat,
    filter_bit_v4, filter_bit_v6,
};

use crate::{
    bpf::ranges::TrieEntries,
    config::{Config, XdpModeChoice},
};

/// The XDP object built by `build.rs` from `sensor-ebpf`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor"));

/// Which of the object's two builds of the program runs. They count alike (the kernel tests run
/// both); they differ in how the verifier sees their loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `sensor`: the scan and the DNS walk are `may_goto` loops (Linux 6.9 on).
    MayGoto,
    /// `sensor_compat`: the same loops as `bpf_loop` callbacks (Linux 5.18 on), up to about 10%
    /// slower on a Stratum packet (a login). Loaded when the kernel refuses `sensor`.
    BpfLoop,
}

impl Variant {
    /// The program's name in the object.
    pub const fn program(self) -> &'static str {
        match self {
            Self::MayGoto => "sensor",
            Self::BpfLoop => "sensor_compat",
        }
    }
}

/// The benchmarks' trivial XDP_PASS program, in the same object.
const BASELINE: &str = "bench_pass";
const GENERATOR: &str = "bench_tx";

/// Loads (verifies) one build of the program, saying how many instructions the verifier walked.
fn load_program(ebpf: &mut Ebpf, variant: Variant) -> Result<()> {
    let name = variant.program();
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    let started = std::time::Instant::now();
    program
        .load()
        .with_context(|| format!("the kernel's verifier rejected the XDP program {name}"))?;
    let verified = program
        .info()
        .ok()
        .and_then(|i| i.verified_instruction_count());
    debug!(
        program = name,
        verified_instructions = verified,
        load_ms = started.elapsed().as_millis() as u64,
        "XDP program loaded"
    );
    Ok(())
}

/// Loads the `may_goto` build with `load` or, if that fails (a kernel before 6.9), the `bpf_loop`
/// build, saying so; an error names both failures.
fn load_with_fallback(mut load: impl FnMut(Variant) -> Result<()>) -> Result<Variant> {
    let fast = match load(Variant::MayGoto) {
        Ok(()) => return Ok(Variant::MayGoto),
        Err(e) => e,
    };
    debug!("{fast:#}");
    info!(
        "this kernel refused the program's may_goto build (it needs Linux 6.9 or later); loading \
         its bpf_loop build, up to about 10% slower on Stratum packets"
    );
    load(Variant::BpfLoop).map_err(|e| {
        e.context(format!(
            "and before it, the may_goto build: {}",
            first_line(&format!("{fast:#}"))
        ))
    })?;
    Ok(Variant::BpfLoop)
}

/// The first line of an error's text (a verifier's log follows it).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// How a program ended up attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

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
}

/// The user-side copy of the kernel's prefix filter (`sensor_common::FILTER_BITS`).
#[derive(Clone, PartialEq, Eq)]
struct Filter {
    words: Vec<u64>,
    flags: u32,
}

impl Filter {
    fn empty() -> Self {
        Self {
            words: vec![0; FILTER_WORDS],
            flags: 0,
        }
    }

    fn set(&mut self, bit: u32) {
        set_bit(&mut self.words, bit as usize);
    }

    /// Every bit an address inside one of `entries`' prefixes may map to.
    fn of(entries: &TrieEntries) -> Self {
        let mut f = Self::empty();
        for &(len, addr, _) in &entries.v4 {
            if len < FILTER_V4_MIN_LEN as u32 {
                f.flags |= FILTER_V4_ALL;
                continue;
            }
            let first = filter_bit_v4(u32::from_be_bytes(addr));
            let count = if len >= 24 { 1 } else { 1u32 << (24 - len) };
            for b in first..first + count {
                f.set(b);
            }
        }
        for &(len, addr, _) in &entries.v6 {
            if len < FILTER_V6_MIN_LEN as u32 {
                f.flags |= FILTER_V6_ALL;
                continue;
            }
            let top = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
            let count = if len >= 32 { 1 } else { 1u32 << (32 - len) };
            for t in top..top.saturating_add(count) {
                f.set(filter_bit_v6(t));
            }
        }
        f
    }

    fn union(&self, other: &Self) -> Self {
        Self {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a | b)
                .collect(),
            flags: self.flags | other.flags,
        }
    }
}

/// One packet of a replay batch.
pub struct BatchPacket<'a> {
    /// Capture time: the program's clock for the packet.
    pub ts_ns: u64,
    /// The interface it stands for (replay: the capture file's number + 1).
    pub ifindex: u32,
    pub data: &'a [u8],
    /// Its length on the wire (at least `data.len()`; more when the record was cut short).
    pub wire_len: usize,
}

/// Lays `packets` (at most `REPLAY_BATCH_MAX`, in the order they are to run) out as the input of
/// one `BatchRunner::run_batch`, as `ReplayHeader` describes. Every packet but a lone one must be
/// at least `REPLAY_MIN_BATCHED_LEN` long, and the input must fit the frame's linear part.
pub fn batch_input<'a, I>(packets: I, out: &mut Vec<u8>)
where
    I: DoubleEndedIterator<Item = BatchPacket<'a>> + ExactSizeIterator + Clone,
{
    use sensor_common::ReplayHeader;
    const HS: usize = ReplayHeader::SIZE;
    out.clear();
    let n = packets.len();
    let Some(first) = packets.clone().next() else {
        return;
    };
    let body = packets.clone().map(|p| p.data.len()).sum::<usize>() + HS * (n - 1);
    let header = |k: usize, p: &BatchPacket<'_>, offset: usize| {
        ReplayHeader {
            ts_ns: p.ts_ns,
            len: p.data.len() as u32,
            ifindex: p.ifindex,
            offset: offset as u32,
            index: k as u32 + 1,
            remaining: (n - 1 - k) as u32,
            wire_len: p.wire_len.max(p.data.len()) as u32,
        }
        .to_bytes()
    };
    out.extend_from_slice(&header(0, &first, body - first.data.len()));
    for (k, p) in packets.enumerate().skip(1).rev() {
        out.extend_from_slice(p.data);
        out.extend_from_slice(&header(k, &p, 0));
    }
    out.extend_from_slice(first.data);
}

/// Runs a program loaded by `Kernel::load_for_replay` over batches; see `ReplayHeader`.
#[derive(Clone, Copy)]
pub struct BatchRunner<'a> {
    program: &'a Xdp,
}

impl BatchRunner<'_> {
    /// One BPF_PROG_TEST_RUN over `input` (the first `ReplayHeader` then the packets, as
    /// `ReplayHeader` lays them out); returns the program's return value.
    pub fn run_batch(&self, input: &[u8]) -> Result<u32> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. `data` is the metadata's length: the first header.
        let mut ctx = [0u8; 24];
        ctx[0..4].copy_from_slice(&(sensor_common::ReplayHeader::SIZE as u32).to_ne_bytes());
        ctx[4..8].copy_from_slice(&(input.len() as u32).to_ne_bytes());
        let r = self.program.test_run(TestRunOptions {
            data_in: Some(input),
            ctx_in: Some(&ctx),
            ..TestRunOptions::new()
        })?;
        Ok(r.return_value)
    }
}

impl Kernel {
    /// Loads (and verifies) the program with maps sized from `cfg`.
    pub fn load(cfg: &Config) -> Result<Self> {
        Self::load_as(cfg, false, None)
    }

    /// Loads that build of the program, with no fallback (for tests of both).
    pub fn load_variant(cfg: &Config, variant: Variant) -> Result<Self> {
        Self::load_as(cfg, false, Some(variant))
    }

    /// The build of the program that was loaded.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Loads the program as `replay` runs it: over batches of packets with their capture time
    /// (`Kernel::run_batch`), with the same per-packet code as `load`.
    pub fn load_for_replay(cfg: &Config) -> Result<Self> {
        Self::load_for_replay_as(cfg, None)
    }

    /// `load_for_replay` with that build of the program, with no fallback (for tests of both).
    pub fn load_for_replay_variant(cfg: &Config, variant: Variant) -> Result<Self> {
        Self::load_for_replay_as(cfg, Some(variant))
    }

    fn load_for_replay_as(cfg: &Config, want: Option<Variant>) -> Result<Self> {
        let mut k = Self::load_as(cfg, true, want)?;
        let fd = k.program()?.fd()?.try_clone()?;
        let mut next = ProgramArray::try_from(
            k.ebpf
                .map_mut("REPLAY_NEXT")
                .ok_or_else(|| anyhow!("map REPLAY_NEXT missing"))?,
        )?;
        next.set(0, &fd, 0).context("REPLAY_NEXT")?;
        Ok(k)
    }

    /// Loads the object and one build of the program: `want`, or the `may_goto` one and, if the
    /// kernel refuses it (before Linux 6.9), the `bpf_loop` one.
    fn load_as(cfg: &Config, replay: bool, want: Option<Variant>) -> Result<Self> {
        raise_memlock_limit();
        let capture = cfg.inspect.capture_mode.kernel_value();
        let replay = replay as u32;
        // No kernel BTF: the object has no CO-RE relocations (it reads no kernel structures), so
        // the loader skips relocating against it (about 5 ms of a replay's start-up). A
        // relocation added later fails the load with aya's error, in every test that loads.
        // aya 0.14's `EbpfLoader::new` still reads and parses /sys/kernel/btf/vmlinux before
        // this replaces it (about 19 ms on this machine; aya-rs/aya#1172). Later aya releases
        // read it only when a relocation needs it, but they need a newer rustc than ours.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .override_global("CAPTURE_MODE", &capture, true)
            .override_global("INSPECT_BUDGET", &cfg.inspect.budget, true)
            .override_global("REPLAY_BATCH", &replay, true)
            .map_max_entries("SAMPLES", cfg.inspect.sample_ring_bytes)
            .map_max_entries("FLOWS", cfg.flow_table_size)
            .map_max_entries("RANGES_V4", cfg.max_prefixes)
            .map_max_entries("RANGES_V6", cfg.max_prefixes)
            .map_max_entries("EVENTS", cfg.events.ring_bytes)
            .map_max_entries("SUSPECTS", cfg.flow_table_size)
            .load(OBJECT)
            .context("loading the XDP object (is this kernel built with BPF, and are we root or CAP_BPF+CAP_NET_ADMIN?)")?;
        let variant = match want {
            Some(v) => {
                load_program(&mut ebpf, v)?;
                v
            }
            None => load_with_fallback(|v| load_program(&mut ebpf, v))?,
        };
        Ok(Self {
            ebpf,
            variant,
            installed: TrieEntries::default(),
            filter: Filter {
                words: vec![0; FILTER_WORDS],
                // Until ranges are installed, nothing may be filtered out.
                flags: FILTER_V4_ALL | FILTER_V6_ALL,
            },
            domain_filter: vec![0; sensor_common::dns::FILTER_WORDS],
            pool_ports: vec![0; POOL_PORT_WORDS],
        })
    }

    /// Starts forwarding the program's aya-log records to the agent's log (tracing). The records
    /// are read whenever the returned logger's fd is readable.
    pub fn logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.ebpf).context("attaching the kernel log reader")
    }

    /// Makes the tries hold exactly `entries`. New and changed prefixes go in before stale ones
    /// are removed, so an address covered before and after the change is never unmatched; the
    /// filter admits the union of old and new prefixes while the tries change, and only then
    /// narrows to the new ones.
    pub fn set_ranges(&mut self, entries: TrieEntries) -> Result<()> {
        let target = Filter::of(&entries);
        let widened = self.filter.union(&target);
        self.write_filter(widened)?;
        sync_trie(&mut self.ebpf, "RANGES_V4", &self.installed.v4, &entries.v4)?;
        sync_trie(&mut self.ebpf, "RANGES_V6", &self.installed.v6, &entries.v6)?;
        self.installed = entries;
        self.write_filter(target)
    }

    /// Writes the words that differ from what the kernel holds, then the flags.
    fn write_filter(&mut self, f: Filter) -> Result<()> {
        if f == self.filter {
            return Ok(());
        }
        write_changed(&mut self.ebpf, "FILTER", &mut self.filter.words, &f.words)?;
        let mut flags: Array<&mut MapData, u32> = Array::try_from(
            self.ebpf
                .map_mut("FILTER_FLAGS")
                .context("map FILTER_FLAGS")?,
        )?;
        flags.set(0, f.flags, 0)?;
        self.filter = f;
        Ok(())
    }

    /// Makes the pool-port bitmap hold exactly `ports`.
    pub fn set_pool_ports(&mut self, ports: &[u16]) -> Result<()> {
        let mut words = vec![0u64; POOL_PORT_WORDS];
        for &p in ports {
            set_bit(&mut words, p as usize);
        }
        write_changed(&mut self.ebpf, "POOL_PORTS", &mut self.pool_ports, &words)
    }

    /// Makes the pool-domain table hold exactly `domains` (new keys first, then stale ones out, so
    /// a domain in both the old and new lists never stops matching), then its filter: each word
    /// that changes written once with its final bits, so a wanted bit is never cleared, even for a
    /// moment.
    pub fn set_pool_domains(&mut self, domains: &[String]) -> Result<()> {
        let mut filter = vec![0u64; sensor_common::dns::FILTER_WORDS];
        let mut map: BpfHashMap<&mut MapData, u64, u8> = BpfHashMap::try_from(
            self.ebpf
                .map_mut("POOL_DOMAINS")
                .context("map POOL_DOMAINS")?,
        )?;
        let mut wanted = HashSet::new();
        for d in domains {
            let key = sensor_common::dns::name_key(d.as_bytes())
                .ok_or_else(|| anyhow!("pool domain {d:?} cannot be matched"))?;
            wanted.insert(key);
            set_bit(&mut filter, sensor_common::dns::filter_bit(key));
            map.insert(key, 1, 0)
                .with_context(|| format!("adding pool domain {d}"))?;
        }
        let stale: Vec<u64> = map
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            map.remove(&k)?;
        }
        write_changed(
            &mut self.ebpf,
            "POOL_DOMAIN_FILTER",
            &mut self.domain_filter,
            &filter,
        )
    }

    /// Routes `ifindex` to counter slot `slot` (1-based; 0 clears it).
    pub fn set_iface_slot(&mut self, ifindex: u32, slot: u32) -> Result<()> {
        if ifindex < IFINDEX_DIRECT {
            let mut a: Array<&mut MapData, u32> = Array::try_from(
                self.ebpf
                    .map_mut("IFINDEX_SLOTS")
                    .context("IFINDEX_SLOTS")?,
            )?;
            a.set(ifindex, slot, 0)?;
        } else {
            let mut h: BpfHashMap<&mut MapData, u32, u32> = BpfHashMap::try_from(
                self.ebpf
                    .map_mut("IFINDEX_SLOTS_HIGH")
                    .context("IFINDEX_SLOTS_HIGH")?,
            )?;
            if slot == 0 {
                let _ = h.remove(&ifindex);
            } else {
                h.insert(ifindex, slot, 0)?;
            }
        }
        Ok(())
    }

    fn program(&mut self) -> Result<&mut Xdp> {
        let name = self.variant.program();
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?)
    }

    /// Attaches through a BPF link (so the kernel detaches it when the process dies, even by
    /// SIGKILL). `Auto` tries native mode first and falls back to generic, saying so.
    pub fn attach(
        &mut self,
        iface: &str,
        mode: XdpModeChoice,
    ) -> Result<(XdpLinkId, AttachedMode)> {
        let program = self.program()?;
        match mode {
            XdpModeChoice::Native => program
                .attach(iface, XdpMode::Driver)
                .map(|id| (id, AttachedMode::Native))
                .with_context(|| format!("attaching to {iface} in native (driver) mode; try --xdp-mode generic if the driver lacks XDP support")),
            XdpModeChoice::Generic => program
                .attach(iface, XdpMode::Skb)
                .map(|id| (id, AttachedMode::Generic))
                .with_context(|| format!("attaching to {iface} in generic mode")),
            XdpModeChoice::Auto => match program.attach(iface, XdpMode::Driver) {
                Ok(id) => Ok((id, AttachedMode::Native)),
                Err(native) => {
                    warn!(%iface, error = %native, "native XDP unavailable; falling back to generic mode (slower, same counts)");
                    program
                        .attach(iface, XdpMode::Skb)
                        .map(|id| (id, AttachedMode::Generic))
                        .with_context(|| format!("attaching to {iface} in generic mode after native mode failed ({native})"))
                }
            },
        }
    }

    /// Attaches the object's trivial `bench_pass` program natively (benchmarks only: it separates
    /// the cost of a driver's XDP path from the sensor's own).
    pub fn attach_baseline(&mut self, iface: &str) -> Result<XdpLinkId> {
        Ok(self.baseline()?.attach(iface, XdpMode::Driver)?)
    }

    pub fn detach_baseline(&mut self, link: XdpLinkId) -> Result<()> {
        self.baseline()?.detach(link)?;
        Ok(())
    }

    /// Sends `frame` `count` times out of the interface `ifindex` (in the calling thread's
    /// network namespace) as XDP frames, through the object's `bench_tx` program run with
    /// BPF_F_TEST_XDP_LIVE_FRAMES (benchmarks only: a generator that bypasses the socket layer).
    pub fn transmit_live(&mut self, frame: &[u8], count: u32, ifindex: u32) -> Result<()> {
        let p = self.bench_program(GENERATOR)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        p.test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: count,
            attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(64),
            ..TestRunOptions::new()
        })?;
        Ok(())
    }

    /// The object's trivial `bench_pass` program, loaded on first use.
    fn baseline(&mut self) -> Result<&mut Xdp> {
        self.bench_program(BASELINE)
    }

    /// One of the object's benchmark programs (`bench_pass`, `bench_tx`), loaded on first use.
    fn bench_program(&mut self, name: &str) -> Result<&mut Xdp> {
        let p: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?;
        if p.fd().is_err() {
            p.load()?;
        }
        Ok(p)
    }

    pub fn detach(&mut self, link: XdpLinkId) -> Result<()> {
        self.program()?.detach(link)?;
        Ok(())
    }

    /// Runs the program once over `frame` through BPF_PROG_TEST_RUN; returns the XDP action and
    /// the frame as the program left it.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let program = self.program()?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = program.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Runs the program once over `frame` for its counting only (replay): no output buffer to
    /// allocate and copy back. Returns the XDP action.
    pub fn count(&mut self, frame: &[u8]) -> Result<u32> {
        let program = self.program()?;
        Ok(program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })?
            .return_value)
    }

    /// The loaded program, shareable between threads: `run_batch` through it from several at once.
    pub fn batch_runner(&self) -> Result<BatchRunner<'_>> {
        let name = self.variant.program();
        let program: &Xdp = self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?;
        Ok(BatchRunner { program })
    }

    /// Runs the program `repeat` times over `frame` in the kernel; returns the kernel's average
    /// time per run. `baseline` runs the object's trivial `bench_pass` program instead.
    pub fn test_run_repeat(
        &mut self,
        frame: &[u8],
        repeat: u32,
        baseline: bool,
    ) -> Result<std::time::Duration> {
        let program: &mut Xdp = if baseline {
            self.baseline()?
        } else {
            self.program()?
        };
        let r = program.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        })?;
        Ok(r.duration)
    }

    fn per_cpu<T: aya::Pod>(&self, name: &str) -> Result<PerCpuArray<&MapData, T>> {
        Ok(PerCpuArray::try_from(
            self.ebpf.map(name).with_context(|| format!("map {name}"))?,
        )?)
    }

    /// Sums the per-CPU cells at `indexes` of a `Counter` array.
    pub fn traffic(&self, indexes: impl IntoIterator<Item = u32>) -> Result<Vec<(u32, Counter)>> {
        let map = self.per_cpu::<Counter>("TRAFFIC")?;
        indexes
            .into_iter()
            .map(|i| {
                let values = map.get(&i, 0)?;
                let sum = values.iter().fold(Counter::default(), |a, c| Counter {
                    packets: a.packets + c.packets,
                    bytes: a.bytes + c.bytes,
                });
                Ok((i, sum))
            })
            .collect()
    }

    /// Sums the per-CPU cells at `indexes` of a `u64` array (`STRATUM_PACKETS`, `STRATUM_FLOWS`,
    /// `PARSE`).
    pub fn sums(
        &self,
        map: &str,
        indexes: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, u64)>> {
        let map = self.per_cpu::<u64>(map)?;
        indexes
            .into_iter()
            .map(|i| Ok((i, map.get(&i, 0)?.iter().sum())))
            .collect()
    }

    /// Loads the program and installs `cfg`'s ranges with range id = position in `cfg.ranges`
    /// (what a fresh agent does), for tests, benchmarks and replay.
    pub fn load_with_ranges(cfg: &Config) -> Result<Self> {
        let mut k = Self::load(cfg)?;
        k.configure(cfg)?;
        Ok(k)
    }

    /// Installs `cfg`'s ranges, pools, pool ports and pool domains.
    pub fn configure(&mut self, cfg: &Config) -> Result<()> {
        let k = self;
        k.set_ranges(crate::bpf::ranges::for_config(
            cfg.ranges
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.cidrs.as_slice())),
            &cfg.pools.endpoints,
        ))?;
        k.set_pool_ports(&cfg.pools.ports)?;
        k.set_pool_domains(&cfg.pools.domains)?;
        Ok(())
    }

    /// One traffic cell, summed across CPUs.
    pub fn traffic_cell(&self, slot: usize, range: usize, dir: usize) -> Result<Counter> {
        Ok(self.traffic([sensor_common::traffic_index(slot, range, dir)])?[0].1)
    }

    /// One suspect-flow cell, summed across CPUs.
    pub fn suspect_cell(&self, range: usize, dir: usize, reason: usize) -> Result<u64> {
        Ok(self.sums(
            "SUSPECT_FLOWS",
            [sensor_common::suspect_index(range, dir, reason)],
        )?[0]
            .1)
    }

    /// One Stratum cell (`flows`: the flow counter, else the packet counter), summed across CPUs.
    pub fn stratum_cell(
        &self,
        flows: bool,
        range: usize,
        dir: usize,
        dialect: usize,
    ) -> Result<u64> {
        let map = if flows {
            "STRATUM_FLOWS"
        } else {
            "STRATUM_PACKETS"
        };
        Ok(self.sums(map, [sensor_common::stratum_index(range, dir, dialect)])?[0].1)
    }

    /// One `STATS` cell, summed across CPUs.
    pub fn stat(&self, s: Stat) -> Result<u64> {
        Ok(self.sums("STATS", [s as u32])?[0].1)
    }

    /// Takes the event ring buffer out of the object, for a reader of its own (the agent's).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring("EVENTS", "event")
    }

    /// Takes the sample ring buffer (`inline` capture) out of the object, for the agent's reader.
    pub fn take_samples(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring("SAMPLES", "sample")
    }

    fn take_ring(&mut self, name: &str, what: &str) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("the {what} ring buffer was already taken"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Reads every pending sample (tests): the ring stays in the object.
    pub fn read_samples(&mut self) -> Result<Vec<sensor_common::Sample>> {
        self.read_ring("SAMPLES", sample_from)
    }

    /// Every pending record of ring `name`, parsed by `parse`.
    fn read_ring<T>(&mut self, name: &str, parse: fn(&[u8]) -> Result<T>) -> Result<Vec<T>> {
        let mut ring: RingBuf<&mut MapData> = RingBuf::try_from(
            self.ebpf
                .map_mut(name)
                .with_context(|| format!("map {name}"))?,
        )?;
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(parse(&item)?);
        }
        Ok(out)
    }

    /// Takes the AF_XDP socket map (`tap` capture) out of the object, for the agent.
    pub fn take_xsks(&mut self) -> Result<XskMap<MapData>> {
        let map = self
            .ebpf
            .take_map("XSKS")
            .ok_or_else(|| anyhow!("the AF_XDP socket map was already taken"))?;
        Ok(XskMap::try_from(map)?)
    }

    /// A handle on the range tries of its own (duplicated map fds), for a task that attributes
    /// inspected packets while the agent keeps the program.
    pub fn range_lookup(&self) -> Result<RangeLookup> {
        let dup = |name: &str| -> Result<aya::maps::Map> {
            let Some(aya::maps::Map::LpmTrie(data)) = self.ebpf.map(name) else {
                bail!("map {name} is missing or not an LPM trie");
            };
            let fd = data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .with_context(|| format!("duplicating the fd of map {name}"))?;
            Ok(aya::maps::Map::LpmTrie(MapData::from_fd(fd)?))
        };
        Ok(RangeLookup {
            v4: LpmTrie::try_from(dup("RANGES_V4")?)?,
            v6: LpmTrie::try_from(dup("RANGES_V6")?)?,
        })
    }

    /// Reads every pending event (tests): the ring stays in the object.
    pub fn read_events(&mut self) -> Result<Vec<Event>> {
        self.read_ring("EVENTS", event_from)
    }

    pub fn parse_event(&self, e: ParseEvent) -> Result<u64> {
        Ok(self.sums("PARSE", [e as u32])?[0].1)
    }

    pub fn parse_events(&self) -> Result<Vec<(u32, u64)>> {
        self.sums("PARSE", 0..ParseEvent::COUNT as u32)
    }

    /// Empties the flow table (benchmarks: a login measured as the first packet of its flow).
    pub fn clear_flows(&mut self) -> Result<usize> {
        let mut map: aya::maps::HashMap<&mut MapData, FlowKey, FlowState> =
            aya::maps::HashMap::try_from(self.ebpf.map_mut("FLOWS").context("map FLOWS")?)?;
        let keys: Vec<FlowKey> = map.keys().filter_map(|k| k.ok()).collect();
        for k in &keys {
            map.remove(k)?;
        }
        Ok(keys.len())
    }

    /// Every entry of the flow table.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowState)>> {
        let map: aya::maps::HashMap<&MapData, FlowKey, FlowState> =
            aya::maps::HashMap::try_from(self.ebpf.map("FLOWS").context("map FLOWS")?)?;
        // Entries evicted or deleted while iterating end the walk early at worst; the next drain
        // sees them again.
        Ok(map.iter().filter_map(|r| r.ok()).collect())
    }
}

/// The watched-range tries, read from userspace.
pub struct RangeLookup {
    v4: LpmTrie<MapData, [u8; 4], u64>,
    v6: LpmTrie<MapData, [u8; 16], u64>,
}

impl RangeLookup {
    /// The trie value for `addr` (0 outside every prefix).
    pub fn ranges_of(&self, addr: std::net::IpAddr) -> Result<u64> {
        let found = match addr {
            std::net::IpAddr::V4(a) => self.v4.get(&Key::new(32, a.octets()), 0),
            std::net::IpAddr::V6(a) => self.v6.get(&Key::new(128, a.octets()), 0),
        };
        match found {
            Ok(v) => Ok(v),
            Err(aya::maps::MapError::KeyNotFound) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// A sample record from the ring buffer.
pub fn sample_from(bytes: &[u8]) -> Result<sensor_common::Sample> {
    if bytes.len() < std::mem::size_of::<sensor_common::Sample>() {
        bail!("sample record of {} bytes is too short", bytes.len());
    }
    // SAFETY: `Sample` is plain `#[repr(C)]` data valid for any bytes; the length is checked and
    // the read is unaligned.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// An event record from the ring buffer.
pub fn event_from(bytes: &[u8]) -> Result<Event> {
    if bytes.len() < std::mem::size_of::<Event>() {
        bail!("short event record: {} bytes", bytes.len());
    }
    // SAFETY: Event is plain #[repr(C)] data; the length was checked; read_unaligned copies.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// Sets bit `bit` of a bitmap held as 64-bit words, as the kernel's bitmaps are.
fn set_bit(words: &mut [u64], bit: usize) {
    words[bit >> 6] |= 1 << (bit & 63);
}

/// Writes the words of the array map `name` that differ between `held` (what the kernel holds)
/// and `new`, keeping `held` in step word by word: after an error it still says what the kernel
/// holds.
fn write_changed(ebpf: &mut Ebpf, name: &str, held: &mut [u64], new: &[u64]) -> Result<()> {
    let mut map: Array<&mut MapData, u64> =
        Array::try_from(ebpf.map_mut(name).with_context(|| format!("map {name}"))?)?;
    for (i, (new, old)) in new.iter().zip(held).enumerate() {
        if new != old {
            map.set(i as u32, *new, 0)
                .with_context(|| format!("writing word {i} of map {name}"))?;
            *old = *new;
        }
    }
    Ok(())
}

fn sync_trie<const N: usize>(
    ebpf: &mut Ebpf,
    name: &str,
    old: &[(u32, [u8; N], u64)],
    new: &[(u32, [u8; N], u64)],
) -> Result<()>
where
    [u8; N]: aya::Pod,
{
    let mut trie: LpmTrie<&mut MapData, [u8; N], u64> =
        LpmTrie::try_from(ebpf.map_mut(name).with_context(|| format!("map {name}"))?)?;
    let old_set: HashSet<(u32, [u8; N], u64)> = old.iter().copied().collect();
    for (i, &(len, addr, bits)) in new.iter().enumerate() {
        if old_set.contains(&(len, addr, bits)) {
            continue;
        }
        trie.insert(&Key::new(len, addr), bits, 0).map_err(|e| {
            anyhow!(
                "inserting prefix {} of {} into {name}: {e}",
                i + 1,
                new.len()
            )
        })?;
    }
    let new_keys: HashSet<(u32, [u8; N])> = new.iter().map(|&(l, a, _)| (l, a)).collect();
    for &(len, addr, _) in old {
        if !new_keys.contains(&(len, addr)) {
            trie.remove(&Key::new(len, addr))
                .with_context(|| format!("removing a stale prefix from {name}"))?;
        }
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raising it is harmless elsewhere.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(
            "could not raise RLIMIT_MEMLOCK; fine on kernels from 5.11 on, which account BPF memory to the cgroup"
        );
    }
}

/// Names of this host's interfaces, for error messages.
pub fn available_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn ifindex(iface: &str) -> Result<u32> {
    let c = std::ffi::CString::new(iface).context("interface name contains NUL")?;
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!(
            "interface {iface} not found; available: {}",
            available_interfaces().join(", ")
        );
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_may_goto_build_is_tried_first_and_the_other_only_when_it_fails() {
        let mut tried = Vec::new();
        let v = load_with_fallback(|v| {
            tried.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!((v, tried), (Variant::MayGoto, vec![Variant::MayGoto]));

        let mut tried = Vec::new();
        let v = load_with_fallback(|v| {
            tried.push(v);
            match v {
                Variant::MayGoto => bail!("unknown opcode e5\nprocessed 0 insns"),
                Variant::BpfLoop => Ok(()),
            }
        })
        .unwrap();
        assert_eq!(
            (v, tried),
            (Variant::BpfLoop, vec![Variant::MayGoto, Variant::BpfLoop])
        );
    }

    #[test]
    fn when_both_builds_fail_the_error_names_both() {
        let e = load_with_fallback(|v| match v {
            Variant::MayGoto => bail!("unknown opcode e5\nprocessed 0 insns"),
            Variant::BpfLoop => bail!("back-edge from insn 7 to 3"),
        })
        .unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("back-edge from insn 7 to 3"), "{text}");
        assert!(
            text.contains("the may_goto build: unknown opcode e5"),
            "{text}"
        );
        assert!(!text.contains("processed 0 insns"), "{text}");
    }
}
