//! Attaching the program to interfaces (through BPF links) and detaching it; interface names and
//! indexes.

use anyhow::{Context as _, Result, bail};
use aya::programs::{XdpMode, xdp::XdpLinkId};
use tracing::warn;

use super::Kernel;
use crate::config::XdpModeChoice;

/// How a program ended up attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

impl Kernel {
    /// Attaches through a BPF link (so the kernel detaches it when the process dies, even by
    /// SIGKILL). `Auto` tries native mode first and falls back to generic, saying so.
    pub fn attach(
        &mut self,
        iface: &str,
        mode: XdpModeChoice,
    ) -> Result<(XdpLinkId, AttachedMode)> {
        let program = self.program()?;
        match mode {
            XdpModeChoice::Native => program
                .attach(iface, XdpMode::Driver)
                .map(|id| (id, AttachedMode::Native))
                .with_context(|| format!("attaching to {iface} in native (driver) mode; try --xdp-mode generic if the driver lacks XDP support")),
            XdpModeChoice::Generic => program
                .attach(iface, XdpMode::Skb)
                .map(|id| (id, AttachedMode::Generic))
                .with_context(|| format!("attaching to {iface} in generic mode")),
            XdpModeChoice::Auto => match program.attach(iface, XdpMode::Driver) {
                Ok(id) => Ok((id, AttachedMode::Native)),
                Err(native) => {
                    warn!(%iface, error = %native, "native XDP unavailable; falling back to generic mode (slower, same counts)");
                    program
                        .attach(iface, XdpMode::Skb)
                        .map(|id| (id, AttachedMode::Generic))
                        .with_context(|| format!("attaching to {iface} in generic mode after native mode failed ({native})"))
                }
            },
        }
    }

    pub fn detach(&mut self, link: XdpLinkId) -> Result<()> {
        self.program()?.detach(link)?;
        Ok(())
    }
}

/// Names of this host's interfaces, for error messages.
pub fn available_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn ifindex(iface: &str) -> Result<u32> {
    let c = std::ffi::CString::new(iface).context("interface name contains NUL")?;
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!(
            "interface {iface} not found; available: {}",
            available_interfaces().join(", ")
        );
    }
    Ok(idx)
}
