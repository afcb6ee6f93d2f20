//! A throwaway OCI registry for the bench and the real-cluster tier: the tests' harness
//! ([`kdbg_tests::registry`]: Debian's `docker-registry` as a plain process on 127.0.0.1, plain
//! HTTP, its own config and storage in a temp dir, killed and removed when dropped), with the
//! package installed when missing.

use anyhow::Result;
use camino::Utf8Path;
use kdbg_tests::registry::{Registry, RegistryConfig};
use xshell::Shell;

/// The registry's program (Debian package `docker-registry`).
pub const PROGRAM: &str = "/usr/bin/docker-registry";

/// Installs `docker-registry` when missing, starts it on a free loopback port and waits until
/// `/v2/` answers. Its cache URL is `registry.url()` (`oci://127.0.0.1:PORT/kdbg`).
pub fn start(sh: &Shell) -> Result<Registry> {
    crate::setup::ensure_extra(sh, &[(PROGRAM, "docker-registry")])?;
    let registry = Registry::start(RegistryConfig::loopback())?;
    let storage = registry.storage();
    eprintln!(
        "xtask: docker-registry listens on {} (plain HTTP, storage in {})",
        registry.host_port(),
        storage.display()
    );
    Ok(registry)
}

/// The sizes of the blobs the registry stores, largest first: for one pushed artifact the first
/// is its layer, the binary as sent.
pub fn blob_sizes(registry: &Registry) -> Vec<u64> {
    let sizes = registry.blobs().into_iter().filter_map(|d| std::fs::metadata(registry.blob_path(&d)).ok());
    let mut sizes: Vec<u64> = sizes.map(|m| m.len()).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Makes `sh`'s kdbg runs use only the cache their `--cache` names: `KDBG_CONFIG` points at a
/// file that does not exist in `scratch`, `KDBG_CACHE` is empty. Undone when the guards drop.
pub fn no_cache_settings<'a>(sh: &'a Shell, scratch: &Utf8Path) -> [xshell::PushEnv<'a>; 2] {
    [sh.push_env("KDBG_CONFIG", scratch.join("no-kdbg-config.toml")), sh.push_env("KDBG_CACHE", "")]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_starts_on_loopback_and_holds_nothing_yet() {
        let sh = xshell::Shell::new().unwrap();
        let registry = super::start(&sh).unwrap();
        assert_eq!(registry.url(), format!("oci://127.0.0.1:{}/kdbg", registry.port()));
        assert!(super::blob_sizes(&registry).is_empty());
    }
}
