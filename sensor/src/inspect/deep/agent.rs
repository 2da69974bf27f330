//! Miner software: an agent string's family and version.
//!
//! An agent string maps to a lower-case family by its product token (the runs of `[A-Za-z0-9._-]`
//! are tried in order, case-insensitively, against the prefixes in `FAMILIES`); the version is the
//! token that follows the product after `/` or a space (or a `-<digits>` tail of the product token),
//! when it starts with a digit (an optional `v` is dropped), at most 32 bytes of `[0-9A-Za-z._-]`.
//! A string naming no known product is family `unknown` without version: the raw string is never kept.

use super::starts_with_ignore_case;

/// Longest version string kept.
pub(super) const MAX_VERSION_LEN: usize = 32;

/// The miner software a message names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Lower-case family (`xmrig`, `cgminer`, ...) or `unknown`; always one of a fixed set.
    pub family: &'static str,
    /// Version such as `6.16.0`: only `[0-9A-Za-z._-]`, at most 32 bytes.
    pub version: Option<String>,
}

pub(super) const UNKNOWN: &str = "unknown";
/// XMRig's family: its Stratum V1 sessions are GhostRider's, whose difficulty scale differs
/// (`inspect::FlowNote::ghostrider`).
pub const XMRIG: &str = "xmrig";

/// Product-token prefixes (lower case) and the family they name. Longer prefixes that share a
/// start with a shorter one come first.
const FAMILIES: &[(&str, &str)] = &[
    // Proxies, each its own family: one login (one flow) carries the work of every miner behind
    // it, which `share_hashes_total` measures. What each sends upstream, from its sources:
    // - xmrig-proxy: `xmrig-proxy/<version> (Linux x86_64) libuv/<version> gcc/<version>` as the
    //   login's `agent` (`APP_NAME` in src/version.h, formatted by
    //   `Platform::createUserAgent`);
    // - xmr-node-proxy: `xmr-node-proxy/0.0.3` as the login's `agent` (proxy.js, `Pool.login`);
    // - aiostratum-proxy 1.1 (PyPI): `aiostratum-proxy/1.1` as `mining.subscribe`'s first
    //   parameter towards Equihash pools (`app_version` in aiostratum_proxy/__init__.py, sent by
    //   `EquihashPoolProtocol.hook_subscription_request_params`; towards other pools it
    //   subscribes with no parameters and names nothing).
    ("xmrig-proxy", "xmrig-proxy"),
    ("xmr-node-proxy", "xmr-node-proxy"),
    ("aiostratum-proxy", "aiostratum-proxy"),
    ("xmrig", XMRIG),
    ("xmr-stak", "xmr-stak"),
    ("xmrstak", "xmr-stak"),
    ("cpuminer", "cpuminer"),
    ("minerd", "cpuminer"),
    ("cgminer", "cgminer"),
    ("bfgminer", "bfgminer"),
    ("sgminer", "sgminer"),
    ("bmminer", "bmminer"),
    ("nicehash", "nicehash"),
    ("nhminer", "nicehash"),
    ("excavator", "nicehash"),
    ("srbminer", "srbminer"),
    ("teamredminer", "teamredminer"),
    ("lolminer", "lolminer"),
    ("nbminer", "nbminer"),
    ("gminer", "gminer"),
    ("phoenixminer", "phoenixminer"),
    ("ethminer", "ethminer"),
    // ethminer's forks, as their EthStratumClient names them in `mining.subscribe`: kawpowminer
    // (Ravencoin's KawPow) `kawpowminer/1.2.4` (project name and version, Stratum mode), nsfminer
    // `nsfminer-1.3.8` (cable's `project_name_with_version`, EthereumStratum mode).
    ("kawpowminer", "kawpowminer"),
    ("nsfminer", "nsfminer"),
    ("claymore", "claymore"),
    ("ccminer", "ccminer"),
    ("t-rex", "t-rex"),
    ("trex", "t-rex"),
    ("wildrig", "wildrig"),
    ("cast-xmr", "cast-xmr"),
    ("cast_xmr", "cast-xmr"),
    ("minergate", "minergate"),
    ("bzminer", "bzminer"),
    // Equihash (Zcash) miners, as they name themselves in `mining.subscribe`: NiceHash's
    // nheqminer as `nheqminer/0.5c` (`ZcashMiner::userAgent` in libstratum/ZcashStratum.cpp,
    // `STANDALONE_MINER_VERSION` in version.h), its own family (a miner, not NiceHash's proxy).
    ("ewbf", "ewbf"),
    ("equihashminer", "equihashminer"),
    ("nheqminer", "nheqminer"),
];

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Byte ranges of the runs of `[A-Za-z0-9._-]` in `s`.
fn tokens(s: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, &b) in s.iter().enumerate() {
        match (is_token_byte(b), start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                spans.push((st, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        spans.push((st, s.len()));
    }
    spans
}

/// Family and version of an agent string. `complete` is false for the part of a string the
/// segment cut off: then a token running to the end is not trusted, and a string that names no
/// family yet yields `None` (its rest might have).
pub(super) fn parse_agent(s: &str, complete: bool) -> Option<Agent> {
    let bytes = s.as_bytes();
    let whole = |end: usize| complete || end < bytes.len();
    let spans = tokens(bytes);
    for (k, &(start, end)) in spans.iter().enumerate() {
        let Some(tok) = bytes.get(start..end) else {
            continue;
        };
        let Some(&(prefix, family)) = FAMILIES
            .iter()
            .find(|(p, _)| starts_with_ignore_case(tok, p.as_bytes()))
        else {
            continue;
        };
        if !whole(end) {
            return None;
        }
        let inner = tok
            .get(prefix.len()..)
            .unwrap_or_default()
            .windows(2)
            .position(|w| matches!(w, [b'-' | b'_' | b'v' | b'V', d] if d.is_ascii_digit()))
            .and_then(|p| tok.get(prefix.len() + p + 1..));
        let next = spans.get(k + 1).and_then(|&(ns, ne)| {
            let gap = bytes.get(end..ns)?;
            let adjacent = matches!(gap, b"/" | b" " | b"/ " | b" /");
            (adjacent && whole(ne)).then(|| bytes.get(ns..ne)).flatten()
        });
        let version = inner.or(next).and_then(version_of);
        return Some(Agent { family, version });
    }
    complete.then_some(Agent {
        family: UNKNOWN,
        version: None,
    })
}

fn version_of(tok: &[u8]) -> Option<String> {
    let tok = match tok {
        [b'v' | b'V', d, ..] if d.is_ascii_digit() => tok.get(1..)?,
        _ => tok,
    };
    if !tok.first()?.is_ascii_digit() {
        return None;
    }
    let kept = tok.get(..tok.len().min(MAX_VERSION_LEN))?;
    kept.iter()
        .all(|&b| is_token_byte(b))
        .then(|| kept.iter().map(|&b| char::from(b)).collect())
}
