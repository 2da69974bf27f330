//! `mining-sensor run`: load, attach, drain on an interval, serve metrics, reload on SIGHUP,
//! detach and exit 0 on SIGTERM/SIGINT.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::programs::xdp::XdpLinkId;
use std::os::fd::AsRawFd as _;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};

use sensor_common::{MAX_IFACE_SLOTS, MAX_RANGES};

use crate::{
    bpf::{self, AttachedMode, Kernel, ranges},
    config::{CaptureMode, Config, XdpModeChoice},
    metrics::{Drainer, Labels, Metrics, http},
};

/// How often interfaces are checked for having been deleted or re-created.
const INTERFACE_WATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// Options of `run` that override the configuration file.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub ifaces: Vec<String>,
    pub listen: Option<SocketAddr>,
    pub xdp_mode: Option<XdpModeChoice>,
    pub capture_mode: Option<CaptureMode>,
}

/// A watched interface: its counter slot is fixed for the life of the process; its index and
/// attachment change when the interface is deleted and re-created.
struct Iface {
    name: String,
    slot: u32,
    ifindex: Option<u32>,
    link: Option<(XdpLinkId, AttachedMode)>,
    /// `tap`: the reader task of each of the interface's AF_XDP sockets, by receive queue.
    sockets: Vec<(u32, tokio::task::JoinHandle<()>)>,
}

/// A candidate packet on its way from a reader (AF_XDP socket or sample ring) to the inspector.
struct Candidate {
    path: &'static str,
    ifindex: u32,
    frame: Vec<u8>,
}

/// Candidates waiting for the inspector; beyond this a reader drops them (counted as
/// `capture_drops_total{ring="agent_queue"}`) rather than holding frames from the kernel.
const CANDIDATE_QUEUE: usize = 8192;

/// Range ids stay with their names for the life of the process, so that a reload does not move a
/// range's counts to another name.
#[derive(Default)]
struct RangeIds {
    by_name: HashMap<String, usize>,
}

impl RangeIds {
    /// Ids for `cfg`'s ranges; names new to the process get free ids (`fresh`, to be re-based
    /// before use).
    fn assign(&mut self, cfg: &Config) -> Result<Assignment> {
        let wanted: Vec<&str> = cfg.ranges.iter().map(|r| r.name.as_str()).collect();
        // Free the ids of names that are gone.
        self.by_name.retain(|n, _| wanted.contains(&n.as_str()));
        let mut fresh = Vec::new();
        let mut out = Vec::new();
        for name in wanted {
            let id = match self.by_name.get(name) {
                Some(&id) => id,
                None => {
                    let used: Vec<usize> = self.by_name.values().copied().collect();
                    let Some(id) = (0..MAX_RANGES).find(|i| !used.contains(i)) else {
                        bail!("no free range id for {name}: at most {MAX_RANGES} ranges");
                    };
                    self.by_name.insert(name.to_string(), id);
                    fresh.push(id);
                    id
                }
            };
            out.push((id, name.to_string()));
        }
        Ok(Assignment { ids: out, fresh })
    }
}

struct Assignment {
    /// (range id, range name) for every configured range.
    ids: Vec<(usize, String)>,
    /// Ids new to the process.
    fresh: Vec<usize>,
}

/// What event lines need to name ranges and interfaces, kept current by the agent.
#[derive(Default)]
struct EventNames {
    ranges: Vec<Option<String>>,
    ifaces: HashMap<u32, String>,
}

type SharedNames = std::sync::Arc<std::sync::RwLock<EventNames>>;

struct Agent {
    /// Hash of the configuration file's content at the last load or reload attempt (`watch_config`).
    config_seen: Option<u64>,
    names: SharedNames,
    kernel: Kernel,
    /// `tap`: the program's AF_XDP socket map.
    xsks: Option<aya::maps::XskMap<aya::maps::MapData>>,
    candidates: tokio::sync::mpsc::Sender<Candidate>,
    metrics: Metrics,
    drainer: Drainer,
    labels: Labels,
    ids: RangeIds,
    config: Config,
    ifaces: Vec<Iface>,
}

impl Agent {
    /// Puts `cfg`'s ranges into the kernel and the labels.
    fn apply_ranges(&mut self, cfg: &Config) -> Result<()> {
        let Assignment {
            ids: assigned,
            fresh,
        } = self.ids.assign(cfg)?;
        for id in fresh {
            self.drainer.rebase_range(&self.kernel, id)?;
        }
        let by_id: HashMap<usize, &crate::config::Range> = assigned
            .iter()
            .map(|(id, name)| {
                (
                    *id,
                    cfg.ranges
                        .iter()
                        .find(|r| &r.name == name)
                        .expect("assigned from cfg"),
                )
            })
            .collect();
        let entries = ranges::for_config(
            by_id.iter().map(|(id, r)| (*id, r.cidrs.as_slice())),
            &cfg.pools.endpoints,
        );
        self.kernel.set_ranges(entries)?;
        self.kernel.set_pool_ports(&cfg.pools.ports)?;
        self.kernel.set_pool_domains(&cfg.pools.domains)?;
        let mut labels = vec![None; MAX_RANGES];
        for (id, name) in &assigned {
            labels[*id] = Some(name.clone());
        }
        // Names that left the configuration keep their exported series (counters never go
        // backwards); only their prefix gauges go to zero.
        for r in &self.config.ranges {
            if !cfg.ranges.iter().any(|n| n.name == r.name) {
                for family in ["ipv4", "ipv6"] {
                    self.metrics
                        .watched_prefixes
                        .with_label_values(&[&r.name, family])
                        .set(0);
                }
            }
        }
        for r in &cfg.ranges {
            let v4 = r
                .cidrs
                .iter()
                .filter(|n| matches!(n, ipnet::IpNet::V4(_)))
                .count();
            self.metrics
                .watched_prefixes
                .with_label_values(&[&r.name, "ipv4"])
                .set(v4 as i64);
            self.metrics
                .watched_prefixes
                .with_label_values(&[&r.name, "ipv6"])
                .set((r.cidrs.len() - v4) as i64);
        }
        if let Ok(mut names) = self.names.write() {
            names.ranges = labels.clone();
        }
        self.labels.ranges = labels;
        Ok(())
    }

    fn drain(&mut self) {
        if let Err(e) = self.drainer.drain(
            &self.kernel,
            &self.labels,
            &self.metrics,
            self.config.flow_idle_timeout,
        ) {
            error!(error = %format!("{e:#}"), "drain failed; counters will catch up at the next drain");
        }
        for i in &self.ifaces {
            let up = i.link.is_some() && link_is_up(&i.name);
            self.metrics
                .interface_up
                .with_label_values(&[&i.name])
                .set(up as i64);
        }
    }

    /// Attaches the program to interface `n` at its current index.
    fn attach(&mut self, n: usize) -> Result<()> {
        let name = self.ifaces[n].name.clone();
        let ifindex = bpf::ifindex(&name)?;
        self.kernel.set_iface_slot(ifindex, self.ifaces[n].slot)?;
        let (link, mode) = self.kernel.attach(&name, self.config.xdp_mode)?;
        self.metrics
            .xdp_attached
            .with_label_values(&[&name, mode.label()])
            .set(1);
        if let Ok(mut names) = self.names.write() {
            names.ifaces.insert(ifindex, name);
        }
        let i = &mut self.ifaces[n];
        i.ifindex = Some(ifindex);
        i.link = Some((link, mode));
        if self.xsks.is_some() {
            self.open_sockets(n, ifindex)?;
        }
        Ok(())
    }

    /// `tap`: an AF_XDP socket for every receive queue of interface `n`, registered in `XSKS` and
    /// read by a task of its own.
    fn open_sockets(&mut self, n: usize, ifindex: u32) -> Result<()> {
        self.close_sockets(n);
        let name = self.ifaces[n].name.clone();
        let slot = self.ifaces[n].slot;
        let queues = crate::capture::afxdp::rx_queues(&name)?;
        if queues > sensor_common::MAX_QUEUES {
            warn!(
                iface = %name,
                queues,
                "more receive queues than the sensor serves; candidates on queues {} and up pass uninspected (capture_drops_total{{ring=\"no_socket\"}})",
                sensor_common::MAX_QUEUES
            );
        }
        let cfg = crate::capture::afxdp::XskConfig {
            frame_count: self.config.inspect.frames,
            frame_size: 2048,
            ring_size: self.config.inspect.ring_size,
            zero_copy: match self.config.inspect.zero_copy {
                crate::config::ZeroCopyChoice::Auto => crate::capture::afxdp::ZeroCopy::Auto,
                crate::config::ZeroCopyChoice::Never => crate::capture::afxdp::ZeroCopy::Never,
            },
        };
        for queue in 0..queues.min(sensor_common::MAX_QUEUES) {
            let socket = crate::capture::afxdp::XskSocket::open(ifindex, queue, &cfg)?;
            let xsks = self.xsks.as_mut().expect("tap mode");
            xsks.set(sensor_common::xsk_key(slot, queue), socket.as_raw_fd(), 0)
                .with_context(|| {
                    format!("registering the AF_XDP socket of {name} queue {queue}")
                })?;
            let bind = socket.mode().label();
            info!(iface = %name, queue, bind, "AF_XDP socket open");
            self.metrics
                .afxdp_sockets
                .with_label_values(&[&name, bind])
                .inc();
            let task = spawn_socket_reader(
                socket,
                self.candidates.clone(),
                self.metrics.clone(),
                name.clone(),
            );
            self.ifaces[n].sockets.push((queue, task));
        }
        Ok(())
    }

    /// Stops interface `n`'s socket readers; closing a socket also takes it out of `XSKS`.
    fn close_sockets(&mut self, n: usize) {
        let i = &mut self.ifaces[n];
        for (queue, task) in i.sockets.drain(..) {
            task.abort();
            if let Some(xsks) = self.xsks.as_mut() {
                let _ = xsks.unset(sensor_common::xsk_key(i.slot, queue));
            }
        }
        for bind in ["zero-copy", "copy"] {
            if let Ok(g) = self
                .metrics
                .afxdp_sockets
                .get_metric_with_label_values(&[&i.name, bind])
                && g.get() > 0
            {
                g.set(0);
            }
        }
    }

    /// Follows interfaces that disappear and come back (a restarted VM's tap, a replugged NIC):
    /// a vanished interface is marked down, a re-created one (new index) is attached again.
    fn watch_interfaces(&mut self) {
        for n in 0..self.ifaces.len() {
            let current = bpf::ifindex(&self.ifaces[n].name).ok();
            if current.is_some()
                && current == self.ifaces[n].ifindex
                && self.ifaces[n].link.is_some()
            {
                continue;
            }
            self.close_sockets(n);
            let i = &mut self.ifaces[n];
            if let Some((link, mode)) = i.link.take() {
                warn!(iface = %i.name, "interface gone or replaced; will attach again when it is back");
                // The kernel already dropped the link with the device; this releases our handle.
                let _ = self.kernel.detach(link);
                mark_detached(&self.metrics, &i.name, Some(mode));
            }
            if let Some(old) = i.ifindex.take()
                && let Err(e) = self.kernel.set_iface_slot(old, 0)
            {
                warn!(error = %e, "clearing the old interface index");
            }
            if current.is_some() {
                match self.attach(n) {
                    Ok(()) => {
                        info!(iface = %self.ifaces[n].name, "interface is back: attached again")
                    }
                    Err(e) => {
                        warn!(iface = %self.ifaces[n].name, error = %format!("{e:#}"), "re-attaching failed; retrying")
                    }
                }
            }
        }
    }

    fn reload(&mut self, path: &Path) {
        self.config_seen = file_hash(path);
        let result = Config::from_file(path);
        // Reloadable: ranges and the idle timeout. Interfaces, listen address and map sizes need
        // a restart.
        if let Ok(cfg) = &result
            && cfg.interfaces != self.config.interfaces
            && !cfg.interfaces.is_empty()
        {
            warn!(
                "interfaces changed in {}; restart the sensor to apply",
                path.display()
            );
        }
        match result {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    warn!("{w}");
                }
                match self.apply_ranges(&cfg) {
                    Ok(()) => {
                        info!(
                            ranges = cfg.ranges.len(),
                            prefixes = cfg.prefix_count(),
                            "configuration reloaded"
                        );
                        self.config.ranges = cfg.ranges;
                        self.config.pools = cfg.pools;
                        self.config.flow_idle_timeout = cfg.flow_idle_timeout;
                        self.config.watch_config = cfg.watch_config;
                        self.metrics
                            .config_reloads
                            .with_label_values(&["success"])
                            .inc();
                    }
                    Err(e) => {
                        error!(error = %format!("{e:#}"), "reload failed while updating the kernel maps; restoring the running configuration");
                        let running = self.config.clone();
                        if let Err(e) = self.apply_ranges(&running) {
                            error!(error = %format!("{e:#}"), "restoring the running ranges failed");
                        }
                        self.metrics
                            .config_reloads
                            .with_label_values(&["failure"])
                            .inc();
                    }
                }
            }
            Err(e) => {
                error!("reload rejected, the running configuration stays: {e}");
                self.metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
            }
        }
    }

    fn detach_all(&mut self) {
        for n in 0..self.ifaces.len() {
            self.close_sockets(n);
        }
        for i in &mut self.ifaces {
            let attached = i.link.take();
            let mode = attached.as_ref().map(|l| l.1);
            if let Some((link, _)) = attached {
                match self.kernel.detach(link) {
                    Ok(()) => info!(iface = %i.name, "detached"),
                    Err(e) => {
                        warn!(iface = %i.name, error = %e, "detach failed; the link goes when the process exits")
                    }
                }
            }
            mark_detached(&self.metrics, &i.name, mode);
        }
    }
}

/// The metrics of an interface the program is no longer attached to (in `mode`, if it was).
fn mark_detached(metrics: &Metrics, iface: &str, mode: Option<AttachedMode>) {
    if let Some(mode) = mode {
        metrics
            .xdp_attached
            .with_label_values(&[iface, mode.label()])
            .set(0);
    }
    metrics.interface_up.with_label_values(&[iface]).set(0);
}

/// After loading and attaching, the agent needs only CAP_BPF (map reads and updates, links) and
/// CAP_NET_ADMIN (attaching again to re-created interfaces), plus CAP_NET_RAW in `tap` mode (AF_XDP
/// sockets for a re-created interface); every other capability goes, from the bounding set too
/// where we may change it.
fn drop_capabilities(tap: bool) -> Result<()> {
    use caps::{CapSet, Capability};
    let mut keep: caps::CapsHashSet = [Capability::CAP_BPF, Capability::CAP_NET_ADMIN]
        .into_iter()
        .collect();
    if tap {
        keep.insert(Capability::CAP_NET_RAW);
    }
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::read(None, CapSet::Bounding)? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let effective: caps::CapsHashSet = caps::read(None, CapSet::Permitted)?
        .intersection(&keep)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &effective)?;
    caps::set(None, CapSet::Permitted, &effective)?;
    Ok(())
}

/// Hash of a file's content; `None` when it cannot be read (a missing file is a change too).
fn file_hash(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

fn link_is_up(iface: &str) -> bool {
    // "unknown" is what loopback and some virtual links report while passing traffic.
    match std::fs::read_to_string(format!("/sys/class/net/{iface}/operstate")) {
        Ok(s) => matches!(s.trim(), "up" | "unknown"),
        Err(_) => false,
    }
}

pub async fn run(opts: RunOptions) -> Result<()> {
    let mut config = match &opts.config {
        Some(path) => Config::from_file(path)?,
        None => {
            info!("no --config: using the embedded default configuration (range kp: North Korea)");
            Config::embedded_default()
        }
    };
    for w in &config.warnings {
        warn!("{w}");
    }
    if !opts.ifaces.is_empty() {
        config.interfaces = opts.ifaces.clone();
    }
    if let Some(l) = opts.listen {
        config.listen = l;
    }
    if let Some(m) = opts.xdp_mode {
        config.xdp_mode = m;
    }
    if let Some(m) = opts.capture_mode {
        config.inspect.capture_mode = m;
    }
    if config.interfaces.is_empty() {
        bail!(
            "no interface to watch: pass --iface IF (or set interfaces in the configuration); available: {}",
            bpf::available_interfaces().join(", ")
        );
    }
    if config.interfaces.len() >= MAX_IFACE_SLOTS {
        bail!(
            "{} interfaces requested; one sensor attaches to at most {}",
            config.interfaces.len(),
            MAX_IFACE_SLOTS - 1
        );
    }
    // Resolve every interface before touching the kernel, so a typo fails fast and cleanly.
    for iface in &config.interfaces {
        bpf::ifindex(iface)?;
    }

    let mut kernel = Kernel::load(&config)?;
    match kernel.logger() {
        Ok(logger) => spawn_kernel_log(logger),
        Err(e) => warn!(error = %format!("{e:#}"), "kernel log records will not be shown"),
    }
    let metrics = Metrics::new();
    metrics.flow_capacity.set(config.flow_table_size as i64);
    let names = SharedNames::default();
    let writer = std::sync::Arc::new(std::sync::Mutex::new(crate::events::Writer::open(
        &config.events.sink,
    )?));
    let ring = kernel.take_events()?;
    spawn_events(
        ring,
        names.clone(),
        writer.clone(),
        metrics.events_lost.clone(),
    )?;

    // Deep inspection: readers hand candidates to one inspector task.
    let (candidates, queue) = tokio::sync::mpsc::channel(CANDIDATE_QUEUE);
    let key = crate::inspect::login_key(config.inspect.login_key_file.as_deref())?;
    spawn_inspector(
        queue,
        crate::inspect::Inspector::new(key, metrics.clone(), config.inspect.distinct_window),
        kernel.range_lookup()?,
        names.clone(),
        writer,
        metrics.events_lost.clone(),
    );
    let mode = config.inspect.capture_mode;
    let xsks = match mode {
        CaptureMode::Inline => {
            spawn_samples(kernel.take_samples()?, candidates.clone(), metrics.clone())?;
            None
        }
        CaptureMode::Tap => Some(kernel.take_xsks()?),
    };
    info!(
        capture_mode = ?mode,
        budget = config.inspect.budget,
        "deep inspection: {}",
        match (mode, config.inspect.budget) {
            (_, 0) => "off (inspect.budget = 0)",
            (CaptureMode::Tap, _) => "candidates are redirected to AF_XDP sockets",
            (CaptureMode::Inline, _) => "candidates pass and are copied",
        }
    );
    let mut agent = Agent {
        config_seen: opts.config.as_deref().and_then(file_hash),
        names,
        kernel,
        xsks,
        candidates,
        metrics: metrics.clone(),
        drainer: Drainer::default(),
        labels: Labels::new(),
        ids: RangeIds::default(),
        config: config.clone(),
        ifaces: Vec::new(),
    };
    agent.apply_ranges(&config)?;
    info!(
        ranges = config.ranges.len(),
        prefixes = config.prefix_count(),
        "watched ranges loaded"
    );

    let web = match &config.web_config {
        Some(path) => {
            let w = crate::metrics::web::WebConfig::load(path)?;
            info!(
                tls = w.tls.is_some(),
                basic_auth = w.requires_auth(),
                "web configuration {} loaded",
                path.display()
            );
            Some(std::sync::Arc::new(w))
        }
        None => None,
    };
    let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) {
        "https"
    } else {
        "http"
    };
    // Serve before attaching, so that a listen error leaves nothing attached.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (in use? use --listen ADDR)",
                config.listen
            )
        })?;
    info!(listen = %config.listen, "serving metrics at {scheme}://{}/metrics", config.listen);
    let server = tokio::spawn(http::serve(listener, metrics.clone(), web));

    for (n, iface) in config.interfaces.iter().enumerate() {
        let slot = n + 1;
        agent.labels.ifaces[slot] = Some(iface.clone());
        agent.ifaces.push(Iface {
            name: iface.clone(),
            slot: slot as u32,
            ifindex: None,
            link: None,
            sockets: Vec::new(),
        });
        if let Err(e) = agent.attach(n) {
            agent.detach_all();
            return Err(e);
        }
        let mode = agent.ifaces[n].link.as_ref().map_or("?", |l| l.1.label());
        // Which build of the program: `sensor` (may_goto loops) or `sensor_compat` (bpf_loop).
        let program = agent.kernel.variant().program();
        info!(%iface, mode, program, "attached");
    }
    let tap = config.inspect.capture_mode == CaptureMode::Tap;
    match drop_capabilities(tap) {
        Ok(()) if tap => info!("capabilities reduced to CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW"),
        Ok(()) => info!("capabilities reduced to CAP_BPF and CAP_NET_ADMIN"),
        Err(e) => warn!(error = %e, "could not drop capabilities"),
    }
    agent.drain();

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(config.drain_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = tokio::time::interval(INTERFACE_WATCH);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => agent.drain(),
            _ = watch.tick() => {
                agent.watch_interfaces();
                // `watch_config`: a changed file reloads as SIGHUP does. The content is compared,
                // not the time stamp, so a file caught half-written is read again once complete.
                if let Some(path) = &opts.config
                    && agent.config.watch_config
                    && file_hash(path) != agent.config_seen
                {
                    info!("{} changed: reloading", path.display());
                    agent.reload(path);
                    agent.drain();
                }
            }
            _ = sighup.recv() => match &opts.config {
                Some(path) => { agent.reload(path); agent.drain(); }
                None => warn!("SIGHUP: running on the embedded default configuration; nothing to reload"),
            },
            _ = sigterm.recv() => { info!("SIGTERM: detaching"); break; }
            _ = sigint.recv() => { info!("SIGINT: detaching"); break; }
        }
    }
    // A last drain, so that what was counted up to the signal is logged in the final metrics.
    agent.drain();
    agent.detach_all();
    server.abort();
    Ok(())
}

/// Writes each flow event the kernel reports as a JSON line to the configured sink. A record that
/// cannot be written counts as lost (`mining_sensor_events_lost_total`), never silently dropped.
fn spawn_events(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    names: SharedNames,
    writer: SharedWriter,
    lost: prometheus::IntCounter,
) -> Result<()> {
    spawn_ring_reader(ring, "event", move |item| {
        let written = bpf::event_from(item).and_then(|e| {
            let names = names
                .read()
                .map_err(|_| anyhow::anyhow!("names lock poisoned"))?;
            let line = crate::events::line(
                &e,
                |id| names.ranges.get(id).cloned().flatten(),
                names
                    .ifaces
                    .get(&e.ifindex)
                    .map_or("unknown", String::as_str),
            );
            writer
                .lock()
                .map_err(|_| anyhow::anyhow!("event writer lock poisoned"))?
                .write(&line)
        });
        if let Err(e) = written {
            lost.inc();
            error!(error = %format!("{e:#}"), "a flow event could not be written");
        }
    })
}

/// How often a ring buffer is read whether or not the kernel woke the reader: the program sends
/// no wake-up while a ring is less than a quarter full (each costs an interrupt; see `wakeup` in
/// the kernel crate), so this bounds how late an event or a deep-inspection copy is read.
pub const RING_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Hands every record of a kernel ring buffer to `record`, in a task of its own: when the kernel
/// wakes the reader, and every `RING_POLL`.
fn spawn_ring_reader(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    what: &str,
    mut record: impl FnMut(&[u8]) + Send + 'static,
) -> Result<()> {
    // SAFETY: the ring buffer owns its map fd for its whole life and always returns that fd; the
    // AsyncFd owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("watching the {what} ring buffer: {}", e.into_parts().1))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RING_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>| {
                while let Some(item) = ring.next() {
                    record(&item);
                }
            };
            tokio::select! {
                ready = fd.readable_mut() => {
                    let Ok(mut guard) = ready else {
                        return;
                    };
                    drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                _ = tick.tick() => drain(fd.get_mut()),
            }
        }
    });
    Ok(())
}

type SharedWriter = std::sync::Arc<std::sync::Mutex<crate::events::Writer>>;

/// `inline`: reads the kernel's sample ring and queues each sample's bytes for the inspector.
fn spawn_samples(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    candidates: tokio::sync::mpsc::Sender<Candidate>,
    metrics: Metrics,
) -> Result<()> {
    let full = metrics
        .capture_drops
        .with_label_values(&["copy", "agent_queue"]);
    spawn_ring_reader(ring, "sample", move |item| match bpf::sample_from(item) {
        Ok(s) => {
            let n = (s.cap_len as usize).min(s.data.len());
            let c = Candidate {
                path: "copy",
                ifindex: s.ifindex,
                frame: s.data[..n].to_vec(),
            };
            if candidates.try_send(c).is_err() {
                full.inc();
            }
        }
        Err(e) => error!(error = %format!("{e:#}"), "a sample could not be read"),
    })
}

/// How often a socket reader reads its socket's drop counters.
const SOCKET_STATS: std::time::Duration = std::time::Duration::from_secs(1);

/// `tap`: reads one AF_XDP socket, queues each frame for the inspector, and turns the socket's
/// drop counters into `capture_drops_total`.
fn spawn_socket_reader(
    mut socket: crate::capture::afxdp::XskSocket,
    candidates: tokio::sync::mpsc::Sender<Candidate>,
    metrics: Metrics,
    iface: String,
) -> tokio::task::JoinHandle<()> {
    let drops = |ring: &str| metrics.capture_drops.with_label_values(&["afxdp", ring]);
    let (full, rx_ring, fill_ring, dropped) = (
        drops("agent_queue"),
        drops("rx_ring"),
        drops("fill_ring"),
        drops("dropped"),
    );
    tokio::spawn(async move {
        let ifindex = socket.ifindex();
        let mut last = crate::capture::afxdp::XskStats::default();
        let mut stats = tokio::time::interval(SOCKET_STATS);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ready = socket.readable() => {
                    if let Err(e) = ready {
                        error!(%iface, queue = socket.queue(), error = %e, "AF_XDP socket failed; its queue is no longer inspected");
                        return;
                    }
                    socket.recv(256, |frame| {
                        let c = Candidate { path: "afxdp", ifindex, frame: frame.to_vec() };
                        if candidates.try_send(c).is_err() {
                            full.inc();
                        }
                    });
                }
                _ = stats.tick() => {
                    if let Ok(now) = socket.stats() {
                        rx_ring.inc_by(now.rx_ring_full.saturating_sub(last.rx_ring_full));
                        fill_ring.inc_by(
                            now.rx_fill_ring_empty_descs
                                .saturating_sub(last.rx_fill_ring_empty_descs),
                        );
                        dropped.inc_by(now.rx_dropped.saturating_sub(last.rx_dropped));
                        last = now;
                    }
                }
            }
        }
    })
}

/// Inspects candidates one by one: counts logins and writes their event lines.
fn spawn_inspector(
    mut queue: tokio::sync::mpsc::Receiver<Candidate>,
    mut inspector: crate::inspect::Inspector,
    ranges: bpf::RangeLookup,
    names: SharedNames,
    writer: SharedWriter,
    lost: prometheus::IntCounter,
) {
    tokio::spawn(async move {
        let mut expire = tokio::time::interval(std::time::Duration::from_secs(10));
        expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = queue.recv() => {
                    let Some(c) = c else { return };
                    let lines = {
                        let Ok(names) = names.read() else { return };
                        let iface = names.ifaces.get(&c.ifindex).map_or("unknown", String::as_str);
                        inspector.frame(
                            &c.frame,
                            c.path,
                            iface,
                            std::time::Instant::now(),
                            std::time::SystemTime::now(),
                            |a| ranges.ranges_of(a).unwrap_or(0),
                            |id| names.ranges.get(id).cloned().flatten(),
                        )
                    };
                    for line in lines {
                        let written = writer
                            .lock()
                            .map_err(|_| anyhow::anyhow!("event writer lock poisoned"))
                            .and_then(|mut w| w.write(&line));
                        if let Err(e) = written {
                            lost.inc();
                            error!(error = %format!("{e:#}"), "a login event could not be written");
                        }
                    }
                }
                _ = expire.tick() => inspector.expire(std::time::Instant::now()),
            }
        }
    });
}

fn spawn_kernel_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the logger owns its ring buffer fd for its whole life and always returns that fd;
    // the AsyncFd owns the logger.
    let registered =
        unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            warn!(error = %e, "kernel log records will not be shown");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
