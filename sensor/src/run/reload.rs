//! Configuration reload (SIGHUP, and `watch_config`'s content check): the reloadable parts of a
//! new configuration go into the kernel and the labels, with range ids and peer indexes that stay
//! with their names.

use std::{collections::HashMap, path::Path};

use anyhow::{Result, bail};
use tracing::{error, info, warn};

use sensor_common::MAX_RANGES;

use super::Agent;
use crate::{bpf::ranges, config::Config};

/// Range ids stay with their names for the life of the process, so that a reload does not move a
/// range's counts to another name.
#[derive(Default)]
pub(super) struct RangeIds {
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

impl Agent {
    /// Puts `cfg`'s ranges, pools and neighbours into the kernel and the labels.
    pub(super) fn apply_ranges(&mut self, cfg: &Config) -> Result<()> {
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
        // Neighbours keep their peer index across reloads; one new to the process starts from
        // its kernel cells' current values, and one that left keeps its exported series.
        let (peers, fresh) = self.peer_ids.assign(&cfg.peers)?;
        for id in fresh {
            self.drainer.rebase_peer(&self.kernel, id)?;
        }
        self.kernel.set_peers(&peers)?;
        self.labels
            .set_peers(peers.iter().map(|(id, p)| (*id, p.name.as_str())));
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

    pub(super) fn reload(&mut self, path: &Path) {
        // What the kernel counted since the last drain goes out under the running configuration's
        // names first: a range id or peer index handed to a new name is re-based from here on.
        self.drain();
        self.config_seen = file_hash(path);
        let result = Config::from_file(path);
        // Reloadable: ranges, pools, neighbours and the idle timeout. Interfaces, listen address and map sizes need
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
                        self.config.peers = cfg.peers;
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
}

/// Hash of a file's content; `None` when it cannot be read (a missing file is a change too).
pub(super) fn file_hash(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}
