//! The watched interfaces: attaching at the current index, re-attaching when an interface is
//! re-created with a new one, detaching, their up/down state, and in `tap` mode the AF_XDP socket
//! of each receive queue.

use anyhow::{Context as _, Result};
use aya::programs::xdp::XdpLinkId;
use std::os::fd::AsRawFd as _;
use tracing::{info, warn};

use super::Agent;
use crate::{
    bpf::{self, AttachedMode},
    capture::spawn_socket_reader,
    metrics::Metrics,
};

/// How often interfaces are checked for having been deleted or re-created.
pub(super) const INTERFACE_WATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// A watched interface: its counter slot is fixed for the life of the process; its index and
/// attachment change when the interface is deleted and re-created.
pub(super) struct Iface {
    pub(super) name: String,
    pub(super) slot: u32,
    pub(super) ifindex: Option<u32>,
    pub(super) link: Option<(XdpLinkId, AttachedMode)>,
    /// `tap`: the reader task of each of the interface's AF_XDP sockets, by receive queue.
    pub(super) sockets: Vec<(u32, tokio::task::JoinHandle<()>)>,
}

impl Agent {
    /// Attaches the program to interface `n` at its current index. In `tap` mode its AF_XDP
    /// sockets are open and in `XSKS` first: a candidate the program redirects as soon as it is
    /// attached finds its socket, and `xdp_attached` reads 1 only when the interface is served
    /// whole (the other order lost a session's first candidates, its login among them, at
    /// start and at each re-attach: README, "Tests").
    pub(super) fn attach(&mut self, n: usize) -> Result<()> {
        let name = self.ifaces[n].name.clone();
        let ifindex = bpf::ifindex(&name)?;
        self.kernel.set_iface_slot(ifindex, self.ifaces[n].slot)?;
        if self.xsks.is_some()
            && let Err(e) = self.open_sockets(n, ifindex)
        {
            self.close_sockets(n);
            return Err(e);
        }
        let (link, mode) = match self.kernel.attach(&name, self.config.xdp_mode) {
            Ok(attached) => attached,
            Err(e) => {
                self.close_sockets(n);
                return Err(e);
            }
        };
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
            frame_size: crate::capture::afxdp::XskConfig::default().frame_size,
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
    pub(super) fn watch_interfaces(&mut self) {
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

    pub(super) fn detach_all(&mut self) {
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

pub(super) fn link_is_up(iface: &str) -> bool {
    // "unknown" is what loopback and some virtual links report while passing traffic.
    match std::fs::read_to_string(format!("/sys/class/net/{iface}/operstate")) {
        Ok(s) => matches!(s.trim(), "up" | "unknown"),
        Err(_) => false,
    }
}
