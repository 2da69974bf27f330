//! The TOML configuration: parsing, validation and the embedded default.
//!
//! Every error names the file, the line, the field and the bad value, and says what would be valid.
//! Host bits in a prefix (`10.1.2.3/8`) are not an error: the prefix is normalised to its network
//! (`10.0.0.0/8`) and a warning says so, because that is what the operator meant in every case
//! we know of, and refusing would take a sensor down over a cosmetic slip.

use std::{
    collections::HashMap, fmt, net::SocketAddr, ops::Range as ByteRange, path::Path, time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use sensor_common::MAX_RANGES;

/// The configuration `run` uses without `--config`: North Korea's ranges as `kp`.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

/// Reserved `range` label value for Stratum traffic outside every watched range.
pub const UNWATCHED: &str = "unwatched";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeChoice {
    /// Native (driver) mode where the driver supports it, generic otherwise (and say so).
    Auto,
    /// Driver mode only: fail if the driver cannot.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

/// The packet path of deep inspection (`--capture-mode`, `inspect.capture_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// Mirror/SPAN port: candidate packets are redirected to AF_XDP sockets, one per receive queue
    /// (the stack never sees them; on a mirror port it does not need them).
    Tap,
    /// Live link: every packet passes; the first bytes of candidates are copied to userspace.
    Inline,
}

impl CaptureMode {
    /// The kernel program's `CAPTURE_MODE`.
    pub fn kernel_value(self) -> u32 {
        match self {
            Self::Tap => sensor_common::CAPTURE_TAP,
            Self::Inline => sensor_common::CAPTURE_INLINE,
        }
    }

    /// The `path` label of what it carries.
    pub fn path_label(self) -> &'static str {
        match self {
            Self::Tap => "afxdp",
            Self::Inline => "copy",
        }
    }
}

/// Whether AF_XDP sockets may bind in zero-copy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopyChoice {
    /// Zero-copy where the driver supports it, copy mode otherwise (the agent logs which).
    Auto,
    /// Copy mode only.
    Never,
}

/// Deep inspection of candidate packets (Stratum signatures, first data packets of suspect flows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspect {
    pub capture_mode: CaptureMode,
    /// Packets per flow (and per suspect reason) handed to deep inspection; 0 turns it off.
    pub budget: u32,
    /// `inline`: bytes of the kernel's sample ring buffer (a power of two).
    pub sample_ring_bytes: u32,
    /// `tap`: UMEM frames per AF_XDP socket.
    pub frames: u32,
    /// `tap`: entries of each socket's receive and fill rings (a power of two).
    pub ring_size: u32,
    pub zero_copy: ZeroCopyChoice,
    /// Key of the login hash (at least 32 bytes in the file; only the first 32 are used); without
    /// it, a random key per start, so hashes are comparable only within one process's life.
    pub login_key_file: Option<std::path::PathBuf>,
    /// Window of the distinct-miners gauge.
    pub distinct_window: Duration,
}

impl Default for Inspect {
    fn default() -> Self {
        Self {
            capture_mode: CaptureMode::Inline,
            budget: 8,
            sample_ring_bytes: 1 << 20,
            frames: 4096,
            ring_size: 2048,
            zero_copy: ZeroCopyChoice::Auto,
            login_key_file: None,
            distinct_window: Duration::from_secs(3600),
        }
    }
}

/// Where flow events go: JSON lines on standard output, in a file rotated by size, or nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSink {
    Stdout,
    File {
        path: std::path::PathBuf,
        /// Rotate when the file reaches this size.
        max_bytes: u64,
        /// Rotated files kept besides the current one (`path.1` is the newest).
        keep: u32,
    },
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    pub sink: EventSink,
    /// Bytes of the kernel's event ring buffer (a power of two, at least one page).
    pub ring_bytes: u32,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sink: EventSink::Stdout,
            ring_bytes: 256 * 1024,
        }
    }
}

/// Pool knowledge for the signals without content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pools {
    /// Ports pools listen on (the `stratum_v2` signal looks only there).
    pub ports: Vec<u16>,
    /// Pool addresses: traffic to or from them is the `pool_endpoint` signal.
    pub endpoints: Vec<IpNet>,
    /// Pool domains (lower case, no trailing dot): a DNS query for a name in one is the
    /// `pool_dns` signal.
    pub domains: Vec<String>,
}

/// Pool domains in public rules and lists (shared/docs/stratum-on-the-wire.md). minexmr.com closed
/// in 2022 but is in historical captures.
pub const DEFAULT_POOL_DOMAINS: [&str; 11] = [
    "supportxmr.com",
    "minexmr.com",
    "nanopool.org",
    "moneroocean.stream",
    "hashvault.pro",
    "2miners.com",
    "herominers.com",
    "c3pool.com",
    "xmrpool.eu",
    "monerohash.com",
    "minergate.com",
];

/// Pool ports seen in the wild (shared/docs/stratum-on-the-wire.md): signals, never proof. 443 and
/// 80, which pools also use to evade firewalls, are left out: too much else runs there.
pub const DEFAULT_POOL_PORTS: [u16; 19] = [
    3333, 4444, 5555, 7777, 9000, 14433, 14444, 20128, 34254, 45560, 45700, 10001, 10002, 10004,
    10008, 10016, 10032, 10064, 10128,
];

impl Default for Pools {
    fn default() -> Self {
        Self {
            ports: DEFAULT_POOL_PORTS.to_vec(),
            endpoints: Vec::new(),
            domains: DEFAULT_POOL_DOMAINS.iter().map(|d| d.to_string()).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub name: String,
    pub cidrs: Vec<IpNet>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub listen: SocketAddr,
    pub xdp_mode: XdpModeChoice,
    pub drain_interval: Duration,
    pub flow_table_size: u32,
    pub flow_idle_timeout: Duration,
    pub max_prefixes: u32,
    pub ranges: Vec<Range>,
    /// Web configuration (TLS, basic authentication) for the metrics endpoint; relative to the
    /// configuration file's folder when relative.
    pub web_config: Option<std::path::PathBuf>,
    /// Reload when the configuration file's content changes, as on SIGHUP.
    pub watch_config: bool,
    pub events: Events,
    pub pools: Pools,
    pub inspect: Inspect,
    /// Things worth telling the operator that do not stop the sensor.
    pub warnings: Vec<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9820";
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 65_536;
pub const DEFAULT_FLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Per address family; the tries do not preallocate, so unused capacity costs no memory.
pub const DEFAULT_MAX_PREFIXES: u32 = 1 << 21;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    listen: Option<Spanned<String>>,
    xdp_mode: Option<XdpModeChoice>,
    drain_interval: Option<Spanned<String>>,
    flow_table_size: Option<Spanned<i64>>,
    flow_idle_timeout: Option<Spanned<String>>,
    max_prefixes: Option<Spanned<i64>>,
    web_config: Option<std::path::PathBuf>,
    watch_config: Option<bool>,
    events: Option<RawEvents>,
    pools: Option<RawPools>,
    inspect: Option<RawInspect>,
    #[serde(default)]
    ranges: Vec<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInspect {
    capture_mode: Option<CaptureMode>,
    budget: Option<Spanned<i64>>,
    sample_ring_bytes: Option<Spanned<i64>>,
    frames: Option<Spanned<i64>>,
    ring_size: Option<Spanned<i64>>,
    zero_copy: Option<ZeroCopyChoice>,
    login_key_file: Option<std::path::PathBuf>,
    distinct_window: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPools {
    ports: Option<Vec<Spanned<i64>>>,
    #[serde(default)]
    endpoints: Vec<Spanned<String>>,
    endpoints_file: Option<std::path::PathBuf>,
    /// Replaces the default pool domains.
    domains: Option<Vec<Spanned<String>>>,
    /// Added to the pool domains (the defaults, or `domains`).
    #[serde(default)]
    extra_domains: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    sink: Option<Spanned<String>>,
    path: Option<std::path::PathBuf>,
    max_bytes: Option<Spanned<i64>>,
    keep: Option<Spanned<i64>>,
    ring_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    name: Spanned<String>,
    cidrs: Vec<Spanned<String>>,
}

/// A configuration error: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        if let EventSink::File { path: events, .. } = &mut cfg.events.sink
            && events.is_relative()
            && let Some(dir) = path.parent()
        {
            *events = dir.join(&*events);
        }
        if let Some(web) = &cfg.web_config
            && web.is_relative()
            && let Some(dir) = path.parent()
        {
            cfg.web_config = Some(dir.join(web));
        }
        if let Some(key) = &cfg.inspect.login_key_file
            && key.is_relative()
            && let Some(dir) = path.parent()
        {
            cfg.inspect.login_key_file = Some(dir.join(key));
        }
        Ok(cfg)
    }

    pub fn embedded_default() -> Self {
        Self::parse(DEFAULT_TOML, "<embedded default>").expect("the embedded default is valid")
    }

    /// Parses and validates `text`; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let at = |span: ByteRange<usize>, message: String| ConfigError {
            file: file.to_string(),
            line: Some(line_of(text, span.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim_end().to_string() + hint_for(e.message()),
        })?;

        let mut warnings = Vec::new();

        let listen = match &raw.listen {
            Some(l) => l.get_ref().parse().map_err(|_| {
                at(
                    l.span(),
                    format!(
                        "listen = {:?} is not an address and port; write e.g. \"127.0.0.1:9820\" or \"[::1]:9820\"",
                        l.get_ref()
                    ),
                )
            })?,
            None => DEFAULT_LISTEN.parse().expect("valid default"),
        };

        let duration = |field: &str,
                        value: &Option<Spanned<String>>,
                        default: Duration,
                        min: Duration,
                        max: Duration|
         -> Result<Duration, ConfigError> {
            let Some(v) = value else { return Ok(default) };
            let d = humantime::parse_duration(v.get_ref()).map_err(|e| {
                at(
                    v.span(),
                    format!(
                        "{field} = {:?} is not a duration ({e}); write e.g. \"5s\", \"500ms\", \"10m\"",
                        v.get_ref()
                    ),
                )
            })?;
            if d < min || d > max {
                return Err(at(
                    v.span(),
                    format!(
                        "{field} = {:?} is out of range; use a value from {} to {}",
                        v.get_ref(),
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                ));
            }
            Ok(d)
        };
        let drain_interval = duration(
            "drain_interval",
            &raw.drain_interval,
            DEFAULT_DRAIN_INTERVAL,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let flow_idle_timeout = duration(
            "flow_idle_timeout",
            &raw.flow_idle_timeout,
            DEFAULT_FLOW_IDLE_TIMEOUT,
            Duration::from_secs(1),
            Duration::from_nanos(sensor_common::MAX_FLOW_IDLE_NS),
        )?;

        let bounded = |field: &str, v: &Option<Spanned<i64>>, default: i64, min: i64, max: i64| {
            let Some(v) = v else { return Ok(default) };
            let n = *v.get_ref();
            if n < min || n > max {
                return Err(at(
                    v.span(),
                    format!("{field} = {n} is out of range; use a number from {min} to {max}"),
                ));
            }
            Ok(n)
        };
        // Ring sizes: a value `bounded` already accepted, which must also be a power of two.
        let power_of_two = |field: &str, v: &Option<Spanned<i64>>, n: i64| {
            if (n as u64).is_power_of_two() {
                return Ok(());
            }
            let span = v.as_ref().map(|r| r.span()).unwrap_or(0..0);
            Err(at(
                span,
                format!(
                    "{field} = {n} must be a power of two (e.g. {})",
                    (n as u64).next_power_of_two()
                ),
            ))
        };
        let flow_table_size = bounded(
            "flow_table_size",
            &raw.flow_table_size,
            DEFAULT_FLOW_TABLE_SIZE as i64,
            16,
            1 << 24,
        )? as u32;
        let max_prefixes = bounded(
            "max_prefixes",
            &raw.max_prefixes,
            DEFAULT_MAX_PREFIXES as i64,
            1,
            1 << 24,
        )? as u32;

        let events = match &raw.events {
            None => Events::default(),
            Some(e) => {
                let ring_bytes = bounded(
                    "events.ring_bytes",
                    &e.ring_bytes,
                    256 * 1024,
                    4096,
                    1 << 30,
                )? as u32;
                power_of_two("events.ring_bytes", &e.ring_bytes, ring_bytes as i64)?;
                let sink = match e.sink.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("stdout") => EventSink::Stdout,
                    Some("none") => EventSink::None,
                    Some("file") => {
                        let Some(path) = e.path.clone() else {
                            return Err(at(
                                e.sink.as_ref().expect("matched").span(),
                                "events.sink = \"file\" needs events.path".to_string(),
                            ));
                        };
                        EventSink::File {
                            path,
                            max_bytes: bounded(
                                "events.max_bytes",
                                &e.max_bytes,
                                64 << 20,
                                4096,
                                i64::MAX,
                            )? as u64,
                            keep: bounded("events.keep", &e.keep, 5, 0, 1000)? as u32,
                        }
                    }
                    Some(other) => {
                        return Err(at(
                            e.sink.as_ref().expect("matched").span(),
                            format!(
                                "events.sink = {other:?}: use \"stdout\", \"file\" or \"none\""
                            ),
                        ));
                    }
                };
                Events { sink, ring_bytes }
            }
        };

        let mut inspect = Inspect::default();
        if let Some(i) = &raw.inspect {
            if let Some(m) = i.capture_mode {
                inspect.capture_mode = m;
            }
            // The kernel keeps the per-flow count in one byte.
            inspect.budget = bounded("inspect.budget", &i.budget, 8, 0, 255)? as u32;
            let ring = bounded(
                "inspect.sample_ring_bytes",
                &i.sample_ring_bytes,
                1 << 20,
                1 << 16,
                1 << 30,
            )?;
            power_of_two("inspect.sample_ring_bytes", &i.sample_ring_bytes, ring)?;
            inspect.sample_ring_bytes = ring as u32;
            inspect.frames = bounded("inspect.frames", &i.frames, 4096, 64, 1 << 20)? as u32;
            let ring = bounded("inspect.ring_size", &i.ring_size, 2048, 64, 1 << 16)?;
            power_of_two("inspect.ring_size", &i.ring_size, ring)?;
            inspect.ring_size = ring as u32;
            if inspect.ring_size > inspect.frames {
                let span = i.ring_size.as_ref().map(|r| r.span()).unwrap_or(0..0);
                return Err(at(
                    span,
                    format!(
                        "inspect.ring_size = {} is larger than inspect.frames = {}: the fill ring could never be filled; raise frames or lower ring_size",
                        inspect.ring_size, inspect.frames
                    ),
                ));
            }
            if let Some(z) = i.zero_copy {
                inspect.zero_copy = z;
            }
            inspect.login_key_file = i.login_key_file.clone();
            inspect.distinct_window = duration(
                "inspect.distinct_window",
                &i.distinct_window,
                inspect.distinct_window,
                Duration::from_secs(60),
                Duration::from_secs(30 * 24 * 3600),
            )?;
        }

        let mut pools = Pools::default();
        if let Some(p) = &raw.pools {
            if let Some(ports) = &p.ports {
                pools.ports.clear();
                for port in ports {
                    let n = *port.get_ref();
                    if !(1..=65535).contains(&n) {
                        return Err(at(
                            port.span(),
                            format!("pools.ports: {n} is not a port; use 1 to 65535"),
                        ));
                    }
                    pools.ports.push(n as u16);
                }
            }
            for e in &p.endpoints {
                let net = parse_prefix(e.get_ref()).map_err(|why| {
                    at(
                        e.span(),
                        format!("pools.endpoints: {:?} {why}", e.get_ref()),
                    )
                })?;
                pools.endpoints.push(net.trunc());
            }
            if let Some(domains) = &p.domains {
                pools.domains.clear();
                for d in domains {
                    pools.domains.push(pool_domain(d.get_ref()).map_err(|why| {
                        at(d.span(), format!("pools.domains: {:?} {why}", d.get_ref()))
                    })?);
                }
            }
            for d in &p.extra_domains {
                pools.domains.push(pool_domain(d.get_ref()).map_err(|why| {
                    at(
                        d.span(),
                        format!("pools.extra_domains: {:?} {why}", d.get_ref()),
                    )
                })?);
            }
            pools.domains.sort();
            pools.domains.dedup();
            if pools.domains.len() > sensor_common::dns::MAX_POOL_DOMAINS as usize {
                let span = p
                    .extra_domains
                    .first()
                    .map(|d| d.span())
                    .or_else(|| p.domains.as_ref().and_then(|d| d.first()).map(|d| d.span()))
                    .unwrap_or(0..0);
                return Err(at(
                    span,
                    format!(
                        "{} pool domains configured; the sensor holds at most {}: list parent domains instead (a domain matches every name under it)",
                        pools.domains.len(),
                        sensor_common::dns::MAX_POOL_DOMAINS
                    ),
                ));
            }
            if let Some(path) = &p.endpoints_file {
                pools
                    .endpoints
                    .extend(read_endpoints(path).map_err(|message| ConfigError {
                        file: path.display().to_string(),
                        line: message.0,
                        message: message.1,
                    })?);
            }
        }

        let mut interfaces = Vec::new();
        for i in &raw.interfaces {
            let name = i.get_ref();
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
                return Err(at(
                    i.span(),
                    format!(
                        "interfaces: {name:?} is not an interface name (1 to 15 characters, no '/' or spaces)"
                    ),
                ));
            }
            if interfaces.contains(name) {
                return Err(at(
                    i.span(),
                    format!("interfaces: {name:?} is listed twice"),
                ));
            }
            interfaces.push(name.clone());
        }

        if raw.ranges.len() > MAX_RANGES {
            return Err(ConfigError {
                file: file.to_string(),
                line: Some(line_of(text, raw.ranges[MAX_RANGES].name.span().start)),
                message: format!(
                    "{} ranges configured; the sensor holds at most {MAX_RANGES}: merge ranges or run a second sensor",
                    raw.ranges.len()
                ),
            });
        }
        let mut ranges = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let (mut v4, mut v6) = (0u64, 0u64);
        for r in &raw.ranges {
            let name = r.name.get_ref();
            let line = line_of(text, r.name.span().start);
            if let Some(first) = seen.get(name) {
                return Err(at(
                    r.name.span(),
                    format!(
                        "ranges: the name {name:?} is already used on line {first}; give each range its own name"
                    ),
                ));
            }
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(at(
                    r.name.span(),
                    format!(
                        "ranges: name {name:?} is not a valid range name: use 1 to 64 of a-z, A-Z, 0-9, '_', '-', '.'"
                    ),
                ));
            }
            if name == UNWATCHED {
                return Err(at(
                    r.name.span(),
                    format!(
                        "ranges: the name {UNWATCHED:?} is reserved for traffic outside every range; choose another"
                    ),
                ));
            }
            seen.insert(name.clone(), line);
            let mut cidrs = Vec::new();
            for c in &r.cidrs {
                let net = parse_prefix(c.get_ref()).map_err(|why| {
                    at(
                        c.span(),
                        format!("ranges.{name}.cidrs: {:?} {why}", c.get_ref()),
                    )
                })?;
                let normal = net.trunc();
                if normal != net {
                    warnings.push(format!(
                        "{file}:{}: ranges.{name}.cidrs: {net} has host bits set; watching {normal}",
                        line_of(text, c.span().start)
                    ));
                }
                match normal {
                    IpNet::V4(_) => v4 += 1,
                    IpNet::V6(_) => v6 += 1,
                }
                cidrs.push(normal);
            }
            if cidrs.is_empty() {
                warnings.push(format!(
                    "{file}:{line}: ranges.{name} has no cidrs; it will count nothing"
                ));
            }
            ranges.push(Range {
                name: name.clone(),
                cidrs,
            });
        }
        for (family, n) in [("IPv4", v4), ("IPv6", v6)] {
            if n > max_prefixes as u64 {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: None,
                    message: format!(
                        "{n} {family} prefixes configured, more than max_prefixes = {max_prefixes}; raise max_prefixes (up to {}) or aggregate prefixes",
                        1 << 24
                    ),
                });
            }
        }
        if ranges.is_empty() {
            warnings.push(format!(
                "{file}: no [[ranges]]: only Stratum traffic will be counted (as range \"unwatched\")"
            ));
        }

        Ok(Self {
            interfaces,
            listen,
            xdp_mode: raw.xdp_mode.unwrap_or(XdpModeChoice::Auto),
            drain_interval,
            flow_table_size,
            flow_idle_timeout,
            max_prefixes,
            ranges,
            web_config: raw.web_config,
            watch_config: raw.watch_config.unwrap_or(false),
            events,
            pools,
            inspect,
            warnings,
        })
    }

    pub fn prefix_count(&self) -> usize {
        self.ranges.iter().map(|r| r.cidrs.len()).sum()
    }
}

/// A pool list: one address or prefix per line, `#` comments and blank lines ignored.
fn read_endpoints(path: &std::path::Path) -> Result<Vec<IpNet>, (Option<usize>, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            None,
            format!("cannot read the pool list (pools.endpoints_file): {e}"),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = parse_prefix(entry).map_err(|why| (Some(i + 1), format!("{entry:?} {why}")))?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// A pool domain as the kernel matches it: lower case, without a trailing dot, labels of letters,
/// digits, `-` and `_`.
fn pool_domain(s: &str) -> Result<String, String> {
    let name = s.trim_end_matches('.').to_ascii_lowercase();
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "is not a domain name: {bad:?} is not allowed (write e.g. \"supportxmr.com\"; a domain matches every name under it, so no wildcards)"
        ));
    }
    if sensor_common::dns::name_key(name.as_bytes()).is_none() {
        return Err(format!(
            "is not a domain name the sensor can match: labels of 1 to 63 characters, at most {} labels and 253 characters (write e.g. \"supportxmr.com\")",
            sensor_common::dns::MAX_LABELS
        ));
    }
    Ok(name)
}

/// `ADDRESS/LEN` or a bare address (a host route).
fn parse_prefix(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(addr) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    match s.split_once('/') {
        Some((addr, len)) => {
            let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
                return Err(format!(
                    "is not a prefix: {addr:?} is not an IPv4 or IPv6 address; write ADDRESS/LEN, e.g. \"175.45.176.0/22\""
                ));
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            Err(format!(
                "is not a prefix: the length {len:?} must be a number from 0 to {max} for {}",
                if addr.is_ipv4() { "IPv4" } else { "IPv6" }
            ))
        }
        None => Err(
            "is not a prefix: write ADDRESS/LEN, e.g. \"175.45.176.0/22\" or \"2001:db8::/32\""
                .to_string(),
        ),
    }
}

fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "; check the spelling against deploy/config.example.toml"
    } else {
        ""
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        Config::parse(text, "t.toml").unwrap_err()
    }

    #[test]
    fn embedded_default_watches_north_korea() {
        let c = Config::embedded_default();
        assert_eq!(c.ranges.len(), 1);
        assert_eq!(c.ranges[0].name, "kp");
        let cidrs: Vec<String> = c.ranges[0].cidrs.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            cidrs,
            ["175.45.176.0/22", "210.52.109.0/24", "77.94.35.0/24"]
        );
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            r#"
interfaces = ["eth0", "eth1"]
listen = "[::1]:9999"
xdp_mode = "generic"
drain_interval = "250ms"
flow_table_size = 1024
flow_idle_timeout = "2m"
[[ranges]]
name = "a"
cidrs = ["198.18.0.0/15", "2001:db8:1::/48", "192.0.2.7"]
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.interfaces, ["eth0", "eth1"]);
        assert_eq!(c.xdp_mode, XdpModeChoice::Generic);
        assert_eq!(c.drain_interval, Duration::from_millis(250));
        assert_eq!(c.flow_table_size, 1024);
        assert_eq!(c.ranges[0].cidrs[2].to_string(), "192.0.2.7/32");
    }

    #[test]
    fn bad_prefix_length_names_line_field_and_value() {
        let e = err(
            "[[ranges]]\nname = \"kp\"\ncidrs = [\n  \"175.45.176.0/22\",\n  \"1.2.3.4/33\",\n]\n",
        );
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("ranges.kp.cidrs"), "{e}");
        assert!(e.message.contains("1.2.3.4/33"), "{e}");
        assert!(e.message.contains("0 to 32"), "{e}");
        assert!(e.to_string().starts_with("t.toml:5: "));
    }

    #[test]
    fn host_bits_are_normalised_with_a_warning() {
        let c = Config::parse(
            "[[ranges]]\nname = \"x\"\ncidrs = [\"10.1.2.3/8\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.ranges[0].cidrs[0].to_string(), "10.0.0.0/8");
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("t.toml:3"), "{:?}", c.warnings);
    }

    #[test]
    fn duplicate_names_unknown_keys_and_malformed_toml() {
        let e = err("[[ranges]]\nname = \"a\"\ncidrs = []\n[[ranges]]\nname = \"a\"\ncidrs = []\n");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("already used on line 2"), "{e}");

        let e = err("[[ranges]]\nname = \"a\"\ncidr = [\"1.0.0.0/8\"]\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `cidr`"), "{e}");

        let e = err("listen = \"127.0.0.1:1\"\n[[ranges]\n");
        assert_eq!(e.line, Some(2));

        let e = err("xdp_mode = \"fast\"\n");
        assert!(e.message.contains("auto"), "{e}");

        let e = err("[[ranges]]\nname = \"unwatched\"\ncidrs = []\n");
        assert!(e.message.contains("reserved"), "{e}");

        let e = err("drain_interval = \"5 parsecs\"\n");
        assert!(e.message.contains("drain_interval"), "{e}");
    }

    #[test]
    fn pools_from_the_file_and_inline() {
        let dir = std::env::temp_dir().join(format!("ms-pools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("pools.txt");
        std::fs::write(
            &list,
            "# supportxmr\n198.51.100.5\n\n203.0.113.0/28 # a pool's block\n",
        )
        .unwrap();
        let c = Config::parse(
            &format!("[pools]\nports = [3333, 34254]\nendpoints = [\"192.0.2.9\"]\nendpoints_file = \"{}\"\n", list.display()),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.pools.ports, [3333, 34254]);
        let e: Vec<String> = c.pools.endpoints.iter().map(|n| n.to_string()).collect();
        assert_eq!(e, ["192.0.2.9/32", "198.51.100.5/32", "203.0.113.0/28"]);
        assert_eq!(
            Config::embedded_default().pools.ports.len(),
            DEFAULT_POOL_PORTS.len()
        );

        std::fs::write(&list, "198.51.100.5\n300.1.1.1\n").unwrap();
        let e = Config::parse(
            &format!("[pools]\nendpoints_file = \"{}\"\n", list.display()),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.file.ends_with("pools.txt") && e.message.contains("300.1.1.1"),
            "{e}"
        );
        let e = Config::parse("[pools]\nports = [0]\n", "t.toml").unwrap_err();
        assert!(e.message.contains("pools.ports: 0 is not a port"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pool_domains_default_replace_extend_and_are_checked() {
        let d = Config::parse("", "t").unwrap().pools.domains;
        assert!(d.contains(&"supportxmr.com".to_string()) && d.len() == DEFAULT_POOL_DOMAINS.len());
        let c = Config::parse(
            "[pools]\ndomains = [\"Pool.Example.\"]\nextra_domains = [\"b.example\", \"pool.example\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.pools.domains, ["b.example", "pool.example"]);
        let e = err("[pools]\nextra_domains = [\"*.supportxmr.com\"]\n");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains("pools.extra_domains") && e.message.contains("'*'"),
            "{e}"
        );
        let e = err("[pools]\ndomains = [\"a..b\"]\n");
        assert!(e.message.contains("labels of 1 to 63"), "{e}");
    }

    #[test]
    fn inspect_section_is_checked() {
        let c = Config::parse("[inspect]\ncapture_mode = \"tap\"\nbudget = 0\n", "t").unwrap();
        assert_eq!(
            (c.inspect.capture_mode, c.inspect.budget),
            (CaptureMode::Tap, 0)
        );
        let e = err("[inspect]\nbudget = 300\n");
        assert!(
            e.message.contains("inspect.budget = 300") && e.message.contains("0 to 255"),
            "{e}"
        );
        let e = err("[inspect]\nring_size = 1000\n");
        assert!(e.message.contains("power of two"), "{e}");
        let e = err("[events]\nring_bytes = 5000\n");
        assert!(
            e.message
                .contains("events.ring_bytes = 5000 must be a power of two (e.g. 8192)"),
            "{e}"
        );
        let e = err("[inspect]\nframes = 128\nring_size = 256\n");
        assert!(e.message.contains("larger than inspect.frames"), "{e}");
        let e = err("[inspect]\ncapture_mode = \"mirror\"\n");
        assert!(
            e.message.contains("tap") && e.message.contains("inline"),
            "{e}"
        );
    }

    #[test]
    fn too_many_ranges_and_prefixes() {
        let mut t = String::new();
        for i in 0..=MAX_RANGES {
            t += &format!("[[ranges]]\nname = \"r{i}\"\ncidrs = []\n");
        }
        let e = err(&t);
        assert!(e.message.contains("at most 63"), "{e}");

        let e = err(
            "max_prefixes = 1\n[[ranges]]\nname = \"a\"\ncidrs = [\"1.0.0.0/8\", \"2.0.0.0/8\"]\n",
        );
        assert!(e.message.contains("raise max_prefixes"), "{e}");
    }
}
