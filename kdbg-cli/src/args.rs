//! Command-line arguments (clap) and their one-time conversion into kdbg-core's plain config.

use clap::{Parser, Subcommand};

use crate::config::Selection;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (the message says what went wrong and what to do)
  2  bad usage (unknown flag, unknown component)
  3  the build failed (make's last lines are shown)
  4  the target node could not be reached or refused an action";

#[derive(Debug, Parser)]
#[command(
    name = "kdbg",
    version,
    about = "Debug Kubernetes components built from your source tree, on your cluster, in one command",
    after_help = EXIT_CODES
)]
pub struct Arguments {
    #[command(subcommand)]
    pub command: Command,
    /// Show every line of make's output and more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the components kdbg knows, their aliases and how they run on a node.
    Components,
    /// Build components with debug information, rebuilding only what changed.
    #[command(
        after_help = "Examples:\n  kdbg build apiserver\n  kdbg build apiserver scheduler --json\n  kdbg build cm --optimized --src ~/go/src/k8s.io/kubernetes\n  kdbg build apiserver kubelet --platform linux/arm64 --static   # for arm64 nodes, kubelet without cgo\n  kdbg build apiserver --cache oci://localhost:5001/kdbg        # pull the team's build if it has this key\n  kdbg build apiserver scheduler --push --cache oci://ghcr.io/ORG/kdbg   # CI: publish the builds"
    )]
    Build {
        #[command(flatten)]
        sel: Selection,
        /// Print one JSON object with each component's key, hit, binary, sha256 and via.
        #[arg(long)]
        json: bool,
        /// Push the builds to the team cache (--cache) after building: what CI runs.
        #[arg(long)]
        push: bool,
    },
    /// The team cache on an OCI registry: publish builds, see what it holds for this tree.
    Cache(crate::cache::CacheCommand),
    /// Show what kdbg would do, as a graph of steps, without doing it.
    #[command(
        after_help = "Examples:\n  kdbg plan apiserver\n  kdbg plan apiserver --debug        # the whole debug session as a graph\n  kdbg plan apiserver scheduler --json"
    )]
    Plan {
        #[command(flatten)]
        sel: Selection,
        #[arg(long)]
        json: bool,
        /// Also show the steps of `kdbg debug`: capture args, copy (binaries, dlv), stop, launch, tunnel, IDE.
        #[arg(long)]
        debug: bool,
        /// With --debug: the plan of `kdbg debug --no-ide` (no write-ide step).
        #[arg(long, requires = "debug")]
        no_ide: bool,
        /// With --debug: the plan for `--target local` (no tunnel steps).
        #[arg(long, requires = "debug")]
        local: bool,
    },
    /// Print a stable cache key for CI (same for any checkout of the same sources).
    #[command(
        name = "cache-key",
        after_help = "Examples:\n  kdbg cache-key apiserver\n  kdbg cache-key apiserver --explain   # which inputs changed since the last build\n  kdbg cache-key apiserver scheduler --json\n  kdbg cache-key apiserver --platform linux/arm64   # the key of an arm64 build"
    )]
    CacheKey {
        #[command(flatten)]
        sel: Selection,
        /// Name the inputs that changed since the last build.
        #[arg(long)]
        explain: bool,
        #[arg(long)]
        json: bool,
    },
    /// Build components and put them and dlv on the node, sending only what changed.
    Deploy(crate::deploy::DeployArgs),
    /// Check that this machine and the target node have what kdbg needs; each failure with its fix.
    Doctor(crate::deploy::DoctorArgs),
    /// Run components built from your tree under Delve on the node, reachable through a tunnel.
    Debug(crate::session::DebugArgs),
    /// Show what is under debug on the node: Delve's state, ports, since when.
    Status(crate::session::StatusArgs),
    /// Put the node back as it was before `kdbg debug` (idempotent; from any workstation).
    Restore(crate::session::RestoreArgs),
    /// Push the session's lease out again: the node puts itself back only when it passes unrenewed.
    Renew(crate::lease::RenewArgs),
    /// Write .vscode/launch.json and tasks.json entries that attach to components under dlv.
    Vscode(crate::vscode::VscodeArgs),
    /// Rebuild, recopy and relaunch components under debug whenever their sources change.
    Watch(crate::watch::WatchArgs),
    /// List the git worktrees `--at` and `--match-node` made (size, last use), and prune old ones.
    Worktrees(crate::worktrees::WorktreesArgs),
    /// Record a guided tour of how a component under debug handles one action (timeline, HTML report).
    Trace(crate::trace::TraceArgs),
}
