//! Running the program without an interface (BPF_PROG_TEST_RUN): over one frame, over a replay
//! batch (`batch_input`, `BatchRunner`), repeated for timing; and the object's benchmark programs
//! (`bench_pass`, `bench_tx`).

use anyhow::{Result, anyhow};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId};

use super::Kernel;

/// The benchmarks' trivial XDP_PASS program, in the same object.
const BASELINE: &str = "bench_pass";
const GENERATOR: &str = "bench_tx";

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

/// BPF_PROG_TEST_RUN keeps at most this much of its input in the frame's linear part: a page less
/// XDP's headroom (256 bytes) and the room for `skb_shared_info` (320 bytes on 64-bit kernels).
/// The rest would go to fragments, which a batch cannot use: the kernel program checks and
/// refuses such a batch (`REPLAY_BAD_LAYOUT`). Replay's `probe_max_input` confirms the figure.
pub fn batch_linear_max() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page.max(4096) as usize).saturating_sub(256 + 320)
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
        Ok(self.time_batch(input)?.0)
    }

    /// `run_batch`, with the kernel's time for the whole batch (the benchmarks).
    pub fn time_batch(&self, input: &[u8]) -> Result<(u32, std::time::Duration)> {
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
        Ok((r.return_value, r.duration))
    }
}

impl Kernel {
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

    /// The loaded program's id (what `bpftool prog` and `cargo xtask profile` name it by).
    pub fn program_id(&mut self) -> Result<u32> {
        Ok(self.program()?.info()?.id())
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
}
