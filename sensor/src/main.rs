use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use mining_sensor::{
    config::{CaptureMode, Config, XdpModeChoice},
    run::{self, RunOptions},
};

/// Measures cryptocurrency-mining (Stratum) traffic and traffic of watched IP ranges at line rate
/// with an XDP program, and exports it to Prometheus.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to interfaces and serve metrics until SIGTERM/SIGINT (SIGHUP reloads --config).
    Run {
        /// TOML configuration; without it, the embedded default (range `kp`, North Korea).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Interface to watch (repeat for several); overrides the configuration's interfaces.
        #[arg(long = "iface")]
        ifaces: Vec<String>,
        /// Metrics address, e.g. 127.0.0.1:9820.
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[arg(long, value_enum)]
        xdp_mode: Option<XdpModeChoice>,
        /// Packet path of deep inspection; overrides the configuration's inspect.capture_mode
        /// (default inline).
        #[arg(long, value_enum)]
        capture_mode: Option<CaptureMode>,
    },
    /// Validate a configuration file: exit 0 if valid, else name the bad field and line.
    CheckConfig { file: PathBuf },
    /// Run the same XDP program over capture files (pcap, pcapng, gzip-compressed) and report
    /// what `run` would have counted. Needs root (BPF_PROG_TEST_RUN).
    Replay {
        /// TOML configuration; without it, the embedded default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the counters as OpenMetrics with a timestamp at every bucket boundary.
        #[arg(long, value_name = "OUT")]
        openmetrics: Option<PathBuf>,
        /// Write the report as JSON.
        #[arg(long, value_name = "OUT")]
        json: Option<PathBuf>,
        /// Write a self-contained HTML page: timelines per range and the first/last-third ratio.
        #[arg(long, value_name = "OUT.html")]
        report: Option<PathBuf>,
        /// Bucket length for the time series, e.g. 1h, 1d, 5m.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        bucket: std::time::Duration,
        /// Stop at the first bad record instead of reporting it and going on.
        #[arg(long)]
        strict: bool,
        /// Read frames in these tunnels as the frame inside (a remote mirror session's capture),
        /// besides the configuration's `decapsulate`: erspan (ERSPAN I to III, Ethernet in GRE),
        /// vxlan (UDP port 4789). Repeat or separate with commas.
        #[arg(long, value_enum, value_delimiter = ',', value_name = "TUNNEL")]
        decapsulate: Vec<mining_sensor::config::Tunnel>,
        /// Show dates and the hour-of-week map in this offset from UTC, e.g. +09:00 (default UTC).
        #[arg(long, value_name = "+HH:MM", default_value = "UTC", value_parser = parse_offset)]
        utc_offset: mining_sensor::replay::report::time::UtcOffset,
        #[arg(required = true, value_name = "PCAP")]
        files: Vec<PathBuf>,
    },
}

fn parse_offset(text: &str) -> anyhow::Result<mining_sensor::replay::report::time::UtcOffset> {
    mining_sensor::replay::report::time::UtcOffset::parse(text)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("MINING_SENSOR_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::from_file(&file).and_then(|cfg| {
            if let Some(web) = &cfg.web_config {
                mining_sensor::metrics::web::WebConfig::load(web).map_err(|e| {
                    mining_sensor::config::ConfigError {
                        file: file.display().to_string(),
                        line: None,
                        message: format!("web_config: {e:#}"),
                    }
                })?;
            }
            Ok(cfg)
        }) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid: {} ranges, {} prefixes, {} neighbours",
                    file.display(),
                    cfg.ranges.len(),
                    cfg.prefix_count(),
                    cfg.peers.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Replay {
            config,
            openmetrics,
            json,
            report,
            bucket,
            strict,
            decapsulate,
            utc_offset,
            files,
        } => {
            let quiet = openmetrics.is_some() || json.is_some() || report.is_some();
            let started = std::time::Instant::now();
            match mining_sensor::replay::replay(mining_sensor::replay::ReplayOptions {
                config,
                files,
                openmetrics,
                json,
                report,
                bucket,
                strict,
                decapsulate,
                utc_offset,
            }) {
                Ok(report) => {
                    if !quiet {
                        print!("{}", mining_sensor::replay::summary(&report, utc_offset));
                    }
                    let packets: u64 = report.files.iter().map(|f| f.packets).sum();
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "replayed {packets} packets from {} files in {secs:.2} s ({:.0} packets/s, start-up included)",
                        report.files.len(),
                        packets as f64 / secs.max(1e-9),
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config,
            ifaces,
            listen,
            xdp_mode,
            capture_mode,
        } => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run::run(RunOptions {
                config,
                ifaces,
                listen,
                xdp_mode,
                capture_mode,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
