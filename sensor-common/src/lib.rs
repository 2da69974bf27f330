//! Everything the XDP program and the agent must agree on: map layouts, index arithmetic, reason codes
//! and the Stratum signature table. One definition, compiled into both sides, so they cannot diverge.
#![cfg_attr(not(test), no_std)]
// Inline assembly for BPF (one unaligned load, see `stratum::unaligned_u64`); the kernel crate
// builds with nightly.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

pub mod dns;
pub mod http;
pub mod pools;
pub mod recent;
pub mod ring;
pub mod stratum;
pub mod sv2;
pub mod tls;
pub mod tls_shape;
pub mod tunnel;
pub mod websocket;

/// Stacked VLAN tags followed (802.1ad outer + 802.1Q inner is two; some carriers stack more). The
/// kernel program and the agent's frame reader walk the same headers with the same limits, so that
/// both agree on which flow a packet belongs to.
pub const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers followed before giving up on the transport header.
pub const MAX_IPV6_EXT: usize = 6;

/// The EtherTypes both header walks read: IPv4, IPv6, the VLAN tags they step over (802.1Q,
/// 802.1ad, and the pre-standard 0x9100 some carriers still use for the outer tag) and MPLS
/// (below).
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_QINQ_LEGACY: u16 = 0x9100;
/// MPLS (unicast and multicast): a stack of 4-byte label entries, after any VLAN tags, whose last
/// (its bottom-of-stack bit set) is followed by the labelled packet. Both walks step over up to
/// `MAX_MPLS_LABELS` entries and read an IPv4 or IPv6 packet after them by its version
/// (`mpls_ip_version`), as routers that pop the stack do; a pseudowire (a control word, or an
/// Ethernet frame) is not read.
pub const ETH_P_MPLS_UC: u16 = 0x8847;
pub const ETH_P_MPLS_MC: u16 = 0x8848;
/// Label entries followed: a transport label, a service label and an entropy label pair are four;
/// segment-routing stacks run longer.
pub const MAX_MPLS_LABELS: usize = 8;

/// Whether a label stack entry (its four bytes) is the bottom of the stack.
#[inline(always)]
pub const fn mpls_bottom(entry: [u8; 4]) -> bool {
    entry[2] & 1 != 0
}

/// The IP version of the packet after an MPLS label stack, from its first byte: 4 or 6, else 0
/// (not IP: a pseudowire's control word or Ethernet frame).
#[inline(always)]
pub const fn mpls_ip_version(first: u8) -> u8 {
    match first >> 4 {
        v @ (4 | 6) => v,
        _ => 0,
    }
}
/// Transport protocols counted and inspected.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers both walks step over: hop-by-hop options, routing and destination
/// options (length in 8-byte units after the first 8), authentication (in 4-byte units after the
/// first 8), and fragment (8 bytes; only a first fragment has a transport header).
pub const IPV6_HOPOPTS: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_DSTOPTS: u8 = 60;
pub const IPV6_AUTH: u8 = 51;
pub const IPV6_FRAGMENT: u8 = 44;

/// Configured ranges are a bit set in a `u64` (the LPM tries' value); the top bit marks pool
/// endpoints, so at most 63 ranges.
pub const MAX_RANGES: usize = 63;
/// Bit of the tries' value for addresses in the configured pool list (not a range: never counted
/// as traffic, only as the `pool_endpoint` signal).
pub const POOL_BIT: u64 = 1 << 63;
/// The range bits of a trie value.
pub const RANGE_MASK: u64 = !POOL_BIT;
/// Range slot used for Stratum packets whose endpoints are both outside every watched range.
pub const UNWATCHED_SLOT: usize = MAX_RANGES;
/// Configured ranges plus the `unwatched` slot.
pub const RANGE_SLOTS: usize = MAX_RANGES + 1;

/// Interface slots; slot 0 counts traffic from interfaces the agent did not register, so the sensor
/// attaches to at most `MAX_IFACE_SLOTS - 1` interfaces.
pub const MAX_IFACE_SLOTS: usize = 32;
/// Interface indexes below this are resolved through a plain array; larger ones (rare: hosts that have
/// created and deleted many thousands of interfaces) through a small hash map.
pub const IFINDEX_DIRECT: u32 = 4096;

/// `direction` label: the watched range contains the packet's source.
pub const DIR_FROM: usize = 0;
/// `direction` label: the watched range contains the packet's destination.
pub const DIR_TO: usize = 1;
pub const DIRS: usize = 2;

/// The quick-rejection filter in front of the LPM tries: one bit per IPv4 /24, and per hash of an
/// IPv6 address's top 32 bits, set when a watched prefix may contain such an address. A clear bit
/// means "in no range" at the cost of one array read; a set bit falls through to the tries (false
/// positives cost time, never counts). The agent keeps it in step with the tries.
pub const FILTER_BITS: usize = 1 << 24;
/// `u64` words of the filter array.
pub const FILTER_WORDS: usize = FILTER_BITS / 64;
/// IPv6 prefixes shorter than this set too many filter bits; with one configured, IPv6 addresses
/// always go to the trie (flag bit `FILTER_V6_ALL` of word 0 in `FILTER_FLAGS`).
pub const FILTER_V6_MIN_LEN: u8 = 20;
/// IPv4 prefixes shorter than /8 would set over 65,536 bits; with one configured, IPv4 addresses
/// always go to the trie.
pub const FILTER_V4_MIN_LEN: u8 = 8;
pub const FILTER_V4_ALL: u32 = 1;
pub const FILTER_V6_ALL: u32 = 2;

/// Filter bit of an IPv4 address (its /24).
#[inline(always)]
pub const fn filter_bit_v4(addr: u32) -> u32 {
    addr >> 8
}

/// Filter bit of an IPv6 address: a multiplicative hash of its top 32 bits, onto 24 bits.
#[inline(always)]
pub const fn filter_bit_v6(top32: u32) -> u32 {
    top32.wrapping_mul(0x9e37_79b1) >> 8
}

/// Packets and IP bytes: the value of every traffic counter cell.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Cells of the per-CPU `TRAFFIC` array: interface slot x range slot x direction.
pub const TRAFFIC_CELLS: usize = MAX_IFACE_SLOTS * RANGE_SLOTS * DIRS;

#[inline(always)]
pub const fn traffic_index(iface_slot: usize, range: usize, dir: usize) -> u32 {
    ((iface_slot * RANGE_SLOTS + range) * DIRS + dir) as u32
}

/// Cells of the per-CPU `STRATUM_PACKETS` array and of the shared `STRATUM_FLOWS` array:
/// range slot x direction x dialect. For the unwatched slot only `DIR_FROM` is used (label `none`).
pub const STRATUM_CELLS: usize = RANGE_SLOTS * DIRS * stratum::DIALECTS;

#[inline(always)]
pub const fn stratum_index(range: usize, dir: usize, dialect: usize) -> u32 {
    ((range * DIRS + dir) * stratum::DIALECTS + dialect) as u32
}

/// Configured neighbours (`[[peers]]`) at most: the bound on the `peer` label's values (plus
/// `other`). Peer index 0 is `other`, configured neighbours are 1..=`MAX_PEERS`.
pub const MAX_PEERS: usize = 16;
/// Peer indexes: `other` and the configured neighbours.
pub const PEER_SLOTS: usize = MAX_PEERS + 1;
/// Peer index of traffic from or to no configured neighbour (`peer="other"`).
pub const PEER_OTHER: usize = 0;
/// Ethernet addresses and VLAN IDs of all neighbours together at most: the size of `PEERS`.
pub const MAX_PEER_KEYS: usize = 1024;

/// Cells of the per-CPU `PEER_TRAFFIC` array: range x direction x peer index. Watched ranges
/// only (no interface, no unwatched slot): the `peer` label splits a range's traffic, not a link's.
pub const PEER_CELLS: usize = MAX_RANGES * DIRS * PEER_SLOTS;

#[inline(always)]
pub const fn peer_index(range: usize, dir: usize, peer: usize) -> u32 {
    ((range * DIRS + dir) * PEER_SLOTS + peer) as u32
}

/// Key of `PEERS` for a VLAN ID: this bit set over the 12-bit ID. Ethernet-address keys never
/// have it (an address takes the low 48 bits).
pub const PEER_KEY_VLAN: u64 = 1 << 48;

/// Key of `PEERS` for an Ethernet address: its six bytes, first byte most significant.
#[inline(always)]
pub const fn peer_key_mac(mac: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]])
}

/// Key of `PEERS` for a VLAN ID (the tag's low 12 bits).
#[inline(always)]
pub const fn peer_key_vlan(tci: u16) -> u64 {
    PEER_KEY_VLAN | (tci & 0x0fff) as u64
}

/// `PEER_KINDS` bits: some neighbour is known by an Ethernet address / by a VLAN ID. The kernel
/// program looks up only the kinds configured, so a configuration without `[[peers]]` pays no
/// lookup at all.
pub const PEER_KIND_MAC: u32 = 1;
pub const PEER_KIND_VLAN: u32 = 2;

/// Why a packet was passed without being counted, or what the parser noticed on the way. Indexes of
/// the per-CPU `PARSE` array; the agent exports them as `mining_sensor_parse_events_total{reason}`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseEvent {
    /// Every packet the program saw.
    Seen = 0,
    /// Frame shorter than an Ethernet header.
    TruncatedEthernet,
    /// A VLAN tag cut short by the end of the frame.
    TruncatedVlan,
    /// More stacked VLAN tags than the parser follows.
    TooManyVlanTags,
    /// Neither IPv4 nor IPv6 nor MPLS (ARP, LLDP...): passed, not an error.
    NotIp,
    /// IPv4 header cut short.
    TruncatedIpv4,
    /// IPv4 header length below 20 bytes, or version field not 4.
    BadIpv4Header,
    /// IPv4 total length smaller than its header, or larger than the frame.
    BadIpv4Length,
    /// IPv6 fixed header cut short.
    TruncatedIpv6,
    /// IPv6 payload length larger than the frame.
    BadIpv6Length,
    /// An IPv6 extension header cut short, or a chain longer than the parser follows.
    BadIpv6Extension,
    /// A non-first fragment: counted as IP traffic, no transport header to read.
    Fragment,
    /// TCP header cut short or data offset beyond the IP payload.
    BadTcpHeader,
    /// UDP header cut short.
    TruncatedUdp,
    /// Neither TCP nor UDP: counted as IP traffic, no transport inspection.
    OtherTransport,
    /// The interface index has no slot registered by the agent (counted under slot 0).
    UnknownInterface,
    /// The flow table refused an insert (should never happen with an LRU map; counted, not silent).
    FlowInsertFailed,
    /// An MPLS label stack cut short by the end of the frame.
    TruncatedMpls,
    /// More MPLS label entries than the parser follows (`MAX_MPLS_LABELS`).
    TooManyMplsLabels,
    /// An MPLS label stack whose packet is neither IPv4 nor IPv6 (a pseudowire): passed, not an
    /// error, but traffic the sensor cannot read.
    MplsNotIp,
    /// A mirrored frame taken out of its tunnel (`decapsulate`; `tunnel`): counted and read as the
    /// frame inside.
    Decapsulated,
    /// A tunnel `decapsulate` names, cut short or of a layout it does not read (a GRE version or
    /// protocol without an Ethernet frame, a VXLAN header without its I flag): read as the outer
    /// packet.
    BadTunnel,
}

impl ParseEvent {
    pub const COUNT: usize = 22;
    /// Label values for `reason`, in index order.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "seen",
        "truncated_ethernet",
        "truncated_vlan",
        "too_many_vlan_tags",
        "not_ip",
        "truncated_ipv4",
        "bad_ipv4_header",
        "bad_ipv4_length",
        "truncated_ipv6",
        "bad_ipv6_length",
        "bad_ipv6_extension",
        "fragment",
        "bad_tcp_header",
        "truncated_udp",
        "other_transport",
        "unknown_interface",
        "flow_insert_failed",
        "truncated_mpls",
        "too_many_mpls_labels",
        "mpls_not_ip",
        "decapsulated",
        "bad_tunnel",
    ];
}

/// The longest `flow_idle_timeout` the configuration accepts (7 days): no flow idle for longer is
/// an active mining flow under any configuration. The XDP program looks up continuation segments
/// only on flows with a Stratum packet within this time (see `recent_slot`).
pub const MAX_FLOW_IDLE_NS: u64 = 7 * 24 * 3600 * 1_000_000_000;

/// Slots of the XDP program's table of recent flows (`RECENT`, `recent`).
pub const RECENT_SLOTS: usize = 1 << 16;

const _: () = assert!(
    core::mem::size_of::<FlowKey>() == 40 && core::mem::align_of::<FlowKey>() == 8,
    "FlowKey::words reads a FlowKey as five u64 words"
);
const _: () = assert!(
    core::mem::offset_of!(FlowKey, addr_lo) == 0 && core::mem::offset_of!(FlowKey, addr_hi) == 16,
    "FlowKey::words: the addresses are its first four words"
);

/// One step of a multiply-xorshift hash: folds the word `w` into `h`. Cheap, for spreading keys
/// over slots or workers, not for input an adversary could aim at one slot to any effect.
#[inline(always)]
pub const fn mix(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// A flow's slot in `RECENT`: [`mix`] over the key's five words.
#[inline(always)]
pub fn recent_slot(key: &FlowKey) -> u32 {
    let mut h = 0u64;
    for w in key.words() {
        h = mix(h, *w);
    }
    (h >> 32) as u32 & (RECENT_SLOTS as u32 - 1)
}

/// Key of the LRU flow table: the unordered pair of endpoints (lower endpoint first), protocol and
/// ports, so both directions of a connection are one flow. IPv4 addresses use the first 4 bytes.
/// Aligned to 8 (its size already was a multiple of 8, so no layout changes): the XDP program then
/// writes an address as two 8-byte words, not eight 2-byte ones.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub addr_lo: [u8; 16],
    pub addr_hi: [u8; 16],
    pub port_lo: u16,
    pub port_hi: u16,
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    pub _pad: [u8; 2],
}

impl FlowKey {
    /// The key as five native-endian words: the lower address (0, 1), the higher (2, 3), and
    /// the ports, protocol and family (4). Hashed and compared a word at a time (as bytes, the
    /// XDP program reads them one at a time).
    #[inline(always)]
    pub fn words(&self) -> &[u64; 5] {
        // SAFETY: 40 bytes of plain data aligned to 8, padding explicit (asserted below).
        unsafe { &*(self as *const FlowKey).cast::<[u64; 5]>() }
    }
}

/// Value of the flow table: what the agent needs for the `mining_flows` gauge and for events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// `bpf_ktime_get_ns` of the first Stratum packet.
    pub first_seen_ns: u64,
    /// `bpf_ktime_get_ns` of the latest Stratum packet.
    pub last_seen_ns: u64,
    /// Ranges containing either endpoint, as a bit set (0 = unwatched).
    pub ranges: u64,
    /// Stratum packets seen on the flow.
    pub stratum_packets: u32,
    /// `stratum::Dialect` as u8.
    pub dialect: u8,
    pub _pad: [u8; 3],
}

/// `reason` label of `mining_sensor_suspect_flows_total`: signals of mining without readable
/// content. Indexes of the suspect counters and the `reason` byte of suspect events.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A TLS ClientHello without server_name towards a pool port or endpoint.
    TlsNoSni = 0,
    /// Traffic to or from an address in the configured pool list.
    PoolEndpoint = 1,
    /// A DNS query (UDP, port 53) for a name in a configured pool domain.
    PoolDns = 2,
    /// The Stratum V2 handshake shape (64-byte client, 234-byte server payload) on a pool port.
    StratumV2 = 3,
    /// A TLS ClientHello whose server_name is in a configured pool domain, on any port.
    TlsPoolSni = 4,
    /// A TLS flow whose records over time have Stratum's shape (decided by the agent from the
    /// program's `tls_shape` records).
    EncryptedStratum = 5,
}

impl Reason {
    pub const COUNT: usize = 6;
    pub const NAMES: [&'static str; Self::COUNT] = [
        "tls_no_sni",
        "pool_endpoint",
        "pool_dns",
        "stratum_v2",
        "tls_pool_sni",
        "encrypted_stratum",
    ];
}

/// Cells of the per-CPU `SUSPECT_FLOWS` array: range slot x direction x reason.
pub const SUSPECT_CELLS: usize = RANGE_SLOTS * DIRS * Reason::COUNT;

#[inline(always)]
pub const fn suspect_index(range: usize, dir: usize, reason: usize) -> u32 {
    ((range * DIRS + dir) * Reason::COUNT + reason) as u32
}

/// Key of the table that makes a suspect flow count once per reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuspectKey {
    pub flow: FlowKey,
    pub reason: u8,
    pub _pad: [u8; 7],
}

/// Ports of the `POOL_PORTS` bitmap, one bit each.
pub const POOL_PORT_WORDS: usize = 65536 / 64;

/// Indexes of the per-CPU `STATS` array: what the program did, beyond counting packets.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Flows inserted into the flow table (so evictions = created - entries).
    FlowsCreated = 0,
    /// Events written to the ring buffer.
    EventsSent = 1,
    /// Events dropped because the ring buffer was full.
    EventsLost = 2,
    /// Candidate packets handed to deep inspection (redirected to AF_XDP or copied).
    Candidates = 3,
    /// `inline`: candidates not copied because the sample ring was full.
    SamplesLost = 4,
    /// `tap`: candidates passed uninspected because no AF_XDP socket served their receive queue.
    NoSocket = 5,
    /// New flows' unfinished first messages held in `OPENINGS` (see [`Opening`]).
    OpeningsHeld = 6,
    /// Held openings the program removed: decided (the joined message was Stratum), continued
    /// past [`OPENING_BYTES`] or out of order, or stale (so evictions = held - removed - entries).
    OpeningsRemoved = 7,
    /// TLS flows whose shape the program started recording (`TLS_SHAPES`), so that evictions =
    /// started - judged - entries.
    ShapesStarted = 8,
}

impl Stat {
    pub const COUNT: usize = 9;
}

/// Bytes of a new flow's unfinished first message the XDP program holds (a power of two): a
/// client may split its login anywhere, down to a first segment of one byte `{`, so that no
/// segment alone carries a marker. XMRig's login up to its `"agent"` key is 166 bytes with a
/// 95-character wallet. A segment is held only when it opens a message (`{` or a blank first),
/// matches no rule, fits here whole and ends without a line end, on a flow the flow table does
/// not know; the next segment in sequence is scanned after it, up to `WINDOW - OPENING_BYTES`
/// of its bytes.
pub const OPENING_BYTES: usize = 256;
/// Entries of the `OPENINGS` LRU map (the least recently used is evicted beyond it).
pub const OPENING_ENTRIES: u32 = 4096;
/// A held opening not continued within this is stale: not joined, and removed when its flow's
/// next segment comes.
pub const OPENING_MAX_AGE_NS: u64 = 10_000_000_000;

/// Value of `OPENINGS` (keyed by [`FlowKey`]): the unfinished start of a new flow's first
/// message, from one direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    /// When it was held or last extended (the program's clock).
    pub at_ns: u64,
    /// The sequence number that continues it.
    pub next_seq: u32,
    /// Bytes held (1..OPENING_BYTES); for [`OPENING_FOLLOW`], segments still to hand over.
    pub len: u16,
    /// 1 when the lower endpoint of the key sent it (see `FlowKey`).
    pub from_lo: u8,
    /// What is held: [`OPENING_MESSAGE`], [`OPENING_HELLO`], [`OPENING_HELLO_LAST`] or
    /// [`OPENING_FOLLOW`].
    pub kind: u8,
    /// A ClientHello's: bytes of the window (the held bytes, then the next segment's) before the
    /// walk goes on, and where the extensions end in it; 0 for `end` when the whole hello so far
    /// is held (cut before its extensions), to be walked from its start. For [`OPENING_FOLLOW`],
    /// `skip` is the bytes of a WebSocket frame's rest still to come (0 when the entry follows a
    /// plain message, by `len` segments).
    pub skip: u16,
    pub end: u16,
    pub _pad: [u8; 4],
    pub bytes: [u8; OPENING_BYTES],
}

/// [`Opening::kind`]: the start of a JSON message (a login split before any marker).
pub const OPENING_MESSAGE: u8 = 0;
/// [`Opening::kind`]: the end of a ClientHello's first segment, for the walk over its extensions
/// to go on in the next (see `tls::split`).
pub const OPENING_HELLO: u8 = 1;
/// [`Opening::kind`]: the end of a ClientHello's second segment, cut again before it decides:
/// the third segment is the last walked (a hello over at most three segments).
pub const OPENING_HELLO_LAST: u8 = 3;
/// [`Opening::kind`]: a new flow whose first segment opened a JSON message and ran past the
/// scanner's window with nothing recognised (a login padded with an unknown key of kilobytes
/// before its method): no bytes are held, `len` counts the segments still to hand over, and
/// each next segment in sequence from the same endpoint goes to deep inspection as it is, which
/// joins the message (`inspect::stream`).
pub const OPENING_FOLLOW: u8 = 2;
/// Segments after such a first one handed over: a message over at most 4 segments (at a
/// 1,448-byte MSS, about 5.7 KB; a login padded further is still found by its flow's other
/// messages, without its coin and agent). A WebSocket frame's rest is followed by its length
/// instead (`websocket::MESSAGE_MAX` at most).
pub const OPENING_FOLLOW_SEGMENTS: u16 = 3;

/// Bytes of kernel memory one `OPENINGS` entry holds: its key and value.
pub const OPENING_ENTRY_BYTES: usize =
    core::mem::size_of::<FlowKey>() + core::mem::size_of::<Opening>();
const _: () = assert!(OPENING_ENTRY_BYTES == 40 + 280 && OPENING_BYTES.is_power_of_two());

/// `CAPTURE_MODE` of the kernel program (a load-time constant, so the verifier prunes the other
/// mode): candidates go nowhere (deep inspection off).
pub const CAPTURE_OFF: u32 = 0;
/// `tap` (mirror port): candidates are redirected through `XSKS` to AF_XDP sockets.
pub const CAPTURE_TAP: u32 = 1;
/// `inline` (live link): candidates pass, and their first `SAMPLE_BYTES` are copied to `SAMPLES`.
pub const CAPTURE_INLINE: u32 = 2;
/// Receive queues served per interface in `tap` mode (`XSKS` holds `MAX_IFACE_SLOTS` times this).
pub const MAX_QUEUES: u32 = 64;

/// Key of an AF_XDP socket in `XSKS`.
#[inline(always)]
pub const fn xsk_key(iface_slot: u32, queue: u32) -> u32 {
    iface_slot * MAX_QUEUES + queue
}
/// Bytes of a candidate frame copied in `inline` mode: a whole standard-MTU Ethernet frame with
/// two VLAN tags, enough for an XMRig login with its algorithm list.
pub const SAMPLE_BYTES: usize = 1536;

/// One candidate packet in the `SAMPLES` ring buffer (`inline` capture).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the packet.
    pub ts_ns: u64,
    pub ifindex: u32,
    /// Length of the frame on the wire.
    pub frame_len: u32,
    /// Bytes of it in `data` (at most `SAMPLE_BYTES`).
    pub cap_len: u32,
    /// `SAMPLE_OPENED` or 0.
    pub flags: u32,
    pub data: [u8; SAMPLE_BYTES],
}

/// Bytes of a `Sample` before `data`. A record in `SAMPLES` holds the header and `cap_len` bytes
/// of `data`, no more.
pub const SAMPLE_HEADER: usize = core::mem::offset_of!(Sample, data);

/// `Sample::flags`: the packet opened a Stratum flow, and the record carries that flow's `Event`
/// between the header and the frame (at `SAMPLE_HEADER`, the frame at `SAMPLE_OPENED_HEADER`),
/// instead of a record of its own in `EVENTS`: one ring record for a new flow's event and its
/// copy (BENCHMARKS.md, "A new flow's login, taken apart by removal").
pub const SAMPLE_OPENED: u32 = 1;

/// Bytes of a `SAMPLE_OPENED` record before its frame.
pub const SAMPLE_OPENED_HEADER: usize = SAMPLE_HEADER + core::mem::size_of::<Event>();

/// `Event::kind`: a new Stratum flow.
pub const EVENT_STRATUM_FLOW: u8 = 0;
/// `Event::kind`: a new suspect flow (for one reason, in `Event::dialect`).
pub const EVENT_SUSPECT_FLOW: u8 = 1;

/// One event in the `EVENTS` ring buffer: a flow worth reporting, as its first packet showed it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the packet.
    pub ts_ns: u64,
    pub key: FlowKey,
    /// Ranges containing the packet's source / destination, as bit sets.
    pub src_ranges: u64,
    pub dst_ranges: u64,
    pub ifindex: u32,
    /// `EVENT_*`.
    pub kind: u8,
    /// `stratum::Dialect` as u8 for Stratum flows, `Reason` as u8 for suspect flows.
    pub dialect: u8,
    /// 1 when the packet's source is the key's lower endpoint.
    pub src_is_lo: u8,
    pub _pad: u8,
}

/// Replay's batches (`mining-sensor replay`): one BPF_PROG_TEST_RUN call carries up to
/// `REPLAY_BATCH_MAX` packets, each with this header, and the program (loaded with `REPLAY_BATCH`
/// set) runs its ordinary per-packet code on each in turn, moving the frame's bounds from one
/// packet to the next and tail-calling itself. The packets keep their capture time and file.
///
/// Layout of the test run's input, for packets 1..n in processing order: the first header as XDP
/// metadata (`ctx_in.data` = its size), then packet n, header n, packet n-1, header n-1, ...,
/// packet 2, header 2, packet 1. Packet 1 ends the frame, and the header of each next packet sits
/// just before the packet processed last: the kernel only ever shrinks the frame's end
/// (`bpf_xdp_adjust_tail` zeroes whatever it grows back over) and moves its start backwards.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayHeader {
    /// Capture time, nanoseconds since the Unix epoch: the program's clock for this packet.
    pub ts_ns: u64,
    /// The packet's length.
    pub len: u32,
    /// Stands for the ingress interface (replay gives each capture file its own).
    pub ifindex: u32,
    /// First header only: where packet 1 starts, from the start of the frame after the metadata.
    pub offset: u32,
    /// 1-based position in the batch.
    pub index: u32,
    /// Packets after this one.
    pub remaining: u32,
    /// The packet's length on the wire, which IP lengths are checked against: more than `len`
    /// when the capture's snap length, or replay to fit a batch, cut the record short. Only the
    /// first `len` bytes are there to inspect.
    pub wire_len: u32,
}

impl ReplayHeader {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.ts_ns.to_ne_bytes());
        b[8..12].copy_from_slice(&self.len.to_ne_bytes());
        b[12..16].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[16..20].copy_from_slice(&self.offset.to_ne_bytes());
        b[20..24].copy_from_slice(&self.index.to_ne_bytes());
        b[24..28].copy_from_slice(&self.remaining.to_ne_bytes());
        b[28..32].copy_from_slice(&self.wire_len.to_ne_bytes());
        b
    }
}

/// Packets per batch: one call plus `MAX_TAIL_CALL_CNT` (33) tail calls, with room to spare.
pub const REPLAY_BATCH_MAX: usize = 32;
/// The shortest packet a batch of more than one can carry: the kernel keeps at least an Ethernet
/// header's worth of bytes between the frame's start and end whenever it moves either.
pub const REPLAY_MIN_BATCHED_LEN: usize = 14;
/// The batch program's return value: this plus the packets it ran over, when all went well.
pub const REPLAY_DONE: u32 = 0x0100_0000;
/// ...plus the packets done: the frame's size was not what the first header says (the kernel put
/// part of the input in fragments; nothing of this batch was counted).
pub const REPLAY_BAD_LAYOUT: u32 = 0x0200_0000;
/// ...plus the packets done: a header did not fit or a bound could not be moved.
pub const REPLAY_BAD_HEADER: u32 = 0x0300_0000;
/// ...plus the packets done: the tail call to the next packet failed.
pub const REPLAY_TAIL_CALL_FAILED: u32 = 0x0400_0000;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data without padding holes that could leak or be invalid.
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::SuspectKey {}
    unsafe impl aya::Pod for super::Sample {}
    unsafe impl aya::Pod for super::Opening {}
    unsafe impl aya::Pod for super::tls_shape::TlsShape {}
    unsafe impl aya::Pod for super::pools::PoolEndpoint {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_and_in_bounds() {
        // By hand: 32 interface slots x (63 ranges + unwatched) x 2 directions = 4,096 traffic
        // cells; 64 range slots x 2 directions x 3 dialects = 384 Stratum cells; 64 x 2 x 6
        // reasons = 768 suspect cells; 20 parse events. The last cell of each is its count - 1.
        assert_eq!(traffic_index(0, 0, 0), 0);
        assert_eq!(traffic_index(31, 63, 1), 4_095);
        assert_eq!(TRAFFIC_CELLS, 4_096);
        assert_eq!(stratum_index(63, 1, 2), 383);
        assert_eq!(STRATUM_CELLS, 384);
        assert_eq!(suspect_index(63, 1, 5), 767);
        assert_eq!(SUSPECT_CELLS, 768);
        // 63 ranges x 2 directions x (16 neighbours + other) = 2,142 peer cells.
        assert_eq!(peer_index(62, 1, 16), 2_141);
        assert_eq!(PEER_CELLS, 2_142);
        assert_eq!(ParseEvent::FlowInsertFailed as usize, 16);
        assert_eq!(ParseEvent::MplsNotIp as usize, 19);
        assert_eq!(ParseEvent::BadTunnel as usize, 21);
        assert_eq!(ParseEvent::COUNT, 22);
    }

    #[test]
    fn label_values_are_the_contracts() {
        // The label values of the metrics contract, copied from it, in the kernel's index order.
        use stratum::Dialect;
        assert_eq!(Dialect::NAMES, ["monero", "bitcoin", "ethereum"]);
        assert_eq!(
            [
                Dialect::Monero.name(),
                Dialect::Bitcoin.name(),
                Dialect::Ethereum.name()
            ],
            ["monero", "bitcoin", "ethereum"]
        );
        assert_eq!(
            Reason::NAMES,
            [
                "tls_no_sni",
                "pool_endpoint",
                "pool_dns",
                "stratum_v2",
                "tls_pool_sni",
                "encrypted_stratum"
            ]
        );
        assert_eq!(
            [
                Reason::TlsNoSni as usize,
                Reason::PoolEndpoint as usize,
                Reason::PoolDns as usize,
                Reason::StratumV2 as usize,
                Reason::TlsPoolSni as usize,
                Reason::EncryptedStratum as usize
            ],
            [0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn peer_keys_of_addresses_and_vlans_never_collide() {
        // 02:00:5e:10:00:01 is 0x0200_5e10_0001 (first byte most significant); VLAN 100 is
        // 0x64 over bit 48, and the tag's priority bits (0xe000) are not part of the ID.
        assert_eq!(
            peer_key_mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]),
            0x0200_5e10_0001
        );
        assert_eq!(peer_key_vlan(100), 0x1_0000_0000_0064);
        assert_eq!(peer_key_vlan(0xe000 | 100), 0x1_0000_0000_0064);
        // The largest address stays below the VLAN bit.
        assert_eq!(peer_key_mac([0xff; 6]), 0xffff_ffff_ffff);
        assert!(peer_key_mac([0xff; 6]) < PEER_KEY_VLAN);
    }

    #[test]
    fn flow_layout_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 16 + 16 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(core::mem::size_of::<SuspectKey>(), 40 + 1 + 7);
        assert_eq!(core::mem::offset_of!(Event, key), 8);
        assert_eq!(core::mem::size_of::<FlowState>(), 8 * 3 + 4 + 1 + 1 + 2);
        assert_eq!(core::mem::size_of::<Sample>(), 8 + 4 * 4 + SAMPLE_BYTES);
        assert_eq!(core::mem::size_of::<Event>(), 8 + 40 + 8 + 8 + 4 + 4);
    }
}
