//! What a configuration is: the validated [`Config`] and its sections, with their defaults.
//!
//! The enums derive `Deserialize` so the file can name their variants; every other value is
//! checked by `parse`, which builds these types.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;
use serde::Deserialize;

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

/// A tunnel a remote mirror session delivers its frames in (`decapsulate`): the XDP program reads
/// the frame inside (`sensor_common::tunnel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tunnel {
    /// ERSPAN types I, II and III, and Ethernet in GRE (transparent Ethernet bridging).
    Erspan,
    /// VXLAN to UDP port 4789 (as cloud traffic mirroring sends).
    Vxlan,
}

impl Tunnel {
    /// Every tunnel, in the order of their discriminants (replay counts them by index).
    pub const ALL: [Self; 2] = [Self::Erspan, Self::Vxlan];

    /// Its name in `decapsulate` and `--decapsulate` (clap derives the same from the variant).
    pub fn name(self) -> &'static str {
        match self {
            Self::Erspan => "erspan",
            Self::Vxlan => "vxlan",
        }
    }

    /// What its frames are called in replay's problems ("N frames in ... tunnels").
    pub fn kind(self) -> &'static str {
        match self {
            Self::Erspan => "ERSPAN or Ethernet-in-GRE",
            Self::Vxlan => "VXLAN",
        }
    }

    /// What it covers, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::Erspan => "ERSPAN types I to III, and Ethernet in GRE",
            Self::Vxlan => "UDP port 4789",
        }
    }

    /// Its bit of the kernel program's `DECAP`.
    pub fn kernel_bit(self) -> u32 {
        match self {
            Self::Erspan => sensor_common::tunnel::DECAP_GRE,
            Self::Vxlan => sensor_common::tunnel::DECAP_VXLAN,
        }
    }
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

/// Deep inspection of candidate packets (every JSON packet of a Stratum flow, the first data packets
/// of suspect flows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspect {
    pub capture_mode: CaptureMode,
    /// Packets per suspect flow (and reason) handed to deep inspection; a Stratum flow hands over
    /// every JSON packet while it is above 0; 0 turns inspection off.
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
    /// Ports pools listen on: there one payload of the Stratum V2 handshake's sizes is the
    /// `stratum_v2` signal (elsewhere it takes the pair).
    pub ports: Vec<u16>,
    /// Pool addresses: traffic to or from them is the `pool_endpoint` signal.
    pub endpoints: Vec<IpNet>,
    /// Pool domains (lower case, no trailing dot): a DNS query for a name in one is the
    /// `pool_dns` signal.
    pub domains: Vec<String>,
}

/// Pool domains, from public facts (README, "Suspect flows", names each group's source): a DNS
/// query for a name under one (`pool_dns`), or a ClientHello naming one (`tls_pool_sni`), is a
/// signal. Only domains that serve mining and nothing else: a company's general domain (an
/// exchange's, a wallet's, a block explorer's) would flag ordinary visits.
pub const DEFAULT_POOL_DOMAINS: [&str; 40] = [
    // Monero pools in public rules and lists (shared/docs/stratum-on-the-wire.md). minexmr.com
    // closed in 2022 but is in historical captures.
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
    // Bitcoin (SHA-256) pools, by their published Stratum hosts (btc.f2pool.com, ss.antpool.com,
    // btc.viabtc.com, btc.ss.poolin.com, stratum.slushpool.com, solo.ckpool.org,
    // sha256.poolbinance.com).
    "f2pool.com",
    "antpool.com",
    "viabtc.com",
    "poolin.com",
    "slushpool.com",
    "ckpool.org",
    "poolbinance.com",
    // Ethereum-era (ethash) and Equihash pools: eu1.ethermine.org, eu1-zcash.flypool.org (the
    // pool host EWBF puts in mining.subscribe, stratum-on-the-wire.md), sparkpool, flexpool,
    // miningpoolhub, hiveon.
    "ethermine.org",
    "flypool.org",
    "sparkpool.com",
    "flexpool.io",
    "miningpoolhub.com",
    "hiveon.net",
    // Multi-coin pools and hash-rate markets: sha256.eu-west.nicehash.com,
    // kawpow.eu-north.nicehash.com, rx.unmineable.com, zpool, zergpool, prohashing.
    "nicehash.com",
    "unmineable.com",
    "zpool.ca",
    "zergpool.com",
    "prohashing.com",
    // Browser mining services and their WebSocket endpoints: coinhive.com and authedmine.com
    // (per-socket hosts such as ws027.authedmine.com), coinimp.com (stratum-on-the-wire.md), and
    // the NoCoin list's hosts (hoshsadiq/adblock-nocoin-list, hosts.txt): coin-hive.com, cnhv.co,
    // crypto-loot.com, cryptoloot.pro, coin-have.com, ppoi.org, projectpoi.com, minero.pw.
    "coinhive.com",
    "authedmine.com",
    "coinimp.com",
    "coin-hive.com",
    "cnhv.co",
    "crypto-loot.com",
    "cryptoloot.pro",
    "coin-have.com",
    "ppoi.org",
    "projectpoi.com",
    "minero.pw",
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

/// Reserved `peer` label value for traffic from or to no configured neighbour.
pub const OTHER_PEER: &str = "other";

/// A neighbour (`[[peers]]`): traffic of a watched range is attributed to it when a frame's
/// outermost VLAN tag is one of `vlans`, or else when the frame's source (traffic from the range)
/// or destination (traffic to it) address is one of `macs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub macs: Vec<[u8; 6]>,
    pub vlans: Vec<u16>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub listen: SocketAddr,
    pub xdp_mode: XdpModeChoice,
    /// Tunnels whose frames are read as the frame inside (remote mirror sessions).
    pub decapsulate: Vec<Tunnel>,
    pub drain_interval: Duration,
    pub flow_table_size: u32,
    pub flow_idle_timeout: Duration,
    pub max_prefixes: u32,
    pub ranges: Vec<Range>,
    /// Neighbours on the port, at most `sensor_common::MAX_PEERS`.
    pub peers: Vec<Peer>,
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

impl Config {
    pub fn prefix_count(&self) -> usize {
        self.ranges.iter().map(|r| r.cidrs.len()).sum()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9820";
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 65_536;
pub const DEFAULT_FLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Per address family; the tries do not preallocate, so unused capacity costs no memory.
pub const DEFAULT_MAX_PREFIXES: u32 = 1 << 21;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_modes_carry_the_contract_path_labels() {
        // shared/docs/contract.md, `mining_sensor_inspected_packets_total`: `path` is `afxdp` or
        // `copy`; README: `tap` redirects candidates into AF_XDP sockets, `inline` copies them.
        assert_eq!(CaptureMode::Tap.path_label(), "afxdp");
        assert_eq!(CaptureMode::Inline.path_label(), "copy");
    }
}
