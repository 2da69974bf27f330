//! Running packets in the kernel: packets batched per worker (both directions of a flow on the
//! same one), batches grouped into jobs, one worker thread pinned to each CPU replay may use, each
//! running its jobs through BPF_PROG_TEST_RUN, and the return codes checked.

use std::{io, time::Duration};

use anyhow::{Result, anyhow, bail};
use sensor_common::{
    REPLAY_BAD_HEADER, REPLAY_BAD_LAYOUT, REPLAY_BATCH_MAX, REPLAY_DONE, REPLAY_TAIL_CALL_FAILED,
    ReplayHeader,
};

use super::whole::Whole;
use crate::bpf::BatchRunner;

/// A packet on its way to the kernel.
pub(super) struct Queued {
    pub(super) ts: Duration,
    pub(super) file: usize,
    /// Its number in its file, for messages.
    pub(super) packet: u64,
    pub(super) data: Vec<u8>,
    /// Its length on the wire.
    pub(super) wire_len: usize,
}

/// The ingress interface that stands for capture file `file` (files are numbered from 0; index 0
/// is no interface).
pub(super) fn file_ifindex(file: usize) -> u32 {
    file as u32 + 1
}

impl Queued {
    /// What the program takes for its ingress interface, and what its samples carry back.
    fn ifindex(&self) -> u32 {
        file_ifindex(self.file)
    }

    /// Its capture time in ns since the Unix epoch: the program's clock for it, and its samples'.
    fn ts_ns(&self) -> u64 {
        self.ts.as_nanos() as u64
    }
}

/// One BPF_PROG_TEST_RUN's packets. The worker lays them out and, once they ran, drops them: the
/// dispatching thread, which every packet passes through, neither copies nor frees frames.
struct Batch {
    packets: Vec<Queued>,
    /// How many packets, and the first one's file and number, for messages (`packets` comes
    /// back empty).
    n: u32,
    file: usize,
    packet: u64,
}

/// Batches handed to a worker at once: one hand-over (a thread wake-up) per `JOB_PACKETS`
/// packets rather than per batch.
struct Job {
    batches: Vec<Batch>,
    packets: usize,
    /// Its frames longer than a sample's copy, kept whole in `Dispatch::whole` while it runs.
    kept: Vec<u64>,
}

/// Packets per job. Bounds what the jobs in flight can write into the rings (see `ring_room`).
const JOB_PACKETS: usize = 256;

struct Done {
    job: Job,
    /// The program's return value for each batch run, up to the first that failed to run.
    codes: Vec<u32>,
    error: Option<anyhow::Error>,
}

/// Ring bytes that hold whatever `jobs` jobs in flight can write: per packet, at most one sample,
/// and at most one Stratum flow event and one suspect event per reason.
pub(super) fn ring_room(jobs: usize) -> (u32, u32) {
    let record = |size: usize| size + 16;
    // The largest sample record: a whole copy with the event of the flow it opened.
    let samples = jobs
        * JOB_PACKETS
        * record(sensor_common::SAMPLE_OPENED_HEADER + sensor_common::SAMPLE_BYTES);
    let events = jobs
        * JOB_PACKETS
        * (1 + sensor_common::Reason::COUNT)
        * record(std::mem::size_of::<sensor_common::Event>());
    (
        samples.next_power_of_two() as u32,
        events.next_power_of_two() as u32,
    )
}

/// The largest batch this kernel keeps whole in the frame's linear part, starting from
/// `bpf::batch_linear_max`: a batch of two frames that are not IP (an experimental EtherType,
/// which the program only counts in `parse_events_total{event="seen"}` and `"not_ip"`, never in
/// what replay reports) either runs whole or is refused before anything of it runs.
fn probe_max_input(runner: &BatchRunner<'_>) -> Result<usize> {
    let mut max = crate::bpf::batch_linear_max();
    let mut input = Vec::new();
    while max >= 1024 {
        let second = 64;
        let first = max - 2 * ReplayHeader::SIZE - second;
        let frame = |len: usize| {
            let mut f = vec![0u8; len];
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f
        };
        let probe = [first, second].map(|len| Queued {
            ts: Duration::ZERO,
            file: 0,
            packet: 0,
            data: frame(len),
            wire_len: len,
        });
        layout(&probe, &mut input);
        match runner.run_batch(&input)? {
            code if code == REPLAY_DONE + 2 => return Ok(max),
            REPLAY_BAD_LAYOUT => max -= 64,
            code => bail!("the replay program refused its probe batch (code {code:#x})"),
        }
    }
    bail!("this kernel runs no replay batch of 1024 bytes whole")
}

/// Lays `packets` out for one BPF_PROG_TEST_RUN (see `bpf::batch_input`).
fn layout(packets: &[Queued], out: &mut Vec<u8>) {
    crate::bpf::batch_input(
        packets.iter().map(|p| crate::bpf::BatchPacket {
            ts_ns: p.ts_ns(),
            ifindex: p.ifindex(),
            data: &p.data,
            wire_len: p.wire_len,
        }),
        out,
    );
}

/// The worker a frame's flow runs on: both directions of a flow on the same one, so that its
/// packets run in capture order (the flow's first packet decides its dialect and direction, and
/// deep inspection reads a flow's messages in order). Frames without a transport flow go to 0.
fn flow_worker(frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Some(t) = crate::inspect::frame::transport(frame) else {
        return 0;
    };
    let wide = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => u32::from(a) as u128,
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    let (a, b) = ((wide(t.src), t.sport), (wide(t.dst), t.dport));
    let (lo, hi) = (a.min(b), a.max(b));
    // A multiply-xorshift mix rather than SipHash: the shard only spreads load (a capture is the
    // analyst's own input), and every packet is hashed on the one dispatching thread
    // (BENCHMARKS.md, "Measurements behind replay's code").
    let h = [
        lo.0 as u64,
        (lo.0 >> 64) as u64,
        lo.1 as u64,
        hi.0 as u64,
        (hi.0 >> 64) as u64,
        hi.1 as u64,
    ]
    .into_iter()
    .fold(t.proto as u64, sensor_common::mix);
    (h % workers as u64) as usize
}

/// The CPUs replay may use (its affinity mask): one worker each.
pub(super) fn worker_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with the set's real size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let cpus: Vec<usize> = if rc == 0 {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: c is below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pins the calling thread to `cpu`. A worker must own its CPU: the program's per-CPU scratch
/// memory assumes no second run on the same CPU at the same time.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as in worker_cpus; cpu comes from this process's own affinity mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Replay's packets batched per worker (see `ReplayHeader`), batches grouped into jobs; each
/// worker thread owns a CPU and runs its jobs in order. At most `max_inflight` jobs are out at
/// once, so the rings the kernel reports through never hold more than that many jobs' output.
pub(super) struct Dispatch {
    jobs: Vec<std::sync::mpsc::Sender<Job>>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Each worker's batch being filled, and its size as input.
    pending: Vec<Vec<Queued>>,
    pending_bytes: Vec<usize>,
    /// Each worker's job being filled.
    open: Vec<Job>,
    inflight: usize,
    max_inflight: usize,
    pub(super) max_input: usize,
    spare_lists: Vec<Vec<Queued>>,
    names: Vec<String>,
    /// Frames of the jobs in flight longer than a sample's copy, for deep inspection.
    whole: Whole,
}

impl Dispatch {
    pub(super) fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        runner: BatchRunner<'scope>,
        cpus: &[usize],
        max_inflight: usize,
        names: Vec<String>,
    ) -> Result<Self> {
        let max_input = probe_max_input(&runner)?;
        let (done_tx, done) = std::sync::mpsc::channel::<Done>();
        let mut jobs = Vec::new();
        for &cpu in cpus {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            jobs.push(tx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let pinned = pin_to(cpu);
                let mut input = Vec::new();
                for mut job in rx {
                    let mut codes = Vec::with_capacity(job.batches.len());
                    let mut error = None;
                    for batch in &mut job.batches {
                        layout(&batch.packets, &mut input);
                        let result = match &pinned {
                            Ok(()) => runner.run_batch(&input),
                            Err(e) => Err(anyhow!("cannot pin a replay worker to CPU {cpu}: {e}")),
                        };
                        batch.packets.clear();
                        match result {
                            Ok(code) => codes.push(code),
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    if done_tx.send(Done { job, codes, error }).is_err() {
                        break;
                    }
                }
            });
        }
        let workers = jobs.len();
        Ok(Self {
            jobs,
            done,
            pending: (0..workers).map(|_| Vec::new()).collect(),
            pending_bytes: vec![0; workers],
            open: (0..workers)
                .map(|_| Job {
                    batches: Vec::new(),
                    packets: 0,
                    kept: Vec::new(),
                })
                .collect(),
            inflight: 0,
            max_inflight,
            max_input,
            spare_lists: Vec::new(),
            names,
            whole: Whole::default(),
        })
    }

    /// Queues a packet on its flow's worker. A packet longer than a batch holds is cut to fit:
    /// its header says how long it was, and its IP length checks against that. A packet longer
    /// than a sample's copy is kept whole (`Whole`) until its job has run and the rings were read.
    pub(super) fn push(
        &mut self,
        mut q: Queued,
        after: &mut impl FnMut(&mut Whole) -> Result<()>,
    ) -> Result<()> {
        let w = flow_worker(&q.data, self.jobs.len());
        let kept = Whole::wanted(q.data.len()).then(|| {
            self.whole
                .keep(q.ifindex(), q.ts_ns(), q.wire_len as u32, &q.data)
        });
        q.data.truncate(self.max_input - ReplayHeader::SIZE);
        let size = ReplayHeader::SIZE + q.data.len();
        if !self.pending[w].is_empty() && self.pending_bytes[w] + size > self.max_input {
            self.close_batch(w, after)?;
        }
        // The job the packet's batch will be in (`close_batch` above may have sent the last).
        self.open[w].kept.extend(kept);
        self.pending[w].push(q);
        self.pending_bytes[w] += size;
        if self.pending[w].len() >= REPLAY_BATCH_MAX {
            self.close_batch(w, after)?;
        }
        Ok(())
    }

    /// Lays the worker's pending packets out as a batch of its open job; sends the job when full.
    fn close_batch(
        &mut self,
        w: usize,
        after: &mut impl FnMut(&mut Whole) -> Result<()>,
    ) -> Result<()> {
        if self.pending[w].is_empty() {
            return Ok(());
        }
        let fresh = self.spare_lists.pop().unwrap_or_default();
        let packets = std::mem::replace(&mut self.pending[w], fresh);
        self.pending_bytes[w] = 0;
        self.open[w].packets += packets.len();
        let (file, packet) = (packets[0].file, packets[0].packet);
        self.open[w].batches.push(Batch {
            n: packets.len() as u32,
            packets,
            file,
            packet,
        });
        if self.open[w].packets >= JOB_PACKETS {
            self.send(w, after)?;
        }
        Ok(())
    }

    fn send(&mut self, w: usize, after: &mut impl FnMut(&mut Whole) -> Result<()>) -> Result<()> {
        if self.open[w].batches.is_empty() {
            return Ok(());
        }
        let job = std::mem::replace(
            &mut self.open[w],
            Job {
                batches: Vec::new(),
                packets: 0,
                kept: Vec::new(),
            },
        );
        while self.inflight >= self.max_inflight {
            self.complete_one(after)?;
        }
        self.jobs[w]
            .send(job)
            .map_err(|_| anyhow!("a replay worker stopped"))?;
        self.inflight += 1;
        // Whatever finished meanwhile is read now, not to keep the rings full.
        while let Ok(done) = self.done.try_recv() {
            self.inflight -= 1;
            self.check(done, after)?;
        }
        Ok(())
    }

    fn complete_one(&mut self, after: &mut impl FnMut(&mut Whole) -> Result<()>) -> Result<()> {
        let done = self
            .done
            .recv()
            .map_err(|_| anyhow!("the replay workers stopped"))?;
        self.inflight -= 1;
        self.check(done, after)
    }

    fn check(
        &mut self,
        done: Done,
        after: &mut impl FnMut(&mut Whole) -> Result<()>,
    ) -> Result<()> {
        let Done {
            mut job,
            codes,
            error,
        } = done;
        let kept = std::mem::take(&mut job.kept);
        for (i, batch) in job.batches.into_iter().enumerate() {
            let n = batch.n;
            let at = || {
                format!(
                    "{}: packet {} (in a batch of {n})",
                    self.names[batch.file], batch.packet
                )
            };
            let Some(&code) = codes.get(i) else {
                let e = error.unwrap_or_else(|| anyhow!("the batch was not run"));
                return Err(e.context(at()));
            };
            if code != REPLAY_DONE + n {
                let k = code & 0xff_ffff;
                let what = match code & !0xff_ffff {
                    REPLAY_BAD_LAYOUT => "the batch did not fit the frame",
                    REPLAY_BAD_HEADER => {
                        "a packet header did not fit, or a bound could not be moved"
                    }
                    REPLAY_TAIL_CALL_FAILED => "the tail call to the next packet failed",
                    REPLAY_DONE => "it stopped early",
                    _ => "unexpected return value",
                };
                bail!(
                    "{}: the kernel program ran {k} of {n} packets of a batch: {what} (code {code:#x})",
                    at()
                );
            }
            // Emptied by the worker once the batch ran.
            self.spare_lists.push(batch.packets);
        }
        after(&mut self.whole)?;
        self.whole.forget(&kept);
        Ok(())
    }

    /// Sends every pending batch and waits until all have run and their output is read.
    pub(super) fn finish(
        &mut self,
        after: &mut impl FnMut(&mut Whole) -> Result<()>,
    ) -> Result<()> {
        for w in 0..self.jobs.len() {
            self.close_batch(w, after)?;
            self.send(w, after)?;
        }
        while self.inflight > 0 {
            self.complete_one(after)?;
        }
        after(&mut self.whole)
    }
}
