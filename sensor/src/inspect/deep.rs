//! Deep Stratum inspection: what one TCP payload says about the miner behind it.
//!
//! The kernel's scanner (`sensor_common::stratum`) only decides *whether* a segment is Stratum and in
//! which dialect. This module parses the JSON of a payload it is handed and names the miner
//! software ([`Agent`]), the coin ([`Coin`]) and whether the message logs a miner in, so that
//! `mining_sensor_miner_logins_total{coin, agent}` can be counted. The login itself (a wallet, a user
//! name) is never a label: it only feeds [`login_hash`], a keyed hash for counting distinct miners.
//!
//! # Framing
//! A payload holds newline-separated JSON objects (several objects on one line are accepted too).
//! Complete messages are parsed with `serde_json`. A line that does not begin with `{` (the tail of a
//! message begun in an earlier segment, a banner) is skipped, as is a line that is not valid JSON.
//! The whole payload yields nothing when it looks like HTML (`<html`, `<script`, `<title`,
//! `<!doctype` anywhere, as Emerging Threats' rules exclude them), an HTTP request or response (it
//! begins with `HTTP/` or a method such as `POST `), or a language server's framing (it begins with
//! `Content-Length:`): those quote JSON that no miner sent.
//!
//! # Truncated last message
//! When the payload does not end in `\n` and its last message is cut off (the JSON is a valid prefix),
//! the prefix is repaired: the unfinished token (string, number, literal) is dropped and every open
//! object and array is closed, and the result is classified like a complete message, with these
//! differences:
//! - values that are not complete yet are absent: a login cut inside the wallet yields no message
//!   (the `login` rule needs it), a submit needs `job_id` only, a job push `blob` only;
//! - an agent string cut off still names the family when the product token (`XMRig`, `xmr-stak-cpu`)
//!   is complete, and the version when the version token is followed by a delimiter; otherwise the
//!   agent is `None` (never `unknown`: the rest of the string might have named it);
//! - an algorithm *list* cut off is not evidence against Monero (XMRig lists `cn/*` before `rx/0`),
//!   so it can make the coin `monero` but never `other`.
//!
//! # Which messages count
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
//!   `EthereumStratum/...` protocol string). `mining.authorize`: login `params[0]`, `is_login`.
//!   `mining.submit`: login `params[0]` (the worker, used as a coin hint only).
//! - `eth_submitLogin`: login `params[0]`, agent from a top-level `agent` string or else from the
//!   `worker` field when that names a known miner (ethproxy workers are usually rig names); `is_login`.
//!
//! An agent string maps to a lower-case family by its product token (the runs of `[A-Za-z0-9._-]`
//! are tried in order, case-insensitively, against the prefixes in `FAMILIES`); the version is the
//! token that follows the product after `/` or a space (or a `-<digits>` tail of the product token),
//! when it starts with a digit (an optional `v` is dropped), at most 32 bytes of `[0-9A-Za-z._-]`.
//! A string naming no known product is family `unknown` without version: the raw string is never kept.
//!
//! # Coin
//! Addresses are recognised by shape on the login's leading alphanumeric run, so the suffixes
//! pools accept (`.worker`, `+difficulty`, `:password`, `/email`) are ignored: Monero is base58 of
//! 95 characters starting with `4` or `8` or 106 starting with `4`; Bitcoin is base58 of 26-35
//! starting with `1` or `3`, or bech32 `bc1` + 11-71 characters of the bech32 alphabet in one case;
//! Ethereum is `0x` + 40 hex digits.
//! - monero dialect: `rx/0` (or its XMRig aliases `rx`, `randomx`) among the algorithms (login's
//!   `params.algo` list, the keys of MoneroOcean's `params.algo-perf`, submit's and job push's
//!   `params.algo`, a reply's `result.job.algo`) -> monero; else a Monero-address login -> monero;
//!   else any other algorithm named -> other (`cn/*`, `cn-lite/*`, `argon2/*`, `rx/wow`, ...); else
//!   unknown. The address wins over a list without `rx/0` because the address names what the pool
//!   pays out (old XMRig offered `cn/r`, Monero's algorithm until November 2019, to Monero pools).
//! - bitcoin dialect: login a Bitcoin address -> bitcoin; a Monero address -> monero; anything
//!   else or no login (subscribe, notify, set_difficulty) -> unknown.
//! - ethereum dialect -> ethereum.
//!
//! Nothing here panics, whatever the bytes: no indexing, no `unwrap` on input, slices only at ASCII
//! positions via `get`.

use std::fmt;

use serde_json::{Map, Value};

/// Longest version string kept.
const MAX_VERSION_LEN: usize = 32;
/// Deepest nesting a repaired truncated message may have; Stratum messages nest three levels.
const MAX_REPAIR_DEPTH: usize = 32;
/// Longest `mining.*` method name accepted; real ones are under 30 bytes.
const MAX_MINING_METHOD_LEN: usize = 48;

/// Protocol family of a message, the `dialect` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// XMRig-family JSON-RPC: login/submit/keepalived/job.
    Monero,
    /// Stratum V1 `mining.*`.
    Bitcoin,
    /// ethproxy `eth_submitLogin` and friends, EthereumStratum.
    Ethereum,
}

impl Dialect {
    pub fn label(&self) -> &'static str {
        match self {
            Dialect::Monero => "monero",
            Dialect::Bitcoin => "bitcoin",
            Dialect::Ethereum => "ethereum",
        }
    }
}

/// The coin mined, the `coin` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coin {
    Monero,
    Bitcoin,
    Ethereum,
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
            Coin::Other => "other",
            Coin::Unknown => "unknown",
        }
    }
}

/// The miner software a message names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Lower-case family (`xmrig`, `cgminer`, ...) or `unknown`; always one of a fixed set.
    pub family: &'static str,
    /// Version such as `6.16.0`: only `[0-9A-Za-z._-]`, at most 32 bytes.
    pub version: Option<String>,
}

/// One parsed Stratum JSON-RPC message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub dialect: Dialect,
    /// The method (`login`, `mining.subscribe`, `eth_submitLogin`, ...); `None` for replies.
    pub method: Option<String>,
    pub agent: Option<Agent>,
    pub coin: Coin,
    /// The raw login (wallet, user, worker). Never export it: it is only for [`login_hash`].
    pub login: Option<String>,
    /// The message logs a miner in (monero `login`, `mining.authorize`, `eth_submitLogin`).
    pub is_login: bool,
}

// Hand-written so that logging a message with `{:?}` cannot leak the login.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("dialect", &self.dialect)
            .field("method", &self.method)
            .field("agent", &self.agent)
            .field("coin", &self.coin)
            .field("login", &self.login.as_ref().map(|_| "<redacted>"))
            .field("is_login", &self.is_login)
            .finish()
    }
}

/// Keyed hash of a login, so distinct miners can be counted without storing the login:
/// HMAC-SHA256 with `key`, truncated to 64 bits, as 16 lower-case hex characters.
pub fn login_hash(key: &[u8; 32], login: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, login.as_bytes());
    let mut out = String::with_capacity(16);
    for b in tag.as_ref().iter().take(8) {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0f));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// What one TCP payload (possibly several newline-separated JSON messages, possibly a truncated
/// last one) says. Messages that are not Stratum yield nothing.
pub fn inspect(payload: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    if quotes_foreign_json(payload) {
        return out;
    }
    let terminated = payload.last() == Some(&b'\n');
    let mut lines = payload.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let cut = !terminated && lines.peek().is_none();
        inspect_line(line, cut, &mut out);
    }
    out
}

/// HTML, HTTP and language-server framing carry JSON that no miner sent (the known traps).
fn quotes_foreign_json(payload: &[u8]) -> bool {
    const MARKUP: [&[u8]; 4] = [b"<html", b"<script", b"<title", b"<!doctype"];
    const STARTS: [&[u8]; 11] = [
        b"HTTP/",
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"OPTIONS ",
        b"DELETE ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
        b"Content-Length:",
    ];
    let start = payload
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|i| payload.get(i..))
        .unwrap_or_default();
    STARTS.iter().any(|s| starts_with_ignore_case(start, s))
        || MARKUP.iter().any(|m| contains_ignore_case(payload, m))
}

fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn inspect_line(line: &[u8], may_be_cut: bool, out: &mut Vec<Message>) {
    let Some(line) = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|i| line.get(i..))
    else {
        return;
    };
    if line.first() != Some(&b'{') {
        return;
    }
    let mut stream = serde_json::Deserializer::from_slice(line).into_iter::<Value>();
    while let Some(item) = stream.next() {
        match item {
            Ok(Value::Object(obj)) => out.extend(classify(&obj, None)),
            Ok(_) => {}
            Err(e) => {
                if may_be_cut && e.is_eof() {
                    let rest = line.get(stream.byte_offset()..).unwrap_or_default();
                    if let Some((obj, cut)) = repair(rest) {
                        out.extend(classify(&obj, Some(&cut)));
                    }
                }
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Repairing a truncated message

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// What was lost when a message was cut: the string value it ended in, if any, and where it was.
#[derive(Debug, Default)]
struct Cut {
    dangling: Option<(Vec<Seg>, String)>,
}

impl Cut {
    /// The cut-off string at `path`, if the message ended inside it.
    fn dangling_at(&self, path: &[Seg]) -> Option<&str> {
        match &self.dangling {
            Some((p, s)) if p.as_slice() == path => Some(s),
            _ => None,
        }
    }
}

enum Frame {
    Obj {
        map: Map<String, Value>,
        key: Option<String>,
        colon: bool,
    },
    Arr(Vec<Value>),
}

impl Frame {
    /// The step from this container to the value being built inside it.
    fn child_seg(&self) -> Option<Seg> {
        match self {
            Frame::Obj {
                key: Some(k),
                colon: true,
                ..
            } => Some(Seg::Key(k.clone())),
            Frame::Obj { .. } => None,
            Frame::Arr(items) => Some(Seg::Index(items.len())),
        }
    }
}

/// Rebuilds the object a cut-off message had begun: complete members are kept, the unfinished token
/// is dropped (a string value is returned as the dangling part), open containers are closed.
/// `text` is a prefix of valid JSON (serde_json reported the end of input, not a syntax error).
fn repair(text: &[u8]) -> Option<(Map<String, Value>, Cut)> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut cut = Cut::default();
    let mut started = false;
    let mut i = 0;
    loop {
        while text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let Some(&b) = text.get(i) else { break };
        match b {
            b'{' | b'[' => {
                let expected = match stack.last() {
                    None => !started,
                    Some(f) => f.child_seg().is_some(),
                };
                if !expected || stack.len() >= MAX_REPAIR_DEPTH {
                    return None;
                }
                started = true;
                stack.push(if b == b'{' {
                    Frame::Obj {
                        map: Map::new(),
                        key: None,
                        colon: false,
                    }
                } else {
                    Frame::Arr(Vec::new())
                });
                i += 1;
            }
            b'}' | b']' => {
                let value = match (stack.pop()?, b) {
                    (Frame::Obj { map, key: None, .. }, b'}') => Value::Object(map),
                    (Frame::Arr(items), b']') => Value::Array(items),
                    _ => return None,
                };
                // A complete top-level value would have parsed: not a truncated message.
                put(stack.last_mut()?, value)?;
                i += 1;
            }
            b',' => {
                if let Some(Frame::Obj { key, colon, .. }) = stack.last_mut() {
                    *key = None;
                    *colon = false;
                }
                i += 1;
            }
            b':' => {
                match stack.last_mut() {
                    Some(Frame::Obj {
                        key: Some(_),
                        colon,
                        ..
                    }) => *colon = true,
                    _ => return None,
                }
                i += 1;
            }
            b'"' => {
                let frame = stack.last_mut()?;
                match string_end(text, i) {
                    Some(end) => {
                        let s: String = serde_json::from_slice(text.get(i..=end)?).ok()?;
                        match frame {
                            Frame::Obj { key: k @ None, .. } => *k = Some(s),
                            f => put(f, Value::String(s))?,
                        }
                        i = end + 1;
                    }
                    None => {
                        if frame.child_seg().is_some() {
                            let path: Option<Vec<Seg>> =
                                stack.iter().map(Frame::child_seg).collect();
                            let partial = decode_partial(text.get(i..).unwrap_or_default());
                            cut.dangling = path.map(|p| (p, partial));
                        }
                        break;
                    }
                }
            }
            _ => {
                let len =
                    text.get(i..).unwrap_or_default().iter().position(|c| {
                        matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                    });
                // A literal running to the end may be cut (`12` of `123`, `tr` of `true`).
                let Some(len) = len else { break };
                let value: Value = serde_json::from_slice(text.get(i..i + len)?).ok()?;
                put(stack.last_mut()?, value)?;
                i += len;
            }
        }
    }
    let mut child: Option<Value> = None;
    while let Some(frame) = stack.pop() {
        child = Some(match frame {
            Frame::Obj { mut map, key, .. } => {
                if let (Some(k), Some(c)) = (key, child.take()) {
                    map.insert(k, c);
                }
                Value::Object(map)
            }
            Frame::Arr(mut items) => {
                items.extend(child.take());
                Value::Array(items)
            }
        });
    }
    match child {
        Some(Value::Object(map)) => Some((map, cut)),
        _ => None,
    }
}

/// Adds a complete value to the container being built.
fn put(frame: &mut Frame, value: Value) -> Option<()> {
    match frame {
        Frame::Obj {
            map,
            key: key @ Some(_),
            colon: colon @ true,
        } => {
            map.insert(key.take()?, value);
            *colon = false;
        }
        Frame::Obj { .. } => return None,
        Frame::Arr(items) => items.push(value),
    }
    Some(())
}

/// Index of the quote that closes the string opening at `start`.
fn string_end(text: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while let Some(&c) = text.get(j) {
        match c {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// Decodes the part of a cut-off JSON string that is whole (an escape or a UTF-8 sequence may be
/// cut too).
fn decode_partial(raw: &[u8]) -> String {
    for drop in 0..=6 {
        let Some(head) = raw.get(..raw.len().saturating_sub(drop)) else {
            break;
        };
        let mut quoted = head.to_vec();
        quoted.push(b'"');
        if let Ok(s) = serde_json::from_slice::<String>(&quoted) {
            return s;
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------------------------
// Classification

fn classify(obj: &Map<String, Value>, cut: Option<&Cut>) -> Option<Message> {
    match obj.get("method") {
        Some(Value::String(method)) => classify_request(obj, method, cut),
        Some(_) => None,
        None => classify_reply(obj, cut),
    }
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
            Some(message(
                Dialect::Monero,
                method,
                monero_coin(obj, None, truncated),
            ))
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
    match method {
        "mining.subscribe" => {
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
        "mining.notify" => eth_stratum = params.is_some_and(|p| is_ethereum_notify(p)),
        "mining.authorize" | "mining.submit" => login = param_str(0),
        _ => {}
    }
    let eth_login = login.is_some_and(|l| is_ethereum_address(address_core(l)));
    let (dialect, coin) = if eth_stratum || eth_login {
        (Dialect::Ethereum, Coin::Ethereum)
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
                Some(reply(Dialect::Monero, monero_coin(obj, None, truncated)))
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

// ---------------------------------------------------------------------------------------------
// Coins

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

fn monero_coin(obj: &Map<String, Value>, login: Option<&str>, truncated: bool) -> Coin {
    let algos = Algos::of(obj, truncated);
    if algos.rx0 || login.is_some_and(|l| is_monero_address(address_core(l))) {
        Coin::Monero
    } else if algos.other {
        Coin::Other
    } else {
        Coin::Unknown
    }
}

fn bitcoin_coin(login: Option<&str>) -> Coin {
    let Some(core) = login.map(address_core) else {
        return Coin::Unknown;
    };
    if is_bitcoin_address(core) {
        Coin::Bitcoin
    } else if is_monero_address(core) {
        Coin::Monero
    } else {
        Coin::Unknown
    }
}

/// The leading alphanumeric run of a login: pools take `ADDRESS.worker`, `ADDRESS+diff`,
/// `ADDRESS:pass`, `ADDRESS/email`, and every address form is alphanumeric.
fn address_core(login: &str) -> &str {
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

fn is_monero_address(s: &str) -> bool {
    let first = s.bytes().next();
    let shape = match s.len() {
        95 => matches!(first, Some(b'4' | b'8')),
        106 => first == Some(b'4'),
        _ => false,
    };
    shape && s.bytes().all(is_base58)
}

fn is_bitcoin_address(s: &str) -> bool {
    const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let base58 = (26..=35).contains(&s.len())
        && matches!(s.bytes().next(), Some(b'1' | b'3'))
        && s.bytes().all(is_base58);
    // bech32 is all lower or all upper case; the data part is at least 6 checksum characters plus
    // a witness version and program.
    let lower = s.to_ascii_lowercase();
    let bech32 = (14..=74).contains(&s.len())
        && (s == lower || s == s.to_ascii_uppercase())
        && lower
            .strip_prefix("bc1")
            .is_some_and(|data| data.bytes().all(|b| BECH32.contains(&b)));
    base58 || bech32
}

fn is_ethereum_address(s: &str) -> bool {
    s.len() == 42
        && (s.starts_with("0x") || s.starts_with("0X"))
        && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// Agents

const UNKNOWN: &str = "unknown";

/// Product-token prefixes (lower case) and the family they name. Longer prefixes that share a
/// start with a shorter one come first.
const FAMILIES: &[(&str, &str)] = &[
    ("xmrig-proxy", "xmrig-proxy"),
    ("xmrig", "xmrig"),
    ("xmr-stak", "xmr-stak"),
    ("xmrstak", "xmr-stak"),
    ("xmr-node-proxy", "xmr-node-proxy"),
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
    ("claymore", "claymore"),
    ("ccminer", "ccminer"),
    ("t-rex", "t-rex"),
    ("trex", "t-rex"),
    ("wildrig", "wildrig"),
    ("cast-xmr", "cast-xmr"),
    ("cast_xmr", "cast-xmr"),
    ("minergate", "minergate"),
    ("bzminer", "bzminer"),
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
fn parse_agent(s: &str, complete: bool) -> Option<Agent> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const XMR: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";
    const XMRIG_AGENT: &str = "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0";
    const XMRIG_ALGOS: &str = r#"["cn/1","cn/2","cn/r","cn/fast","cn/half","cn/xao","cn/rto","cn/rwz","cn/zls","cn/double","cn-lite/1","cn-heavy/0","cn-heavy/tube","cn-heavy/xhv","cn-pico","cn-pico/tlo","rx/0","rx/wow","rx/arq","rx/sfx","argon2/chukwa","argon2/chukwav2","astrobwt","ghostrider"]"#;
    const BTC: &str = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
    const ETH: &str = "0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5";

    fn xmrig_login() -> String {
        format!(
            r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{XMR}","pass":"x","agent":"{XMRIG_AGENT}","algo":{XMRIG_ALGOS}}}}}"#
        )
    }

    fn one(payload: &str) -> Message {
        let msgs = inspect(payload.as_bytes());
        assert_eq!(msgs.len(), 1, "{payload}: {msgs:?}");
        msgs.into_iter().next().unwrap()
    }

    fn agent(family: &'static str, version: &str) -> Option<Agent> {
        Some(Agent {
            family,
            version: Some(version.to_owned()),
        })
    }

    #[test]
    fn labels() {
        assert_eq!(XMR.len(), 95);
        let d = [Dialect::Monero, Dialect::Bitcoin, Dialect::Ethereum].map(|d| d.label());
        assert_eq!(d, ["monero", "bitcoin", "ethereum"]);
        let c = [
            Coin::Monero,
            Coin::Bitcoin,
            Coin::Ethereum,
            Coin::Other,
            Coin::Unknown,
        ]
        .map(|c| c.label());
        assert_eq!(c, ["monero", "bitcoin", "ethereum", "other", "unknown"]);
    }

    #[test]
    fn xmrig_login_compact() {
        let m = one(&(xmrig_login() + "\n"));
        assert_eq!(
            m,
            Message {
                dialect: Dialect::Monero,
                method: Some("login".into()),
                agent: agent("xmrig", "6.16.0"),
                coin: Coin::Monero,
                login: Some(XMR.into()),
                is_login: true,
            }
        );
    }

    #[test]
    fn rx0_in_algo_list_decides_monero_without_address() {
        let p = format!(
            r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"someuser","pass":"x","agent":"{XMRIG_AGENT}","algo":{XMRIG_ALGOS}}}}}"#
        );
        assert_eq!(one(&p).coin, Coin::Monero);
        let other = p.replace("\"rx/0\",", "");
        assert_eq!(one(&other).coin, Coin::Other);
    }

    #[test]
    fn monero_address_wins_over_list_without_rx0() {
        let p = format!(
            r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{XMR}","pass":"x","agent":"XMRig/2.14.1","algo":["cn/r","cn/2"]}}}}"#
        );
        let m = one(&p);
        assert_eq!((m.coin, m.agent), (Coin::Monero, agent("xmrig", "2.14.1")));
    }

    #[test]
    fn moneroocean_fork_with_algo_perf() {
        let p = r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"someuser","pass":"x","agent":"XMRig/6.16.0-mo1 (Windows NT 10.0; Win64; x64) libuv/1.42.0 msvc/2019","algo":["cn/r"],"algo-perf":{"cn/r":100.0,"rx/0":2500.5},"extensions":["algo","keepalive"]}}"#;
        let m = one(p);
        assert_eq!(
            (m.coin, m.agent),
            (Coin::Monero, agent("xmrig", "6.16.0-mo1"))
        );
    }

    #[test]
    fn xmr_stak_method_first_id_last() {
        for (a, v) in [
            ("xmr-stak-cpu/1.0.0", "1.0.0"),
            ("xmr-stak/2.10.8/3ed2f1a/master/lin/cpu/monero/20", "2.10.8"),
        ] {
            let p = format!(
                r#"{{"method":"login","params":{{"login":"{XMR}","pass":"x","agent":"{a}"}},"id":1}}"#
            );
            let m = one(&p);
            assert_eq!(m.dialect, Dialect::Monero);
            assert_eq!(m.coin, Coin::Monero);
            assert_eq!(m.agent, agent("xmr-stak", v));
            assert!(m.is_login);
        }
    }

    #[test]
    fn cpuminer_multi_spaced() {
        let p = format!(
            "{{\"method\": \"login\", \"params\": {{\"login\": \"{XMR}.rig1\", \"pass\": \"x\", \"agent\": \"cpuminer-multi/1.3.1\"}}, \"id\": 2}}\r\n"
        );
        let m = one(&p);
        assert_eq!(m.agent, agent("cpuminer", "1.3.1"));
        assert_eq!(m.coin, Coin::Monero);
        assert_eq!(m.login.as_deref(), Some(format!("{XMR}.rig1").as_str()));
    }

    #[test]
    fn cgminer_subscribe_then_authorize() {
        let p = format!(
            "{{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.10.0\"]}}\n{{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"{BTC}.worker1\", \"x\"]}}\n"
        );
        let msgs = inspect(p.as_bytes());
        assert_eq!(
            msgs,
            vec![
                Message {
                    dialect: Dialect::Bitcoin,
                    method: Some("mining.subscribe".into()),
                    agent: agent("cgminer", "4.10.0"),
                    coin: Coin::Unknown,
                    login: None,
                    is_login: false,
                },
                Message {
                    dialect: Dialect::Bitcoin,
                    method: Some("mining.authorize".into()),
                    agent: None,
                    coin: Coin::Bitcoin,
                    login: Some(format!("{BTC}.worker1")),
                    is_login: true,
                },
            ]
        );
    }

    #[test]
    fn bitcoin_logins() {
        let auth = |login: &str| {
            one(&format!(
                r#"{{"id":2,"method":"mining.authorize","params":["{login}","x"]}}"#
            ))
        };
        for login in [
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.rig",
            "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ",
        ] {
            let m = auth(login);
            assert_eq!(
                (m.dialect, m.coin),
                (Dialect::Bitcoin, Coin::Bitcoin),
                "{login}"
            );
        }
        for login in [
            "someuser.worker",
            "bc1QAR0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ] {
            assert_eq!(auth(login).coin, Coin::Unknown, "{login}");
        }
        assert_eq!(auth(XMR).coin, Coin::Monero);
        let m = auth(&format!("{ETH}.rig"));
        assert_eq!((m.dialect, m.coin), (Dialect::Ethereum, Coin::Ethereum));
        assert!(m.is_login);
    }

    #[test]
    fn nicehash_compact_and_pool_side() {
        let m = one(r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0",null]}"#);
        assert_eq!(
            (m.dialect, m.agent),
            (Dialect::Bitcoin, agent("nicehash", "1.0.0"))
        );
        let pool = concat!(
            r#"{"id":null,"method":"mining.set_difficulty","params":[1024]}"#,
            "\n",
            r#"{"id":1,"result":[[["mining.set_difficulty","1"],["mining.notify","ae68"]],"08000002",4],"error":null}"#,
            "\n"
        );
        let msgs = inspect(pool.as_bytes());
        assert_eq!(msgs.len(), 2);
        assert!(msgs.iter().all(|m| m.dialect == Dialect::Bitcoin));
        assert_eq!(msgs[1].method, None);
    }

    #[test]
    fn ethproxy_submit_login() {
        let m = one(&format!(
            r#"{{"worker": "eth1.0", "jsonrpc": "2.0", "params": ["{ETH}", "x"], "id": 2, "method": "eth_submitLogin"}}"#
        ));
        assert_eq!(
            m,
            Message {
                dialect: Dialect::Ethereum,
                method: Some("eth_submitLogin".into()),
                agent: None,
                coin: Coin::Ethereum,
                login: Some(ETH.into()),
                is_login: true,
            }
        );
        let work = one(r#"{"id":5,"jsonrpc":"2.0","method":"eth_getWork","params":[]}"#);
        assert_eq!((work.dialect, work.is_login), (Dialect::Ethereum, false));
        let h = "0x".to_owned() + &"ab".repeat(32);
        let push = one(&format!(
            r#"{{"id":0,"jsonrpc":"2.0","result":["{h}","{h}","0x00000000ffff"]}}"#
        ));
        assert_eq!((push.dialect, push.method), (Dialect::Ethereum, None));
    }

    #[test]
    fn ethereum_stratum_subscribe() {
        for (p, fam, v) in [
            (
                r#"{"id": 1, "method": "mining.subscribe", "params": ["ethminer/0.19.0", "EthereumStratum/1.0.0"]}"#,
                "ethminer",
                "0.19.0",
            ),
            (
                r#"{"id":1,"method":"mining.subscribe","params":["EthereumStratum/1.0.0","PhoenixMiner 5.5c"]}"#,
                "phoenixminer",
                "5.5c",
            ),
        ] {
            let m = one(p);
            assert_eq!((m.dialect, m.coin), (Dialect::Ethereum, Coin::Ethereum));
            assert_eq!(m.agent, agent(fam, v));
        }
        let reply = one(
            r#"{"id":1,"result":[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f","EthereumStratum/1.0.0"],"080c"],"error":null}"#,
        );
        assert_eq!(reply.dialect, Dialect::Ethereum);
        let h = "cd".repeat(32);
        let notify = one(&format!(
            r#"{{"id":null,"method":"mining.notify","params":["bf0488aa","{h}","{h}",true]}}"#
        ));
        assert_eq!(notify.dialect, Dialect::Ethereum);
    }

    #[test]
    fn pool_job_reply_and_push() {
        let seed = "ab".repeat(32);
        let reply = |algo: &str| {
            format!(
                r#"{{"id":1,"jsonrpc":"2.0","error":null,"result":{{"id":"a1b2c3","job":{{"blob":"0e0ea0d1","job_id":"j1","target":"b88d0600","algo":"{algo}","height":2500000,"seed_hash":"{seed}"}},"extensions":["algo","keepalive"],"status":"OK"}}}}"#
            )
        };
        let m = one(&reply("rx/0"));
        assert_eq!(
            m,
            Message {
                dialect: Dialect::Monero,
                method: None,
                agent: None,
                coin: Coin::Monero,
                login: None,
                is_login: false,
            }
        );
        assert_eq!(one(&reply("cn/r")).coin, Coin::Other);
        let push = one(&format!(
            r#"{{"jsonrpc":"2.0","method":"job","params":{{"blob":"0e0e","job_id":"j2","target":"b88d0600","algo":"rx/wow","seed_hash":"{seed}"}}}}"#
        ));
        assert_eq!(
            (push.method.as_deref(), push.coin),
            (Some("job"), Coin::Other)
        );
        let alive =
            one(r#"{"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}"#);
        assert_eq!(alive.dialect, Dialect::Monero);
    }

    #[test]
    fn two_messages_in_one_payload() {
        let p = concat!(
            r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"s1","job_id":"j1","nonce":"deadbeef","result":"00ff","algo":"rx/0"}}"#,
            "\n",
            r#"{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"s1"}}"#,
            "\n"
        );
        let msgs = inspect(p.as_bytes());
        let got: Vec<_> = msgs
            .iter()
            .map(|m| (m.method.as_deref(), m.coin, m.is_login))
            .collect();
        assert_eq!(
            got,
            [
                (Some("submit"), Coin::Monero, false),
                (Some("keepalived"), Coin::Unknown, false)
            ]
        );
        // Two objects on one line, and a non-JSON line between messages.
        let p = format!(
            "{}{}\nnoise\n{}",
            xmrig_login(),
            xmrig_login(),
            xmrig_login()
        );
        assert_eq!(inspect(p.as_bytes()).len(), 3);
    }

    #[test]
    fn truncated_login() {
        let full = xmrig_login();
        let at = |needle: &str| full.find(needle).unwrap();
        // Cut after the agent string: agent, login and coin (from the address) are all there.
        let m = one(&full[..at(",\"algo\"")]);
        assert_eq!(m.agent, agent("xmrig", "6.16.0"));
        assert_eq!((m.coin, m.is_login), (Coin::Monero, true));
        assert_eq!(m.login.as_deref(), Some(XMR));
        // Cut inside the agent string after the version's delimiter.
        let m = one(&full[..at("x86_64")]);
        assert_eq!(m.agent, agent("xmrig", "6.16.0"));
        // Cut inside the version: the family only.
        let m = one(&full[..at("6.16.0") + 3]);
        assert_eq!(
            m.agent,
            Some(Agent {
                family: "xmrig",
                version: None
            })
        );
        // Cut inside the product token: nothing known about the agent.
        assert_eq!(one(&full[..at("XMRig") + 3]).agent, None);
        // Cut inside the algorithm list, before rx/0: still monero (address), never "other".
        let cut = one(&full[..at("cn-pico")]);
        assert_eq!(cut.coin, Coin::Monero);
        let anon = full.replace(XMR, "someuser");
        let cut = one(&anon[..anon.find("cn-pico").unwrap()]);
        assert_eq!(cut.coin, Coin::Unknown);
        // Cut inside the wallet: no message.
        assert!(inspect(&full.as_bytes()[..at(XMR) + 40]).is_empty());
        // The same cut followed by a newline is a broken line, not a cut-off one.
        assert!(inspect(format!("{}\n", &full[..at(",\"algo\"")]).as_bytes()).is_empty());
        // A truncated subscribe.
        let m = one(r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0 (x"#);
        assert_eq!(m.agent, agent("cgminer", "4.10.0"));
    }

    #[test]
    fn agent_families() {
        for (s, fam, ver) in [
            (
                "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0",
                "xmrig",
                Some("6.16.0"),
            ),
            (
                "xmrig-proxy/6.15.0 (Linux x86_64) libuv/1.41.0",
                "xmrig-proxy",
                Some("6.15.0"),
            ),
            ("xmr-stak-cpu/1.0.0", "xmr-stak", Some("1.0.0")),
            ("cpuminer-multi/1.3.1", "cpuminer", Some("1.3.1")),
            ("cpuminer-opt/3.8.8.1", "cpuminer", Some("3.8.8.1")),
            ("cpuminer/2.5.1", "cpuminer", Some("2.5.1")),
            ("cgminer/4.10.0", "cgminer", Some("4.10.0")),
            ("bfgminer/5.5.0", "bfgminer", Some("5.5.0")),
            ("NiceHash/1.0.0", "nicehash", Some("1.0.0")),
            ("NHMiner/1.2", "nicehash", Some("1.2")),
            (
                "excavator/1.5.14a_nvidia",
                "nicehash",
                Some("1.5.14a_nvidia"),
            ),
            ("SRBMiner-MULTI/0.9.0", "srbminer", Some("0.9.0")),
            ("SRBMiner-MULTI v0.9.0", "srbminer", Some("0.9.0")),
            ("TeamRedMiner/0.8.4", "teamredminer", Some("0.8.4")),
            ("lolMiner 1.42", "lolminer", Some("1.42")),
            ("NBMiner/39.5", "nbminer", Some("39.5")),
            ("GMiner/2.75", "gminer", Some("2.75")),
            ("ethminer-0.19.0", "ethminer", Some("0.19.0")),
            ("Claymore", "claymore", None),
            ("XMRig", "xmrig", None),
            ("Mozilla/5.0 (X11; Linux x86_64)", "unknown", None),
            ("", "unknown", None),
            ("mystery/9.9 (4AFFq5kSiGBoZ4NMDwYtN18obc8)", "unknown", None),
        ] {
            let a = parse_agent(s, true).unwrap();
            assert_eq!((a.family, a.version.as_deref()), (fam, ver), "{s}");
        }
        let long = format!("XMRig/1.{}", "9".repeat(100));
        let v = parse_agent(&long, true).unwrap().version.unwrap();
        assert_eq!(v.len(), MAX_VERSION_LEN);
    }

    #[test]
    fn login_shapes() {
        let integrated = format!("4{}", "A".repeat(105));
        let sub = format!("8{}", &XMR[1..]);
        for l in [
            XMR.to_owned(),
            format!("{XMR}.worker"),
            format!("{XMR}+50000"),
            format!("{XMR}:rig"),
            integrated,
            sub,
        ] {
            assert!(is_monero_address(address_core(&l)), "{l}");
        }
        for l in [&XMR[1..], &format!("{XMR}9"), &XMR.replace('A', "0")] {
            assert!(!is_monero_address(address_core(l)), "{l}");
        }
        assert!(is_ethereum_address(ETH));
        assert!(!is_ethereum_address(&ETH[..41]));
    }

    #[test]
    fn not_stratum() {
        for p in [
            "HTTP/1.1 200 OK\r\n\r\n<html><script>var l = {\"method\":\"login\"};</script>",
            &format!("<!DOCTYPE html>\n{}\n", xmrig_login()),
            &format!("POST / HTTP/1.1\r\nHost: x\r\n\r\n{}", xmrig_login()),
            r#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":"0x10d4f"}"#,
            "Content-Length: 52\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}",
            r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a"}}}"#,
            r#"{"id":1,"note":"a \"method\": \"keepalived\""}"#,
            r#"{"jsonrpc":"2.0","method":"login","params":{"login":"bob","password":"x"}}"#,
            r#"{"id":1,"result":true,"error":null}"#,
            r#"{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"Invalid address"}}"#,
            r#"{"id":1,"method":"mining.x y","params":[]}"#,
            r#"{"id":1,"method":"submit","params":{"text":"hello"}}"#,
            r#"[{"id":1,"method":"login"}]"#,
            "",
            "\n\n",
        ] {
            assert_eq!(inspect(p.as_bytes()), vec![], "{p}");
        }
    }

    #[test]
    fn login_only_in_login_field() {
        let payloads = [
            xmrig_login(),
            format!(r#"{{"id":2,"method":"mining.authorize","params":["{BTC}.w","x"]}}"#),
            format!(
                r#"{{"worker":"eth1.0","params":["{ETH}","x"],"id":2,"method":"eth_submitLogin"}}"#
            ),
        ];
        for p in payloads {
            for m in inspect(p.as_bytes()) {
                let login = m.login.clone().unwrap();
                let shown = format!(
                    "{:?} {:?} {:?} {:?} {:?} {}",
                    m, m.dialect, m.method, m.agent, m.coin, m.is_login
                );
                assert!(!shown.contains(&login), "{shown}");
                assert!(!shown.contains(address_core(&login)), "{shown}");
            }
        }
    }

    #[test]
    fn login_hash_known_shape() {
        let h = login_hash(&[7; 32], XMR);
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(h, login_hash(&[7; 32], XMR));
        assert_ne!(h, login_hash(&[8; 32], XMR));
        assert_ne!(h, login_hash(&[7; 32], BTC));
    }

    /// Every prefix of real logins: never a wrong coin or agent, only less information.
    #[test]
    fn cuts_never_misclassify() {
        let seeds = [
            (xmrig_login(), Coin::Monero),
            (
                format!(
                    r#"{{"method":"login","params":{{"login":"{XMR}","pass":"x","agent":"xmr-stak-cpu/1.0.0"}},"id":1}}"#
                ),
                Coin::Monero,
            ),
            (
                format!(r#"{{"id": 2, "method": "mining.authorize", "params": ["{BTC}", "x"]}}"#),
                Coin::Bitcoin,
            ),
            (
                format!(
                    r#"{{"worker": "eth1.0", "jsonrpc": "2.0", "params": ["{ETH}", "x"], "id": 2, "method": "eth_submitLogin"}}"#
                ),
                Coin::Ethereum,
            ),
        ];
        for (p, coin) in &seeds {
            let mut seen = 0;
            for cut in 0..=p.len() {
                let prefix = &p.as_bytes()[..cut];
                for m in inspect(prefix) {
                    seen += 1;
                    assert!(m.coin == *coin || m.coin == Coin::Unknown, "{cut}: {m:?}");
                    if let Some(l) = &m.login {
                        assert!(p.contains(&format!("\"{l}\"")), "{cut}: login cut");
                    }
                    if let Some(a) = &m.agent {
                        assert!(["xmrig", "xmr-stak"].contains(&a.family), "{cut}: {a:?}");
                        let v = a.version.as_deref();
                        assert!(matches!(v, None | Some("6.16.0" | "1.0.0")), "{cut}: {a:?}");
                    }
                }
            }
            assert!(seen > 0, "{p}");
        }
    }

    const FRAGMENTS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        " ",
        "\n",
        "\"method\"",
        "\"login\"",
        "\"params\"",
        "\"agent\"",
        "\"algo\"",
        "\"result\"",
        "\"job\"",
        "\"blob\"",
        "\"rx/0\"",
        "\"XMRig/6.1",
        "\"mining.subscribe\"",
        "\"EthereumStratum/1.0.0\"",
        "\"eth_submitLogin\"",
        "\"submit\"",
        "\"job_id\"",
        "\"nonce\"",
        "null",
        "true",
        "12",
        "-1.5e3",
        "\"\\u00e9\"",
        "\"é",
        "<html",
        "\"pass\"",
        "\"0x",
    ];

    proptest! {
        #[test]
        fn never_panics_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for m in inspect(&data) {
                if let Some(l) = &m.login {
                    let _ = login_hash(&[0; 32], l);
                }
            }
        }

        #[test]
        fn never_panics_on_json_ish(parts in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
                "[a-z0-9/._ ]{0,8}",
            ],
            0..80,
        )) {
            let _ = inspect(parts.concat().as_bytes());
        }

        #[test]
        fn xmrig_logins_classify(
            addr in "4[1-9A-HJ-NP-Za-km-z]{94}",
            (x, y, z) in (0u32..100, 0u32..100, 0u32..100),
            suffix in prop_oneof![Just(""), Just(".rig1"), Just("+100000")],
            algos in prop_oneof![Just(""), Just(r#","algo":["cn/r","rx/0","rx/wow"]"#)],
            spaced in any::<bool>(),
        ) {
            let version = format!("{x}.{y}.{z}");
            let mut p = format!(
                r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{addr}{suffix}","pass":"x","agent":"XMRig/{version} (Linux x86_64) libuv/1.42.0 gcc/5.4.0"{algos}}}}}"#
            );
            if spaced {
                p = p.replace("\":", "\": ").replace(",\"", ", \"");
            }
            p.push('\n');
            let msgs = inspect(p.as_bytes());
            prop_assert_eq!(msgs.len(), 1);
            let m = &msgs[0];
            prop_assert_eq!(m.coin, Coin::Monero);
            prop_assert_eq!(m.dialect, Dialect::Monero);
            prop_assert_eq!(m.agent.clone(), agent("xmrig", &version));
            prop_assert!(m.is_login);
            let login = format!("{addr}{suffix}");
            prop_assert_eq!(m.login.as_deref(), Some(login.as_str()));
            let shown = format!("{m:?}");
            prop_assert!(!shown.contains(&addr));
        }

        #[test]
        fn login_hash_properties(
            k1 in any::<[u8; 32]>(),
            k2 in any::<[u8; 32]>(),
            login in "[1-9A-HJ-NP-Za-km-z]{17,120}",
        ) {
            let h = login_hash(&k1, &login);
            prop_assert_eq!(&h, &login_hash(&k1, &login));
            prop_assert_eq!(h.len(), 16);
            prop_assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            prop_assert!(!h.contains(&login));
            if k1 != k2 {
                prop_assert_ne!(h, login_hash(&k2, &login));
            }
        }
    }
}
