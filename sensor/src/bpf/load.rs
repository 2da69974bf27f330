//! Loading: the object built from `sensor-ebpf`, sized from configuration, and one of its two
//! builds of the program, with the `bpf_loop` build as the fallback where the kernel refuses the
//! `may_goto` one.

use anyhow::{Context as _, Result, anyhow};
use aya::{Ebpf, EbpfLoader, maps::ProgramArray, programs::Xdp};
use tracing::{debug, info};

use sensor_common::{FILTER_V4_ALL, FILTER_V6_ALL, FILTER_WORDS, POOL_PORT_WORDS};

use super::{Kernel, filter::Filter, ranges::TrieEntries};
use crate::config::Config;

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

impl Kernel {
    /// Loads (and verifies) the program with maps sized from `cfg`.
    pub fn load(cfg: &Config) -> Result<Self> {
        Self::load_as(cfg, false, None, OBJECT)
    }

    /// Loads that build of the program, with no fallback (for tests of both).
    pub fn load_variant(cfg: &Config, variant: Variant) -> Result<Self> {
        Self::load_as(cfg, false, Some(variant), OBJECT)
    }

    /// `load` of another revision's object (`object`, its `sensor` file as `build.rs` wrote it)
    /// in place of the embedded one: the benchmarks' comparison of two revisions in one run
    /// (`cargo xtask bench --against`). Its maps and globals must be the ones this revision
    /// sizes and sets; loading says which one is missing when they are not.
    pub fn load_object(cfg: &Config, object: &[u8]) -> Result<Self> {
        Self::load_as(cfg, false, None, object)
    }

    /// The build of the program that was loaded.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Loads the program as `replay` runs it: over batches of packets with their capture time
    /// (`Kernel::run_batch`), with the same per-packet code as `load`.
    pub fn load_for_replay(cfg: &Config) -> Result<Self> {
        Self::load_for_replay_as(cfg, None, OBJECT)
    }

    /// `load_for_replay` with that build of the program, with no fallback (for tests of both).
    pub fn load_for_replay_variant(cfg: &Config, variant: Variant) -> Result<Self> {
        Self::load_for_replay_as(cfg, Some(variant), OBJECT)
    }

    /// `load_for_replay` of another revision's object (see `load_object`).
    pub fn load_for_replay_object(cfg: &Config, object: &[u8]) -> Result<Self> {
        Self::load_for_replay_as(cfg, None, object)
    }

    fn load_for_replay_as(cfg: &Config, want: Option<Variant>, object: &[u8]) -> Result<Self> {
        let mut k = Self::load_as(cfg, true, want, object)?;
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
    fn load_as(cfg: &Config, replay: bool, want: Option<Variant>, object: &[u8]) -> Result<Self> {
        raise_memlock_limit();
        let capture = cfg.inspect.capture_mode.kernel_value();
        let replay = replay as u32;
        let decap = cfg
            .decapsulate
            .iter()
            .fold(0, |bits, t| bits | t.kernel_bit());
        // No kernel BTF: the object has no CO-RE relocations (it reads no kernel structures), so
        // the loader skips relocating against it, which shortens a replay's start-up. A
        // relocation added later fails the load with aya's error, in every test that loads.
        // aya 0.14's `EbpfLoader::new` still reads and parses /sys/kernel/btf/vmlinux before
        // this replaces it (aya-rs/aya#1172). Later aya releases read it only when a relocation
        // needs it, but they need a newer rustc than ours. What each costs: BENCHMARKS.md.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .override_global("CAPTURE_MODE", &capture, true)
            .override_global("INSPECT_BUDGET", &cfg.inspect.budget, true)
            .override_global("REPLAY_BATCH", &replay, true)
            // Optional: the objects of revisions before it (`cargo xtask bench --against`) have
            // none, and this object always has it.
            .override_global("DECAP", &decap, false)
            .map_max_entries("SAMPLES", cfg.inspect.sample_ring_bytes)
            .map_max_entries("FLOWS", cfg.flow_table_size)
            .map_max_entries("RANGES_V4", cfg.max_prefixes)
            .map_max_entries("RANGES_V6", cfg.max_prefixes)
            .map_max_entries("EVENTS", cfg.events.ring_bytes)
            .map_max_entries("SUSPECTS", cfg.flow_table_size)
            .load(object)
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
            read: Default::default(),
            peer_kinds: 0,
        })
    }

    /// Starts forwarding the program's aya-log records to the agent's log (tracing). The records
    /// are read whenever the returned logger's fd is readable.
    pub fn logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.ebpf).context("attaching the kernel log reader")
    }

    pub(super) fn program(&mut self) -> Result<&mut Xdp> {
        let name = self.variant.program();
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?)
    }
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

#[cfg(test)]
mod tests {
    use anyhow::bail;

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

    #[test]
    fn each_program_holds_the_per_packet_code_itself() {
        use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
        // An outlined per-packet function leaves the program a trampoline of 2 instructions
        // (`call`, `exit`, as the object built at the regression showed), and every packet pays
        // a BPF-to-BPF call (about 10 ns on this machine). Inlined, the program holds the header
        // walk, the counting and the TCP path: over 5,000 instructions when this test was written.
        let file = object::File::parse(OBJECT).unwrap();
        for name in [Variant::MayGoto.program(), Variant::BpfLoop.program()] {
            let symbol = file
                .symbols()
                .find(|s| s.name() == Ok(name))
                .unwrap_or_else(|| panic!("no symbol {name}"));
            let section = file
                .section_by_index(symbol.section_index().unwrap())
                .unwrap();
            assert_eq!(section.name(), Ok("xdp"), "{name}");
            let instructions = symbol.size() / 8;
            assert!(
                instructions > 1_000,
                "{name} is {instructions} instructions: its per-packet code was outlined (keep \
                 `#[inline(always)]` on the program's functions down to `try_sensor`)"
            );
        }
    }

    #[test]
    fn the_object_calls_no_byte_looping_memory_subprogram_on_a_packets_path() {
        use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};
        // LLVM emits a copy it cannot prove free of overlap as a call of `memmove`, and a few
        // zeroed bytes as a call of `memset`: BPF subprograms looping over bytes (a new flow's
        // 72-byte event cost 72 iterations; `sensor-ebpf/src/words.rs`). The one call left is
        // replay's header read from a batch's metadata, once a batch, in each of the two builds
        // of the per-packet code; the object before `words` had sixteen calls.
        let file = object::File::parse(OBJECT).unwrap();
        let mut calls = std::collections::BTreeMap::<String, usize>::new();
        for section in file.sections() {
            for (_, r) in section.relocations() {
                let RelocationTarget::Symbol(i) = r.target() else {
                    continue;
                };
                let name = file.symbol_by_index(i).unwrap().name().unwrap().to_string();
                if matches!(name.as_str(), "memcpy" | "memmove" | "memset") {
                    *calls
                        .entry(format!("{name} in {}", section.name().unwrap()))
                        .or_default() += 1;
                }
            }
        }
        assert_eq!(
            calls,
            [("memmove in xdp".to_string(), 2)].into(),
            "copy or zero with `words` in the XDP program"
        );
    }
}
