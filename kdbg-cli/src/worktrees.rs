//! `kdbg worktrees`: the git worktrees `--at` and `--match-node` made of the clone, with their
//! size, last use and the sessions that use them; `prune` removes those unused for a while.

use crate::out::outln;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{Args, Subcommand};
use kdbg_core::session::journal::{now, since};
use kdbg_core::worktree;
use serde_json::json;

use crate::config::{state_dir, tree_root, SrcArgs, JSON_SCHEMA};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg worktrees                          # the worktrees of the clone you are in
  kdbg worktrees --src ~/go/src/k8s.io/kubernetes --json
  kdbg worktrees prune                    # those not used for 30 days
  kdbg worktrees prune --older-than 7 --dry-run

Worktrees are made by `--at REF` and `--match-node` (build, deploy, debug, watch, cache-key);
kdbg lists and prunes only those it made. One that a debug session started from this workstation
still uses (until `kdbg restore`), one a kdbg is building in, and one with changes of your own
are never pruned.")]
pub struct WorktreesArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The kubernetes clone (or one of its worktrees) [default: as for build].
    #[arg(long, value_name = "DIR", global = true)]
    pub src: Option<Utf8PathBuf>,
    /// Print one JSON document (schema 1, a `worktrees` array) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// List them (the default).
    List,
    /// Remove those not used for DAYS days.
    Prune {
        /// Days since the last build, deploy or debug from a worktree.
        #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(..=36500))]
        older_than: u64,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: WorktreesArgs, _verbose: bool) -> anyhow::Result<()> {
    let src = SrcArgs {
        src: args.src,
        kube_version: None,
        go: None,
        via_make: false,
        at: None,
        worktrees: None,
        platform: None,
        static_cgo: false,
    };
    let root = tree_root(&src)?;
    let clone = worktree::clone_of(&root)?;
    let state = state_dir();
    match args.action.unwrap_or(Action::List) {
        Action::List => {
            let listed = worktree::list(&clone, state.as_deref())?;
            if args.json {
                outln!("{}", json!({ "schema": JSON_SCHEMA, "clone": clone, "worktrees": listed }));
            } else if listed.is_empty() {
                outln!("no kdbg worktrees of {clone} (make one with --at REF or --match-node)");
            } else {
                outln!("{:<22} {:<13} {:>9} {:<12} PATH", "REF", "COMMIT", "SIZE", "LAST USED");
                for w in &listed {
                    let used = since(w.record.last_used, now()).replace("since ", "") + " ago";
                    let commit = &w.record.commit[..12.min(w.record.commit.len())];
                    outln!("{:<22} {commit:<13} {:>9} {used:<12} {}", w.record.git_ref, size(w.size), w.path);
                    for u in &w.in_use {
                        outln!("{:<22} in use: {u}", "");
                    }
                }
            }
        }
        Action::Prune { older_than, dry_run } => {
            let age = Duration::from_secs(older_than * 24 * 3600);
            let pruned = worktree::prune(&clone, state.as_deref(), age, dry_run)?;
            if args.json {
                outln!("{}", json!({ "schema": JSON_SCHEMA, "dry_run": dry_run, "worktrees": pruned }));
                return Ok(());
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            for p in &pruned {
                match &p.kept {
                    None => outln!("{verb} {} ({})", p.path, p.git_ref),
                    Some(why) => outln!("kept {} ({}): {why}", p.path, p.git_ref),
                }
            }
            if pruned.is_empty() {
                outln!("no kdbg worktree of {clone} unused for {older_than} days");
            }
        }
    }
    Ok(())
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.0} MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} kB", b / 1024),
    }
}
