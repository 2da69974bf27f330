//! `mining-sensor run`: load, attach, drain on an interval, serve metrics, reload on SIGHUP,
//! detach and exit 0 on SIGTERM/SIGINT.
//!
//! - `interfaces`: attaching to each watched interface, following it when it is deleted and
//!   re-created (a new index), its up/down state, and its AF_XDP sockets in `tap` mode;
//! - `reload`: SIGHUP and `watch_config`: range ids kept per name, ranges put into the kernel;
//! - `capabilities`: what the agent keeps after attaching;
//! - `readers`: the tasks that turn flow events and candidates into event lines, and the kernel's
//!   log.

mod capabilities;
mod interfaces;
mod readers;
mod reload;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use sensor_common::MAX_IFACE_SLOTS;

use crate::{
    bpf::{self, Kernel},
    capture::{CANDIDATE_QUEUE, Candidate, spawn_samples},
    config::{CaptureMode, Config, XdpModeChoice},
    metrics::{Drainer, Labels, Metrics, http},
};
use capabilities::drop_capabilities;
use interfaces::{INTERFACE_WATCH, Iface, link_is_up};
use readers::{event_writer, spawn_events, spawn_inspector, spawn_kernel_log};
use reload::{RangeIds, file_hash};

/// Options of `run` that override the configuration file.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub ifaces: Vec<String>,
    pub listen: Option<SocketAddr>,
    pub xdp_mode: Option<XdpModeChoice>,
    pub capture_mode: Option<CaptureMode>,
}

/// What event lines need to name ranges and interfaces, kept current by the agent.
#[derive(Default)]
struct EventNames {
    ranges: Vec<Option<String>>,
    ifaces: HashMap<u32, String>,
}

type SharedNames = std::sync::Arc<std::sync::RwLock<EventNames>>;

type SharedWriter = std::sync::Arc<std::sync::Mutex<crate::events::Writer>>;

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
    /// `encrypted_stratum`: judges the TLS flows the program records, at every drain.
    judge: crate::shape::Judge,
    /// Where the judge's suspect events go, as the kernel's.
    writer: SharedWriter,
    labels: Labels,
    ids: RangeIds,
    peer_ids: crate::bpf::PeerIds,
    config: Config,
    ifaces: Vec<Iface>,
}

impl Agent {
    fn drain(&mut self) {
        self.judge_shapes();
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
}

impl Agent {
    /// Judges the recorded TLS flows; a flow flagged is counted (drained next) and reported.
    fn judge_shapes(&mut self) {
        let judged = self
            .kernel
            .stat(sensor_common::Stat::ShapesStarted)
            .and_then(|started| {
                self.judge
                    .run(crate::bpf::monotonic_ns(), false, started, &self.metrics)
            });
        let events = match judged {
            Ok(events) => events,
            Err(e) => {
                error!(error = %format!("{e:#}"), "judging TLS flows' shapes failed; retried at the next drain");
                return;
            }
        };
        for e in events {
            let written = readers::write_event(&self.names, &self.writer, &e);
            if let Err(e) = written {
                self.metrics.events_lost.inc();
                error!(error = %format!("{e:#}"), "a suspect flow event could not be written");
            }
        }
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
    let mut inspector =
        crate::inspect::Inspector::new(key, metrics.clone(), config.inspect.distinct_window);
    inspector.open_flows_in(kernel.flow_table(false)?);
    spawn_inspector(
        queue,
        inspector,
        kernel.range_lookup()?,
        names.clone(),
        writer.clone(),
        metrics.events_lost.clone(),
    );
    let mode = config.inspect.capture_mode;
    let xsks = match mode {
        CaptureMode::Inline => {
            spawn_samples(
                kernel.take_samples()?,
                candidates.clone(),
                metrics.clone(),
                event_writer(names.clone(), writer.clone(), metrics.events_lost.clone()),
            )?;
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
    let judge = crate::shape::Judge::new(kernel.shape_maps()?);
    let mut agent = Agent {
        config_seen: opts.config.as_deref().and_then(file_hash),
        names,
        kernel,
        xsks,
        candidates,
        metrics: metrics.clone(),
        drainer: Drainer::default(),
        judge,
        writer,
        labels: Labels::new(),
        ids: RangeIds::default(),
        peer_ids: Default::default(),
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
        Ok(()) if tap => {
            info!("capabilities reduced to CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK")
        }
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
