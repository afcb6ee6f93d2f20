//! One function per subcommand: turn arguments into kdbg-core calls and print the results.

use anyhow::Context;
use camino::Utf8PathBuf;
use kdbg_core::build::{self, BuildConfig};
use kdbg_core::component::{Component, Launch, COMPONENTS};
use kdbg_core::tree::{SourceTree, TreeSearch};
use serde_json::json;

use crate::args::{Arguments, Command, Selection, SrcArgs};
use crate::render::Terminal;

/// Version of every `--json` document kdbg prints.
pub const JSON_SCHEMA: u32 = 1;

pub fn run(a: Arguments) -> anyhow::Result<()> {
    let term = Terminal::new(a.verbose);
    match a.command {
        Command::Components => components(),
        Command::Deploy(args) => crate::deploy::deploy(args, a.verbose),
        Command::Doctor(args) => crate::deploy::doctor(args, a.verbose),
        Command::Debug(args) => crate::session::debug(args, a.verbose),
        Command::Status(args) => crate::session::status(args, a.verbose),
        Command::Restore(args) => crate::session::restore(args, a.verbose),
        Command::Vscode(args) => crate::vscode::run(args, a.verbose),
        Command::Watch(args) => crate::watch::run(args, a.verbose),
        Command::Trace(args) => crate::trace::run(args, a.verbose),
        Command::Build { sel, json } => {
            let (tree, comps, config) = select(&sel)?;
            let outcome = build::build(&tree, &comps, &config, &term)?;
            if json {
                println!("{}", json!({ "schema": JSON_SCHEMA, "via": outcome.via, "components": outcome.components }));
            } else {
                for b in &outcome.components {
                    let how = match (b.hit, outcome.via) {
                        (true, _) => "up to date",
                        (false, Some("replay")) => "replayed",
                        (false, _) => "built",
                    };
                    println!("{:<24} {how:<10} {}  sha256:{}", b.name, b.binary, &b.sha256[..16.min(b.sha256.len())]);
                }
            }
            Ok(())
        }
        Command::Plan { sel, json, debug, no_ide, local } => {
            let (tree, comps, config) = select(&sel)?;
            let mut plan = build::plan(&tree, &comps, &config)?;
            if debug {
                plan = kdbg_core::session::debug::full_plan(plan, &comps, !local, !no_ide);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&plan.in_order()?)?);
            } else {
                print!("{}", plan.render());
            }
            Ok(())
        }
        Command::CacheKey { sel, explain, json } => {
            let (tree, comps, config) = select(&sel)?;
            let prepared = build::prepare(&tree, &config)?;
            let mut keys = build::keys(&tree, &comps, &prepared)?;
            for w in &keys.warnings {
                eprintln!("warning: {w}");
            }
            let ci = keys.ci_key(&prepared.toolchain.identity);
            if json {
                let comps: Vec<_> = keys
                    .components
                    .iter()
                    .map(|k| json!({ "name": k.component.name, "key": k.key, "changed": k.changed, "built": !k.never_built, "hit": k.hit }))
                    .collect();
                println!("{}", json!({ "schema": JSON_SCHEMA, "key": ci, "components": comps }));
            } else {
                println!("{ci}");
            }
            if explain {
                for k in &keys.components {
                    eprintln!("{}:", k.component.name);
                    for line in kdbg_core::plan::why(k) {
                        eprintln!("  {line}");
                    }
                    for line in kdbg_core::cache::rewritten::explain(&keys.state, k) {
                        eprintln!("  {line}");
                    }
                }
            }
            // Keep the refreshed stat index, so the next call is fast; a read-only tree is fine.
            if keys.state.index.dirty {
                let _ = keys.state.save(&tree.state_dir());
            }
            Ok(())
        }
    }
}

fn components() -> anyhow::Result<()> {
    println!("{:<26} {:<28} {:<30} DLV PORT", "COMPONENT", "ALIASES", "RUNS AS");
    for c in COMPONENTS {
        let runs = match c.launch {
            Launch::StaticPod { manifest } => format!("static pod {manifest}"),
            Launch::Systemd { unit } => format!("systemd {unit}"),
            Launch::DaemonSet { namespace, name } => format!("daemonset {namespace}/{name}"),
        };
        println!("{:<26} {:<28} {:<30} {}", c.name, c.aliases.join(", "), runs, c.default_port);
    }
    Ok(())
}

/// Resolves components first (a typo should not wait for tree inspection), then the tree.
fn select(sel: &Selection) -> anyhow::Result<(SourceTree, Vec<&'static Component>, BuildConfig)> {
    let comps = Component::resolve(&sel.components)?;
    let tree = find_tree(&sel.src)?;
    let profile = sel.profile();
    Ok((tree, comps, sel.src.build_config(profile)))
}

pub fn find_tree(src: &SrcArgs) -> anyhow::Result<SourceTree> {
    let env_path = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
    let cwd = std::env::current_dir().ok().and_then(|d| Utf8PathBuf::from_path_buf(d).ok());
    let gopath = env_path("GOPATH").or_else(|| env_path("HOME").map(|h| h.join("go")));
    let search = TreeSearch {
        explicit: src.src.clone(),
        env_src: env_path("KDBG_SRC"),
        cwd,
        gopath,
        kube_version: src.kube_version.clone(),
        version_file: env_path("KUBE_GIT_VERSION_FILE"),
    };
    let tree = SourceTree::find(&search).context("failed to find the kubernetes source tree")?;
    Ok(tree)
}
