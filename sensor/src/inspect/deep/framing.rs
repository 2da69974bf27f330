//! Framing: a payload split into the JSON messages it holds.
//!
//! A payload holds newline-separated JSON objects (several objects on one line are accepted too),
//! each of which may itself run over several lines (pretty-printed JSON, which pools' parsers
//! accept and a miner hiding from signatures may send). A message begins with `{` as the first
//! non-blank byte of a line; from there `serde_json`'s stream deserializer reads it and any that
//! follow it, whatever their line breaks. A line that does not begin with `{` (the tail of a
//! message begun in an earlier segment, a banner) is skipped, and so is the rest of a line where
//! the JSON turns invalid (reading resumes at the next line).
//! A payload that opens an HTTP POST or an HTTP/1.x response whose body begins within the
//! kernel's window (`sensor_common::http`) is read from its body on: Ethereum's getwork over HTTP
//! carries its JSON-RPC there, one message a body.
//! The whole payload yields nothing when it looks like HTML (`<html`, `<script`, `<title`,
//! `<!doctype` anywhere in a payload that does not open with `{`, as Emerging Threats' rules
//! exclude them), any other HTTP message (it begins with `HTTP/` or a method such as `GET `: a
//! body not found in the window, a request without one), or a language server's framing (it
//! begins with `Content-Length:`): those quote JSON that no miner sent.

use serde_json::{Map, Value};

use super::{
    Message,
    classify::classify,
    repair::{Cut, repair},
    starts_with_ignore_case,
};

/// What one TCP payload (possibly several newline-separated JSON messages, possibly a truncated
/// last one) says. Messages that are not Stratum yield nothing.
pub fn inspect(payload: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    each_object(payload, |obj, cut| out.extend(classify(&obj, cut)));
    out
}

/// In one pass over a payload: what [`inspect`] returns, and its complete JSON objects (the same
/// traps yield none; a truncated last message is left out), for readers that need every field of
/// a message, whatever it is (the pool's replies, which name no method).
pub fn read(payload: &[u8]) -> (Vec<Message>, Vec<Map<String, Value>>) {
    let (mut messages, mut objects) = (Vec::new(), Vec::new());
    each_object(payload, |obj, cut| {
        messages.extend(classify(&obj, cut));
        if cut.is_none() {
            objects.push(obj);
        }
    });
    (messages, objects)
}

/// Calls `f` with each JSON object of `payload`, and with its [`Cut`] if it is a repaired
/// truncated last message.
fn each_object(payload: &[u8], mut f: impl FnMut(Map<String, Value>, Option<&Cut>)) {
    // Mining JSON-RPC in the body of an HTTP POST or response (getwork over HTTP): the body is
    // read as the payload, found as the kernel finds it.
    let payload = sensor_common::http::body(payload).unwrap_or(payload);
    if quotes_foreign_json(payload) {
        return;
    }
    let mut at = 0;
    while at < payload.len() {
        let rest = payload.get(at..).unwrap_or_default();
        let line_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(payload.len(), |i| at + i + 1);
        let first = rest
            .iter()
            .take(line_end - at)
            .position(|b| !b.is_ascii_whitespace());
        at = match first {
            Some(i) if rest.get(i) == Some(&b'{') => messages_from(payload, at + i, &mut f),
            _ => line_end,
        };
    }
}

/// Reads the messages from `start` (a `{`) on, over line breaks, until the payload's end or
/// invalid JSON; returns where to go on: the payload's end, or the line after the one where the
/// JSON turned invalid.
fn messages_from(
    payload: &[u8],
    start: usize,
    f: &mut impl FnMut(Map<String, Value>, Option<&Cut>),
) -> usize {
    let from = payload.get(start..).unwrap_or_default();
    let mut stream = serde_json::Deserializer::from_slice(from).into_iter::<Value>();
    while let Some(item) = stream.next() {
        match item {
            Ok(Value::Object(obj)) => f(obj, None),
            Ok(_) => {}
            Err(e) => {
                let failed = from.get(stream.byte_offset()..).unwrap_or_default();
                if e.is_eof() && may_be_cut(payload, failed) {
                    if let Some((obj, cut)) = repair(trim_start(failed)) {
                        f(obj, Some(&cut));
                    }
                    return payload.len();
                }
                return start + after_line(from, e.line());
            }
        }
    }
    payload.len()
}

/// A message that runs to the payload's end is a cut one (see `repair`) when the payload ends
/// inside a line, or when it began on an earlier line (pretty-printed, cut after a line end). A
/// one-line message whose line ended is invalid, not cut.
fn may_be_cut(payload: &[u8], failed: &[u8]) -> bool {
    payload.last() != Some(&b'\n') || trim_start(failed).trim_ascii_end().contains(&b'\n')
}

fn trim_start(b: &[u8]) -> &[u8] {
    let i = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    b.get(i..).unwrap_or_default()
}

/// The offset in `from` of the line after its 1-based line `line`.
fn after_line(from: &[u8], line: usize) -> usize {
    from.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(line.saturating_sub(1))
        .map_or(from.len(), |(i, _)| i + 1)
}

/// Where the message left open at the payload's end begins, if one is: the last `{` that opens
/// a message (the first non-blank byte of its line, or right after a message that closed) whose
/// braces are still open, or whose string is, at the end. Strings and escapes are followed, so
/// braces inside them do not count; a raw line end inside a string ends the message (JSON has
/// none there). One pass over the bytes, for the joining of segments (`inspect::stream`), which
/// keeps that message for the next segment.
pub fn open_message(payload: &[u8]) -> Option<usize> {
    let (mut start, mut depth) = (None, 0usize);
    let (mut in_str, mut escaped) = (false, false);
    // Outside a message: whether a `{` here may open one.
    let mut may_open = true;
    for (i, &b) in payload.iter().enumerate() {
        if depth == 0 {
            match b {
                b'{' if may_open => {
                    start = Some(i);
                    depth = 1;
                }
                b'\n' => may_open = true,
                _ if b.is_ascii_whitespace() => {}
                _ => may_open = false,
            }
            continue;
        }
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                b'\n' => (depth, in_str, may_open) = (0, false, true),
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                // Another message may follow on the same line.
                may_open = true;
            }
            _ => {}
        }
    }
    if depth > 0 { start } else { None }
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
    // Markup is a page's only where the payload is not JSON itself: a message's strings may hold
    // HTML-looking text (an agent string `XMRig <script>...`, sent to dodge signatures).
    STARTS.iter().any(|s| starts_with_ignore_case(start, s))
        || (start.first() != Some(&b'{') && MARKUP.iter().any(|m| contains_ignore_case(payload, m)))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
