//! The `[inspect]` section: deep inspection's packet path, budget and ring sizes.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    error::{ConfigError, Source},
    types::{CaptureMode, Inspect, ZeroCopyChoice},
    values::{bounded, duration, power_of_two},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInspect {
    capture_mode: Option<CaptureMode>,
    budget: Option<Spanned<i64>>,
    sample_ring_bytes: Option<Spanned<i64>>,
    frames: Option<Spanned<i64>>,
    ring_size: Option<Spanned<i64>>,
    zero_copy: Option<ZeroCopyChoice>,
    login_key_file: Option<std::path::PathBuf>,
    distinct_window: Option<Spanned<String>>,
}

pub(super) fn inspect(src: &Source, raw: &Option<RawInspect>) -> Result<Inspect, ConfigError> {
    let mut inspect = Inspect::default();
    if let Some(i) = raw {
        if let Some(m) = i.capture_mode {
            inspect.capture_mode = m;
        }
        // The kernel keeps the per-flow count in one byte.
        inspect.budget = bounded(
            src,
            "inspect.budget",
            &i.budget,
            inspect.budget as i64,
            0,
            255,
        )? as u32;
        let ring = bounded(
            src,
            "inspect.sample_ring_bytes",
            &i.sample_ring_bytes,
            inspect.sample_ring_bytes as i64,
            1 << 16,
            1 << 30,
        )?;
        power_of_two(src, "inspect.sample_ring_bytes", &i.sample_ring_bytes, ring)?;
        inspect.sample_ring_bytes = ring as u32;
        inspect.frames = bounded(
            src,
            "inspect.frames",
            &i.frames,
            inspect.frames as i64,
            64,
            1 << 20,
        )? as u32;
        let ring = bounded(
            src,
            "inspect.ring_size",
            &i.ring_size,
            inspect.ring_size as i64,
            64,
            1 << 16,
        )?;
        power_of_two(src, "inspect.ring_size", &i.ring_size, ring)?;
        inspect.ring_size = ring as u32;
        if inspect.ring_size > inspect.frames {
            let span = i.ring_size.as_ref().map(|r| r.span()).unwrap_or(0..0);
            return Err(src.at(
                span,
                format!(
                    "inspect.ring_size = {} is larger than inspect.frames = {}: the fill ring could never be filled; raise frames or lower ring_size",
                    inspect.ring_size, inspect.frames
                ),
            ));
        }
        if let Some(z) = i.zero_copy {
            inspect.zero_copy = z;
        }
        inspect.login_key_file = i.login_key_file.clone();
        inspect.distinct_window = duration(
            src,
            "inspect.distinct_window",
            &i.distinct_window,
            inspect.distinct_window,
            Duration::from_secs(60),
            Duration::from_secs(30 * 24 * 3600),
        )?;
    }
    Ok(inspect)
}

#[cfg(test)]
mod tests {
    use crate::config::{CaptureMode, Config, tests::err};

    #[test]
    fn inspect_section_is_checked() {
        let c = Config::parse("[inspect]\ncapture_mode = \"tap\"\nbudget = 0\n", "t").unwrap();
        assert_eq!(
            (c.inspect.capture_mode, c.inspect.budget),
            (CaptureMode::Tap, 0)
        );
        let e = err("[inspect]\nbudget = 300\n");
        assert!(
            e.message.contains("inspect.budget = 300") && e.message.contains("0 to 255"),
            "{e}"
        );
        let e = err("[inspect]\nring_size = 1000\n");
        assert!(e.message.contains("power of two"), "{e}");
        let e = err("[events]\nring_bytes = 5000\n");
        assert!(
            e.message
                .contains("events.ring_bytes = 5000 must be a power of two (e.g. 8192)"),
            "{e}"
        );
        let e = err("[inspect]\nframes = 128\nring_size = 256\n");
        assert!(e.message.contains("larger than inspect.frames"), "{e}");
        let e = err("[inspect]\ncapture_mode = \"mirror\"\n");
        assert!(
            e.message.contains("tap") && e.message.contains("inline"),
            "{e}"
        );
    }
}
