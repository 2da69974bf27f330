//! What a Stratum message says about work: the shares a miner submits, the jobs and difficulties
//! a pool sets, the pool's verdicts, and the rate a miner reports of itself.
//!
//! Read from one complete JSON object (`inspect::deep::read` frames a payload), whatever its
//! dialect; a message that says none of these yields nothing:
//! - Monero: `submit` (`params.job_id`, `params.nonce`); a `job` push (`params.job_id`,
//!   `params.target`) and a login reply's `result.job`: a job at the target's difficulty; a reply
//!   with `result.status` `"OK"` accepts, one with an `error` rejects.
//! - Stratum V1 and EthereumStratum: `mining.submit` (`params[1]` the job, the rest its nonce
//!   parts); `mining.set_difficulty [D]` (D x 2^32 hashes a share); `mining.set_target [T]`
//!   (2^256 / T); `mining.notify` (`params[0]` the job, at the difficulty in force); a reply
//!   `result: true` accepts, `false` or an `error` rejects.
//! - ethproxy: `eth_submitWork` (`params[1]` the header, which names the work); an `eth_getWork`
//!   answer or pushed work `result: [header, seed, boundary]`: a job at 2^256 / boundary;
//!   `eth_submitHashrate` (`params[0]`, hex hashes per second): the miner's own rate.
//! - EthereumStratum/2.0.0: `mining.set` (`params.target`, hex: 2^256 / T, for the jobs that
//!   follow); `mining.hashrate` (`params[0]`, hex with or without `0x`): the miner's own rate;
//!   its `mining.notify` and `mining.submit` are read as above.
//!
//! Request ids are compared as the JSON wrote them (a number's digits, a string's text), so a
//! reply is matched to its request whichever the miner used.

use serde_json::{Map, Value};

use crate::inspect::deep::canonical_method;

use super::{
    difficulty::{bytes, monero_target, sha256d_difficulty, target_256},
    ledger::Submit,
    proof::{MAX_EXTRANONCE, Template},
};

/// One fact about work.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Submit(Submit),
    /// A job, at its own difficulty (hashes per share) or, `None`, at the one in force.
    Job {
        job: String,
        hashes: Option<f64>,
    },
    /// A difficulty, in hashes per share, for the jobs that follow.
    Difficulty(f64),
    /// The pool's verdict on request `id`.
    Reply {
        id: String,
        accepted: bool,
    },
    /// The miner's own rate, in hashes per second.
    ReportedRate(f64),
    /// A Stratum V1 pool's `extranonce1` (its subscribe reply, `mining.set_extranonce`): the
    /// coinbase bytes it gives the flow, for `proof`.
    Extranonce(Vec<u8>),
    /// What a Stratum V1 job gives of its block header, for `proof`.
    Template {
        job: String,
        template: Template,
    },
}

/// The signals of one message.
pub fn signals(obj: &Map<String, Value>) -> Vec<Signal> {
    let mut out = Vec::new();
    match obj.get("method") {
        Some(Value::String(method)) => request(obj, &canonical_method(method), &mut out),
        Some(_) => {}
        None => reply(obj, &mut out),
    }
    out
}

fn request(obj: &Map<String, Value>, method: &str, out: &mut Vec<Signal>) {
    let params = obj.get("params");
    let list = params.and_then(Value::as_array);
    let item = |i: usize| list.and_then(|p| p.get(i));
    let id = id_of(obj).unwrap_or_default();
    match method {
        "submit" => {
            let p = params.and_then(Value::as_object);
            let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
            if let Some(nonce) = field("nonce") {
                out.push(Signal::Submit(Submit {
                    id,
                    job: field("job_id").map(str::to_owned),
                    nonce: nonce.to_owned(),
                }));
            }
        }
        "job" => out.extend(params.and_then(Value::as_object).and_then(monero_job)),
        "mining.submit" => {
            let Some(parts) = list.filter(|p| p.len() >= 3) else {
                return;
            };
            let nonce: Vec<String> = parts.iter().skip(2).map(text).collect();
            out.push(Signal::Submit(Submit {
                id,
                job: item(1).map(text),
                nonce: nonce.join(","),
            }));
        }
        "mining.set_difficulty" => {
            if let Some(hashes) = item(0).and_then(Value::as_f64).and_then(sha256d_difficulty) {
                out.push(Signal::Difficulty(hashes));
            }
        }
        "mining.set_target" => {
            if let Some(hashes) = item(0).and_then(Value::as_str).and_then(target_256) {
                out.push(Signal::Difficulty(hashes));
            }
        }
        "mining.notify" => {
            if let Some(job) = item(0).and_then(Value::as_str) {
                out.push(Signal::Job {
                    job: job.to_owned(),
                    hashes: None,
                });
            }
            if let Some((job, template)) = list.and_then(|p| Template::of_notify(p)) {
                out.push(Signal::Template { job, template });
            }
        }
        "mining.set_extranonce" => {
            out.extend(item(0).and_then(Value::as_str).and_then(extranonce));
        }
        "eth_submitWork" => {
            if let (Some(nonce), Some(header)) = (
                item(0).and_then(Value::as_str),
                item(1).and_then(Value::as_str),
            ) {
                out.push(Signal::Submit(Submit {
                    id,
                    job: Some(header.to_owned()),
                    nonce: nonce.to_owned(),
                }));
            }
        }
        "eth_submitHashrate" => {
            if let Some(rate) = item(0)
                .and_then(Value::as_str)
                .and_then(|h| hex_rate(h, true))
            {
                out.push(Signal::ReportedRate(rate));
            }
        }
        // EthereumStratum/2.0.0 (ethminer's `stratum3+tcp`, its forks): the session's
        // parameters, among them the share target (hex, no `0x`, left-padded to 64 digits by the
        // miner), for the jobs that follow.
        "mining.set" => {
            let target = params
                .and_then(|p| p.get("target"))
                .and_then(Value::as_str)
                .and_then(target_256);
            if let Some(hashes) = target {
                out.push(Signal::Difficulty(hashes));
            }
        }
        // Its rate report: compact hex without `0x` (`"500000"`), or with it. A number is
        // ignored: clients that send one do not say in which unit.
        "mining.hashrate" => {
            if let Some(rate) = item(0)
                .and_then(Value::as_str)
                .and_then(|h| hex_rate(h, false))
            {
                out.push(Signal::ReportedRate(rate));
            }
        }
        _ => {}
    }
}

/// A miner's rate report in hex, hashes a second: `0x` and at most 32 hex digits (`0x` optional
/// unless `prefixed`); `None` for anything else (no sign, no blank).
fn hex_rate(h: &str, prefixed: bool) -> Option<f64> {
    let digits = match h.strip_prefix("0x") {
        Some(d) => d,
        None if prefixed => return None,
        None => h,
    };
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(digits, 16).ok().map(|r| r as f64)
}

fn reply(obj: &Map<String, Value>, out: &mut Vec<Signal>) {
    let result = obj.get("result");
    let error = obj.get("error").is_some_and(|e| !e.is_null());
    match result {
        // A login reply brings the first job.
        Some(Value::Object(r)) => {
            out.extend(r.get("job").and_then(Value::as_object).and_then(monero_job));
        }
        // A Stratum V1 subscribe reply: subscriptions, extranonce1, extranonce2's size.
        Some(Value::Array(r))
            if r.len() == 3
                && r[2].as_u64().is_some_and(|n| (1..=16).contains(&n))
                && let Some(en1) = r[1].as_str().and_then(extranonce) =>
        {
            out.push(en1);
        }
        // ethproxy work: header, seed, boundary.
        Some(Value::Array(work)) => {
            let hex = |i: usize| work.get(i).and_then(Value::as_str);
            if let (Some(header), Some(_), Some(boundary)) = (hex(0), hex(1), hex(2))
                && header.starts_with("0x")
                && let Some(hashes) = target_256(boundary)
            {
                out.push(Signal::Job {
                    job: header.to_owned(),
                    hashes: Some(hashes),
                });
            }
        }
        _ => {}
    }
    let Some(id) = id_of(obj) else {
        return;
    };
    let accepted = match result {
        _ if error => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(r)) => match r.get("status").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("OK") => true,
            _ => return,
        },
        _ => return,
    };
    out.push(Signal::Reply { id, accepted });
}

/// A Monero job object: `job_id` and its `target`'s difficulty.
fn monero_job(job: &Map<String, Value>) -> Option<Signal> {
    let id = job.get("job_id")?.as_str()?;
    let hashes = job
        .get("target")
        .and_then(Value::as_str)
        .and_then(monero_target)
        .map(|d| d as f64);
    Some(Signal::Job {
        job: id.to_owned(),
        hashes,
    })
}

/// An `extranonce1`: hex of 1 to `MAX_EXTRANONCE` bytes.
fn extranonce(s: &str) -> Option<Signal> {
    bytes(s)
        .filter(|b| (1..=MAX_EXTRANONCE).contains(&b.len()))
        .map(Signal::Extranonce)
}

/// A request id as the JSON wrote it; `None` for `null` or none.
fn id_of(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("id")? {
        Value::Null => None,
        v => Some(text(v)),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(json: &str) -> Vec<Signal> {
        match serde_json::from_str::<Value>(json).unwrap() {
            Value::Object(o) => signals(&o),
            _ => panic!("not an object: {json}"),
        }
    }

    fn submit(id: &str, job: &str, nonce: &str) -> Signal {
        Signal::Submit(Submit {
            id: id.to_owned(),
            job: Some(job.to_owned()),
            nonce: nonce.to_owned(),
        })
    }

    #[test]
    fn monero_messages() {
        // XMRig's submit.
        assert_eq!(
            of(
                r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"7d","job_id":"1","nonce":"b8000000","result":"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789","algo":"rx/0"}}"#
            ),
            [submit("2", "1", "b8000000")]
        );
        // A job push at target b88d0600: 10,000 hashes a share.
        assert_eq!(
            of(
                r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","job_id":"44","target":"b88d0600","algo":"rx/0","height":1000000}}"#
            ),
            [Signal::Job {
                job: "44".into(),
                hashes: Some(10_000.0)
            }]
        );
        // The login reply: its job, and the verdict on request 1 (no share; the ledger ignores it).
        assert_eq!(
            of(
                r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"a1","job":{"blob":"0e0e","job_id":"43","target":"e4a6030000000000"},"status":"OK"}}"#
            ),
            [
                Signal::Job {
                    job: "43".into(),
                    hashes: Some(77_075_961_733_949.0)
                },
                Signal::Reply {
                    id: "1".into(),
                    accepted: true
                }
            ]
        );
        assert_eq!(
            of(r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#),
            [Signal::Reply {
                id: "2".into(),
                accepted: true
            }]
        );
        assert_eq!(
            of(r#"{"id":3,"jsonrpc":"2.0","error":{"code":-1,"message":"Low difficulty share"}}"#),
            [Signal::Reply {
                id: "3".into(),
                accepted: false
            }]
        );
        // A keepalive answer is no verdict on a share.
        assert_eq!(
            of(r#"{"id":4,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}"#),
            []
        );
    }

    #[test]
    fn stratum_v1_messages() {
        assert_eq!(
            of(
                r#"{"params":["worker1","bf","00000001","504e86ed","b2957c02"],"id":4,"method":"mining.submit"}"#
            ),
            [submit("4", "bf", "00000001,504e86ed,b2957c02")]
        );
        // 2 x 2^32 = 8,589,934,592.
        assert_eq!(
            of(r#"{"id":null,"method":"mining.set_difficulty","params":[2]}"#),
            [Signal::Difficulty(8_589_934_592.0)]
        );
        // Bitcoin's difficulty-1 target: 4,295,032,833 hashes (see difficulty.rs).
        assert_eq!(
            of(
                r#"{"id":null,"method":"mining.set_target","params":["00000000ffff0000000000000000000000000000000000000000000000000000"]}"#
            ),
            [Signal::Difficulty(4_295_032_833.0)]
        );
        assert_eq!(
            of(
                r#"{"params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000","0000","00000000",[],"00000002","1c2ac4af","504e86b9",false],"id":null,"method":"mining.notify"}"#
            ),
            [Signal::Job {
                job: "bf".into(),
                hashes: None
            }]
        );
        assert_eq!(
            of(r#"{"id":4,"result":true,"error":null}"#),
            [Signal::Reply {
                id: "4".into(),
                accepted: true
            }]
        );
        assert_eq!(
            of(r#"{"id":5,"result":null,"error":[23,"Low difficulty share",null]}"#),
            [Signal::Reply {
                id: "5".into(),
                accepted: false
            }]
        );
        assert_eq!(
            of(r#"{"id":"6","result":false,"error":null}"#),
            [Signal::Reply {
                id: "6".into(),
                accepted: false
            }]
        );
        // The subscribe reply is no verdict; it gives the flow's extranonce1.
        assert_eq!(
            of(
                r#"{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"08000002",4],"error":null}"#
            ),
            [Signal::Extranonce(vec![8, 0, 0, 2])]
        );
        assert_eq!(
            of(r#"{"id":null,"method":"mining.set_extranonce","params":["a1b2",4]}"#),
            [Signal::Extranonce(vec![0xa1, 0xb2])]
        );
        // Neither is an extranonce of odd digits or an extranonce2 size of 0.
        assert_eq!(
            of(r#"{"id":1,"result":[null,"080000021",4],"error":null}"#),
            []
        );
        assert_eq!(
            of(r#"{"id":1,"result":[null,"08000002",0],"error":null}"#),
            []
        );
        // EthereumStratum/2.0.0, as ethminer's EthStratumClient documents its messages: the
        // session's target (58 digits, left-padded to 64) is 2^256 / T = 4,000,000,000 hashes
        // a share (floor, by hand); its rate report, 0x500000 = 5,242,880 hashes a second.
        assert_eq!(
            of(
                r#"{"method":"mining.set","params":{"epoch":"dc","target":"0112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba","algo":"ethash","extranonce":"af4c"}}"#
            ),
            [Signal::Difficulty(4_000_000_000.0)]
        );
        assert_eq!(
            of(r#"{"id":9,"method":"mining.hashrate","params":["500000","w-123"]}"#),
            [Signal::ReportedRate(5_242_880.0)]
        );
        // A number says no unit; a `mining.set` without a target sets none.
        assert_eq!(
            of(r#"{"id":9,"method":"mining.hashrate","params":[5.2,"w-123"]}"#),
            []
        );
        assert_eq!(
            of(r#"{"method":"mining.set","params":{"epoch":"dc","algo":"ethash"}}"#),
            []
        );
        // A job in Stratum V1's nine parameters gives its header's template too.
        let notify = r#"{"id":null,"method":"mining.notify","params":["j1","0000000000000000000000000000000000000000000000000000000000000001","01","02",[],"20000000","1d00ffff","495fab29",true]}"#;
        let signals = of(notify);
        assert_eq!(
            signals[0],
            Signal::Job {
                job: "j1".into(),
                hashes: None
            }
        );
        assert!(matches!(&signals[1], Signal::Template { job, .. } if job == "j1"));
        assert_eq!(signals.len(), 2);
    }

    #[test]
    fn ethproxy_messages() {
        // A pool at 4 GH a share: 2^256 / boundary = 4,000,000,000 (see difficulty.rs).
        let header = "0x1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
        let work = format!(
            r#"{{"id":0,"jsonrpc":"2.0","result":["{header}","0x5eed00000000000000000000000000000000000000000000000000000000cafe","0x0000000112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba"]}}"#
        );
        assert_eq!(
            of(&work),
            [Signal::Job {
                job: header.into(),
                hashes: Some(4_000_000_000.0)
            }]
        );
        assert_eq!(
            of(&format!(
                r#"{{"id":4,"jsonrpc":"2.0","method":"eth_submitWork","params":["0x9c9d19da2b8ffa04","{header}","0x0ab1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"]}}"#
            )),
            [submit("4", header, "0x9c9d19da2b8ffa04")]
        );
        // 0x500000 = 5,242,880 hashes a second.
        assert_eq!(
            of(
                r#"{"id":6,"jsonrpc":"2.0","method":"eth_submitHashrate","params":["0x500000","0x59daa26581d0acd1fce254fb7e85952f4c09d0915afd33d3886cd914bc7d283c"]}"#
            ),
            [Signal::ReportedRate(5_242_880.0)]
        );
        // ethproxy's rate has its `0x`; EthereumStratum/2.0.0's may; neither a sign nor more
        // digits than 128 bits hold.
        for (method, rate, read) in [
            ("eth_submitHashrate", "500000", None),
            ("eth_submitHashrate", "0x+500000", None),
            ("mining.hashrate", "0x500000", Some(5_242_880.0)),
            ("mining.hashrate", "+500000", None),
            ("mining.hashrate", &"f".repeat(33), None),
        ] {
            let msg = format!(r#"{{"id":6,"method":"{method}","params":["{rate}","w"]}}"#);
            let want: Vec<Signal> = read.map(Signal::ReportedRate).into_iter().collect();
            assert_eq!(of(&msg), want, "{msg}");
        }
        assert_eq!(
            of(r#"{"id":4,"jsonrpc":"2.0","result":true}"#),
            [Signal::Reply {
                id: "4".into(),
                accepted: true
            }]
        );
    }

    /// Method names in other letter cases count as the usual ones (see `canonical_method`).
    #[test]
    fn shares_under_method_names_in_other_cases() {
        assert_eq!(
            of(
                r#"{"id":2,"jsonrpc":"2.0","method":"SUBMIT","params":{"id":"7d","job_id":"1","nonce":"b8000000","result":"ab"}}"#
            ),
            [submit("2", "1", "b8000000")]
        );
        assert_eq!(
            of(
                r#"{"params":["worker1","bf","00000001","504e86ed","b2957c02"],"id":4,"method":"Mining.Submit"}"#
            ),
            [submit("4", "bf", "00000001,504e86ed,b2957c02")]
        );
    }

    #[test]
    fn messages_that_say_nothing_of_work() {
        for json in [
            r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"x","pass":"x","agent":"XMRig/6.21.0"}}"#,
            r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#,
            r#"{"id":2,"method":"mining.authorize","params":["worker1","x"]}"#,
            r#"{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"a1"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
            r#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#,
            r#"{"id":null,"method":"mining.set_difficulty","params":["2"]}"#,
            r#"{"id":7,"jsonrpc":"2.0","method":"submit","params":{"job_id":"1"}}"#,
            r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","target":"b88d0600"}}"#,
            r#"{"id":9,"result":{"height":3}}"#,
            r#"{"result":true}"#,
        ] {
            assert_eq!(of(json), [], "{json}");
        }
    }
}
