//! `kdbg deploy`: build through the cache for the node's platform, then put each binary and dlv in
//! `/var/lib/kdbg/bin` on the node, copying only what the node does not already hold.
//!
//! Round trips: one to learn the node's platform (and whether it has `zstd`), one `sha256s` for
//! every binary and dlv together to decide what to copy, then one per file that differs. A deploy
//! with nothing changed therefore sends no file bytes at all.
//!
//! Deltas: after copying a binary, kdbg keeps a copy of it in the tree's state dir
//! (`_output/kdbg/deployed/<name>`, with its sha256 beside it). When the node still holds those
//! bytes, the next copy is a zstd delta against them (see `node::copy`); `make clean` drops them.

pub mod dlv;

use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::build::{self, BuildConfig, BuildError, BuildOutcome};
use crate::cache::CacheError;
use crate::component::Component;
use crate::node::copy::Method;
use crate::node::{Node, NodeError, Privilege, BIN_DIR};
use crate::report::{Reporter, StepStatus};
use crate::tree::SourceTree;
pub use dlv::{Dlv, DlvError, Needs};

#[derive(Debug, Clone, Default)]
pub struct DeployConfig {
    pub build: BuildConfig,
    /// `--dlv PATH`; default: `dlv` on PATH.
    pub dlv: Option<Utf8PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Dlv(#[from] DlvError),
    #[error("{node} is {node_platform}, but this Go builds {host_platform}; cross-building for another platform is not yet supported\n  fix: run kdbg on a {node_platform} machine, or pick a {host_platform} node")]
    CrossBuild { node: String, node_platform: String, host_platform: String },
    #[error("dlv does not run on {node}: {detail}\n  fix: {}", dlv::STATIC)]
    DlvOnNode { node: String, detail: String },
}

/// One file on the node, as `kdbg deploy --json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub name: String,
    /// Where it is on the node.
    pub path: String,
    pub sha256: String,
    /// False when the node already had these bytes.
    pub copied: bool,
    pub file_bytes: u64,
    /// Bytes sent for it (0 when not copied).
    pub wire_bytes: u64,
    pub method: Option<Method>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub node: String,
    /// `linux/amd64`.
    pub platform: String,
    pub build: BuildOutcome,
    /// The components' binaries, then dlv.
    pub files: Vec<Deployed>,
    pub dlv: Dlv,
    /// What the binaries need of Delve (their Go and DWARF version).
    pub needs: Option<Needs>,
    /// Round trips spent deciding what to copy: one, whatever the number of files.
    pub decide_round_trips: u64,
    pub round_trips: u64,
    /// Everything sent to the node (commands included).
    pub bytes_sent: u64,
    pub seconds: f64,
}

/// Builds `components` for `node` and makes `/var/lib/kdbg/bin` on it hold them and dlv.
pub fn deploy(
    tree: &SourceTree,
    components: &[&'static Component],
    node: &dyn Node,
    config: &DeployConfig,
    reporter: &dyn Reporter,
) -> Result<DeployOutcome, DeployError> {
    let started = Instant::now();
    let (trips0, sent0) = (node.round_trips(), node.bytes_sent());
    let name = node.describe();
    let (os, arch) = node.platform()?;
    let prepared = build::prepare(tree, &config.build)?;
    let toolchain = &prepared.toolchain.identity;
    let platform = format!("{os}/{arch}");
    let host_platform = format!("{}/{}", toolchain.goos, toolchain.goarch);
    if platform != host_platform {
        return Err(DeployError::CrossBuild { node: name, node_platform: platform, host_platform });
    }
    // No dlv at all is worth knowing before a long build.
    dlv::candidates(config.dlv.as_deref())?;

    let build = build::build_prepared(tree, components, &prepared, reporter)?;
    // Every binary is checked against the Delve before anything is sent to the node.
    let (dlv, needs) = match build.components.first() {
        Some(first) => dlv::choose(config.dlv.as_deref(), &first.binary, &arch)?,
        None => (dlv::inspect(&dlv::find(config.dlv.as_deref())?, Some(&arch))?, Needs::of_go(&toolchain.go_version)),
    };
    for b in &build.components[1..] {
        let n = dlv::needs_of(&b.binary)?;
        if n.unmet_by(&dlv).is_some() {
            dlv::choose(Some(&dlv.path), &b.binary, &arch)?;
        }
    }
    reporter.info(format!(
        "Delve {} ({}, {}) for binaries built with {} (DWARF {})",
        dlv.version,
        dlv.go_version.as_deref().unwrap_or("unknown Go"),
        dlv.path,
        needs.go_version,
        needs.dwarf
    ));
    let mut wanted: Vec<(String, Utf8PathBuf, String)> =
        build.components.iter().map(|b| (b.name.clone(), b.binary.clone(), b.sha256.clone())).collect();
    let dlv_sha = crate::node::copy::hash_file(&dlv.path)
        .map_err(|e| DlvError::Broken { path: dlv.path.clone(), detail: e.to_string() })?
        .0;
    wanted.push(("dlv".into(), dlv.path.clone(), dlv_sha));
    let remote: Vec<String> = wanted.iter().map(|(n, ..)| format!("{BIN_DIR}/{n}")).collect();

    let before = node.round_trips();
    let on_node = node.sha256s(&remote.iter().map(String::as_str).collect::<Vec<_>>())?;
    let decide_round_trips = node.round_trips() - before;

    let files = copy_files(tree, node, &wanted, &on_node, reporter)?;
    Ok(DeployOutcome {
        node: name,
        platform,
        build,
        files,
        dlv,
        needs: Some(needs),
        decide_round_trips,
        round_trips: node.round_trips() - trips0,
        bytes_sent: node.bytes_sent() - sent0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Copies each `(name, local path, sha256)` to `BIN_DIR/<name>` on the node unless `on_node` (the
/// node's sha256 of that path, in the same order) says it is there already; a delta against the
/// last copy when the node still holds it. `dlv` is checked to run after a copy.
pub fn copy_files(
    tree: &SourceTree,
    node: &dyn Node,
    wanted: &[(String, Utf8PathBuf, String)],
    on_node: &[Option<String>],
    reporter: &dyn Reporter,
) -> Result<Vec<Deployed>, DeployError> {
    let name = node.describe();
    let bases = Bases(tree.state_dir().join("deployed"));
    let mut files = Vec::new();
    for ((file, local, sha), have) in wanted.iter().zip(on_node) {
        let remote = &format!("{BIN_DIR}/{file}");
        let id = format!("copy:{file}");
        let file_bytes = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        let mut d = Deployed {
            name: file.clone(),
            path: remote.clone(),
            sha256: sha.clone(),
            copied: false,
            file_bytes,
            wire_bytes: 0,
            method: None,
            seconds: 0.0,
        };
        if have.as_deref() == Some(sha.as_str()) {
            let reason = format!("{name} already has sha256:{}", &sha[..12.min(sha.len())]);
            reporter.step(&id, StepStatus::Skipped { reason });
            files.push(d);
            continue;
        }
        reporter.step(&id, StepStatus::Started);
        let t = Instant::now();
        let base = have.as_deref().and_then(|h| bases.get(file, h));
        let copied = match &base {
            Some(b) => node.copy_to_delta(local, remote, 0o755, b).or_else(|e| match e {
                // The base was not what the node holds after all: send the whole file.
                NodeError::Command { .. } => node.copy_to(local, remote, 0o755),
                e => Err(e),
            }),
            None => node.copy_to(local, remote, 0o755),
        };
        let stats = copied.inspect_err(|e| reporter.step(&id, StepStatus::Failed { error: e.to_string() }))?;
        d.seconds = t.elapsed().as_secs_f64();
        (d.copied, d.wire_bytes, d.file_bytes, d.method) =
            (true, stats.wire_bytes, stats.file_bytes, Some(stats.method));
        reporter.step(&id, StepStatus::Done { seconds: d.seconds });
        if stats.method == Method::Plain && file != "dlv" {
            reporter.info(format!("{name} has no zstd: {file} went uncompressed ({} bytes)", stats.wire_bytes));
        }
        if file == "dlv" {
            check_dlv_runs(node, remote)?;
        } else if let Err(e) = bases.put(file, local, sha) {
            reporter.warn(format!("cannot keep {file} for delta copies: {e}"));
        }
        files.push(d);
    }
    Ok(files)
}

/// A freshly copied dlv must start on the node (architecture, libc).
fn check_dlv_runs(node: &dyn Node, path: &str) -> Result<(), DeployError> {
    let out = node.exec(&[path, "version"], Privilege::Root, &[])?;
    if out.success() && out.stdout_str().contains("Version:") {
        return Ok(());
    }
    Err(DeployError::DlvOnNode {
        node: node.describe(),
        detail: format!("`{path} version` exited {}: {}", out.status, out.stderr_str().trim()),
    })
}

/// The last binary copied per component, to send deltas against.
struct Bases(Utf8PathBuf);

impl Bases {
    fn get(&self, name: &str, node_sha: &str) -> Option<Utf8PathBuf> {
        let sha = std::fs::read_to_string(self.0.join(format!("{name}.sha256"))).ok()?;
        let path = self.0.join(name);
        (sha.trim() == node_sha && path.is_file()).then_some(path)
    }

    fn put(&self, name: &str, local: &Utf8Path, sha: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.0)?;
        let (path, sha_path, tmp) =
            (self.0.join(name), self.0.join(format!("{name}.sha256")), self.0.join(format!("{name}.tmp")));
        let _ = std::fs::remove_file(&sha_path);
        std::fs::copy(local, &tmp)?;
        std::fs::rename(&tmp, &path)?;
        std::fs::write(sha_path, sha)
    }
}
