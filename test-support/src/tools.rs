//! Third-party programs the namespace tests run: where `cargo xtask setup` installs them and which
//! pinned versions. One file for both sides: the tests use it through this crate, xtask includes
//! it by path (it has no dependencies).

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
