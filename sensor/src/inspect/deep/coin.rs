//! The coin a message is about, from the addresses and algorithm names it holds.
//!
//! Addresses are recognised by shape on the login's leading alphanumeric run, so the suffixes
//! pools accept (`.worker`, `+difficulty`, `:password`, `/email`) are ignored: Monero is base58 of
//! 95 characters starting with `4` or `8` or 106 starting with `4`; Bitcoin is base58 of 26-35
//! starting with `1` or `3`, or bech32 `bc1` + 11-71 characters of the bech32 alphabet in one case;
//! Zcash (transparent) is base58 of 35 starting with `t1` (P2PKH) or `t3` (P2SH); Ethereum is `0x`
//! + 40 hex digits.
//! - monero dialect: `rx/0` (or its XMRig aliases `rx`, `randomx`) among the algorithms (login's
//!   `params.algo` list, the keys of MoneroOcean's `params.algo-perf`, submit's and job push's
//!   `params.algo`, a reply's `result.job.algo`) -> monero; else a Monero-address login -> monero;
//!   else any other algorithm named -> other (`cn/*`, `cn-lite/*`, `argon2/*`, `rx/wow`, ...); else
//!   unknown. The address wins over a list without `rx/0` because the address names what the pool
//!   pays out (old XMRig offered `cn/r`, Monero's algorithm until November 2019, to Monero pools).
//! - bitcoin dialect: login a Bitcoin address -> bitcoin; a Zcash address -> zcash; a Monero
//!   address -> monero; a Litecoin address (base58 of 34 starting with `L` or `M`, or bech32
//!   `ltc1`) or a Dogecoin one (base58 of 34 starting with `D`) -> other, the scrypt coins
//!   (`is_scrypt`: their shares count at another scale, see `activity::difficulty`); an Equihash job (`mining.notify` of 8 params whose version is `04000000`,
//!   as Zcash pools send) -> zcash; anything else or no login (subscribe, set_difficulty) ->
//!   unknown.
//! - ethereum dialect -> ethereum.
//!
//! What a session shows of its coin, for a login that names none (an account, `account.worker`):
//! - a CryptoNote job (a login reply's `result.job` or a `job` push, with a `blob`) that names no
//!   algorithm -> monero: the blob says the session mines a CryptoNote coin, and pools for the
//!   others name their algorithm (XMRig's `algo` extension), which then decides as above. A job
//!   cut off before its end may have lost its algorithm and names no coin.
//! - the pool host a Stratum V1 miner puts in `mining.subscribe` (`params[2]`, ZIP 301's
//!   `CONNECT_HOST`, as EWBF and aiostratum-proxy send it) -> the one coin its labels name: a
//!   label (split at `.` and `-`) that is a ticker or name (`xmr`/`monero`, `zec`/`zcash`,
//!   `btc`/`bitcoin`, `eth`/`ethereum`: `eu1-zcash.flypool.org`, `xmr-eu1.nanopool.org`), or a
//!   pool of one coin (`SINGLE_COIN_POOLS`). A host naming two coins, or none, says nothing: the
//!   multi-coin pools (`2miners.com`, `herominers.com`, `viabtc.com`) without a coin label stay
//!   unknown.

use serde_json::{Map, Value};

/// The coin mined, the `coin` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coin {
    Monero,
    Bitcoin,
    Ethereum,
    /// Zcash, and the Equihash coins that share its addresses and jobs.
    Zcash,
    /// Some other coin: a CryptoNote-family algorithm that is not Monero's.
    Other,
    /// Nothing in the message says.
    Unknown,
}

impl Coin {
    pub fn label(&self) -> &'static str {
        match self {
            Coin::Monero => "monero",
            Coin::Bitcoin => "bitcoin",
            Coin::Ethereum => "ethereum",
            Coin::Zcash => "zcash",
            Coin::Other => "other",
            Coin::Unknown => "unknown",
        }
    }
}

fn is_rx0(algo: &str) -> bool {
    ["rx/0", "rx", "randomx"]
        .iter()
        .any(|a| algo.trim().eq_ignore_ascii_case(a))
}

#[derive(Default)]
struct Algos {
    rx0: bool,
    other: bool,
}

impl Algos {
    fn note(&mut self, algo: &str, conclusive: bool) {
        if is_rx0(algo) {
            self.rx0 = true;
        } else if conclusive && !algo.trim().is_empty() {
            self.other = true;
        }
    }

    /// Algorithm names of a login (`params.algo` list, `params.algo-perf` keys), a submit or job
    /// push (`params.algo`) or a reply's job (`result.job.algo`). In a cut-off message a list may
    /// have lost its `rx/0`, so only single names can say "other".
    fn of(obj: &Map<String, Value>, truncated: bool) -> Algos {
        let mut algos = Algos::default();
        let params = obj.get("params");
        let job = obj.get("result").and_then(|r| r.get("job"));
        for algo in [params, job]
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("algo"))
        {
            match algo {
                Value::String(s) => algos.note(s, true),
                Value::Array(list) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .for_each(|s| algos.note(s, !truncated)),
                _ => {}
            }
        }
        if let Some(perf) = params
            .and_then(|p| p.get("algo-perf"))
            .and_then(Value::as_object)
        {
            perf.keys().for_each(|s| algos.note(s, !truncated));
        }
        algos
    }
}

pub(super) fn monero_coin(obj: &Map<String, Value>, login: Option<&str>, truncated: bool) -> Coin {
    let algos = Algos::of(obj, truncated);
    if algos.rx0 || login.is_some_and(|l| is_monero_address(address_core(l))) {
        Coin::Monero
    } else if algos.other {
        Coin::Other
    } else {
        Coin::Unknown
    }
}

/// A CryptoNote job's coin (a login reply's `result.job`, a `job` push): its algorithm's, else
/// monero for a whole job that names none (see the module doc).
pub(super) fn job_coin(obj: &Map<String, Value>, truncated: bool) -> Coin {
    match monero_coin(obj, None, truncated) {
        Coin::Unknown if !truncated => Coin::Monero,
        coin => coin,
    }
}

pub(super) fn bitcoin_coin(login: Option<&str>) -> Coin {
    let Some(core) = login.map(address_core) else {
        return Coin::Unknown;
    };
    if is_bitcoin_address(core) {
        Coin::Bitcoin
    } else if is_zcash_address(core) {
        Coin::Zcash
    } else if is_monero_address(core) {
        Coin::Monero
    } else if is_scrypt_address(core) {
        Coin::Other
    } else {
        Coin::Unknown
    }
}

/// Whether a message of `dialect` naming `coin` says its flow mines a scrypt coin (Litecoin,
/// Dogecoin): in the bitcoin dialect (Stratum V1) `other` comes from their addresses alone.
pub fn is_scrypt(dialect: super::Dialect, coin: Coin) -> bool {
    dialect == super::Dialect::Bitcoin && coin == Coin::Other
}

/// The leading alphanumeric run of a login: pools take `ADDRESS.worker`, `ADDRESS+diff`,
/// `ADDRESS:pass`, `ADDRESS/email`, and every address form is alphanumeric.
pub(super) fn address_core(login: &str) -> &str {
    let t = login.trim();
    let end = t
        .bytes()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(t.len());
    t.get(..end).unwrap_or_default()
}

fn is_base58(b: u8) -> bool {
    b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l')
}

pub(super) fn is_monero_address(s: &str) -> bool {
    let first = s.bytes().next();
    let shape = match s.len() {
        95 => matches!(first, Some(b'4' | b'8')),
        106 => first == Some(b'4'),
        _ => false,
    };
    shape && s.bytes().all(is_base58)
}

fn is_bitcoin_address(s: &str) -> bool {
    let base58 = (26..=35).contains(&s.len())
        && matches!(s.bytes().next(), Some(b'1' | b'3'))
        && s.bytes().all(is_base58);
    base58 || is_bech32(s, "bc1")
}

/// A segwit address of the coin whose bech32 prefix is `hrp` (with its separator `1`): all lower
/// or all upper case, and a data part of at least 6 checksum characters plus a witness version
/// and program, at most 71.
fn is_bech32(s: &str, hrp: &str) -> bool {
    const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = s.to_ascii_lowercase();
    (hrp.len() + 11..=hrp.len() + 71).contains(&s.len())
        && (s == lower || s == s.to_ascii_uppercase())
        && lower
            .strip_prefix(hrp)
            .is_some_and(|data| data.bytes().all(|b| BECH32.contains(&b)))
}

/// Litecoin (P2PKH `L`, P2SH `M`: base58 of 34; bech32 `ltc1`) or Dogecoin (P2PKH `D`, base58
/// of 34). Litecoin's old P2SH addresses start with `3`, as Bitcoin's do: they count as Bitcoin.
fn is_scrypt_address(s: &str) -> bool {
    let base58 = s.len() == 34
        && matches!(s.bytes().next(), Some(b'L' | b'M' | b'D'))
        && s.bytes().all(is_base58);
    base58 || is_bech32(s, "ltc1")
}

fn is_zcash_address(s: &str) -> bool {
    s.len() == 35 && (s.starts_with("t1") || s.starts_with("t3")) && s.bytes().all(is_base58)
}

/// Host labels that name a coin (a ticker or the coin's name).
const COIN_LABELS: &[(&str, Coin)] = &[
    ("xmr", Coin::Monero),
    ("monero", Coin::Monero),
    ("zec", Coin::Zcash),
    ("zcash", Coin::Zcash),
    ("btc", Coin::Bitcoin),
    ("bitcoin", Coin::Bitcoin),
    ("eth", Coin::Ethereum),
    ("ethereum", Coin::Ethereum),
];

/// Pools of one coin, by registered domain (`stratum-on-the-wire.md`, "Ports and pools"):
/// MoneroOcean mines several algorithms but pays out, and counts, in Monero.
const SINGLE_COIN_POOLS: &[(&str, Coin)] = &[
    ("supportxmr.com", Coin::Monero),
    ("minexmr.com", Coin::Monero),
    ("xmrpool.eu", Coin::Monero),
    ("monerohash.com", Coin::Monero),
    ("moneroocean.stream", Coin::Monero),
];

/// The coin a pool host names, when it names exactly one (see the module doc).
pub(super) fn pool_host_coin(host: &str) -> Coin {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut named: Option<Coin> = None;
    let pools = SINGLE_COIN_POOLS.iter().filter(|(domain, _)| {
        host == *domain
            || host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.'))
    });
    let labels = host
        .split(['.', '-'])
        .filter_map(|l| COIN_LABELS.iter().find(|(name, _)| *name == l));
    for &(_, coin) in pools.chain(labels) {
        match named {
            Some(c) if c != coin => return Coin::Unknown,
            _ => named = Some(coin),
        }
    }
    named.unwrap_or(Coin::Unknown)
}

/// Zcash's `mining.notify` (ZIP 301): job id, version `04000000`, three 256-bit hashes, time,
/// bits, clean_jobs; Bitcoin's has 9 params.
pub(super) fn is_equihash_notify(params: &[serde_json::Value]) -> bool {
    params.len() == 8 && params.get(1).and_then(serde_json::Value::as_str) == Some("04000000")
}

pub(super) fn is_ethereum_address(s: &str) -> bool {
    s.len() == 42
        && (s.starts_with("0x") || s.starts_with("0X"))
        && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}
