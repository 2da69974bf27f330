//! TLS and basic authentication for the metrics endpoint, configured the way Prometheus exporters
//! are: a web configuration file (the exporter-toolkit format) naming a certificate, its key and
//! bcrypt-hashed users.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: tls.crt      # relative paths are relative to this file
//!   key_file: tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...  # htpasswd -nBC 10 "" | tr -d ':\n', or any bcrypt tool
//! ```
//!
//! Both sections are optional. Keys of the exporter-toolkit format that the sensor does not
//! implement (client certificates, cipher suites, HTTP headers) are refused rather than ignored,
//! so that nobody believes a setting is in force that is not.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A loaded, validated web configuration.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
    /// `Authorization` header values already verified: bcrypt is deliberately slow, and a scrape
    /// every few seconds must not pay it each time. Bounded; cleared when full.
    verified: Mutex<HashSet<String>>,
}

const VERIFIED_CACHE: usize = 64;

impl WebConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{name}: cannot read the web configuration"))?;
        let raw: RawWebConfig = serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{}:{}: ", name, l.line()))
                .unwrap_or_else(|| format!("{name}: "));
            anyhow::anyhow!(
                "{at}{e}; supported: tls_server_config (cert_file, key_file) and basic_auth_users"
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(t) => Some(Arc::new(tls_config(
                &base.join(&t.cert_file),
                &base.join(&t.key_file),
            )?)),
            None => None,
        };
        for (user, hash) in &raw.basic_auth_users {
            if !hash.starts_with("$2") {
                bail!(
                    "{name}: basic_auth_users.{user}: not a bcrypt hash (it must start with $2a$, $2b$ or $2y$); create one with `htpasswd -nBC 10 \"\"`"
                );
            }
        }
        Ok(Self {
            tls,
            users: raw.basic_auth_users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value names a configured user with the right password.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(header) = header else {
            return false;
        };
        if let Ok(cache) = self.verified.lock()
            && cache.contains(header)
        {
            return true;
        }
        let Some(encoded) = header.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if ok && let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(header.to_string());
        }
        ok
    }
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| {
            format!(
                "tls_server_config.cert_file {}: cannot read",
                cert.display()
            )
        })?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "tls_server_config.cert_file {}: not PEM certificates",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "tls_server_config.cert_file {}: no certificate in the file",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "tls_server_config.key_file {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("tls_server_config: the key does not match the certificate")?;
    Ok(config)
}
