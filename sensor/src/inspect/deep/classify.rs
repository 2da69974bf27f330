//! Classification: what a message is and what it says.
//!
//! The method decides the [`Dialect`]; a message without a known method or reply shape is not
//! Stratum and yields no [`Message`] (generic JSON-RPC such as `eth_blockNumber`, language servers'
//! `initialize`, `textDocument/...`):
//! - `login` with `params.login` (a string) and `params.pass` or `params.agent`; `submit` with
//!   `params.job_id` and `params.nonce`; `keepalived`; `job` with `params.blob` and `params.job_id`:
//!   monero. Replies (no method) whose `result.job.blob` is a string or whose `result.status` is
//!   `KEEPALIVED`: monero.
//! - `mining.<name>` (name of letters, digits, `_` and `.`): bitcoin, or ethereum for EthereumStratum
//!   (an `EthereumStratum/...` string among the `mining.subscribe` params, a four-element
//!   `mining.notify` whose seed and header hashes are 64 hex digits) and for `mining.authorize` /
//!   `mining.submit` whose login is an Ethereum address. Replies whose result is an array holding
//!   `mining.*` strings (a subscribe result): bitcoin, or ethereum when it also names
//!   `EthereumStratum/...`.
//! - `eth_submitLogin`, `eth_getWork`, `eth_submitWork`, `eth_submitHashrate`: ethereum (other
//!   `eth_*` methods are an Ethereum node's RPC, not mining). Replies whose result is an array
//!   starting with two `0x` + 64 hex strings (getWork's header and seed hash): ethereum.
//!
//! # Login, agent and `is_login`
//! - monero `login`: login `params.login`, agent `params.agent`; `is_login`.
//! - `mining.subscribe`: agent `params[0]` (`params[1]` when `params[0]` is the
//!   `EthereumStratum/...` protocol string), coin from the pool host `params[2]` (see `coin`).
//!   `mining.hello` (EthereumStratum/2.0.0): ethereum, agent `params.agent`.
//!   `mining.authorize`: login `params[0]`, `is_login`.
//!   `mining.submit`: login `params[0]` (the worker, used as a coin hint only).
//! - `eth_submitLogin`: login `params[0]`, agent from a top-level `agent` string or else from the
//!   `worker` field when that names a known miner (ethproxy workers are usually rig names); `is_login`.
//!
//! # Which table decides
//! The rules above decide, here, whether a message counts and its dialect; the kernel's table
//! (`sensor_common::stratum::RULES`) decides which packets the kernel counts as Stratum and hands
//! over (besides the first packets of suspect flows). The two are not one table because they differ
//! on inputs the tests pin: the table reads string tokens anywhere in a 512-byte window, these
//! rules read the JSON's structure and need the values they extract. This parser names Ethereum by
//! a login's address and by EthereumStratum's notify (the table says bitcoin), knows getWork's
//! answer, every `mining.*` method and a login with `pass` or `agent` or cut off before both (the
//! table wants `pass` and either `agent` or a wallet-long string before a later marker), and refuses the table's markers when they are not where the protocol
//! puts them or of the wrong type (a `blob` that is not a string, a `"method"` inside `params`).
//! Making the table decide would change which logins are counted and their `dialect` label. Every
//! known difference is listed, with both answers, in the test
//! `where_the_kernel_table_and_the_parser_differ`; the messages miners and pools send are checked
//! to get the same answer from both in `the_kernel_table_and_the_parser_agree_on_real_messages`.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{
    Dialect, Message,
    agent::{Agent, UNKNOWN, parse_agent},
    coin::{
        Coin, address_core, bitcoin_coin, is_equihash_notify, is_ethereum_address, job_coin,
        monero_coin, pool_host_coin,
    },
    repair::{Cut, Seg},
    starts_with_ignore_case,
};

/// Longest `mining.*` method name accepted; real ones are under 30 bytes.
const MAX_MINING_METHOD_LEN: usize = 48;

pub(super) fn classify(obj: &Map<String, Value>, cut: Option<&Cut>) -> Option<Message> {
    match obj.get("method") {
        Some(Value::String(method)) => classify_request(obj, &canonical_method(method), cut),
        Some(_) => None,
        None => classify_reply(obj, cut),
    }
}

/// The methods this parser knows, as the protocols spell them.
const METHODS: [&str; 8] = [
    "login",
    "submit",
    "keepalived",
    "job",
    "eth_submitLogin",
    "eth_getWork",
    "eth_submitWork",
    "eth_submitHashrate",
];

/// A method's name as its protocol spells it when it is one of [`METHODS`] or `mining.*` in
/// other letter cases (`LOGIN`, `Mining.Subscribe`), else as sent. Pools that match names
/// ignoring case accept those (ckpool compares every `mining.*` name with `strncasecmp`), so a
/// miner may send them to dodge signatures; the kernel's scanner folds a method's case alike.
pub fn canonical_method(method: &str) -> Cow<'_, str> {
    if let Some(known) = METHODS.iter().find(|m| m.eq_ignore_ascii_case(method)) {
        return Cow::Borrowed(known);
    }
    if starts_with_ignore_case(method.as_bytes(), b"mining.")
        && method.bytes().any(|b| b.is_ascii_uppercase())
    {
        return Cow::Owned(method.to_ascii_lowercase());
    }
    Cow::Borrowed(method)
}

fn message(dialect: Dialect, method: &str, coin: Coin) -> Message {
    Message {
        dialect,
        method: Some(method.to_owned()),
        agent: None,
        coin,
        login: None,
        is_login: false,
    }
}

fn classify_request(obj: &Map<String, Value>, method: &str, cut: Option<&Cut>) -> Option<Message> {
    let truncated = cut.is_some();
    let params = obj.get("params");
    let pobj = params.and_then(Value::as_object);
    let has = |key: &str| pobj.is_some_and(|p| p.contains_key(key));
    let has_str = |key: &str| pobj.is_some_and(|p| p.get(key).is_some_and(Value::is_string));
    match method {
        "login" => {
            let login = pobj?.get("login")?.as_str()?;
            if !truncated && !has("pass") && !has("agent") {
                return None;
            }
            let agent = agent_at(obj, &["params", "agent"], cut);
            Some(Message {
                agent,
                coin: monero_coin(obj, Some(login), truncated),
                login: non_empty(login),
                is_login: true,
                ..message(Dialect::Monero, method, Coin::Unknown)
            })
        }
        "submit" => {
            if !has("job_id") || (!truncated && !has("nonce")) {
                return None;
            }
            Some(message(
                Dialect::Monero,
                method,
                monero_coin(obj, None, truncated),
            ))
        }
        "keepalived" => {
            if params.is_some_and(|p| !p.is_object()) {
                return None;
            }
            Some(message(Dialect::Monero, method, Coin::Unknown))
        }
        "job" => {
            if !has_str("blob") || (!truncated && !has("job_id")) {
                return None;
            }
            Some(message(Dialect::Monero, method, job_coin(obj, truncated)))
        }
        "eth_submitLogin" | "eth_getWork" | "eth_submitWork" | "eth_submitHashrate" => {
            let is_login = method == "eth_submitLogin";
            let login = if is_login {
                params.and_then(|p| p.get(0)).and_then(Value::as_str)
            } else {
                None
            };
            let agent = agent_at(obj, &["agent"], cut).or_else(|| {
                obj.get("worker")
                    .and_then(Value::as_str)
                    .and_then(|w| parse_agent(w, true))
                    .filter(|a| a.family != UNKNOWN)
            });
            Some(Message {
                agent,
                login: login.and_then(non_empty),
                is_login,
                ..message(Dialect::Ethereum, method, Coin::Ethereum)
            })
        }
        m if is_mining_method(m) => classify_mining(obj, m, cut),
        _ => None,
    }
}

fn is_mining_method(method: &str) -> bool {
    method.len() <= MAX_MINING_METHOD_LEN
        && method.strip_prefix("mining.").is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        })
}

fn classify_mining(obj: &Map<String, Value>, method: &str, cut: Option<&Cut>) -> Option<Message> {
    let params = obj.get("params").and_then(Value::as_array);
    let param_str = |i: usize| params.and_then(|p| p.get(i)).and_then(Value::as_str);
    let mut eth_stratum = false;
    let mut agent = None;
    let mut login = None;
    let mut host_coin = Coin::Unknown;
    match method {
        "mining.subscribe" => {
            host_coin = param_str(2).map_or(Coin::Unknown, pool_host_coin);
            eth_stratum =
                params.is_some_and(|p| p.iter().filter_map(Value::as_str).any(is_ethereum_stratum));
            let slot = if param_str(0).is_some_and(is_ethereum_stratum) {
                1
            } else {
                0
            };
            let path = [Seg::Key("params".to_owned()), Seg::Index(slot)];
            agent = match param_str(slot) {
                Some(s) => parse_agent(s, true),
                None => cut
                    .and_then(|c| c.dangling_at(&path))
                    .and_then(|s| parse_agent(s, false)),
            };
        }
        // EthereumStratum/2.0.0's first message (ethminer's `stratum3+tcp`, and the first try of
        // its protocol detection): the agent in an object of parameters.
        "mining.hello" => {
            eth_stratum = true;
            agent = agent_at(obj, &["params", "agent"], cut);
        }
        "mining.notify" => eth_stratum = params.is_some_and(|p| is_ethereum_notify(p)),
        "mining.authorize" | "mining.submit" => login = param_str(0),
        _ => {}
    }
    let eth_login = login.is_some_and(|l| is_ethereum_address(address_core(l)));
    let equihash = method == "mining.notify" && params.is_some_and(|p| is_equihash_notify(p));
    let (dialect, coin) = if eth_stratum || eth_login {
        (Dialect::Ethereum, Coin::Ethereum)
    } else if equihash {
        (Dialect::Bitcoin, Coin::Zcash)
    } else if host_coin != Coin::Unknown {
        (Dialect::Bitcoin, host_coin)
    } else {
        (Dialect::Bitcoin, bitcoin_coin(login))
    };
    Some(Message {
        agent,
        login: login.and_then(non_empty),
        is_login: method == "mining.authorize",
        ..message(dialect, method, coin)
    })
}

fn classify_reply(obj: &Map<String, Value>, cut: Option<&Cut>) -> Option<Message> {
    let truncated = cut.is_some();
    if !truncated && !obj.contains_key("id") {
        return None;
    }
    let reply = |dialect, coin| Message {
        dialect,
        method: None,
        agent: None,
        coin,
        login: None,
        is_login: false,
    };
    match obj.get("result")? {
        Value::Object(result) => {
            let job_blob = result
                .get("job")
                .and_then(Value::as_object)
                .is_some_and(|job| job.get("blob").is_some_and(Value::is_string));
            if job_blob {
                Some(reply(Dialect::Monero, job_coin(obj, truncated)))
            } else if result.get("status").and_then(Value::as_str) == Some("KEEPALIVED") {
                Some(reply(Dialect::Monero, Coin::Unknown))
            } else {
                None
            }
        }
        Value::Array(items) => {
            let mut strings = Vec::new();
            collect_strings(items, 3, &mut strings);
            let names_mining = items.first().is_some_and(Value::is_array)
                && strings.iter().any(|s| s.starts_with("mining."));
            if names_mining && strings.iter().any(|s| is_ethereum_stratum(s)) {
                Some(reply(Dialect::Ethereum, Coin::Ethereum))
            } else if names_mining {
                Some(reply(Dialect::Bitcoin, Coin::Unknown))
            } else if is_eth_work(items) {
                Some(reply(Dialect::Ethereum, Coin::Ethereum))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Strings in `items` and in arrays nested at most `depth` levels below it.
fn collect_strings<'a>(items: &'a [Value], depth: usize, out: &mut Vec<&'a str>) {
    for v in items {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(inner) if depth > 1 => collect_strings(inner, depth - 1, out),
            _ => {}
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn is_ethereum_stratum(s: &str) -> bool {
    starts_with_ignore_case(s.as_bytes(), b"EthereumStratum/")
}

/// EthereumStratum's notify: `[job_id, seed_hash, header_hash, clean]`, hashes as 64 hex digits.
/// Bitcoin's has nine parameters.
fn is_ethereum_notify(params: &[Value]) -> bool {
    let hash = |i: usize| {
        params
            .get(i)
            .and_then(Value::as_str)
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    params.len() == 4 && hash(1) && hash(2) && params.get(3).is_some_and(Value::is_boolean)
}

/// getWork's answer (or ethproxy's pushed work): header hash, seed hash, target, all `0x` hex.
fn is_eth_work(items: &[Value]) -> bool {
    let hex = |i: usize, len: Option<usize>| {
        items
            .get(i)
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("0x"))
            .is_some_and(|h| {
                !h.is_empty()
                    && len.is_none_or(|l| h.len() == l)
                    && h.bytes().all(|b| b.is_ascii_hexdigit())
            })
    };
    hex(0, Some(64)) && hex(1, Some(64)) && hex(2, None)
}

/// The string at `path` (object keys from `obj`), or its cut-off part if the message ended in it.
fn agent_at(obj: &Map<String, Value>, path: &[&str], cut: Option<&Cut>) -> Option<Agent> {
    let (first, rest) = path.split_first()?;
    let mut v = obj.get(*first);
    for key in rest {
        v = v.and_then(|v| v.get(*key));
    }
    match v {
        Some(Value::String(s)) => parse_agent(s, true),
        Some(_) => None,
        None => {
            let segs: Vec<Seg> = path.iter().map(|k| Seg::Key((*k).to_owned())).collect();
            cut.and_then(|c| c.dangling_at(&segs))
                .and_then(|s| parse_agent(s, false))
        }
    }
}
