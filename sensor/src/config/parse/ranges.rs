//! The `[[ranges]]` tables: the watched ranges, their names and prefixes, and the prefix budget.

use std::collections::HashMap;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use sensor_common::MAX_RANGES;

use super::MAX_PREFIXES_LIMIT;
use crate::config::{
    error::{ConfigError, Source},
    types::{Range, UNWATCHED},
    values::{label_name, parse_prefix},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    name: Spanned<String>,
    cidrs: Vec<Spanned<String>>,
}

/// The ranges in file order; host bits and empty ranges add to `warnings`.
pub(super) fn ranges(
    src: &Source,
    raw: &[RawRange],
    max_prefixes: u32,
    warnings: &mut Vec<String>,
) -> Result<Vec<Range>, ConfigError> {
    let file = src.file;
    if raw.len() > MAX_RANGES {
        return Err(ConfigError {
            file: file.to_string(),
            line: Some(src.line(raw[MAX_RANGES].name.span().start)),
            message: format!(
                "{} ranges configured; the sensor holds at most {MAX_RANGES}: merge ranges or run a second sensor",
                raw.len()
            ),
        });
    }
    let mut ranges = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut v4, mut v6) = (0u64, 0u64);
    for r in raw {
        let name = r.name.get_ref();
        let line = src.line(r.name.span().start);
        label_name(
            name,
            seen.get(name).copied(),
            ("ranges", "range"),
            (UNWATCHED, "traffic outside every range"),
        )
        .map_err(|why| src.at(r.name.span(), why))?;
        seen.insert(name.clone(), line);
        let mut cidrs = Vec::new();
        for c in &r.cidrs {
            let net = parse_prefix(c.get_ref()).map_err(|why| {
                src.at(
                    c.span(),
                    format!("ranges.{name}.cidrs: {:?} {why}", c.get_ref()),
                )
            })?;
            let normal = net.trunc();
            if normal != net {
                warnings.push(format!(
                    "{file}:{}: ranges.{name}.cidrs: {net} has host bits set; watching {normal}",
                    src.line(c.span().start)
                ));
            }
            match normal {
                IpNet::V4(_) => v4 += 1,
                IpNet::V6(_) => v6 += 1,
            }
            cidrs.push(normal);
        }
        if cidrs.is_empty() {
            warnings.push(format!(
                "{file}:{line}: ranges.{name} has no cidrs; it will count nothing"
            ));
        }
        ranges.push(Range {
            name: name.clone(),
            cidrs,
        });
    }
    for (family, n) in [("IPv4", v4), ("IPv6", v6)] {
        if n > max_prefixes as u64 {
            return Err(ConfigError {
                file: file.to_string(),
                line: None,
                message: format!(
                    "{n} {family} prefixes configured, more than max_prefixes = {max_prefixes}; raise max_prefixes (up to {MAX_PREFIXES_LIMIT}) or aggregate prefixes"
                ),
            });
        }
    }
    if ranges.is_empty() {
        warnings.push(format!(
            "{file}: no [[ranges]]: only Stratum traffic will be counted (as range \"unwatched\")"
        ));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use sensor_common::MAX_RANGES;

    use crate::config::{Config, tests::err};

    #[test]
    fn bad_prefix_length_names_line_field_and_value() {
        let e = err(
            "[[ranges]]\nname = \"kp\"\ncidrs = [\n  \"175.45.176.0/22\",\n  \"1.2.3.4/33\",\n]\n",
        );
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("ranges.kp.cidrs"), "{e}");
        assert!(e.message.contains("1.2.3.4/33"), "{e}");
        assert!(e.message.contains("0 to 32"), "{e}");
        assert!(e.to_string().starts_with("t.toml:5: "));
    }

    #[test]
    fn host_bits_are_normalised_with_a_warning() {
        let c = Config::parse(
            "[[ranges]]\nname = \"x\"\ncidrs = [\"10.1.2.3/8\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.ranges[0].cidrs[0].to_string(), "10.0.0.0/8");
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("t.toml:3"), "{:?}", c.warnings);
    }

    #[test]
    fn too_many_ranges_and_prefixes() {
        let mut t = String::new();
        for i in 0..=MAX_RANGES {
            t += &format!("[[ranges]]\nname = \"r{i}\"\ncidrs = []\n");
        }
        let e = err(&t);
        assert!(e.message.contains("at most 63"), "{e}");

        let e = err(
            "max_prefixes = 1\n[[ranges]]\nname = \"a\"\ncidrs = [\"1.0.0.0/8\", \"2.0.0.0/8\"]\n",
        );
        assert!(e.message.contains("raise max_prefixes"), "{e}");
    }
}
