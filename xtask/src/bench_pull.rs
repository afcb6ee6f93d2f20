//! `cargo xtask bench`, the pull part: a cold `kdbg build apiserver` (no kdbg state, an empty Go
//! build cache) against the same key pulled from a loopback `docker-registry`, then the first
//! edit after the pull (a full make: no captured `go` call, cold Go cache) against the same edit
//! built with the warm state. Prints the times, the ratio and the bytes moved; asserts no time.
//!
//! The tree's `_output/kdbg` and its apiserver binary are moved aside (a rename within
//! `_output`) and put back at the end, on every exit path; the edited handler gets its bytes and
//! mtime back.

use std::time::{Instant, SystemTime};

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::aside::Aside;
use kdbg_tests::registry::Registry;

/// The healthz handler of each layout, as in the replay part, and the literal an edit rewrites.
const HANDLERS: &[&str] = &["staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go", "pkg/healthz/healthz.go"];
const OK: &str = "\"ok\")";

/// One timed `kdbg build apiserver --json`: seconds, the document, stderr.
struct Timed {
    secs: f64,
    doc: Value,
    stderr: String,
}

impl Timed {
    fn via(&self) -> &str {
        self.doc["components"][0]["via"].as_str().or(self.doc["via"].as_str()).unwrap_or("up_to_date")
    }
    fn sha256(&self) -> &str {
        self.doc["components"][0]["sha256"].as_str().unwrap_or("")
    }
}

/// Runs the pull part on `tree` (the fixture copy or `KDBG_BENCH_SRC`).
pub fn run(sh: &Shell, kdbg: &Utf8Path, tree: &Utf8Path) -> Result<()> {
    let version = crate::bench::kube_version_args(tree);
    let rel = HANDLERS.iter().find(|h| tree.join(h).is_file()).context("no healthz handler in the tree")?;
    let handler = Handler::read(tree.join(rel))?;
    let b = Bench { sh, kdbg, tree, version };
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-bench-pull-").tempdir()?;
    let scratch = Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    // Only the cache named here: no configuration file, no KDBG_CACHE.
    let _env = crate::registry::no_cache_settings(sh, &scratch);
    eprintln!("bench pull: settling the warm build, starting docker-registry on 127.0.0.1");
    b.build(&[], None)?;
    let settled = b.build(&[], None)?;
    let registry = crate::registry::start(sh)?;
    let url = registry.url();
    let pushed = b.kdbg_out(&["cache", "push", "apiserver", "--cache", &url], None)?;
    eprintln!("{}", pushed.trim());
    let warm_edit = b.edit_and_build(&handler, None)?;
    let binary = settled.doc["components"][0]["binary"].as_str().context("no binary in kdbg build --json")?;
    // Kubernetes' GOPATH-mode build (v1.20's golang.sh) sets its own GOCACHE under _output, which
    // must go aside too for the build to be cold.
    let mut paths = vec![tree.join("_output/kdbg"), Utf8PathBuf::from(binary)];
    paths.extend(Some(tree.join("_output/local/go/cache")).filter(|c| c.is_dir()));
    let aside = Aside::move_paths(tree.join("_output/kdbg-bench-aside"), paths)?;
    let (cold_cache, pull_cache) = (scratch.join("gocache-cold"), scratch.join("gocache-pull"));
    eprintln!("bench pull: a cold build (no kdbg state, empty GOCACHE): minutes on a real tree");
    let cold = b.build(&[], Some(&cold_cache))?;
    ensure!(cold.via() == "make", "the cold build did not run make: {}", cold.doc);
    aside.clear()?;
    let pull = b.build(&["--cache", &url], Some(&pull_cache))?;
    ensure!(
        pull.via() == "cache" && pull.stderr.contains("pulled from"),
        "the empty state did not pull from {url}: {}\n{}",
        pull.doc,
        pull.stderr
    );
    eprintln!("bench pull: the first edit after the pull (a full make with a cold Go cache)");
    let first_edit = b.edit_and_build(&handler, Some(&pull_cache))?;
    report(&cold, &pull, &registry, &first_edit, &warm_edit);
    aside.restore()?;
    handler.restore()?;
    let after = b.build(&[], None)?;
    ensure!(after.via() == "up_to_date", "the restored state is not up to date: {}", after.doc);
    Ok(())
}

struct Bench<'a> {
    sh: &'a Shell,
    kdbg: &'a Utf8Path,
    tree: &'a Utf8Path,
    version: Vec<String>,
}

impl Bench<'_> {
    /// kdbg with `args` in the tree, `GOCACHE` set when given; its stdout.
    fn kdbg_out(&self, args: &[&str], gocache: Option<&Utf8Path>) -> Result<String> {
        let (kdbg, version) = (self.kdbg, &self.version);
        let _dir = self.sh.push_dir(self.tree);
        let _env = gocache.map(|g| self.sh.push_env("GOCACHE", g));
        Ok(cmd!(self.sh, "{kdbg} {args...} {version...}").quiet().read()?)
    }

    fn build(&self, extra: &[&str], gocache: Option<&Utf8Path>) -> Result<Timed> {
        let (kdbg, version) = (self.kdbg, &self.version);
        let _dir = self.sh.push_dir(self.tree);
        let _env = gocache.map(|g| self.sh.push_env("GOCACHE", g));
        let t = Instant::now();
        let out =
            cmd!(self.sh, "{kdbg} build apiserver --json {extra...} {version...}").quiet().ignore_status().output()?;
        let secs = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(out.status.success(), "kdbg build apiserver {} failed:\n{stderr}", extra.join(" "));
        let doc = serde_json::from_slice(&out.stdout).context("kdbg build --json")?;
        Ok(Timed { secs, doc, stderr })
    }

    /// The one-line edit, built (timed), then undone and built again (untimed).
    fn edit_and_build(&self, handler: &Handler, gocache: Option<&Utf8Path>) -> Result<Timed> {
        handler.edit("kdbg-bench-pull")?;
        let edited = self.build(&[], gocache);
        handler.restore()?;
        let edited = edited?;
        self.build(&[], gocache)?;
        Ok(edited)
    }
}

fn report(cold: &Timed, pull: &Timed, registry: &Registry, first: &Timed, warm: &Timed) {
    let sent = crate::registry::blob_sizes(registry).first().copied().unwrap_or(0);
    let size = std::fs::metadata(pull.doc["components"][0]["binary"].as_str().unwrap_or("")).map_or(0, |m| m.len());
    row("cold: kdbg build apiserver (no kdbg state, empty GOCACHE)", cold.secs);
    row("pull: kdbg build apiserver --cache oci://127.0.0.1 (no kdbg state)", pull.secs);
    println!(
        "  ratio pull/cold build: {:.1} % (goal <= 5 %); moved {:.1} MB (zstd layer) for a {:.1} MB binary",
        100.0 * pull.secs / cold.secs,
        sent as f64 / 1e6,
        size as f64 / 1e6
    );
    let same = if cold.sha256() == pull.sha256() { "equal" } else { "DIFFERENT" };
    println!("  cold build and pull: sha256 {} ({same})", pull.sha256());
    row(&format!("first edit after the pull ({})", first.via()), first.secs);
    row(&format!("the same edit with a warm state ({})", warm.via()), warm.secs);
    if first.stderr.contains("was pulled from the cache") {
        println!("  kdbg said: the first build after the pull is a full make");
    }
}

fn row(what: &str, s: f64) {
    println!("  {what:<66} {s:>9.3} s");
}

/// The handler's file, its bytes and mtime kept to be put back exactly.
struct Handler {
    path: Utf8PathBuf,
    original: String,
    mtime: SystemTime,
}

impl Handler {
    fn read(path: Utf8PathBuf) -> Result<Handler> {
        let original = std::fs::read_to_string(&path)?;
        ensure!(original.contains(OK), "{path} has no {OK} to edit");
        let mtime = std::fs::metadata(&path)?.modified()?;
        Ok(Handler { path, original, mtime })
    }
    fn edit(&self, tag: &str) -> Result<()> {
        Ok(std::fs::write(&self.path, self.original.replacen(OK, &format!("\"ok {tag}\")"), 1))?)
    }
    fn restore(&self) -> Result<()> {
        std::fs::write(&self.path, &self.original)?;
        let f = std::fs::File::options().write(true).open(&self.path)?;
        Ok(f.set_modified(self.mtime)?)
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("bench pull: could not restore {}: {e:#}", self.path);
        }
    }
}
