//! The remote-cache flow (`--only cache`), through `kind://` once: the five debug builds the tier
//! already made are pushed with `kdbg cache push` to Debian's `docker-registry`, started on
//! 127.0.0.1 (plain HTTP, storage in a temp dir); then, with the tree's `_output/kdbg` and the
//! five binaries moved aside (an empty kdbg state), `kdbg debug scheduler --cache` pulls the
//! scheduler instead of building it (a `make` first on PATH fails and records any call), a
//! breakpoint in its `/healthz` handler is hit, and `kdbg restore` leaves the node as before. The
//! registry is killed and the state put back on every exit path.

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

use super::flows::{self, Kdbg};
use super::{wait_until, Stages};
use crate::aside::Aside;
use kdbg_tests::registry::Registry;

/// The five debug components the tier builds, by the names kdbg's CLI takes.
const FIVE: &[&str] = &["apiserver", "scheduler", "cm", "kubelet", "proxy"];

pub fn scheduler_pulled(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-e2e-cache-").tempdir()?;
    let scratch = Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    // Only the cache this flow names: no configuration file, no KDBG_CACHE.
    let _env = crate::registry::no_cache_settings(sh, &scratch);
    let (registry, binaries) =
        k.stage(stages, "docker-registry on 127.0.0.1; kdbg cache push of the five debug builds", || push_five(sh, k))?;
    let url = registry.url();
    let make_log = fake_make(&scratch)?;
    let path = format!("{}:{}", scratch.join("bin"), sh.var("PATH").unwrap_or_default());
    let before = flows::node_state(sh, c)?;
    let scheduler = binaries.iter().find(|(name, _)| name == "kube-scheduler").map(|(_, p)| p.clone());
    let scheduler = scheduler.context("no kube-scheduler among the debug builds")?;
    let pushed_sha = sha256(&scheduler)?;
    let mut paths = vec![k.tree.join("_output/kdbg")];
    paths.extend(binaries.into_iter().map(|(_, p)| p));
    // Put back when this function returns, whichever way.
    let aside = Aside::move_paths(k.tree.join("_output/kdbg-e2e-aside"), paths)?;
    k.stage(stages, "empty kdbg state: kdbg debug scheduler --cache pulls it (make never runs)", || {
        let _path = sh.push_env("PATH", &path);
        let said = k.output(sh, &["debug", "scheduler", "--leader-elect=false", "--no-ide", "--cache", &url])?;
        ensure!(said.contains("kube-scheduler: pulled from oci://127.0.0.1:"), "no pull:\n{said}");
        let calls = std::fs::read_to_string(&make_log).unwrap_or_default();
        let builds: Vec<&str> = calls.lines().filter(|l| !l.starts_with("--version")).collect();
        ensure!(builds.is_empty(), "make ran after a pull: {builds:?}");
        let pulled = sha256(&scheduler)?;
        ensure!(pulled == pushed_sha, "the pulled {scheduler} has sha256 {pulled}, the pushed one {pushed_sha}");
        Ok(())
    })?;
    k.stage(stages, "the pulled scheduler under Delve: breakpoint in its /healthz handler is hit", || {
        healthz_breakpoint(sh, k)
    })?;
    k.stage(stages, "kdbg restore -> the scheduler's static pod again, node as before", || {
        k.run(sh, &["restore"])?;
        flows::check_restored(sh, c, &before)
    })?;
    aside.restore()?;
    drop(registry);
    Ok(())
}

/// Starts the registry and pushes the five builds (up to date: nothing is built); returns the
/// registry and the builds' (name, path).
fn push_five(sh: &Shell, k: &Kdbg) -> Result<(Registry, Vec<(String, Utf8PathBuf)>)> {
    let registry = crate::registry::start(sh)?;
    let url = registry.url();
    let said = k.output(sh, &[&["cache", "push"], FIVE, &["--cache", &url]].concat())?;
    let done =
        said.lines().filter(|l| l.trim_start().starts_with("pushed ") || l.contains("is already in the cache")).count();
    ensure!(done == FIVE.len(), "kdbg cache push did not push the five components:\n{said}");
    let sizes = crate::registry::blob_sizes(&registry);
    eprintln!("e2e: the registry holds {} blobs, {:.1} MB", sizes.len(), sizes.iter().sum::<u64>() as f64 / 1e6);
    Ok((registry, binaries(sh, k)?))
}

/// The debug scheduler answers `/healthz`, and a breakpoint in its handler is hit.
fn healthz_breakpoint(sh: &Shell, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    wait_until("the debug scheduler's /healthz", flows::SLOW, || flows::node_healthz(sh, c, 10259))?;
    flows::healthz_breakpoint(c, tunnel_port(sh, k)?, 10259)
}

/// The tier's five debug binaries (name, path), from a no-op `kdbg build --json` (nothing
/// builds: the build stage made them).
fn binaries(sh: &Shell, k: &Kdbg) -> Result<Vec<(String, Utf8PathBuf)>> {
    let out = k.stdout(sh, &[&["build"], FIVE, &["--json"]].concat())?;
    let doc: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("kdbg build --json: {out}"))?;
    let comps = doc["components"].as_array().with_context(|| format!("no components in {out}"))?;
    let found: Vec<(String, Utf8PathBuf)> = comps
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), Utf8PathBuf::from(c["binary"].as_str()?))))
        .collect();
    ensure!(found.len() == FIVE.len() && found.iter().all(|(_, p)| p.is_file()), "not five binaries in {out}");
    Ok(found)
}

fn sha256(path: &Utf8Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    Ok(hex::encode(sha2::Sha256::digest(bytes)))
}

/// A `make` that records its arguments in `<dir>/make.log` and fails (its `--version` answers, for
/// kdbg's checks); returns the log's path. Its directory `<dir>/bin` goes first on PATH.
fn fake_make(dir: &Utf8Path) -> Result<Utf8PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let (bin, log) = (dir.join("bin"), dir.join("make.log"));
    std::fs::create_dir_all(&bin)?;
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\n[ \"$1\" = --version ] && exec /usr/bin/make \"$@\"\necho 'kdbg e2e: make ran where a pull was expected' >&2\nexit 97\n"
    );
    std::fs::write(bin.join("make"), script)?;
    std::fs::set_permissions(bin.join("make"), std::fs::Permissions::from_mode(0o755))?;
    Ok(log)
}

/// The scheduler's local tunnel port, from `kdbg status --json`.
fn tunnel_port(sh: &Shell, k: &Kdbg) -> Result<u16> {
    let out = k.stdout(sh, &["status", "--json"])?;
    let doc: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("kdbg status --json: {out}"))?;
    flows::tunnel_in(&doc, "kube-scheduler")
        .with_context(|| format!("no kube-scheduler tunnel in kdbg status --json: {out}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fake_make_records_each_call_and_fails_a_build() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = camino::Utf8Path::from_path(tmp.path()).unwrap();
        let log = super::fake_make(dir).unwrap();
        let make = dir.join("bin/make");
        let build = std::process::Command::new(&make).args(["all", "WHAT=cmd/kube-scheduler"]).output().unwrap();
        assert_eq!(build.status.code(), Some(97));
        let version = std::process::Command::new(&make).arg("--version").output().unwrap();
        assert!(version.status.success() && String::from_utf8_lossy(&version.stdout).contains("GNU Make"));
        assert_eq!(std::fs::read_to_string(log).unwrap(), "all WHAT=cmd/kube-scheduler\n--version\n");
    }
}
