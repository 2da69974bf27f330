//! Deep inspection of candidate packets: the kernel program hands over every JSON packet of a
//! Stratum flow and the first data packets of suspect flows (a per-flow budget of them), over AF_XDP
//! (`tap`) or as copies in a ring buffer (`inline`); here their Stratum JSON is parsed
//! (`deep`) and each miner login is counted by range, coin and agent family. A login that names
//! no coin (an account) waits, boundedly, for its flow to show one (`LOGIN_COIN_WAIT_MESSAGES`).
//!
//! The same JSON feeds `activity`: every share a miner submits, once, at its job's difficulty
//! (`shares_total`, `share_hashes_total`), its result from the pool's reply, and the rate a miner
//! reports of itself (`reported_hashrate`). Shares are kept per flow in a `Ledger` whose flows
//! follow `seen`: a flow forgotten there ends its waiting shares as `unknown`.
//!
//! No login (wallet, user name) is stored or exported: distinct miners are counted by a keyed
//! hash of the login (`deep::login_hash`), and only the hash appears in events.

pub mod chunked;
pub mod deep;
pub mod deflate;
pub mod fragments;
pub mod frame;
pub mod stream;
pub mod websocket;

use std::{
    collections::HashMap,
    io::Read as _,
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use sensor_common::{IPPROTO_TCP, MAX_RANGES, RANGE_MASK};

use self::deep::{Coin, Message};
use crate::{
    activity::{
        ledger::{Ledger, Resolved},
        proof::{Budget, Pow, Prover},
        tally::{Tally, Who},
        wire::{Signal, signals},
    },
    config::UNWATCHED,
    metrics::{Metrics, names},
};

/// Flows remembered (the agent a `mining.subscribe` named before the login; whether the login
/// was counted, so that a retransmitted login segment counts once). Bounded; the oldest half is
/// forgotten when full.
const SEEN_FLOWS: usize = 65_536;
/// Distinct login hashes remembered over all ranges, at most: beyond it new miners are still
/// counted in `miner_logins_total` but not in the distinct gauge (and the agent says so).
const MAX_DISTINCT: usize = 1_000_000;
/// Addresses whose watched ranges the Inspector remembers at most (see `Inspector::addr_ranges`).
const MAX_ADDR_RANGES: usize = 65_536;

/// A miner's reported rate counts in `reported_hashrate` for this long after it was sent.
pub const REPORTED_RATE_WINDOW: Duration = Duration::from_secs(300);
/// A login that names no coin (an account, `account.worker`) waits for its flow to show one: the
/// session's first job does (a CryptoNote job in a Monero pool's login reply, an Equihash
/// `mining.notify`) or tells that it will not (any other `mining.notify`: later jobs have the
/// same shape), and a pool host in `mining.subscribe` came before the login. It waits for at most
/// this many further Stratum messages of the flow (a one-direction tap sees no job): a Monero
/// pool's login reply is the next one, a Stratum V1 pool's first job among the next three
/// (`mining.set_difficulty` or `set_target`, `mining.notify`, before or after the `authorize`
/// reply). A Stratum V1 flow whose first share may prove scrypt (its pool's extranonce1 seen)
/// waits for that share instead, whatever the messages in between (see
/// `FlowNote::take_ready_login`).
pub const LOGIN_COIN_WAIT_MESSAGES: u32 = 4;
/// ... and for at most this long (checked at the flow's next message and at each expiry): then it
/// counts as `unknown`, as it does when its flow is forgotten or a replay ends first.
pub const LOGIN_COIN_WAIT: Duration = Duration::from_secs(60);

/// Where the agent opens a flow whose Stratum the kernel program could not read (compressed
/// WebSocket messages, a chunked body's JSON, a login padded past the program's window on a flow
/// nothing else opened): the program's flow table (`bpf::opened`). `open` inserts the flow unless
/// it is there, and says whether it did: only then is it counted in `stratum_flows_total` here.
pub trait OpenFlows: Send {
    fn open(
        &mut self,
        key: &sensor_common::FlowKey,
        ranges: u64,
        dialect: u8,
        wall: std::time::SystemTime,
    ) -> bool;
    /// A later Stratum message of a flow read here: its entry's last time moves to `wall`'s
    /// moment, as the program moves it at each Stratum packet it reads, so that the flow stays
    /// in `mining_flows` while its messages come.
    fn touch(&mut self, key: &sensor_common::FlowKey, wall: std::time::SystemTime);
}

/// The login hash key: the first 32 bytes of `path`, or random bytes for this process's life.
pub fn login_key(path: Option<&Path>) -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    match path {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("inspect.login_key_file: cannot read {}", p.display()))?;
            if bytes.len() < 32 {
                bail!(
                    "inspect.login_key_file: {} holds {} bytes; it needs at least 32 (e.g. `head -c 32 /dev/urandom > {}`)",
                    p.display(),
                    bytes.len(),
                    p.display()
                );
            }
            key.copy_from_slice(&bytes[..32]);
        }
        None => {
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .context("reading a random login hash key from /dev/urandom")?;
        }
    }
    Ok(key)
}

/// The event line of a login.
#[derive(Serialize, Debug, Clone)]
pub struct LoginLine {
    pub ts: String,
    pub event: &'static str,
    pub range: String,
    pub ranges: Vec<String>,
    pub dialect: &'static str,
    pub coin: &'static str,
    pub agent: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    pub login_hash: String,
    /// `afxdp` or `copy`: how the packet reached userspace (replay reads the kernel's copies).
    pub path: &'static str,
    #[serde(flatten)]
    pub flow: crate::events::FlowFields,
    /// When the login's packet came (`ts`), for ordering lines that come out later.
    #[serde(skip)]
    pub at: std::time::SystemTime,
}

/// A login that waits for its flow's coin (see [`LOGIN_COIN_WAIT_MESSAGES`]).
struct PendingLogin {
    message: Message,
    ranges: Vec<String>,
    flow: crate::events::FlowFields,
    path: &'static str,
    at: Instant,
    wall: std::time::SystemTime,
    /// Stratum messages of the flow since the login.
    waited: u32,
}

type FlowId = (IpAddr, u16, IpAddr, u16, u8);

/// Whether the agent put a flow in the program's flow table (see [`OpenFlows`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opened {
    /// Not tried, or tried at a plain login whose flow the table already held.
    No,
    /// Tried where the program could not read the flow's Stratum (compressed WebSocket messages,
    /// a chunked body's JSON): its entry is touched at every later message read here, whether
    /// the program or the agent put it there.
    Tried,
    /// Put there by the agent: the program had not found the flow.
    Here,
}

/// What earlier candidates of a flow said.
struct FlowNote {
    at: Instant,
    /// Stratum V1 names the miner software in `mining.subscribe`, before `mining.authorize`.
    agent: Option<deep::Agent>,
    logged_in: bool,
    /// Whether the agent opened the flow, or tried to (see [`OpenFlows`]).
    opened: Opened,
    /// The flow's coin: its login's, else the first message's that names one.
    coin: Coin,
    coin_from_login: bool,
    /// Its login named a scrypt coin (`deep::is_scrypt`) and no share proved sha256d, or a share
    /// proved scrypt (`activity::proof`): Stratum V1 difficulties are worth
    /// `SCRYPT_PER_SHA256D` of their sha256d figure.
    scrypt: bool,
    /// XMRig's Stratum V1 session (a Bitcoin-shaped job on a flow whose `mining.subscribe`
    /// named XMRig): XMRig speaks Stratum V1 only for GhostRider (Raptoreum), and takes a
    /// `mining.set_difficulty` D as D x 65,536 hashes a share (`EthStratumClient`; its own log
    /// says `diff 66` for D 0.001), scrypt's scale.
    ghostrider: bool,
    /// A Stratum V1 flow's jobs and extranonce1, until a share proves its algorithm.
    prover: Option<Box<Prover>>,
    /// The range labels of its endpoints (`unwatched` outside every range) at its latest packet
    /// that said something of work, for its shares.
    ranges: Vec<String>,
    /// The miner's latest reported rate (hashes per second) and when it came.
    rate: Option<(f64, Instant)>,
    /// Its login, while it waits for the flow's coin.
    pending: Option<PendingLogin>,
    /// A Stratum V1 job (`mining.notify`) came: later ones name no coin the first did not.
    job_seen: bool,
}

impl FlowNote {
    fn new(at: Instant) -> Self {
        Self {
            at,
            agent: None,
            logged_in: false,
            opened: Opened::No,
            coin: Coin::Unknown,
            coin_from_login: false,
            scrypt: false,
            ghostrider: false,
            prover: None,
            ranges: Vec::new(),
            rate: None,
            pending: None,
            job_seen: false,
        }
    }

    /// What a message says of the flow's coin: a login's coin wins; else the first message that
    /// names one decides.
    fn learn_coin(&mut self, m: &Message) {
        if m.coin == Coin::Unknown {
            return;
        }
        if m.is_login && !self.coin_from_login {
            self.coin = m.coin;
            self.coin_from_login = true;
            self.scrypt = deep::is_scrypt(m.dialect, m.coin);
        } else if self.coin == Coin::Unknown {
            self.coin = m.coin;
        }
    }

    /// The waiting login, once the flow has shown its coin, its first Stratum V1 job came
    /// (`job_seen`) or the wait is over at `now`, with that coin (`unknown` if none).
    ///
    /// A Stratum V1 flow whose first share may still prove scrypt (`activity::proof`: the
    /// pool's extranonce1 seen, no share decided yet) waits for that share instead, within the
    /// time alone: a scrypt share names a scrypt coin (`other`, as a Litecoin or Dogecoin
    /// address does), where its jobs and messages name none.
    fn take_ready_login(&mut self, now: Instant) -> Option<PendingLogin> {
        let p = self.pending.as_ref()?;
        let proving = self.prover.as_ref().is_some_and(|p| p.may_decide());
        let over = (!proving && (self.job_seen || p.waited >= LOGIN_COIN_WAIT_MESSAGES))
            || now.saturating_duration_since(p.at) >= LOGIN_COIN_WAIT;
        if self.coin == Coin::Unknown && !over {
            return None;
        }
        let mut p = self.pending.take()?;
        p.message.coin = self.coin;
        // A `mining.subscribe` that came after the login (its segment lost before the vantage
        // point and sent again after the login's) names the agent too.
        if p.message.agent.is_none() {
            p.message.agent = self.agent.clone();
        }
        Some(p)
    }
}

pub struct Inspector {
    key: [u8; 32],
    metrics: Metrics,
    window: Duration,
    seen: HashMap<FlowId, FlowNote>,
    /// Range label -> login hash -> last seen.
    distinct: HashMap<String, HashMap<String, Instant>>,
    distinct_entries: usize,
    distinct_full_warned: bool,
    /// Each flow's shares; its flows are those of `seen`.
    ledger: Ledger<FlowId>,
    /// The ledger's clock: time since the first instant the Inspector was given.
    epoch: Option<Instant>,
    /// The `reported_hashrate` label sets last published, to remove those no flow feeds any more.
    rate_labels: Vec<(String, &'static str)>,
    /// Shares and hashes per range, coin, miner family and pool, when asked for (replay).
    tally: Option<Tally>,
    /// Lines of logins counted outside `frame` (a wait that ran out at an expiry, a forgotten
    /// flow, replay's end): `frame` returns them with its own, `late_logins` hands them over.
    late: Vec<LoginLine>,
    /// Scrypt hashes left for telling flows' proof of work (`activity::proof`).
    scrypt_budget: Budget,
    /// Messages split over TCP segments, waiting for their next segment.
    streams: stream::Streams,
    /// WebSocket messages sent in several frames, waiting for their next fragment.
    fragments: fragments::Fragments,
    /// The watched ranges of addresses seen lately: each lookup in the kernel's tries is a system
    /// call, and every Stratum packet of a flow names the same two addresses. Emptied at each
    /// expiry (every 10 s live, so a reload's new ranges apply within 10 s) and when it holds
    /// [`MAX_ADDR_RANGES`].
    addr_ranges: HashMap<IpAddr, u64>,
    /// `streams.evicted` and `fragments.evicted` when last published.
    streams_evicted: u64,
    /// Compressed WebSocket messages, inflated per direction.
    inflaters: deflate::Inflaters,
    /// `inflaters.evicted` when last published.
    inflaters_evicted: u64,
    /// The kernel's flow table, for the flows found only here; `None`: counted without it.
    flows: Option<Box<dyn OpenFlows>>,
}

impl Inspector {
    pub fn new(key: [u8; 32], metrics: Metrics, window: Duration) -> Self {
        Self {
            key,
            metrics,
            window,
            seen: HashMap::new(),
            distinct: HashMap::new(),
            distinct_entries: 0,
            distinct_full_warned: false,
            ledger: Ledger::new(),
            epoch: None,
            rate_labels: Vec::new(),
            tally: None,
            late: Vec::new(),
            scrypt_budget: Budget::default(),
            streams: stream::Streams::default(),
            fragments: fragments::Fragments::default(),
            streams_evicted: 0,
            addr_ranges: HashMap::new(),
            inflaters: deflate::Inflaters::default(),
            inflaters_evicted: 0,
            flows: None,
        }
    }

    /// Opens the flows found only here (compressed WebSocket messages, HTTP bodies whose JSON a
    /// chunk boundary cut, logins the program did not read on flows it did not open) in
    /// `flows`, the kernel's flow table, so that each counts once whichever side finds it first.
    pub fn open_flows_in(&mut self, flows: impl OpenFlows + 'static) {
        self.flows = Some(Box::new(flows));
    }

    /// The inflaters' memory and evictions, as metrics.
    fn publish_inflaters(&mut self) {
        publish_bounded(
            (&self.metrics.inflate_bytes, &self.metrics.inflate_evictions),
            self.inflaters.bytes(),
            self.inflaters.evicted,
            &mut self.inflaters_evicted,
        );
    }

    /// Counts flow `id` in `stratum_flows_total` once, as the program counts the flows it finds
    /// (every range of the source `from`, of the destination `to`, else `unwatched`), when its
    /// Stratum was found here only and the flow table did not hold it (see [`OpenFlows`]); at
    /// its later Stratum messages, touches its entry. `plain_login`: a login in plain text that
    /// the program's scan found nothing in; a flow the table holds then was opened by a later
    /// message the program read (a pool's reply), and only a flow put there here is touched
    /// later; without a table nothing is counted. Else (Stratum the program cannot read at all:
    /// compressed, chunked) the entry is touched whoever put it there.
    #[allow(clippy::too_many_arguments)]
    fn open_flow(
        &mut self,
        id: FlowId,
        t: &frame::Transport,
        dialect: deep::Dialect,
        src: u64,
        dst: u64,
        wall: std::time::SystemTime,
        range_name: &impl Fn(usize) -> Option<String>,
        plain_login: bool,
    ) {
        let Some(note) = self.seen.get_mut(&id) else {
            return;
        };
        let key = crate::bpf::opened::tcp_flow_key((t.src, t.sport), (t.dst, t.dport));
        if note.opened != Opened::No {
            if let Some(flows) = &mut self.flows {
                flows.touch(&key, wall);
            }
            return;
        }
        let (src, dst) = (src & RANGE_MASK, dst & RANGE_MASK);
        let put = match &mut self.flows {
            Some(flows) => flows.open(&key, src | dst, dialect as u8, wall),
            // No table to open it in (a plain login's flow is counted only with one).
            None => !plain_login,
        };
        if !plain_login {
            note.opened = Opened::Tried;
        } else if put {
            note.opened = Opened::Here;
        }
        if !put {
            return;
        }
        let mut cells = Vec::new();
        for (ranges, direction) in [(src, names::FROM), (dst, names::TO)] {
            for r in (0..MAX_RANGES).filter(|r| ranges & (1 << r) != 0) {
                if let Some(name) = range_name(r) {
                    cells.push((name, direction));
                }
            }
        }
        if src | dst == 0 {
            cells.push((UNWATCHED.to_string(), names::NONE));
        }
        for (range, direction) in cells {
            self.metrics
                .stratum_flows
                .with_label_values(&[&range, direction, dialect.name()])
                .inc();
        }
    }

    /// `ranges_of(addr)`, remembered.
    fn ranges_of(&mut self, addr: IpAddr, ranges_of: &impl Fn(IpAddr) -> u64) -> u64 {
        if let Some(r) = self.addr_ranges.get(&addr) {
            return *r;
        }
        if self.addr_ranges.len() >= MAX_ADDR_RANGES {
            self.addr_ranges.clear();
        }
        let r = ranges_of(addr);
        self.addr_ranges.insert(addr, r);
        r
    }

    /// The reassembly's memory and evictions, as metrics.
    fn publish_streams(&mut self) {
        publish_bounded(
            (
                &self.metrics.reassembly_bytes,
                &self.metrics.reassembly_evictions,
            ),
            self.streams.bytes() + self.fragments.bytes(),
            self.streams.evicted + self.fragments.evicted,
            &mut self.streams_evicted,
        );
    }

    /// Keeps a [`Tally`] of who did the work from now on (replay's report reads it).
    pub fn keep_tally(&mut self) {
        self.tally.get_or_insert_with(Tally::default);
    }

    pub fn tally(&self) -> Option<&Tally> {
        self.tally.as_ref()
    }

    /// The lines of logins counted since the last `frame` outside of it (see `late`).
    pub fn late_logins(&mut self) -> Vec<LoginLine> {
        std::mem::take(&mut self.late)
    }

    /// Inspects one candidate frame that arrived over `path` at `now` (`wall` on the wall clock:
    /// replay passes the capture's time). `ranges_of` gives the watched ranges of an address as the
    /// kernel's tries hold them, `range_name` a range id's label. Returns the logins it counted, as
    /// event lines (with those counted outside `frame` since the last call, see `late`).
    #[allow(clippy::too_many_arguments)]
    pub fn frame(
        &mut self,
        bytes: &[u8],
        path: &'static str,
        iface: &str,
        now: Instant,
        wall: std::time::SystemTime,
        ranges_of: impl Fn(IpAddr) -> u64,
        range_name: impl Fn(usize) -> Option<String>,
    ) -> Vec<LoginLine> {
        self.metrics
            .inspected_packets
            .with_label_values(&[path])
            .inc();
        let Some(mut t) = frame::transport(bytes) else {
            return self.late_logins();
        };
        let dir = (t.src, t.sport, t.dst, t.dport);
        let tcp = t.proto == IPPROTO_TCP;
        // Bytes sent again from before where the direction's last joined WebSocket message
        // ended: read once (a frame's masked middle read as frames could swallow what follows).
        if tcp {
            let n = self.fragments.already_read(&dir, t.seq, t.payload.len());
            t.payload = &t.payload[n..];
            t.seq = t.seq.wrapping_add(n as u32);
        }
        if t.payload.is_empty() {
            return self.late_logins();
        }
        // The rest of a WebSocket frame the previous segment's end cut (no header: only the
        // sequence number tells).
        let continued = tcp && self.fragments.continues(&dir, t.seq);
        // WebSocket messages that span frames or segments, compressed or not: joined with their
        // direction's earlier bytes (the compressed ones then inflated in their place).
        let joined = continued || (tcp && fragments::spans(t.payload, t.whole));
        // Compressed WebSocket messages whole in their frames: inflated with their direction's
        // earlier ones.
        let inflated = tcp && !joined && deflate::compressed(t.payload);
        // Whole WebSocket frames are read as frames (below), not as plain text: a masked payload
        // can hold a line that opens with `{` (chance: about once in 330 frames of 200 bytes),
        // which the plain-text stream would keep as an unfinished message, cutting the frame
        // and putting its end before the next one (a share lost, or two). Unless a plain
        // message's tail waits for this very segment (its rest may open with any byte).
        let framed = websocket::opens_text_frame(t.payload) && self.streams.kept(&dir, t.seq) == 0;
        // A message cut by a missed segment, dropped unread (see below).
        let mut cut = None;
        // A message split over segments is read whole once its last segment is here.
        let data = if joined {
            let mut m = self.fragments.messages(dir, t.seq, t.payload, t.whole, now);
            // Compressed messages joined from their fragments: inflated in their direction's
            // stream.
            let deflated = self.fragments.take_deflated();
            if !deflated.is_empty() {
                for d in deflated {
                    if let Some(text) = self.inflaters.joined(dir, d.span, d.data, now) {
                        let out = m.get_or_insert_with(Vec::new);
                        out.extend_from_slice(&text);
                        out.push(b'\n');
                    }
                }
                self.publish_inflaters();
            }
            self.publish_streams();
            match m {
                Some(m) => std::borrow::Cow::Owned(m),
                None => return self.late_logins(),
            }
        } else if inflated {
            let m = self.inflaters.messages(dir, t.seq, t.payload, t.whole, now);
            self.publish_inflaters();
            match m {
                Some(m) => std::borrow::Cow::Owned(m),
                None => return self.late_logins(),
            }
        } else if tcp && !framed {
            let data = self.streams.join(dir, t.seq, t.payload, t.whole, now);
            cut = self.streams.take_dropped();
            self.publish_streams();
            // The message left open at the end of a whole segment is read once, whole, with the
            // next segment: read now, repaired, a login cut before its `"agent"` would count
            // without it (a new flow's login split on purpose, see the kernel's `opening`).
            let open = self.streams.last_kept();
            match data {
                _ if open == 0 || open > data.len() => data,
                std::borrow::Cow::Borrowed(d) => std::borrow::Cow::Borrowed(&d[..d.len() - open]),
                std::borrow::Cow::Owned(mut d) => {
                    d.truncate(d.len() - open);
                    std::borrow::Cow::Owned(d)
                }
            }
        } else {
            std::borrow::Cow::Borrowed(t.payload)
        };
        // Stratum inside WebSocket frames: the messages they carry (joined fragments are).
        let (data, in_frames) = match websocket::messages(&data).filter(|_| !joined) {
            Some(m) => (std::borrow::Cow::Owned(m), true),
            None => (data, false),
        };
        // A chunked HTTP body: its chunks' data joined. Over several chunks the kernel may have
        // read none of it (a boundary inside a token), so Stratum found there opens the flow.
        let (data, split) = match chunked::data(&data) {
            Some(d) => (std::borrow::Cow::Owned(d.bytes), d.chunks > 1),
            None => (data, false),
        };
        // The Stratum messages, and what the payload says of work (the pool's replies are no
        // Stratum message), from one parse.
        let (mut messages, objects) = deep::read(&data);
        // A message a missed segment cut, its rest never to come (a new flow's login whose later
        // segment came first, before the program knew the flow): read repaired, for its login
        // alone, which counts once a flow. What it says of work is not read, as of any cut
        // message (`deep::read` returns whole objects only: a difficulty cut short is another).
        if let Some(cut) = cut {
            let logins = deep::inspect(&cut).into_iter().filter(|m| m.is_login);
            messages.splice(0..0, logins);
        }
        let work: Vec<Signal> = objects.iter().flat_map(signals).collect();
        if messages.is_empty() && work.is_empty() {
            return self.late_logins();
        }
        // The watched ranges of both endpoints: a map lookup each, remembered (see `addr_ranges`).
        let (src_ranges, dst_ranges) = (
            self.ranges_of(t.src, &ranges_of),
            self.ranges_of(t.dst, &ranges_of),
        );
        let ranges = src_ranges | dst_ranges;
        let (a, b) = ((t.src, t.sport), (t.dst, t.dport));
        let id = if a <= b {
            (a.0, a.1, b.0, b.1, t.proto)
        } else {
            (b.0, b.1, a.0, a.1, t.proto)
        };
        if !self.seen.contains_key(&id) && self.seen.len() >= SEEN_FLOWS {
            self.forget_oldest_half();
        }
        let mut out = std::mem::take(&mut self.late);
        // The dialect of the flow's login when this payload holds it.
        let mut login = None;
        // Whether the payload holds a Stratum V1 job.
        let mut job = false;
        for m in &messages {
            let note = self.seen.entry(id).or_insert_with(|| FlowNote::new(now));
            note.at = now;
            if m.agent.is_some() {
                note.agent = m.agent.clone();
            }
            note.learn_coin(m);
            if let Some(p) = note.pending.as_mut() {
                p.waited += 1;
            }
            // One login per flow: a retransmission counts once.
            if m.is_login && !note.logged_in {
                note.logged_in = true;
                login = Some(m.dialect);
                let mut m = m.clone();
                if m.agent.is_none() {
                    m.agent = note.agent.clone();
                }
                note.pending = Some(PendingLogin {
                    message: m,
                    ranges: range_labels(ranges, &range_name),
                    flow: crate::events::FlowFields::new(
                        t.proto, t.src, t.sport, t.dst, t.dport, iface,
                    ),
                    path,
                    at: now,
                    wall,
                    waited: 0,
                });
            }
            // A job ends the wait once its work signals are read (below): its template is what
            // a first share is proved against.
            job |= m.method.as_deref() == Some("mining.notify");
            if let Some(p) = note.take_ready_login(now) {
                out.push(self.count(p));
            }
        }
        // Stratum the program could not read: the flow is opened here, once.
        if (inflated || split || joined)
            && let Some(m) = messages.first()
        {
            // (Joined fragments may have been a compressed message.)
            if inflated || joined {
                self.inflaters.confirm(dir);
            }
            self.open_flow(
                id,
                &t,
                m.dialect,
                src_ranges,
                dst_ranges,
                wall,
                &range_name,
                false,
            );
        } else if tcp
            && let Some(m) = messages.first()
            && (self.seen.get(&id).is_some_and(|n| n.opened == Opened::Here)
                || (login.is_some()
                    && !in_frames
                    && !split
                    && sensor_common::stratum::scan_slice(t.payload).is_none()))
        {
            // A login in plain text where the program's own scan of the segment (the same
            // scanner, over the same window) finds no Stratum: the program did not read it
            // (padded past its window in every message of an Ethereum session, whose pool's
            // messages carry no marker either: nothing else opens the flow there). A login the
            // scan finds was counted there, and its flow may have been evicted since (a full
            // table): not opened again here. Then the later messages of a flow opened so.
            let dialect = login.unwrap_or(m.dialect);
            self.open_flow(
                id,
                &t,
                dialect,
                src_ranges,
                dst_ranges,
                wall,
                &range_name,
                true,
            );
        }
        // The ranges (a map lookup per endpoint) only for a payload that says something of work.
        let names = (!work.is_empty()).then(|| range_labels(ranges, &range_name));
        // A submit goes to the pool: the packet's destination.
        let pool = (t.dst, t.dport);
        self.activity(id, work, names, pool, now);
        // A login that waited for its flow's first job, or its first share (see
        // `FlowNote::take_ready_login`).
        if let Some(p) = self.seen.get_mut(&id).and_then(|n| {
            n.job_seen |= job;
            n.take_ready_login(now)
        }) {
            out.push(self.count(p));
        }
        out
    }

    /// Feeds one payload's work signals, in order, into the flow's shares (under the coin its
    /// messages showed, see `FlowNote::learn_coin`).
    fn activity(
        &mut self,
        id: FlowId,
        work: Vec<Signal>,
        ranges: Option<Vec<String>>,
        pool: (IpAddr, u16),
        now: Instant,
    ) {
        let since = self.since(now);
        let note = self.seen.entry(id).or_insert_with(|| FlowNote::new(now));
        note.at = now;
        if let Some(ranges) = ranges {
            note.ranges = ranges;
        }
        let mut coin = note.coin.label();
        let mut resolved = Vec::new();
        for signal in work {
            match signal {
                Signal::Submit(share) => {
                    // What the share proves is read once the ledger has its difficulty; it
                    // decides over what the login's address said (a DigiByte address looks
                    // like a Dogecoin one, and DigiByte is mined on sha256d too).
                    let proof = note
                        .prover
                        .as_ref()
                        .is_some_and(|p| !p.decided())
                        .then(|| (share.job.clone(), share.nonce.clone()));
                    let Some(mut counted) = self.ledger.submit(&id, share, since, &mut resolved)
                    else {
                        continue;
                    };
                    if let (Some((job, parts)), Some(p), Some(h)) =
                        (proof, note.prover.as_mut(), counted.hashes)
                        && let Some(pow) =
                            p.share(job.as_deref(), &parts, h, &mut self.scrypt_budget, now)
                    {
                        note.scrypt = pow == Pow::Scrypt;
                        // Scrypt's coins (Litecoin, Dogecoin and their kin) are `other`, as
                        // their addresses are; sha256d's are several (Bitcoin and its forks):
                        // a flow that named none still names none.
                        if note.scrypt && note.coin == Coin::Unknown {
                            note.coin = Coin::Other;
                            coin = note.coin.label();
                        }
                    }
                    if note.scrypt || note.ghostrider {
                        counted.hashes = counted
                            .hashes
                            .map(|h| h * crate::activity::difficulty::SCRYPT_PER_SHA256D);
                    }
                    if let Some(tally) = &mut self.tally {
                        for range in &note.ranges {
                            let who = Who {
                                range: range.clone(),
                                coin,
                                agent: note.agent.as_ref().map_or("unknown", |a| a.family),
                                pool: std::net::SocketAddr::from(pool).to_string(),
                            };
                            tally.share(who, counted.hashes);
                        }
                    }
                    for range in &note.ranges {
                        match counted.hashes {
                            Some(h) => self
                                .metrics
                                .share_hashes
                                .with_label_values(&[range, coin])
                                .inc_by(h),
                            None => self
                                .metrics
                                .shares_unknown_difficulty
                                .with_label_values(&[range, coin])
                                .inc(),
                        }
                    }
                }
                Signal::Job { job, hashes } => {
                    self.ledger.job(&id, &job, hashes);
                    if hashes.is_some() {
                        born_at_zero(&self.metrics, &note.ranges, coin);
                    }
                }
                Signal::Difficulty(hashes) => {
                    self.ledger.difficulty(&id, hashes);
                    born_at_zero(&self.metrics, &note.ranges, coin);
                }
                Signal::Reply {
                    id: request,
                    accepted,
                } => {
                    resolved.extend(self.ledger.reply(&id, &request, accepted));
                }
                Signal::ReportedRate(rate) => note.rate = Some((rate, now)),
                // A GhostRider flow's shares prove nothing here (below): no prover again.
                Signal::Extranonce(en1) if !note.ghostrider => {
                    note.prover.get_or_insert_default().extranonce(en1);
                }
                Signal::Extranonce(_) => {}
                Signal::Template { .. }
                    if note.agent.as_ref().is_some_and(|a| a.family == deep::XMRIG) =>
                {
                    // Nothing for the prover: a GhostRider header proves neither algorithm.
                    note.ghostrider = true;
                    note.prover = None;
                }
                Signal::Template { job, template } => {
                    note.prover.get_or_insert_default().template(job, template);
                }
            }
        }
        count_results(&self.metrics, note, &resolved);
    }

    /// The ledger's clock at `now`.
    fn since(&mut self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.epoch.get_or_insert(now))
    }

    /// Forgets flow `id`: its waiting shares count as `unknown`, a waiting login with the coin
    /// the flow showed (`unknown` if none).
    fn forget(&mut self, id: &FlowId) {
        if let Some(mut note) = self.seen.remove(id) {
            count_results(&self.metrics, &note, &self.ledger.end(id));
            if let Some(mut p) = note.pending.take() {
                p.message.coin = note.coin;
                let line = self.count(p);
                self.late.push(line);
            }
        }
    }

    /// Every share still waiting for its reply counts as `unknown`, every waiting login with the
    /// coin its flow showed (replay's end; their lines in `late_logins`).
    pub fn end_shares(&mut self) {
        for (id, note) in &self.seen {
            count_results(&self.metrics, note, &self.ledger.end(id));
        }
        self.count_waiting_logins(|_| true);
    }

    /// Counts the waiting logins of the flows `which` picks, with the coin each flow showed.
    fn count_waiting_logins(&mut self, which: impl Fn(&PendingLogin) -> bool) {
        let mut ready = Vec::new();
        for note in self.seen.values_mut() {
            if note.pending.as_ref().is_some_and(&which)
                && let Some(mut p) = note.pending.take()
            {
                p.message.coin = note.coin;
                ready.push(p);
            }
        }
        for p in ready {
            let line = self.count(p);
            self.late.push(line);
        }
    }

    /// Counts a login (under the ranges and at the time of its packet) and returns its line.
    fn count(&mut self, p: PendingLogin) -> LoginLine {
        let PendingLogin {
            message: m,
            ranges,
            flow,
            path,
            at: now,
            wall,
            ..
        } = p;
        let coin = m.coin.label();
        let agent = m.agent.as_ref().map_or("unknown", |a| a.family);
        let hash = deep::login_hash(&self.key, m.login.as_deref().unwrap_or(""));
        for range in &ranges {
            self.metrics
                .miner_logins
                .with_label_values(&[range, coin, agent])
                .inc();
            let known = self
                .distinct
                .get(range)
                .is_some_and(|h| h.contains_key(&hash));
            if known || self.distinct_entries < MAX_DISTINCT {
                if !known {
                    self.distinct_entries += 1;
                }
                self.distinct
                    .entry(range.clone())
                    .or_default()
                    .insert(hash.clone(), now);
            } else if !self.distinct_full_warned {
                self.distinct_full_warned = true;
                tracing::warn!(
                    "{MAX_DISTINCT} distinct miners remembered: new ones are counted as logins but not in mining_sensor_distinct_miners until older ones leave the window"
                );
            }
        }
        self.publish_distinct();
        LoginLine {
            ts: humantime::format_rfc3339_millis(wall).to_string(),
            event: "miner_login",
            range: ranges[0].clone(),
            ranges: ranges.clone(),
            dialect: m.dialect.name(),
            coin,
            agent,
            agent_version: m.agent.as_ref().and_then(|a| a.version.clone()),
            login_hash: hash,
            path,
            flow,
            at: wall,
        }
    }

    fn forget_oldest_half(&mut self) {
        let mut times: Vec<Instant> = self.seen.values().map(|n| n.at).collect();
        times.sort_unstable();
        self.forget_until(times[times.len() / 2]);
    }

    /// Forgets every flow last seen at or before `cut` (see [`Self::forget`]).
    fn forget_until(&mut self, cut: Instant) {
        let old: Vec<FlowId> = self
            .seen
            .iter()
            .filter(|(_, n)| n.at <= cut)
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            self.forget(id);
        }
    }

    /// Drops miners not seen within the window and updates the distinct-miners gauge.
    pub fn expire(&mut self, now: Instant) {
        self.addr_ranges.clear();
        self.streams.expire(now);
        self.fragments.expire(now);
        self.publish_streams();
        self.inflaters.expire(now);
        self.publish_inflaters();
        let window = self.window;
        let mut entries = 0;
        for hashes in self.distinct.values_mut() {
            hashes.retain(|_, seen| now.duration_since(*seen) <= window);
            entries += hashes.len();
        }
        self.distinct_entries = entries;
        if entries < MAX_DISTINCT {
            self.distinct_full_warned = false;
        }
        if let Some(stale) = now.checked_sub(window) {
            self.forget_until(stale);
        }
        self.count_waiting_logins(|p| now.saturating_duration_since(p.at) >= LOGIN_COIN_WAIT);
        self.publish_distinct();
        // Shares unanswered for 30 s: unknown.
        let since = self.since(now);
        for r in self.ledger.expire(since) {
            if let Some(note) = self.seen.get(&r.flow) {
                count_results(&self.metrics, note, &[r]);
            }
        }
        self.publish_rates(now);
    }

    /// `reported_hashrate`: per range and coin, the sum of the latest rate of each flow that
    /// reported one within [`REPORTED_RATE_WINDOW`]; a label set no flow feeds any more is removed.
    pub fn publish_rates(&mut self, now: Instant) {
        let mut sums: HashMap<(String, &'static str), f64> = HashMap::new();
        for note in self.seen.values() {
            let Some((rate, at)) = note.rate else {
                continue;
            };
            if now.saturating_duration_since(at) > REPORTED_RATE_WINDOW {
                continue;
            }
            for range in &note.ranges {
                *sums.entry((range.clone(), note.coin.label())).or_default() += rate;
            }
        }
        for labels in &self.rate_labels {
            if !sums.contains_key(labels) {
                let _ = self
                    .metrics
                    .reported_hashrate
                    .remove_label_values(&[&labels.0, labels.1]);
            }
        }
        for ((range, coin), sum) in &sums {
            self.metrics
                .reported_hashrate
                .with_label_values(&[range.as_str(), coin])
                .set(*sum);
        }
        self.rate_labels = sums.into_keys().collect();
    }

    fn publish_distinct(&self) {
        for (range, hashes) in &self.distinct {
            self.metrics
                .distinct_miners
                .with_label_values(&[range])
                .set(hashes.len() as i64);
        }
    }
}

/// Creates `share_hashes_total` of `ranges` and `coin` at 0, if it is not there yet, when a flow's
/// difficulty becomes known (a job at its own difficulty, a difficulty message), before its first
/// share: a counter
/// first scraped at its first share's value shows no increase to `rate()` and `increase()`, so a
/// new miner's first shares would be missing from the hash rate (`range_coin:...:rate1h`).
fn born_at_zero(metrics: &Metrics, ranges: &[String], coin: &str) {
    for range in ranges {
        metrics.share_hashes.with_label_values(&[range, coin]);
    }
}

/// Counts shares of one flow whose results are now known, under the flow's ranges and coin
/// (`shares_total` counts a share when its result is known).
fn count_results(metrics: &Metrics, note: &FlowNote, resolved: &[Resolved<FlowId>]) {
    for r in resolved {
        for range in &note.ranges {
            metrics
                .shares
                .with_label_values(&[range, note.coin.label(), r.result.label()])
                .inc();
        }
    }
}

/// The `range` labels of a packet: every watched range of either endpoint, or `unwatched`.
fn range_labels(ranges: u64, range_name: &impl Fn(usize) -> Option<String>) -> Vec<String> {
    let ranges = ranges & RANGE_MASK;
    let mut names: Vec<String> = (0..MAX_RANGES)
        .filter(|id| ranges & (1 << id) != 0)
        .filter_map(range_name)
        .collect();
    if names.is_empty() {
        names.push(UNWATCHED.to_string());
    }
    names
}

/// A bounded table's memory in use (`bytes`, a gauge) and the entries it has evicted in all
/// (`evicted`), the counter moved on by those since the last publication (`published`).
fn publish_bounded(
    (gauge, counter): (&prometheus::IntGauge, &prometheus::IntCounter),
    bytes: usize,
    evicted: u64,
    published: &mut u64,
) {
    gauge.set(bytes as i64);
    counter.inc_by(evicted - *published);
    *published = evicted;
}

#[cfg(test)]
mod tests;
