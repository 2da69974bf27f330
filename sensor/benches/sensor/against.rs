//! `cargo xtask bench --against <rev>` (`MINING_SENSOR_BENCH_AGAINST=<object>`): this revision's
//! program against another revision's, both loaded in this one process and measured turn about,
//! so that what the machine does meanwhile (this VM's speed drifts by a third within minutes)
//! falls on both alike. Benchmark builds run one after the other could not resolve differences
//! of 10% (README, "What those steps cost"); pairs taken moments apart can, with one more care:
//! two loads of the same object differ too. Compared with itself in one process, each loaded
//! once, the program loaded first was slower on a share in three runs of three (by 14 to 19 ns)
//! and on a new flow's login by 54 and 11 ns in two, faster by 26 in the third, each time with a
//! narrow interval: where the JIT's image and the maps land in memory moves a figure by as much
//! as a change of the program does. So the comparison runs in
//! blocks, each with both programs loaded afresh (the one loaded first alternating), and a
//! difference counts only as far as the blocks agree.
//!
//! In each block, for each per-packet row (`MINING_SENSOR_BENCH_ROWS` selects, as for the full
//! bench), a pair is one run of each program over the same packet (a tenth of the bench's
//! `repeat`, the kernel's average), the one that goes first alternating, plus a run of the
//! baseline; the copied share pairs a batch of `per_packet_copied` on each, and the new flow's
//! login a sample of `per_packet_first_batched` on each (programs loaded for replay). Printed
//! per row: each program's median over XDP_PASS, the median of the blocks' median differences
//! (this minus the other, ns per packet), the smallest and largest of them, and the verdict: a
//! sign test over the blocks, resolved when as many agree on which is faster as a fair coin
//! would give at most one time in 40 either way (9 of 10 blocks, 13 of 16). The mirrored frames'
//! rows (`packets::tunneled`) run on a pair of their own, loaded with `decapsulate` naming both
//! tunnels.

use mining_sensor::{bpf::Kernel, config::Config};
use serde_json::json;

use crate::{
    Opts, median,
    packets::{
        BATCHED_LOGIN_ROWS, BatchedLogins, COPIED_BATCH, Pools, SUBMIT_COPIED_ROW, SUBMIT_ROW,
        copied_batch, copied_batches, crafted, decapsulating, drain, frames, login_notip, tunneled,
    },
};

type Rings = [aya::maps::RingBuf<aya::maps::MapData>; 2];
/// A block's pairs: ns per packet of this program, of the other and of the baseline.
type Pairs = Vec<(f64, f64, f64)>;

/// A program loaded to be measured, with its rings.
struct Side {
    k: Kernel,
    rings: Rings,
}

impl Side {
    fn new(mut k: Kernel, cfg: &Config) -> Self {
        k.configure(cfg).unwrap();
        k.set_iface_slot(1, 1).unwrap();
        let rings = [k.take_events().unwrap(), k.take_samples().unwrap()];
        Self { k, rings }
    }
}

/// One row's figures over the blocks: each program's ns over XDP_PASS per pair, and each
/// block's median difference.
#[derive(Default)]
struct Compared {
    this: Vec<f64>,
    other: Vec<f64>,
    blocks: Vec<f64>,
}

impl Compared {
    /// Adds a block's pairs: (this, other, baseline) ns per packet.
    fn block(&mut self, pairs: &[(f64, f64, f64)]) {
        self.this.extend(pairs.iter().map(|p| p.0 - p.2));
        self.other.extend(pairs.iter().map(|p| p.1 - p.2));
        self.blocks
            .push(median(pairs.iter().map(|p| p.0 - p.1).collect()));
    }

    /// The median of the blocks' differences, the smallest and the largest.
    fn spread(&self) -> (f64, f64, f64) {
        let lo = self.blocks.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self
            .blocks
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, median(self.blocks.clone()), hi)
    }

    fn verdict(&self) -> &'static str {
        let n = self.blocks.len();
        let slower = self.blocks.iter().filter(|d| **d > 0.0).count();
        let faster = self.blocks.iter().filter(|d| **d < 0.0).count();
        let needed = test_support::sign_test::agreeing(n);
        if faster >= needed {
            "this faster"
        } else if slower >= needed {
            "this slower"
        } else {
            "not resolved"
        }
    }
}

/// Runs the comparison against the object at `path` and prints it; writes
/// `target/bench/against.json`.
pub(crate) fn compare(
    path: &str,
    wanted: &dyn Fn(&str) -> bool,
    o: &Opts,
    out_dir: &std::path::Path,
) {
    let object = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "MINING_SENSOR_BENCH_AGAINST={path}: {e} (give the `sensor` object another revision's \
             build.rs wrote, or run `cargo xtask bench --against <rev>`, which builds it)"
        )
    });
    let cfg = Config::embedded_default();
    // The mirrored frames' rows (`tunneled`) run on programs loaded with both tunnels named.
    let decap = decapsulating(&cfg);
    let load = |side: usize, replay: bool, cfg: &Config| {
        let k = match (side, replay) {
            (0, false) => Kernel::load(cfg),
            (0, true) => Kernel::load_for_replay(cfg),
            (_, false) => Kernel::load_object(cfg, &object),
            (_, true) => Kernel::load_for_replay_object(cfg, &object),
        };
        Side::new(
            k.unwrap_or_else(|e| panic!("loading side {side}: {e:#}")),
            cfg,
        )
    };
    // Both programs loaded afresh, the first of them alternating by block.
    let load_pair = |block: usize, replay: bool, cfg: &Config| {
        let mut loaded: [Option<Side>; 2] = [None, None];
        for s in order(block) {
            loaded[s] = Some(load(s, replay, cfg));
        }
        loaded.map(|s| s.expect("both loaded"))
    };
    let rows: Vec<(&str, Vec<u8>)> = frames()
        .into_iter()
        .chain(crafted())
        .filter(|(n, _)| wanted(n))
        .collect();
    let mirrored: Vec<(&str, Vec<u8>)> =
        tunneled().into_iter().filter(|(n, _)| wanted(n)).collect();
    let new_flow = wanted("stratum_login");
    let blocks = if o.quick { 10 } else { 16 };
    let mut figures: Vec<(String, Compared)> = Vec::new();
    let mut row = |name: &str| -> usize {
        match figures.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                figures.push((name.to_string(), Compared::default()));
                figures.len() - 1
            }
        }
    };
    let mut results: Vec<(usize, Pairs)> = Vec::new();
    for block in 0..blocks {
        eprintln!(
            "bench: block {} of {blocks}, both programs loaded afresh",
            block + 1
        );
        let mut sides = load_pair(block, false, &cfg);
        for (name, frame) in &rows {
            results.push((row(name), per_packet(&mut sides, frame, o, blocks)));
            if *name == SUBMIT_ROW {
                results.push((row(SUBMIT_COPIED_ROW), copied(&mut sides, frame, o, blocks)));
            }
        }
        drop(sides);
        if !mirrored.is_empty() {
            let mut sides = load_pair(block, false, &decap);
            for (name, frame) in &mirrored {
                results.push((row(name), per_packet(&mut sides, frame, o, blocks)));
            }
        }
        if new_flow {
            let mut replay = load_pair(block, true, &cfg);
            for (name, pools) in BATCHED_LOGIN_ROWS {
                results.push((row(name), new_flow_batched(&mut replay, pools, o, blocks)));
            }
        }
    }
    for (i, pairs) in results {
        figures[i].1.block(&pairs);
    }
    println!(
        "{:<36} {:>8} {:>8} {:>8} {:>17} {:>7}  verdict",
        "row (ns over XDP_PASS)", "this", "against", "diff", "blocks' diffs", "pairs"
    );
    let mut json_rows = serde_json::Map::new();
    for (name, c) in &figures {
        let (lo, m, hi) = c.spread();
        let (this, other) = (median(c.this.clone()), median(c.other.clone()));
        println!(
            "{name:<36} {this:>8.1} {other:>8.1} {m:>+8.1} {:>17} {:>7}  {}",
            format!("{lo:+.0} to {hi:+.0}"),
            c.this.len(),
            c.verdict()
        );
        json_rows.insert(
            name.clone(),
            json!({"this_ns": this, "against_ns": other, "diff_ns": m,
                   "block_diffs_ns": c.blocks, "pairs": c.this.len(),
                   "verdict": c.verdict()}),
        );
    }
    let report = json!({"against": path, "blocks": blocks, "rows": json_rows});
    std::fs::write(
        out_dir.join("against.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
}

/// `n` pairs: `run(side, program, pair)` on each program, the one that goes first alternating,
/// then `base` on this one's baseline.
fn turn_about(
    sides: &mut [Side; 2],
    n: usize,
    mut run: impl FnMut(usize, &mut Side, usize) -> f64,
    mut base: impl FnMut(&mut Side) -> f64,
) -> Pairs {
    (0..n)
        .map(|i| {
            let mut ns = [0.0; 2];
            for s in order(i) {
                ns[s] = run(s, &mut sides[s], i);
            }
            (ns[0], ns[1], base(&mut sides[0]))
        })
        .collect()
}

/// `per_packet`'s runs in a block: the bench's own number of runs, spread over the blocks at
/// ten times its density (21 a block quick, 14 full), each a tenth of its `repeat`, so that the
/// drift within a pair is small.
fn per_packet(sides: &mut [Side; 2], frame: &[u8], o: &Opts, blocks: usize) -> Pairs {
    let (runs, repeat) = ((o.runs * 10).div_ceil(blocks), o.repeat / 10);
    let time = |s: &mut Side, baseline: bool| {
        s.k.test_run_repeat(frame, repeat, baseline)
            .unwrap()
            .as_nanos() as f64
    };
    turn_about(sides, runs, |_, s, _| time(s, false), |s| time(s, true))
}

/// `per_packet_copied`'s batches in a block: a batch of each program per pair.
fn copied(sides: &mut [Side; 2], frame: &[u8], o: &Opts, blocks: usize) -> Pairs {
    for s in sides.iter_mut() {
        drain(&mut s.rings);
    }
    turn_about(
        sides,
        copied_batches(o).div_ceil(blocks),
        |_, s, i| copied_batch(&mut s.k, &mut s.rings, frame, i),
        |s| {
            s.k.test_run_repeat(frame, COPIED_BATCH, true)
                .unwrap()
                .as_nanos() as f64
        },
    )
}

/// `per_packet_first_batched`'s samples in a block, a sample of each program per pair: each
/// program's figure per sample is its batches' difference over the logins after the first,
/// plus the not-IP frame's own cost over XDP_PASS (measured on each program once a block); the
/// baseline is 0, that cost being in the figure already.
fn new_flow_batched(sides: &mut [Side; 2], pools: Pools, o: &Opts, blocks: usize) -> Pairs {
    let notip = login_notip();
    let b = BatchedLogins::new(&notip, pools);
    let mut notip_over = [0.0; 2];
    for (s, side) in sides.iter_mut().enumerate() {
        let (ns, base) = crate::packets::per_packet(std::slice::from_mut(&mut side.k), &notip, o);
        notip_over[s] = ns - base;
        side.k.clear_flows().unwrap();
        drain(&mut side.rings);
    }
    turn_about(
        sides,
        b.samples(o).div_ceil(blocks as u64) as usize,
        |p, s, i| {
            let (with, without, _) = b.sample(&mut s.k, &mut s.rings, i as u64);
            (with - without) / (b.n - 1) as f64 + notip_over[p]
        },
        |_| 0.0,
    )
}

/// Which program goes first in pair or block `i`: this one in even ones, the other in odd ones.
fn order(i: usize) -> [usize; 2] {
    if i.is_multiple_of(2) { [0, 1] } else { [1, 0] }
}
