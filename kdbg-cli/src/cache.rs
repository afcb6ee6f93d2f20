//! `kdbg cache push` and `kdbg cache ls`: the team cache on an OCI registry.

use crate::out::outln;
use clap::{Args, Subcommand};
use kdbg_core::build;
use kdbg_core::cache::remote::megabytes;
use serde_json::json;

use crate::config::{Resolved, Selection, JSON_SCHEMA};
use crate::render::Terminal;

#[derive(Debug, Args)]
pub struct CacheCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Build what is stale and publish the components' current builds, each under its key;
    /// a build the cache already has is not sent again.
    #[command(
        after_help = "Examples:\n  kdbg cache push apiserver scheduler controller-manager --cache oci://ghcr.io/ORG/kdbg\n  KDBG_CACHE=oci://localhost:5001/kdbg kdbg cache push kubelet proxy --platform linux/arm64 --static"
    )]
    Push {
        #[command(flatten)]
        sel: Selection,
        #[arg(long)]
        json: bool,
    },
    /// Show, for this tree's current keys, which components the cache has: size, platform, who
    /// built them and when.
    #[command(
        after_help = "Examples:\n  kdbg cache ls apiserver scheduler --cache oci://localhost:5001/kdbg\n  kdbg cache ls apiserver --json"
    )]
    Ls {
        #[command(flatten)]
        sel: Selection,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: CacheCommand, term: &Terminal) -> anyhow::Result<()> {
    match cmd.action {
        Action::Push { sel, json } => crate::commands::build(sel, json, true, term),
        Action::Ls { sel, json } => ls(sel, json),
    }
}

fn ls(sel: Selection, json: bool) -> anyhow::Result<()> {
    let Resolved { tree, comps, build: config } = sel.resolve()?;
    let rows = build::list(&tree, &comps, &config)?;
    if json {
        outln!("{}", json!({ "schema": JSON_SCHEMA, "components": rows }));
        return Ok(());
    }
    outln!(
        "{:<24} {:<46} {:<6} {:>9} {:<12} {:<20} CREATED",
        "COMPONENT",
        "TAG",
        "CACHED",
        "SIZE",
        "PLATFORM",
        "BUILT BY"
    );
    for r in &rows {
        let cached = match (&r.facts, &r.problem) {
            (Some(_), _) => "yes",
            (None, Some(_)) => "bad",
            (None, None) => "no",
        };
        let (size, platform, by, created) = match &r.facts {
            Some(f) => (
                megabytes(r.compressed.unwrap_or(f.size)),
                f.platform.as_str(),
                f.built_by.as_str(),
                f.created.as_str(),
            ),
            None => ("-".into(), "-", "-", "-"),
        };
        outln!("{:<24} {:<46} {cached:<6} {size:>9} {platform:<12} {by:<20} {created}", r.component, r.tag);
        if let Some(p) = &r.problem {
            outln!("  unusable: {p}");
        }
    }
    Ok(())
}
