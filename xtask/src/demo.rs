//! `cargo xtask demo`: the main job, a kdbg session on the built-in fixture tree, narrated.

use anyhow::{ensure, Result};
use camino::Utf8PathBuf;
use xshell::{cmd, Shell};

pub fn run(sh: &Shell) -> Result<()> {
    crate::setup::ensure_packages(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("demo: building kdbg");
    cmd!(sh, "{cargo} build --quiet -p kdbg-cli").run()?;
    let kdbg = crate::target_dir().join("debug/kdbg");
    let work = crate::project_root().join("target/kdbg-demo");
    std::fs::create_dir_all(&work)?;
    let tree = Utf8PathBuf::try_from(kdbg_tests::fixture::copy_to(work.as_std_path())?)?;
    let _dir = sh.push_dir(&tree);
    step(&format!("a fresh kubernetes-shaped tree at {tree} (the fixture, tagged v1.20.2)"));

    step("kdbg plan apiserver: what would run, nothing runs");
    cmd!(sh, "{kdbg} plan apiserver").run()?;

    step("kdbg build apiserver: one make with debug flags, pinned version and build date");
    cmd!(sh, "{kdbg} build apiserver").run()?;

    step("kdbg build apiserver again: nothing changed, so no make at all");
    let out = cmd!(sh, "{kdbg} build apiserver --json").read()?;
    ensure!(out.contains("\"hit\":true"), "the second build should have been a cache hit: {out}");
    println!("{out}");
    cmd!(sh, "{kdbg} cache-key apiserver --explain").run()?;

    step("edit a file in the apiserver's import closure; kdbg says why the key changed");
    let file = tree.join("pkg/healthz/healthz.go");
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, format!("{text}\n// edited by the demo\n"))?;
    cmd!(sh, "{kdbg} cache-key apiserver --explain").run()?;
    cmd!(sh, "{kdbg} build apiserver").run()?;
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}
