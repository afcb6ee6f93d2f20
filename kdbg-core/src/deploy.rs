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
pub(crate) mod steps;
#[cfg(test)]
mod tests;

use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::build::{self, BuildConfig, BuildError, BuildOutcome, Building};
use crate::cache::CacheError;
use crate::component::Component;
use crate::layout::BIN_DIR;
use crate::node::copy::Method;
use crate::node::{Node, NodeError, Privilege};
use crate::node_lock::Locked;
use crate::plan::exec::{Exec, Failed};
use crate::plan::fleet::Fleet;
use crate::plan::Plan;
use crate::platform::Platform;
use crate::report::Reporter;
use crate::tree::SourceTree;
pub(crate) use dlv::{Dlv, DlvPickError, Needs};
pub(crate) use steps::{Deploying, Destination};

#[derive(Debug, Clone, Default)]
pub struct DeployConfig {
    pub build: BuildConfig,
    /// `--dlv [PLATFORM=]PATH`; default: searched per node platform (see [`dlv::candidates`]).
    pub dlv: DlvPaths,
}

/// The Delves the user named: `--dlv PATH` (`KDBG_DLV`) for any node whose machine it fits,
/// `--dlv linux/arm64=PATH` for one platform.
#[derive(Debug, Clone, Default)]
pub struct DlvPaths {
    pub any: Option<Utf8PathBuf>,
    pub per_platform: std::collections::BTreeMap<Platform, Utf8PathBuf>,
}

impl DlvPaths {
    /// The Delve named for `platform`: its own, else the one named for every node (which must
    /// then be of the node's machine: checked before the build).
    pub fn for_platform(&self, platform: &Platform) -> Option<&Utf8Path> {
        self.per_platform.get(platform).or(self.any.as_ref()).map(Utf8PathBuf::as_path)
    }

    /// Adds one `--dlv` value: `PATH` or `OS/ARCH=PATH`.
    pub fn add(&mut self, value: &str) -> Result<(), String> {
        match value.split_once('=') {
            Some((platform, path)) if platform.contains('/') => {
                self.per_platform.insert(platform.parse()?, Utf8PathBuf::from(path));
            }
            _ => self.any = Some(Utf8PathBuf::from(value)),
        }
        Ok(())
    }
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
    Dlv(#[from] DlvPickError),
    #[error("{node} runs {os}, but kdbg debugs Linux nodes only\n  fix: pick a Linux node (kind, minikube, kubeadm)")]
    NotLinux { node: String, os: String },
    /// Several nodes of different platforms in one run (not built yet: one run builds once).
    #[error("the nodes of this run are of different platforms ({platforms}); one run builds for one platform\n  fix: run kdbg once per platform, each with the --target of its nodes")]
    MixedPlatforms { platforms: String },
    #[error("dlv does not run on {node}: {detail}\n  fix: {}", dlv::STATIC)]
    DlvOnNode { node: String, detail: String },
}

/// One platform for every node of a run (see [`DeployError::MixedPlatforms`]).
pub(crate) fn one_platform(dests: &[Destination], nodes: &[(String, &dyn Node)]) -> Result<(), DeployError> {
    let first = &dests[0].platform;
    if dests.iter().all(|d| &d.platform == first) {
        return Ok(());
    }
    let each: Vec<String> = nodes.iter().zip(dests).map(|((n, _), d)| format!("{n}: {}", d.platform)).collect();
    Err(DeployError::MixedPlatforms { platforms: each.join(", ") })
}

impl DeployError {
    /// Another step of the same build failed: that step's error says why.
    pub(crate) fn is_consequence(&self) -> bool {
        matches!(self, DeployError::Build(BuildError::SameBuild { .. }))
    }

    /// The class of the node's or the build's failure behind this error.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            DeployError::Node(e) => e.exit_class(),
            DeployError::Build(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }

    /// The error to show of a run's failures: the first that is not a consequence of another.
    pub(crate) fn first<E, O>(failed: Failed<E, O>, earlier: impl Fn(&E) -> bool) -> E {
        let mut errors: Vec<E> = failed.errors.into_iter().map(|(_, e)| e).collect();
        let i = errors.iter().position(|e| !earlier(e)).unwrap_or(0);
        errors.swap_remove(i)
    }
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
    /// Delve's version as the node's copy says (`dlv version` on the node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlv_version: Option<String>,
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

/// Builds `components` and makes `/var/lib/kdbg/bin` on each node hold them and dlv: the plan
/// [`steps::plan`] run by the executor, on one node or several in one run (`--all-nodes`,
/// several `--target`s): one build, then
/// each node's `sha256s` round trip and copies (`copy:<c>@<node>`; one node: `copy:<c>`), the
/// copies of different nodes running concurrently. `nodes`: `(name in step ids, node)`.
pub fn deploy_nodes(
    tree: &SourceTree,
    components: &[&'static Component],
    nodes: &[(String, Locked<'_>)],
    config: &DeployConfig,
    reporter: &dyn Reporter,
) -> Result<Vec<DeployOutcome>, DeployError> {
    let nodes: Vec<(String, &dyn Node)> = nodes.iter().map(|(name, l)| (name.clone(), l.node())).collect();
    let nodes = nodes.as_slice();
    let started = Instant::now();
    let counters: Vec<(u64, u64)> = nodes.iter().map(|(_, n)| (n.round_trips(), n.bytes_sent())).collect();
    let dests = nodes.iter().map(|(_, node)| Destination::check(tree, *node, config)).collect::<Result<Vec<_>, _>>()?;
    let keyed = build::keyed(tree, components, &dests[0].prepared, reporter)?;
    let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let plan = steps::plan(Plan::for_build(&keyed.keys.components), components).across(&names);
    let building = Building::new(tree, keyed, &dests[0].prepared, reporter);
    let fleet = Fleet {
        nodes: nodes
            .iter()
            .zip(&dests)
            .map(|((name, node), dest)| {
                let dlv_flag = config.dlv.for_platform(&dest.prepared.platform);
                (name.clone(), Deploying { tree, node: *node, dest, dlv_flag, building: &building, reporter })
            })
            .collect(),
    };
    let exec = Exec { parallel: 4.max(2 * nodes.len()), ..Exec::default() };
    let run = exec.run(&plan, &fleet, reporter).map_err(|f| DeployError::first(f, DeployError::is_consequence))?;
    drop(fleet);
    building.finish()?.report(reporter);
    let seconds = started.elapsed().as_secs_f64();
    let several = nodes.len() > 1;
    let outcomes = nodes.iter().zip(&dests).zip(counters).map(|(((name, node), dest), counters)| {
        let mine = run.on_node(several.then_some(name.as_str())).map(|(_, o)| o);
        steps::outcome(*node, dest, components, mine, seconds, counters)
    });
    Ok(outcomes.collect())
}

impl Deployed {
    /// A file the node already holds.
    pub(crate) fn kept(name: &str, sha256: &str, file_bytes: u64) -> Deployed {
        Deployed {
            name: name.into(),
            path: format!("{BIN_DIR}/{name}"),
            sha256: sha256.into(),
            copied: false,
            file_bytes,
            wire_bytes: 0,
            method: None,
            seconds: 0.0,
            dlv_version: None,
        }
    }
}

/// Copies one `(name, local path, sha256)` to `BIN_DIR/<name>`: a delta against the last copy
/// when the node still holds it (`have`). Delve (`is_delve`) is checked to run after a copy.
pub(crate) fn copy_one(
    tree: &SourceTree,
    node: &dyn Node,
    (file, local, sha): &(String, Utf8PathBuf, String),
    have: Option<&str>,
    is_delve: bool,
    reporter: &dyn Reporter,
) -> Result<Deployed, DeployError> {
    let bases = Bases(tree.state_dir().join("deployed"));
    let remote = &format!("{BIN_DIR}/{file}");
    let mut d = Deployed::kept(file, sha, std::fs::metadata(local).map(|m| m.len()).unwrap_or(0));
    let t = Instant::now();
    let base = have.and_then(|h| bases.get(file, h));
    let copied = match &base {
        Some(b) => node.copy_to_delta(local, remote, 0o755, b).or_else(|e| match e {
            // The base was not what the node holds after all: send the whole file.
            NodeError::Command { .. } => node.copy_to(local, remote, 0o755),
            e => Err(e),
        }),
        None => node.copy_to(local, remote, 0o755),
    };
    let stats = copied?;
    d.seconds = t.elapsed().as_secs_f64();
    (d.copied, d.wire_bytes, d.file_bytes, d.method) = (true, stats.wire_bytes, stats.file_bytes, Some(stats.method));
    if stats.method == Method::Plain && !is_delve {
        reporter.info(format!(
            "{} has no zstd: {file} went uncompressed ({} bytes)",
            node.describe(),
            stats.wire_bytes
        ));
    }
    if is_delve {
        d.dlv_version = Some(check_dlv_runs(node, remote)?);
    } else if let Err(e) = bases.put(file, local, sha) {
        reporter.warn(format!("cannot keep {file} for delta copies: {e}"));
    }
    Ok(d)
}

/// A freshly copied dlv must start on the node (architecture, libc); its version, as it says.
pub(crate) fn check_dlv_runs(node: &dyn Node, path: &str) -> Result<String, DeployError> {
    let out = node.exec(&[path, "version"], Privilege::Root, &[])?;
    if let Some(version) = out.success().then(|| dlv::version_of(&out.stdout_str())).flatten() {
        return Ok(version);
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
