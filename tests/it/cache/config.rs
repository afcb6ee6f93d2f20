//! Where the cache comes from: `~/.config/kdbg/config.toml`'s `[cache] url` when no flag is given,
//! `KDBG_CACHE` over the file (`$XDG_CONFIG_HOME/kdbg/config.toml` here), `--no-cache` over both.

use kdbg_tests::registry::{Registry, RegistryConfig};

use super::{assert_not_pulled, assert_pulled, forget_builds, push, warnings, Home};
use crate::support::Tree;

/// A cache URL where nothing listens (port 1 of loopback refuses connections).
const NOWHERE: &str = "oci://127.0.0.1:1/kdbg";

#[test]
fn the_config_file_names_the_cache_kdbg_cache_overrides_it_and_no_cache_skips_both() {
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    push(&Home::new(), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    dev.config(&format!("[cache]\nurl = \"{}\"\n", registry.url()));

    let out = dev.run(tree.kdbg(["build", "apiserver"])).success();
    assert_pulled(&out, &registry);
    assert_eq!(tree.make_runs(), Vec::<String>::new());

    // KDBG_CACHE wins over a config file (this one names a cache where nothing listens).
    forget_builds(&tree);
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("kdbg")).unwrap();
    std::fs::write(xdg.path().join("kdbg/config.toml"), format!("[cache]\nurl = \"{NOWHERE}\"\n")).unwrap();
    let run = dev.run(tree.kdbg(["build", "apiserver"])).env("XDG_CONFIG_HOME", xdg.path());
    let out = run.env("KDBG_CACHE", registry.url()).success();
    assert_pulled(&out, &registry);
    assert!(warnings(&out.stderr).is_empty(), "{}", out.stderr);
    assert_eq!(tree.make_runs(), Vec::<String>::new());

    // --no-cache: neither the file nor KDBG_CACHE; the registry hears nothing.
    forget_builds(&tree);
    let asked = registry.requests().len();
    let out = dev.run(tree.kdbg(["build", "apiserver", "--no-cache"])).env("KDBG_CACHE", registry.url()).success();
    assert_not_pulled(&out);
    assert!(warnings(&out.stderr).is_empty(), "{}", out.stderr);
    assert_eq!(tree.make_runs().len(), 1, "{:?}", tree.make_runs());
    assert_eq!(registry.requests().len(), asked, "--no-cache asks no registry");
}
