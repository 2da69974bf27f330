//! Every metric name the sensor exports, once. The registry, replay's outputs, the HTML report and
//! the tests use these constants; `deploy/exported-metrics.txt` lists the same names for the
//! dashboard and rule checks, and a unit test holds the two equal.

pub const PACKETS: &str = "mining_sensor_packets_total";
pub const BYTES: &str = "mining_sensor_bytes_total";
pub const PEER_PACKETS: &str = "mining_sensor_peer_packets_total";
pub const PEER_BYTES: &str = "mining_sensor_peer_bytes_total";
pub const STRATUM_PACKETS: &str = "mining_sensor_stratum_packets_total";
pub const STRATUM_FLOWS: &str = "mining_sensor_stratum_flows_total";
pub const MINING_FLOWS: &str = "mining_sensor_mining_flows";
pub const CONFIG_RELOADS: &str = "mining_sensor_config_reloads_total";
pub const INTERFACE_UP: &str = "mining_sensor_interface_up";
pub const BUILD_INFO: &str = "mining_sensor_build_info";
pub const XDP_ATTACHED: &str = "mining_sensor_xdp_attached";
pub const DRAIN_DURATION: &str = "mining_sensor_drain_duration_seconds";
pub const LAST_DRAIN: &str = "mining_sensor_last_drain_timestamp_seconds";
pub const PARSE_EVENTS: &str = "mining_sensor_parse_events_total";
pub const WATCHED_PREFIXES: &str = "mining_sensor_watched_prefixes";
pub const FLOW_TABLE_ENTRIES: &str = "mining_sensor_flow_table_entries";
pub const FLOW_TABLE_CAPACITY: &str = "mining_sensor_flow_table_capacity";
pub const FLOW_TABLE_EVICTIONS: &str = "mining_sensor_flow_table_evictions_total";
pub const EVENTS: &str = "mining_sensor_events_total";
pub const EVENTS_LOST: &str = "mining_sensor_events_lost_total";
pub const SUSPECT_FLOWS: &str = "mining_sensor_suspect_flows_total";
pub const MINER_LOGINS: &str = "mining_sensor_miner_logins_total";
pub const DISTINCT_MINERS: &str = "mining_sensor_distinct_miners";
pub const INSPECTED_PACKETS: &str = "mining_sensor_inspected_packets_total";
pub const INSPECT_CANDIDATES: &str = "mining_sensor_inspect_candidates_total";
pub const CAPTURE_DROPS: &str = "mining_sensor_capture_drops_total";
pub const AFXDP_SOCKETS: &str = "mining_sensor_afxdp_sockets";
pub const SHARES: &str = "mining_sensor_shares_total";
pub const SHARE_HASHES: &str = "mining_sensor_share_hashes_total";
pub const SHARES_UNKNOWN_DIFFICULTY: &str = "mining_sensor_shares_unknown_difficulty_total";
pub const REPORTED_HASHRATE: &str = "mining_sensor_reported_hashrate";
pub const REASSEMBLY_BYTES: &str = "mining_sensor_reassembly_bytes";
pub const REASSEMBLY_EVICTIONS: &str = "mining_sensor_reassembly_evictions_total";
pub const OPENING_BYTES: &str = "mining_sensor_opening_bytes";
pub const OPENING_EVICTIONS: &str = "mining_sensor_opening_evictions_total";
pub const TLS_SHAPE_BYTES: &str = "mining_sensor_tls_shape_bytes";
pub const TLS_SHAPE_EVICTIONS: &str = "mining_sensor_tls_shape_evictions_total";
pub const INFLATE_BYTES: &str = "mining_sensor_inflate_bytes";
pub const INFLATE_EVICTIONS: &str = "mining_sensor_inflate_evictions_total";

/// The `direction` label: traffic from a watched range (its source is in the range) or to it.
pub const FROM: &str = "from";
pub const TO: &str = "to";
/// ... and of the flows outside every range (`range="unwatched"`).
pub const NONE: &str = "none";
