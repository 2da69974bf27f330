//! Every map and global the program shares with the agent (the agent finds them by these names),
//! the per-CPU scratch memory the walks work in, and the readers of the load-time globals and the
//! statistics counters.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf, XskMap},
};
use sensor_common::{
    Counter, FILTER_WORDS, FlowKey, FlowState, IFINDEX_DIRECT, MAX_IFACE_SLOTS, MAX_PEER_KEYS,
    MAX_QUEUES, PEER_CELLS, POOL_PORT_WORDS, ParseEvent, ReplayHeader, STRATUM_CELLS,
    SUSPECT_CELLS, Stat, SuspectKey, TRAFFIC_CELLS, dns,
    pools::{self, PoolEndpoint},
    stratum,
    tls_shape::{SHAPE_FLOWS, SHAPE_SLOTS, TlsShape},
};

#[map]
pub(crate) static TRAFFIC: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(TRAFFIC_CELLS as u32, 0);
/// Watched traffic per range, direction and neighbour (`sensor_common::peer_index`).
#[map]
pub(crate) static PEER_TRAFFIC: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(PEER_CELLS as u32, 0);
/// The configured neighbours: `sensor_common::peer_key_mac` / `peer_key_vlan` -> peer index
/// (1..=`MAX_PEERS`), written by the agent.
#[map]
pub(crate) static PEERS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_PEER_KEYS as u32, 0);
/// `PEER_KIND_MAC` / `PEER_KIND_VLAN`: which kinds of key `PEERS` holds (written by the agent
/// after the keys, cleared before they go).
#[map]
pub(crate) static PEER_KINDS: Array<u32> = Array::with_max_entries(1, 0);
#[map]
pub(crate) static STRATUM_PACKETS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(STRATUM_CELLS as u32, 0);
#[map]
pub(crate) static STRATUM_FLOWS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(STRATUM_CELLS as u32, 0);
#[map]
static PARSE: PerCpuArray<u64> = PerCpuArray::with_max_entries(ParseEvent::COUNT as u32, 0);
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT as u32, 0);

#[map]
pub(crate) static SUSPECT_FLOWS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(SUSPECT_CELLS as u32, 0);
/// (flow, reason) pairs already counted: each suspect flow counts once per reason. Resized by the
/// agent like the flow table.
#[map]
pub(crate) static SUSPECTS: LruHashMap<SuspectKey, u8> = LruHashMap::with_max_entries(65536, 0);
/// Flows whose payload of the Stratum V2 Noise hello's size (64 bytes) went to a port that is not
/// a pool port, waiting for the responder's 234 bytes (see `signals::noise_handshake`): the time
/// of the hello (ns), its lowest bit saying whether its sender was the key's low side.
#[map]
pub(crate) static NOISE_HELLOS: LruHashMap<FlowKey, u64> = LruHashMap::with_max_entries(16384, 0);
/// TLS flows whose shape is being recorded for the `encrypted_stratum` decision (see
/// `signals::shape_start`): from the ClientHello until the agent has judged the flow and deleted
/// it, or the LRU evicts it.
#[map]
pub(crate) static TLS_SHAPES: LruHashMap<FlowKey, TlsShape> =
    LruHashMap::with_max_entries(SHAPE_FLOWS, 0);
/// The filter in front of `TLS_SHAPES`: when a ClientHello was last recorded on a flow of each
/// `tls_shape::shape_slot` (0: never).
#[map]
pub(crate) static SHAPE_RECENT: Array<u64> = Array::with_max_entries(SHAPE_SLOTS as u32, 0);
/// Keys of the configured pool domains (`sensor_common::dns::name_key`), written by the agent.
#[map]
pub(crate) static POOL_DOMAINS: HashMap<u64, u8> =
    HashMap::with_max_entries(dns::MAX_POOL_DOMAINS, 0);
/// `dns::filter_bit` of each key in `POOL_DOMAINS`, written by the agent after the keys themselves
/// (a set bit without its key only costs the lookup).
#[map]
pub(crate) static POOL_DOMAIN_FILTER: Array<u64> =
    Array::with_max_entries(dns::FILTER_WORDS as u32, 0);
/// Pool ports, one bit per port, written by the agent.
#[map]
pub(crate) static POOL_PORTS: Array<u64> = Array::with_max_entries(POOL_PORT_WORDS as u32, 0);

/// One event per new Stratum flow, read by the agent. Resized by the agent from configuration;
/// an event that finds it full is counted in `STATS[EventsLost]`, never silently dropped.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Watched prefixes; the value is the bit set of configured ranges that contain the prefix (the
/// agent folds enclosing prefixes of every range in, so the longest match answers for all ranges).
/// The agent resizes both tries from configuration before loading.
#[map]
pub(crate) static RANGES_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(1 << 16, 0);
#[map]
pub(crate) static RANGES_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(1 << 16, 0);

/// Quick rejection in front of the tries (see `sensor_common::FILTER_BITS`): most addresses on a
/// transit link are in no watched range, and one array read proves it without a trie walk.
#[map]
pub(crate) static FILTER: Array<u64> = Array::with_max_entries(FILTER_WORDS as u32, 0);
/// `FILTER_V4_ALL` / `FILTER_V6_ALL`: a configured prefix too short for the filter; that family
/// always goes to the trie.
#[map]
pub(crate) static FILTER_FLAGS: Array<u32> = Array::with_max_entries(1, 0);

/// Interface index -> interface slot (0: not registered; its traffic is counted in slot 0).
#[map]
pub(crate) static IFINDEX_SLOTS: Array<u32> = Array::with_max_entries(IFINDEX_DIRECT, 0);
#[map]
pub(crate) static IFINDEX_SLOTS_HIGH: HashMap<u32, u32> =
    HashMap::with_max_entries(MAX_IFACE_SLOTS as u32, 0);

/// Stratum flows. Shared across CPUs (not per-CPU) so that the two directions of a connection,
/// which RSS may steer to different CPUs, are one flow and are counted once; `BPF_NOEXIST` makes
/// "first packet" a single winner even under a race. Resized by the agent from configuration.
#[map]
pub(crate) static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(65536, 0);

/// Each `recent_slot`'s two marks (`sensor_common::recent`), a byte each: when a Stratum packet
/// last passed on a flow of the slot, and when an opening was held in it (`recent`). A segment
/// that does not start a JSON message is looked up in FLOWS only when its slot's Stratum mark is
/// recent: on a transit link most such segments (TLS and other ciphertext continuing a record, a
/// third of which start with a printable byte) then cost an array read instead of a flow-table
/// lookup. Mapped by the agent (`BPF_F_MMAPABLE`), which marks the flows it opens.
#[map]
pub(crate) static RECENT: Array<u64> = Array::with_max_entries(
    sensor_common::recent::WORDS as u32,
    aya_ebpf::bindings::BPF_F_MMAPABLE,
);

/// Pool endpoints: the destinations of logins that met their rule lately, by slot
/// (`sensor_common::pools`).
#[map]
pub(crate) static POOL_ENDPOINTS: Array<PoolEndpoint> =
    Array::with_max_entries(pools::SLOTS as u32, 0);

/// Per-CPU working memory: the payload window the scanner reads (too large for the 512-byte BPF
/// stack), the scan's state between its steps (see `scan`), and the other walks' state.
#[repr(C)]
pub(crate) struct Scratch {
    pub(crate) buf: stratum::Window,
    /// The scan's state between steps (see `scan`).
    pub(crate) scan: ScanState,
    /// The packet's flow (see `scan::packet_flow`).
    pub(crate) flow: Flow,
    pub(crate) suspect: SuspectKey,
    /// The walk over a DNS query's name (see `pool_dns`).
    pub(crate) dns: dns::QueryName,
    /// The start of a TLS record, for the ClientHello walk (see `client_hello`).
    pub(crate) hello: [u8; sensor_common::tls::HELLO_WINDOW],
    /// The copy of a ClientHello's server name into `buf` (see `client_hello`).
    pub(crate) host: sensor_common::tls::HostCopy,
    /// A new flow's shape record, built here before its insert (too large for the stack).
    pub(crate) shape: TlsShape,
    /// Replay: the header of the packet being run (see `replay_enter`).
    pub(crate) pkt: ReplayHeader,
    /// The transport header's offset and the IP packet's end, passed through memory (see
    /// `try_sensor`).
    pub(crate) offsets: [u64; 2],
    /// A new flow's opening being held or extended, staged here for `OPENINGS` (see `opening`).
    pub(crate) opening: sensor_common::Opening,
    /// The window's length, the opening's bytes at its start, the flags of `opening_settle` and
    /// the sequence number after the segment, passed through memory (see `opening::forget`).
    pub(crate) window: [u64; 4],
    /// The event of the Stratum flow this packet opened, when the packet's copy carries it
    /// (`carry` 1: set by `scan::inspect`, taken by `capture::sample` on the same packet).
    pub(crate) opened: sensor_common::Event,
    pub(crate) carry: u64,
    /// The bytes of tunnel headers the frame's start was moved over (`tunnel::enter`), 0 for
    /// none: moved back before the packet is passed on.
    pub(crate) peeled: u64,
}

/// A packet's flow key and its slot in the tables indexed by slot (`RECENT`):
/// `recent_slot` hashes the key's 40 bytes, and a JSON segment's path reads those tables up to
/// four times, so the slot is computed once, where the key is filled (`scan::packet_flow`).
#[repr(C)]
pub(crate) struct Flow {
    pub(crate) key: FlowKey,
    /// `recent_slot(&key)`.
    pub(crate) slot: u64,
}

/// State of one scan: the scanner, where it is and what it found. It lives in SCRATCH, not on
/// the stack: the chain of calls down to the step fits the verifier's 512 bytes of stack, and the
/// verifier tracks no values in map memory, so every step starts from unknown scalars and the
/// step is verified for all of them at once (see `scan`).
#[repr(C)]
pub(crate) struct ScanState {
    pub(crate) scanner: stratum::Scanner,
    pub(crate) pos: u64,
    pub(crate) len: u64,
    pub(crate) found: u64,
}

#[map]
pub(crate) static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// `sensor_common::CAPTURE_*`, set by the agent at load time. A read-only global: the verifier
/// knows its value and prunes the capture path not taken.
#[unsafe(no_mangle)]
static CAPTURE_MODE: u32 = 0;
/// Packets per suspect flow and reason handed to deep inspection; the rest are only counted. Not
/// a bound on Stratum flows, every message packet of which is handed over; 0 turns inspection off.
#[unsafe(no_mangle)]
static INSPECT_BUDGET: u32 = 0;
/// The tunnels `decapsulate` names (`sensor_common::tunnel::DECAP_*`), set by the agent at load
/// time; read-only, so that with none the verifier prunes the tunnel's walk and a packet pays
/// nothing for it.
#[unsafe(no_mangle)]
static DECAP: u32 = 0;
/// 1 when loaded by `mining-sensor replay`: every run is a batch of packets with their capture
/// time (see `ReplayHeader`). Read-only like `CAPTURE_MODE`: the live program carries none of it.
#[unsafe(no_mangle)]
static REPLAY_BATCH: u32 = 0;

/// Replay: slot 0 holds the program itself, which tail-calls itself for each next packet.
#[map]
pub(crate) static REPLAY_NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// `tap`: AF_XDP sockets by interface slot and receive queue (`slot * MAX_QUEUES + queue`),
/// registered by the agent. Keyed by slot too because a socket only takes packets of the device
/// and queue it is bound to: with several interfaces, queue 0 of one is not queue 0 of another.
#[map]
pub(crate) static XSKS: XskMap = XskMap::with_max_entries(MAX_IFACE_SLOTS as u32 * MAX_QUEUES, 0);
/// `inline`: the first `SAMPLE_BYTES` of each candidate. Resized by the agent from configuration;
/// a sample that finds it full is counted in `STATS[SamplesLost]`.
#[map]
pub(crate) static SAMPLES: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

#[inline(always)]
pub(crate) fn capture_mode() -> u32 {
    // SAFETY: reads a global; volatile so that LLVM does not fold the compile-time 0.
    unsafe { core::ptr::read_volatile(&CAPTURE_MODE) }
}

#[inline(always)]
pub(crate) fn inspect_budget() -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&INSPECT_BUDGET) }
}

#[inline(always)]
pub(crate) fn decap() -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&DECAP) }
}

#[inline(always)]
pub(crate) fn replay_batch() -> bool {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&REPLAY_BATCH) != 0 }
}

#[inline(always)]
pub(crate) fn stat(s: Stat) {
    if let Some(p) = STATS.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub(crate) fn bump(event: ParseEvent) {
    if let Some(p) = PARSE.get_ptr_mut(event as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// New flows' unfinished first messages, held so that the next segment is scanned after them (a
/// login split before any marker; see `opening`). LRU: the least recently used goes first.
#[map]
pub(crate) static OPENINGS: LruHashMap<FlowKey, sensor_common::Opening> =
    LruHashMap::with_max_entries(sensor_common::OPENING_ENTRIES, 0);

/// When the rest of a WebSocket frame was last set to be followed on a flow that involves no
/// watched range, pool address or pool port (`now | 1`; 0 once `OPENING_MAX_AGE_NS` passed with
/// none): only while it is not 0 does such a flow's segment that opens with a byte no other
/// branch reads pay its flow key to be looked for among the followed (`opening::frames_followed`).
#[map]
pub(crate) static UNWATCHED_FOLLOW: Array<u64> = Array::with_max_entries(1, 0);

/// Stratum V2 flows (their handshake seen, see `sv2`): the sequence number after the client's
/// last counted share (high 32 bits) and whether the client is the key's lower endpoint (bit 0).
#[map]
pub(crate) static SV2_FLOWS: LruHashMap<FlowKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Whether any Stratum V2 flow's share size is known (`sv2::sized`; 0 until one is): only then do
/// the segments that may hold several shares (`sv2::sized`) pay the flow's lookup.
#[map]
pub(crate) static SV2_SIZED: Array<u64> = Array::with_max_entries(1, 0);

/// Stratum V2 shares counted by their encrypted size, per range (`UNWATCHED_SLOT` for flows
/// outside every range).
#[map]
pub(crate) static SV2_SHARES: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(sensor_common::UNWATCHED_SLOT as u32 + 1, 0);
