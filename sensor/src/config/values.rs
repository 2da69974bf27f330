//! Value helpers shared by the sections: durations and numbers within bounds, powers of two,
//! prefixes and pool domains. Each refuses with a message naming the field, the value and what
//! would be valid.

use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::error::{ConfigError, Source};

/// A duration like `"5s"` within `min..=max`; `default` when the key is absent.
pub(super) fn duration(
    src: &Source,
    field: &str,
    value: &Option<Spanned<String>>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let d = humantime::parse_duration(v.get_ref()).map_err(|e| {
        src.at(
            v.span(),
            format!(
                "{field} = {:?} is not a duration ({e}); write e.g. \"5s\", \"500ms\", \"10m\"",
                v.get_ref()
            ),
        )
    })?;
    if d < min || d > max {
        return Err(src.at(
            v.span(),
            format!(
                "{field} = {:?} is out of range; use a value from {} to {}",
                v.get_ref(),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// A number within `min..=max`; `default` when the key is absent.
pub(super) fn bounded(
    src: &Source,
    field: &str,
    v: &Option<Spanned<i64>>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(src.at(
            v.span(),
            format!("{field} = {n} is out of range; use a number from {min} to {max}"),
        ));
    }
    Ok(n)
}

/// Ring sizes: a value [`bounded`] already accepted, which must also be a power of two.
pub(super) fn power_of_two(
    src: &Source,
    field: &str,
    v: &Option<Spanned<i64>>,
    n: i64,
) -> Result<(), ConfigError> {
    if (n as u64).is_power_of_two() {
        return Ok(());
    }
    let span = v.as_ref().map(|r| r.span()).unwrap_or(0..0);
    Err(src.at(
        span,
        format!(
            "{field} = {n} must be a power of two (e.g. {})",
            (n as u64).next_power_of_two()
        ),
    ))
}

/// A name that becomes a label value (a range's, a neighbour's): not given before (`first`: the
/// line of an earlier one), of the label's characters, and not the name kept for the rest
/// (`reserved`, kept for `why`). `section` and `noun` name it in the message
/// (`ranges`/`range`, `peers`/`neighbour`).
pub(super) fn label_name(
    name: &str,
    first: Option<usize>,
    (section, noun): (&str, &str),
    (reserved, why): (&str, &str),
) -> Result<(), String> {
    if let Some(first) = first {
        return Err(format!(
            "{section}: the name {name:?} is already used on line {first}; give each {noun} its own name"
        ));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "{section}: name {name:?} is not a valid {noun} name: use 1 to 64 of a-z, A-Z, 0-9, '_', '-', '.'"
        ));
    }
    if name == reserved {
        return Err(format!(
            "{section}: the name {reserved:?} is reserved for {why}; choose another"
        ));
    }
    Ok(())
}

/// A pool domain as the kernel matches it: lower case, without a trailing dot, labels of letters,
/// digits, `-` and `_`.
pub(super) fn pool_domain(s: &str) -> Result<String, String> {
    let name = s.trim_end_matches('.').to_ascii_lowercase();
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "is not a domain name: {bad:?} is not allowed (write e.g. \"supportxmr.com\"; a domain matches every name under it, so no wildcards)"
        ));
    }
    if sensor_common::dns::name_key(name.as_bytes()).is_none() {
        return Err(format!(
            "is not a domain name the sensor can match: labels of 1 to 63 characters, at most {} labels and 253 characters (write e.g. \"supportxmr.com\")",
            sensor_common::dns::MAX_LABELS
        ));
    }
    Ok(name)
}

/// `ADDRESS/LEN` or a bare address (a host route).
pub(super) fn parse_prefix(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(addr) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    match s.split_once('/') {
        Some((addr, len)) => {
            let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
                return Err(format!(
                    "is not a prefix: {addr:?} is not an IPv4 or IPv6 address; write ADDRESS/LEN, e.g. \"175.45.176.0/22\""
                ));
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            Err(format!(
                "is not a prefix: the length {len:?} must be a number from 0 to {max} for {}",
                if addr.is_ipv4() { "IPv4" } else { "IPv6" }
            ))
        }
        None => Err(
            "is not a prefix: write ADDRESS/LEN, e.g. \"175.45.176.0/22\" or \"2001:db8::/32\""
                .to_string(),
        ),
    }
}
