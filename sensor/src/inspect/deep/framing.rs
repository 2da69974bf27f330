//! Framing: a payload split into the JSON messages it holds.
//!
//! A payload holds newline-separated JSON objects (several objects on one line are accepted too).
//! Complete messages are parsed with `serde_json`. A line that does not begin with `{` (the tail of a
//! message begun in an earlier segment, a banner) is skipped, as is a line that is not valid JSON.
//! The whole payload yields nothing when it looks like HTML (`<html`, `<script`, `<title`,
//! `<!doctype` anywhere in a payload that does not open with `{`, as Emerging Threats' rules
//! exclude them), an HTTP request or response (it
//! begins with `HTTP/` or a method such as `POST `), or a language server's framing (it begins with
//! `Content-Length:`): those quote JSON that no miner sent.

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
    if quotes_foreign_json(payload) {
        return;
    }
    let terminated = payload.last() == Some(&b'\n');
    let mut lines = payload.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let cut = !terminated && lines.peek().is_none();
        line_objects(line, cut, &mut f);
    }
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

fn line_objects(
    line: &[u8],
    may_be_cut: bool,
    f: &mut impl FnMut(Map<String, Value>, Option<&Cut>),
) {
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
            Ok(Value::Object(obj)) => f(obj, None),
            Ok(_) => {}
            Err(e) => {
                if may_be_cut && e.is_eof() {
                    let rest = line.get(stream.byte_offset()..).unwrap_or_default();
                    if let Some((obj, cut)) = repair(rest) {
                        f(obj, Some(&cut));
                    }
                }
                return;
            }
        }
    }
}
