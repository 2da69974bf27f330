//! The `[pools]` section: pool ports, endpoints (inline and from `endpoints_file`) and domains.

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    error::{ConfigError, Source},
    types::Pools,
    values::{parse_prefix, pool_domain},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPools {
    ports: Option<Vec<Spanned<i64>>>,
    #[serde(default)]
    endpoints: Vec<Spanned<String>>,
    endpoints_file: Option<std::path::PathBuf>,
    /// Replaces the default pool domains.
    domains: Option<Vec<Spanned<String>>>,
    /// Added to the pool domains (the defaults, or `domains`).
    #[serde(default)]
    extra_domains: Vec<Spanned<String>>,
}

pub(super) fn pools(src: &Source, raw: &Option<RawPools>) -> Result<Pools, ConfigError> {
    let mut pools = Pools::default();
    if let Some(p) = raw {
        if let Some(ports) = &p.ports {
            pools.ports.clear();
            for port in ports {
                let n = *port.get_ref();
                if !(1..=65535).contains(&n) {
                    return Err(src.at(
                        port.span(),
                        format!("pools.ports: {n} is not a port; use 1 to 65535"),
                    ));
                }
                pools.ports.push(n as u16);
            }
        }
        for e in &p.endpoints {
            let net = parse_prefix(e.get_ref()).map_err(|why| {
                src.at(
                    e.span(),
                    format!("pools.endpoints: {:?} {why}", e.get_ref()),
                )
            })?;
            pools.endpoints.push(net.trunc());
        }
        if let Some(domains) = &p.domains {
            pools.domains.clear();
            for d in domains {
                pools.domains.push(pool_domain(d.get_ref()).map_err(|why| {
                    src.at(d.span(), format!("pools.domains: {:?} {why}", d.get_ref()))
                })?);
            }
        }
        for d in &p.extra_domains {
            pools.domains.push(pool_domain(d.get_ref()).map_err(|why| {
                src.at(
                    d.span(),
                    format!("pools.extra_domains: {:?} {why}", d.get_ref()),
                )
            })?);
        }
        pools.domains.sort();
        pools.domains.dedup();
        if pools.domains.len() > sensor_common::dns::MAX_POOL_DOMAINS as usize {
            let span = p
                .extra_domains
                .first()
                .map(|d| d.span())
                .or_else(|| p.domains.as_ref().and_then(|d| d.first()).map(|d| d.span()))
                .unwrap_or(0..0);
            return Err(src.at(
                span,
                format!(
                    "{} pool domains configured; the sensor holds at most {}: list parent domains instead (a domain matches every name under it)",
                    pools.domains.len(),
                    sensor_common::dns::MAX_POOL_DOMAINS
                ),
            ));
        }
        if let Some(path) = &p.endpoints_file {
            pools
                .endpoints
                .extend(read_endpoints(path).map_err(|message| ConfigError {
                    file: path.display().to_string(),
                    line: message.0,
                    message: message.1,
                })?);
        }
    }
    Ok(pools)
}

/// A pool list: one address or prefix per line, `#` comments and blank lines ignored.
fn read_endpoints(path: &std::path::Path) -> Result<Vec<IpNet>, (Option<usize>, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            None,
            format!("cannot read the pool list (pools.endpoints_file): {e}"),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = parse_prefix(entry).map_err(|why| (Some(i + 1), format!("{entry:?} {why}")))?;
        out.push(net.trunc());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, tests::err};

    #[test]
    fn pools_from_the_file_and_inline() {
        let dir = std::env::temp_dir().join(format!("ms-pools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("pools.txt");
        std::fs::write(
            &list,
            "# supportxmr\n198.51.100.5\n\n203.0.113.0/28 # a pool's block\n",
        )
        .unwrap();
        let c = Config::parse(
            &format!("[pools]\nports = [3333, 34254]\nendpoints = [\"192.0.2.9\"]\nendpoints_file = \"{}\"\n", list.display()),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.pools.ports, [3333, 34254]);
        let e: Vec<String> = c.pools.endpoints.iter().map(|n| n.to_string()).collect();
        assert_eq!(e, ["192.0.2.9/32", "198.51.100.5/32", "203.0.113.0/28"]);
        // README, `[pools] ports`: the public pool ports, MoneroOcean's set being 10000 plus each
        // power of two from 1 to 128; 443 and 80 are left out.
        assert_eq!(
            Config::embedded_default().pools.ports,
            [
                3333, 4444, 5555, 7777, 9000, 14433, 14444, 20128, 34254, 45560, 45700, 10001,
                10002, 10004, 10008, 10016, 10032, 10064, 10128,
            ]
        );

        std::fs::write(&list, "198.51.100.5\n300.1.1.1\n").unwrap();
        let e = Config::parse(
            &format!("[pools]\nendpoints_file = \"{}\"\n", list.display()),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.file.ends_with("pools.txt") && e.message.contains("300.1.1.1"),
            "{e}"
        );
        let e = Config::parse("[pools]\nports = [0]\n", "t.toml").unwrap_err();
        assert!(e.message.contains("pools.ports: 0 is not a port"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pool_domains_default_replace_extend_and_are_checked() {
        let d = Config::parse("", "t").unwrap().pools.domains;
        // README, "Suspect flows": the default pool domains, in the order it lists them, 40 in
        // five groups: Monero, Bitcoin, ethash/Equihash, multi-coin, browser mining.
        assert_eq!(d.len(), 40);
        assert_eq!(
            d[..11],
            [
                "supportxmr.com",
                "minexmr.com",
                "nanopool.org",
                "moneroocean.stream",
                "hashvault.pro",
                "2miners.com",
                "herominers.com",
                "c3pool.com",
                "xmrpool.eu",
                "monerohash.com",
                "minergate.com",
            ]
        );
        for (at, name) in [
            (11, "f2pool.com"),
            (18, "ethermine.org"),
            (24, "nicehash.com"),
            (29, "coinhive.com"),
            (30, "authedmine.com"),
            (39, "minero.pw"),
        ] {
            assert_eq!(d[at], name);
        }
        let c = Config::parse(
            "[pools]\ndomains = [\"Pool.Example.\"]\nextra_domains = [\"b.example\", \"pool.example\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.pools.domains, ["b.example", "pool.example"]);
        let e = err("[pools]\nextra_domains = [\"*.supportxmr.com\"]\n");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains("pools.extra_domains") && e.message.contains("'*'"),
            "{e}"
        );
        let e = err("[pools]\ndomains = [\"a..b\"]\n");
        assert!(e.message.contains("labels of 1 to 63"), "{e}");
    }
}
