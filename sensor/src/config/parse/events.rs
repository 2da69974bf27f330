//! The `[events]` section: where flow events go and the kernel's event ring size.

use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    error::{ConfigError, Source},
    types::{EventSink, Events},
    values::{bounded, power_of_two},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    sink: Option<Spanned<String>>,
    path: Option<std::path::PathBuf>,
    max_bytes: Option<Spanned<i64>>,
    keep: Option<Spanned<i64>>,
    ring_bytes: Option<Spanned<i64>>,
}

pub(super) fn events(src: &Source, raw: &Option<RawEvents>) -> Result<Events, ConfigError> {
    Ok(match raw {
        None => Events::default(),
        Some(e) => {
            let ring_bytes = bounded(
                src,
                "events.ring_bytes",
                &e.ring_bytes,
                Events::default().ring_bytes as i64,
                4096,
                1 << 30,
            )? as u32;
            power_of_two(src, "events.ring_bytes", &e.ring_bytes, ring_bytes as i64)?;
            let sink = match e.sink.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("stdout") => EventSink::Stdout,
                Some("none") => EventSink::None,
                Some("file") => {
                    let Some(path) = e.path.clone() else {
                        return Err(src.at(
                            e.sink.as_ref().expect("matched").span(),
                            "events.sink = \"file\" needs events.path".to_string(),
                        ));
                    };
                    EventSink::File {
                        path,
                        max_bytes: bounded(
                            src,
                            "events.max_bytes",
                            &e.max_bytes,
                            64 << 20,
                            4096,
                            i64::MAX,
                        )? as u64,
                        keep: bounded(src, "events.keep", &e.keep, 5, 0, 1000)? as u32,
                    }
                }
                Some(other) => {
                    return Err(src.at(
                        e.sink.as_ref().expect("matched").span(),
                        format!("events.sink = {other:?}: use \"stdout\", \"file\" or \"none\""),
                    ));
                }
            };
            Events { sink, ring_bytes }
        }
    })
}
