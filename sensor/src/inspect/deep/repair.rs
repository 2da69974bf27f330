//! Repairing a truncated last message.
//!
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

use serde_json::{Map, Value};

/// Deepest nesting a repaired truncated message may have; Stratum messages nest three levels.
const MAX_REPAIR_DEPTH: usize = 32;

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// What was lost when a message was cut: the string value it ended in, if any, and where it was.
#[derive(Debug, Default)]
pub(super) struct Cut {
    dangling: Option<(Vec<Seg>, String)>,
}

impl Cut {
    /// The cut-off string at `path`, if the message ended inside it.
    pub(super) fn dangling_at(&self, path: &[Seg]) -> Option<&str> {
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
pub(super) fn repair(text: &[u8]) -> Option<(Map<String, Value>, Cut)> {
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
