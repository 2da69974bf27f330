//! From TOML text to a validated [`Config`]: the file's shape (`Raw*`, which serde fills and
//! which refuses unknown keys), the top-level keys here, and one function per section in the
//! files beside this one. Checks run in a fixed order (top-level keys, `[events]`, `[inspect]`,
//! `[pools]`, `interfaces`, `[[ranges]]`, `[[peers]]`), so a file with several mistakes always reports the
//! same one first.

mod events;
mod inspect;
mod peers;
mod pools;
mod ranges;

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    error::{ConfigError, Source},
    types::{
        Config, DEFAULT_DRAIN_INTERVAL, DEFAULT_FLOW_IDLE_TIMEOUT, DEFAULT_FLOW_TABLE_SIZE,
        DEFAULT_LISTEN, DEFAULT_MAX_PREFIXES, Tunnel, XdpModeChoice,
    },
    values::{bounded, duration},
};

/// The largest `max_prefixes` accepted; the error for too many prefixes names it too.
const MAX_PREFIXES_LIMIT: i64 = 1 << 24;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    listen: Option<Spanned<String>>,
    xdp_mode: Option<XdpModeChoice>,
    #[serde(default)]
    decapsulate: Vec<Spanned<String>>,
    drain_interval: Option<Spanned<String>>,
    flow_table_size: Option<Spanned<i64>>,
    flow_idle_timeout: Option<Spanned<String>>,
    max_prefixes: Option<Spanned<i64>>,
    web_config: Option<std::path::PathBuf>,
    watch_config: Option<bool>,
    events: Option<events::RawEvents>,
    pools: Option<pools::RawPools>,
    inspect: Option<inspect::RawInspect>,
    #[serde(default)]
    ranges: Vec<ranges::RawRange>,
    #[serde(default)]
    peers: Vec<peers::RawPeer>,
}

impl Config {
    /// Parses and validates `text`; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let src = Source { text, file };
        let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml(e))?;

        let mut warnings = Vec::new();

        let listen = match &raw.listen {
            Some(l) => l.get_ref().parse().map_err(|_| {
                src.at(
                    l.span(),
                    format!(
                        "listen = {:?} is not an address and port; write e.g. \"127.0.0.1:9820\" or \"[::1]:9820\"",
                        l.get_ref()
                    ),
                )
            })?,
            None => DEFAULT_LISTEN.parse().expect("valid default"),
        };

        let drain_interval = duration(
            &src,
            "drain_interval",
            &raw.drain_interval,
            DEFAULT_DRAIN_INTERVAL,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let flow_idle_timeout = duration(
            &src,
            "flow_idle_timeout",
            &raw.flow_idle_timeout,
            DEFAULT_FLOW_IDLE_TIMEOUT,
            Duration::from_secs(1),
            Duration::from_nanos(sensor_common::MAX_FLOW_IDLE_NS),
        )?;
        let flow_table_size = bounded(
            &src,
            "flow_table_size",
            &raw.flow_table_size,
            DEFAULT_FLOW_TABLE_SIZE as i64,
            16,
            1 << 24,
        )? as u32;
        let max_prefixes = bounded(
            &src,
            "max_prefixes",
            &raw.max_prefixes,
            DEFAULT_MAX_PREFIXES as i64,
            1,
            MAX_PREFIXES_LIMIT,
        )? as u32;

        let events = events::events(&src, &raw.events)?;
        let inspect = inspect::inspect(&src, &raw.inspect)?;
        let pools = pools::pools(&src, &raw.pools)?;
        let interfaces = interfaces(&src, &raw.interfaces)?;
        let decapsulate = decapsulate(&src, &raw.decapsulate)?;
        let ranges = ranges::ranges(&src, &raw.ranges, max_prefixes, &mut warnings)?;
        let peers = peers::peers(&src, &raw.peers)?;

        Ok(Self {
            interfaces,
            listen,
            xdp_mode: raw.xdp_mode.unwrap_or(XdpModeChoice::Auto),
            decapsulate,
            drain_interval,
            flow_table_size,
            flow_idle_timeout,
            max_prefixes,
            ranges,
            peers,
            web_config: raw.web_config,
            watch_config: raw.watch_config.unwrap_or(false),
            events,
            pools,
            inspect,
            warnings,
        })
    }
}

/// The `decapsulate` key: the tunnels read as the frame inside, each once.
fn decapsulate(src: &Source, raw: &[Spanned<String>]) -> Result<Vec<Tunnel>, ConfigError> {
    let mut tunnels = Vec::new();
    for t in raw {
        let Some(tunnel) = Tunnel::ALL.into_iter().find(|k| k.name() == t.get_ref()) else {
            let known: Vec<String> = Tunnel::ALL
                .iter()
                .map(|k| format!("{:?} ({})", k.name(), k.what()))
                .collect();
            return Err(src.at(
                t.span(),
                format!(
                    "decapsulate: {:?} is not a tunnel the sensor reads; write {}",
                    t.get_ref(),
                    known.join(" or ")
                ),
            ));
        };
        if tunnels.contains(&tunnel) {
            return Err(src.at(
                t.span(),
                format!("decapsulate: {:?} is listed twice", t.get_ref()),
            ));
        }
        tunnels.push(tunnel);
    }
    Ok(tunnels)
}

/// The `interfaces` key: kernel interface names, each once.
fn interfaces(src: &Source, raw: &[Spanned<String>]) -> Result<Vec<String>, ConfigError> {
    let mut interfaces = Vec::new();
    for i in raw {
        let name = i.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(src.at(
                i.span(),
                format!(
                    "interfaces: {name:?} is not an interface name (1 to 15 characters, no '/' or spaces)"
                ),
            ));
        }
        if interfaces.contains(name) {
            return Err(src.at(i.span(), format!("interfaces: {name:?} is listed twice")));
        }
        interfaces.push(name.clone());
    }
    Ok(interfaces)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Tunnel, XdpModeChoice, tests::err};

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            r#"
interfaces = ["eth0", "eth1"]
listen = "[::1]:9999"
xdp_mode = "generic"
drain_interval = "250ms"
flow_table_size = 1024
flow_idle_timeout = "2m"
[[ranges]]
name = "a"
cidrs = ["198.18.0.0/15", "2001:db8:1::/48", "192.0.2.7"]
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.interfaces, ["eth0", "eth1"]);
        assert_eq!(c.xdp_mode, XdpModeChoice::Generic);
        assert_eq!(c.drain_interval, Duration::from_millis(250));
        assert_eq!(c.flow_table_size, 1024);
        assert_eq!(c.ranges[0].cidrs[2].to_string(), "192.0.2.7/32");
    }

    #[test]
    fn duplicate_names_unknown_keys_and_malformed_toml() {
        let e = err("[[ranges]]\nname = \"a\"\ncidrs = []\n[[ranges]]\nname = \"a\"\ncidrs = []\n");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("already used on line 2"), "{e}");

        let e = err("[[ranges]]\nname = \"a\"\ncidr = [\"1.0.0.0/8\"]\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `cidr`"), "{e}");

        let e = err("listen = \"127.0.0.1:1\"\n[[ranges]\n");
        assert_eq!(e.line, Some(2));

        let e = err("xdp_mode = \"fast\"\n");
        assert!(e.message.contains("auto"), "{e}");

        let e = err("[[ranges]]\nname = \"unwatched\"\ncidrs = []\n");
        assert!(e.message.contains("reserved"), "{e}");

        let e = err("drain_interval = \"5 parsecs\"\n");
        assert!(e.message.contains("drain_interval"), "{e}");

        let e = err("interfaces = [\"eth0\"]\ndecapsulate = [\"erspan\", \"gre\"]\n");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.starts_with(
                "decapsulate: \"gre\" is not a tunnel the sensor reads; write \"erspan\""
            ),
            "{e}"
        );
        let e = err("decapsulate = [\"vxlan\", \"vxlan\"]\n");
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn tunnel_names_are_the_command_lines_too() {
        use clap::ValueEnum;
        for t in Tunnel::ALL {
            assert_eq!(t.to_possible_value().unwrap().get_name(), t.name());
        }
        assert_eq!(Tunnel::ALL.map(|t| t as usize), [0, 1]);
    }

    #[test]
    fn decapsulate_names_the_tunnels_read_inside() {
        let c = Config::parse("decapsulate = [\"vxlan\", \"erspan\"]\n", "t.toml").unwrap();
        assert_eq!(c.decapsulate, [Tunnel::Vxlan, Tunnel::Erspan]);
        let c = Config::parse("", "t.toml").unwrap();
        assert!(c.decapsulate.is_empty());
    }
}
