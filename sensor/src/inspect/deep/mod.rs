//! Deep Stratum inspection: what one TCP payload says about the miner behind it.
//!
//! The kernel's scanner (`sensor_common::stratum`) only decides *whether* a segment is Stratum and in
//! which dialect. This module parses the JSON of a payload it is handed and names the miner
//! software ([`Agent`]), the coin ([`Coin`]) and whether the message logs a miner in, so that
//! `mining_sensor_miner_logins_total{coin, agent}` can be counted. The login itself (a wallet, a user
//! name) is never a label: it only feeds [`login_hash`], a keyed hash for counting distinct miners.
//!
//! The files, in the order a payload meets them:
//! - `framing`: the payload split into JSON messages (also for `activity`, which reads the pool's
//!   replies), and the payloads that quote JSON no miner sent;
//! - `repair`: the truncated last message rebuilt from its valid prefix;
//! - `classify`: what a message is (its [`Dialect`]) and what it says (login, agent, `is_login`);
//! - `agent`: an agent string's family and version;
//! - `coin`: the coin, from addresses and algorithm names;
//! - `hash`: the keyed hash of a login.
//!
//! Nothing here panics, whatever the bytes: no indexing, no `unwrap` on input, slices only at ASCII
//! positions via `get`.

mod agent;
mod classify;
mod coin;
mod framing;
mod hash;
mod repair;
#[cfg(test)]
mod tests;

use std::fmt;

pub use sensor_common::stratum::Dialect;

pub use self::{
    agent::{Agent, XMRIG},
    classify::canonical_method,
    coin::{Coin, is_scrypt},
    framing::{inspect, open_message, read},
    hash::login_hash,
};

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

/// Whether `hay` begins with `prefix`, ASCII case ignored (framing, classification and agents use it).
fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}
