//! `cargo xtask profile <row>` (`MINING_SENSOR_BENCH_PROFILE=<row>`): where one bench row's time
//! goes in the program, by source line. The row's packet runs through BPF_PROG_TEST_RUN for a few
//! seconds while `perf record` samples every CPU (the `cpu-clock` software event, which needs no
//! hardware counters, with call chains); each sample inside the program's JIT image is put on the
//! source line the kernel's line info gives for that address (`jited_line_info` of the program's
//! info, read with the `bpf` syscall, the lines from `bpftool prog dump xlated linum`), and each
//! sample in a kernel function the program called (a map helper, the ring buffer) on the line that
//! called it. Samples outside the program and its calls (the test run's own loop, idle) are left
//! out. Printed, and written to `target/bench/profile.txt`.
//!
//! A sample lands on the instruction the timer interrupted, so a slow instruction's cost may show
//! on the one after it (a helper's return on the line after its call). Figures are shares of the
//! samples in the program, not ns: what to change, not how much it costs (`--against` tells that).

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use mining_sensor::{bpf::Kernel, config::Config};

use crate::packets::{
    BATCHED_LOGIN_ROWS, BatchedLogins, LOGIN_NEW_FLOW_BATCHED_ROW, LOGIN_NEW_POOL_BATCHED_ROW,
    SUBMIT_COPIED_ROW, SUBMIT_ROW, copied_batch, crafted, drain, frames, login_notip,
};

/// What a row runs while `perf` samples.
enum Workload {
    /// A bench row's frame, in runs of 20,000 repeats.
    Repeat(Vec<u8>),
    /// The share as `per_packet_copied` runs it: every run copied into the sample ring.
    Copied(Vec<u8>),
    /// A new flow's login each run, warm, as `stratum_login_new_flow_batched` (or
    /// `stratum_login_new_pool_batched`) measures it.
    NewFlows(BatchedLogins),
}

impl Workload {
    /// The workload of `row`, with the program it runs on (loaded for replay for batches).
    fn of(row: &str, cfg: &Config) -> (Self, Kernel) {
        for (batched, pools) in BATCHED_LOGIN_ROWS {
            if row == batched {
                let mut k = Kernel::load_for_replay(cfg).unwrap();
                k.configure(cfg).unwrap();
                return (Self::NewFlows(BatchedLogins::new(&login_notip(), pools)), k);
            }
        }
        let copied = row == SUBMIT_COPIED_ROW;
        let name = if copied { SUBMIT_ROW } else { row };
        let all: Vec<(&str, Vec<u8>)> = frames().into_iter().chain(crafted()).collect();
        let Some((_, frame)) = all.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            panic!(
                "no bench row {row}: one of {}, {SUBMIT_COPIED_ROW}, \
                 {LOGIN_NEW_FLOW_BATCHED_ROW} or {LOGIN_NEW_POOL_BATCHED_ROW}",
                names.join(", ")
            )
        };
        let k = Kernel::load_with_ranges(cfg).unwrap();
        let frame = frame.clone();
        (
            if copied {
                Self::Copied(frame)
            } else {
                Self::Repeat(frame)
            },
            k,
        )
    }
}

/// The row's packet, run until `perf` is done.
pub(crate) fn profile(row: &str, seconds: u64, out_dir: &Path) {
    let cfg = Config::embedded_default();
    let (work, mut k) = Workload::of(row, &cfg);
    k.set_iface_slot(1, 1).unwrap();
    let mut rings = [k.take_events().unwrap(), k.take_samples().unwrap()];
    let id = k.program_id().unwrap();
    let image = Image::of(id);
    let data = out_dir.join("profile.data");
    eprintln!("bench: sampling {row} for {seconds} s (program id {id})");
    let mut perf = Command::new("perf")
        .args(["record", "-a", "-g", "-e", "cpu-clock", "-F", "10000", "-o"])
        .arg(&data)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf (Debian's linux-perf, which `cargo xtask setup` installs)");
    let started = Instant::now();
    let mut i = 0u64;
    if let Workload::Copied(f) = &work {
        // The flow made first, as the bench's runs before the copied share's make it: its
        // event is not a copy.
        k.test_run_repeat(f, 1, false).unwrap();
    }
    drain(&mut rings);
    while perf.try_wait().unwrap().is_none() {
        match &work {
            Workload::Copied(f) => {
                copied_batch(&mut k, &mut rings, f, i as usize);
            }
            Workload::Repeat(f) => {
                k.test_run_repeat(f, 20_000, false).unwrap();
            }
            Workload::NewFlows(b) => {
                b.sample(&mut k, &mut rings, i);
            }
        }
        drain(&mut rings);
        i += 1;
        assert!(
            started.elapsed() < Duration::from_secs(seconds + 60),
            "perf did not end"
        );
    }
    let script = Command::new("perf")
        .args(["script", "-F", "ip,sym", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let report = image.attribute(&String::from_utf8_lossy(&script.stdout), row);
    print!("{report}");
    std::fs::write(out_dir.join("profile.txt"), report).unwrap();
    let _ = std::fs::remove_file(&data);
}

/// The program's JIT image: each function's address range, and each line-info record's address
/// with its source line.
struct Image {
    functions: Vec<(u64, u64)>,
    /// (JIT address, "file:line  source"), by address.
    lines: Vec<(u64, String)>,
}

impl Image {
    fn of(id: u32) -> Self {
        let info = prog_info(id);
        let functions = info
            .ksyms
            .iter()
            .copied()
            .zip(info.func_lens.iter().map(|l| *l as u64))
            .collect();
        let xlated = Command::new("bpftool")
            .args(["prog", "dump", "xlated", "id", &id.to_string(), "linum"])
            .output()
            .expect("bpftool (Debian's bpftool, which `cargo xtask setup` installs)");
        let source = source_lines(&String::from_utf8_lossy(&xlated.stdout));
        let mut lines: Vec<(u64, &Line)> = info
            .line_insns
            .iter()
            .zip(&info.jited_lines)
            .filter_map(|(insn, addr)| Some((*addr, source.get(insn)?)))
            .collect();
        lines.sort_by_key(|(addr, _)| *addr);
        // A line of a dependency (aya's map helpers, core's integer methods) inlined into the
        // program says little alone: it is shown with the project's line before it in the
        // image, the one it was inlined for.
        let mut within: Option<&Line> = None;
        let lines = lines
            .into_iter()
            .map(|(addr, l)| {
                if l.own {
                    within = Some(l);
                    (addr, l.text.clone())
                } else {
                    let place = within.map_or("?", |w| w.place.as_str());
                    (addr, format!("{}  (in {place})", l.text))
                }
            })
            .collect();
        Self { functions, lines }
    }

    fn contains(&self, ip: u64) -> bool {
        self.functions
            .iter()
            .any(|&(at, len)| ip >= at && ip < at + len)
    }

    fn line(&self, ip: u64) -> &str {
        match self.lines.partition_point(|(a, _)| *a <= ip) {
            0 => "?",
            i => &self.lines[i - 1].1,
        }
    }

    /// The report over `perf script -F ip,sym` output (call chains: a sample's frames, one a
    /// line, innermost first, samples apart by a blank line).
    fn attribute(&self, script: &str, row: &str) -> String {
        let mut own: HashMap<String, u64> = HashMap::new();
        let mut functions: HashMap<String, u64> = HashMap::new();
        let mut helpers: HashMap<String, u64> = HashMap::new();
        let mut calls: HashMap<String, u64> = HashMap::new();
        let mut total = 0u64;
        for sample in script.split("\n\n") {
            let frames: Vec<(u64, &str)> = sample
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let ip = u64::from_str_radix(f.next()?, 16).ok()?;
                    Some((ip, f.next().unwrap_or("?")))
                })
                .collect();
            let Some(k) = frames.iter().position(|(ip, _)| self.contains(*ip)) else {
                continue;
            };
            total += 1;
            let (ip, sym) = frames[k];
            let line = self.line(ip).to_string();
            if k == 0 {
                *own.entry(line).or_default() += 1;
                *functions.entry(function(sym)).or_default() += 1;
            } else {
                let helper = frames[k - 1].1.split('+').next().unwrap_or("?").to_string();
                *calls.entry(format!("{helper:<28} {line}")).or_default() += 1;
                *helpers.entry(helper).or_default() += 1;
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{row}: {total} samples in the program or in what it called"
        );
        let share = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        let mut section = |title: &str, map: HashMap<String, u64>, top: usize| {
            let _ = writeln!(out, "-- {title}");
            let mut v: Vec<(String, u64)> = map.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (what, n) in v.into_iter().take(top) {
                let _ = writeln!(out, "{:5.1}% {n:7}  {what}", share(n));
            }
        };
        section("the program's functions (own code)", functions, 20);
        section("kernel functions it called", helpers, 15);
        section("own code by source line", own, 40);
        section("kernel functions by the line that called them", calls, 15);
        out
    }
}

/// `bpf_prog_<tag>_<name>+0x..` as `<name>`.
fn function(sym: &str) -> String {
    let name = sym.split('+').next().unwrap_or(sym);
    name.splitn(4, '_').nth(3).unwrap_or(name).to_string()
}

/// A source line as `bpftool prog dump xlated linum` prints it.
struct Line {
    /// `file:line`.
    place: String,
    /// `file:line` and the line's text, shortened.
    text: String,
    /// In the project's own sources (not a dependency's or the standard library's).
    own: bool,
}

/// Instruction index to its source line from `bpftool prog dump xlated linum`: each instruction
/// takes the line printed last before it.
fn source_lines(xlated: &str) -> HashMap<u32, Line> {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let workspace = std::fs::canonicalize(workspace).unwrap_or_default();
    let mut out = HashMap::new();
    let mut current: Option<(String, String, bool)> = None;
    for l in xlated.lines() {
        if let Some(rest) = l.strip_prefix("; ") {
            if let Some((text, at)) = rest.rsplit_once(" [file:") {
                let path = at.split_whitespace().next().unwrap_or("?");
                let file = path.rsplit('/').next().unwrap_or(path);
                let line = at
                    .split("line_num:")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or("?");
                let text: String = text.trim().chars().take(70).collect();
                let place = format!("{file}:{line}");
                let own = Path::new(path).starts_with(&workspace);
                current = Some((format!("{place:<28} {text}"), place, own));
            }
        } else if let Some((index, _)) = l.trim_start().split_once(": ")
            && let (Ok(i), Some((text, place, own))) = (index.parse::<u32>(), &current)
        {
            out.insert(
                i,
                Line {
                    place: place.clone(),
                    text: text.clone(),
                    own: *own,
                },
            );
        }
    }
    out
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a program's JIT image.
struct ProgInfo {
    ksyms: Vec<u64>,
    func_lens: Vec<u32>,
    /// Each line-info record's instruction index, and its address in the JIT image.
    line_insns: Vec<u32>,
    jited_lines: Vec<u64>,
}

/// `struct bpf_prog_info` (linux/bpf.h) up to the fields read here.
#[repr(C)]
#[derive(Default)]
struct BpfProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    run_time_ns: u64,
    run_cnt: u64,
}

/// The `bpf` syscall with `attr` (`union bpf_attr`, as much of it as `cmd` reads, the rest 0).
///
/// # Safety
/// Every pointer in `attr` must be valid for what `cmd` writes through it.
unsafe fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> libc::c_long {
    // SAFETY: `attr` is longer than what the commands used here read or write; its pointers are
    // the caller's.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    }
}

fn prog_info(id: u32) -> ProgInfo {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // The two commands read an id; or an fd, a length and a pointer.
    let mut attr = [0u64; 16];
    attr[0] = id as u64;
    // SAFETY: no pointers in `attr`.
    let fd = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) };
    assert!(fd >= 0, "program {id}: {}", std::io::Error::last_os_error());
    let get = |info: &mut BpfProgInfo| {
        let mut attr = [0u64; 16];
        attr[0] = fd as u64 | ((std::mem::size_of::<BpfProgInfo>() as u64) << 32);
        attr[1] = info as *mut BpfProgInfo as u64;
        // SAFETY: the kernel writes at most the length given into `info`, and into the buffers
        // its fields point at (vectors of the lengths their counts give) no more than the counts.
        let r = unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) };
        assert_eq!(r, 0, "program info: {}", std::io::Error::last_os_error());
    };
    let mut counts = BpfProgInfo::default();
    get(&mut counts);
    let mut ksyms = vec![0u64; counts.nr_jited_ksyms as usize];
    let mut func_lens = vec![0u32; counts.nr_jited_func_lens as usize];
    let record = counts.line_info_rec_size.max(16) as usize;
    let mut line_info = vec![0u8; counts.nr_line_info as usize * record];
    let mut jited_lines = vec![0u64; counts.nr_jited_line_info as usize];
    let mut info = BpfProgInfo {
        nr_jited_ksyms: counts.nr_jited_ksyms,
        jited_ksyms: ksyms.as_mut_ptr() as u64,
        nr_jited_func_lens: counts.nr_jited_func_lens,
        jited_func_lens: func_lens.as_mut_ptr() as u64,
        nr_line_info: counts.nr_line_info,
        line_info_rec_size: record as u32,
        line_info: line_info.as_mut_ptr() as u64,
        nr_jited_line_info: counts.nr_jited_line_info,
        jited_line_info_rec_size: 8,
        jited_line_info: jited_lines.as_mut_ptr() as u64,
        ..Default::default()
    };
    get(&mut info);
    // SAFETY: closing the fd the first call opened.
    unsafe { libc::close(fd as i32) };
    // `struct bpf_line_info`: insn_off is its first u32.
    let line_insns = line_info
        .chunks(record)
        .map(|r| u32::from_ne_bytes([r[0], r[1], r[2], r[3]]))
        .collect();
    ProgInfo {
        ksyms,
        func_lens,
        line_insns,
        jited_lines,
    }
}
