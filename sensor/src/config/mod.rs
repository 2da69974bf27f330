//! The TOML configuration: parsing, validation and the embedded default.
//!
//! Every error names the file, the line, the field and the bad value, and says what would be valid.
//! Host bits in a prefix (`10.1.2.3/8`) are not an error: the prefix is normalised to its network
//! (`10.0.0.0/8`) and a warning says so, because that is what the operator meant in every case
//! we know of, and refusing would take a sensor down over a cosmetic slip.
//!
//! - `types`: what a [`Config`] is, its sections and their defaults.
//! - `parse`: TOML text to a validated [`Config`], one function per section.
//! - `values`: durations, bounded numbers, powers of two, prefixes and pool domains.
//! - `error`: the located [`ConfigError`].
//! - here: reading a file (paths in it are relative to its folder) and the embedded default.

mod error;
mod parse;
mod types;
mod values;

use std::path::Path;

pub use error::ConfigError;
pub use types::{
    CaptureMode, Config, DEFAULT_DRAIN_INTERVAL, DEFAULT_FLOW_IDLE_TIMEOUT,
    DEFAULT_FLOW_TABLE_SIZE, DEFAULT_LISTEN, DEFAULT_MAX_PREFIXES, DEFAULT_POOL_DOMAINS,
    DEFAULT_POOL_PORTS, EventSink, Events, Inspect, OTHER_PEER, Peer, Pools, Range, Tunnel,
    UNWATCHED, XdpModeChoice, ZeroCopyChoice,
};

/// The configuration `run` uses without `--config`: North Korea's ranges as `kp`.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a file the tests expect to be refused.
    pub(crate) fn err(text: &str) -> ConfigError {
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
        // README, "Configuration": metrics stay on this host unless the file says otherwise.
        assert_eq!(c.listen.to_string(), "127.0.0.1:9820");
        assert!(c.warnings.is_empty());
    }
}
