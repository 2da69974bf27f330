use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use mining_sensor::{
    agent::{self, RunOptions},
    config::{Config, XdpModeChoice},
};

/// Measures cryptocurrency-mining (Stratum) traffic and traffic of watched IP ranges at line rate
/// with an XDP program, and exports it to Prometheus.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CaptureMode {
    /// Mirror/SPAN port: candidate packets taken to userspace over AF_XDP.
    Tap,
    /// Live link: nothing taken from the stack.
    Inline,
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
        /// Packet path for deep inspection.
        #[arg(long, value_enum, default_value = "inline")]
        capture_mode: CaptureMode,
    },
    /// Validate a configuration file: exit 0 if valid, else name the bad field and line.
    CheckConfig { file: PathBuf },
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
        Command::CheckConfig { file } => match Config::from_file(&file) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid: {} ranges, {} prefixes",
                    file.display(),
                    cfg.ranges.len(),
                    cfg.prefix_count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            config,
            ifaces,
            listen,
            xdp_mode,
            capture_mode,
        } => {
            if capture_mode == CaptureMode::Tap {
                eprintln!(
                    "error: --capture-mode tap (AF_XDP deep inspection) is not built yet; run with --capture-mode inline"
                );
                return ExitCode::from(2);
            }
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(agent::run(RunOptions {
                config,
                ifaces,
                listen,
                xdp_mode,
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
