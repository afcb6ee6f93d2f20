//! One function per subcommand: turn arguments into kdbg-core calls and print the results.

use crate::out::{errln, out, outln};
use kdbg_core::build;
use kdbg_core::component::{Launch, COMPONENTS};
use serde_json::json;

use crate::args::{Arguments, Command};
use crate::config::{Resolved, Selection, JSON_SCHEMA};
use crate::render::Terminal;

pub fn run(a: Arguments) -> anyhow::Result<()> {
    let term = Terminal::new(a.verbose);
    match a.command {
        Command::Components => components(),
        Command::Deploy(args) => crate::deploy::deploy(args, a.verbose),
        Command::Doctor(args) => crate::deploy::doctor(args, a.verbose),
        Command::Debug(args) => crate::session::debug(args, a.verbose),
        Command::Status(args) => crate::session::status(args, a.verbose),
        Command::Restore(args) => crate::session::restore(args, a.verbose),
        Command::Renew(args) => crate::lease::renew(args),
        Command::Vscode(args) => crate::vscode::run(args, a.verbose),
        Command::Watch(args) => crate::watch::run(args, a.verbose),
        Command::Trace(args) => crate::trace::run(args, a.verbose),
        Command::Worktrees(args) => crate::worktrees::run(args, a.verbose),
        Command::Build { sel, json, push } => build(sel, json, push, &term),
        Command::Cache(cmd) => crate::cache::run(cmd, &term),
        Command::Plan { sel, json, debug, no_ide, local } => plan(sel, json, debug, no_ide, local),
        Command::CacheKey { sel, explain, json } => cache_key(sel, explain, json),
    }
}

/// `kdbg build`: one line per component, or `--json`; with `--push`, the builds published.
pub fn build(sel: Selection, json: bool, push: bool, term: &Terminal) -> anyhow::Result<()> {
    let Resolved { tree, comps, build: mut config } = sel.resolve()?;
    if push {
        let cache = config.cache.as_mut().ok_or(build::BuildError::NoCache)?;
        cache.push = true;
    }
    let outcome = build::build(&tree, &comps, &config, term)?;
    print_build(&outcome, json);
    if !outcome.push_failed.is_empty() {
        anyhow::bail!(
            "{} of the builds could not be pushed (see above); the local builds are fine",
            outcome.push_failed.len()
        );
    }
    Ok(())
}

/// The build's result lines (or `--json`), then what its pushes did.
fn print_build(outcome: &build::BuildOutcome, json: bool) {
    if json {
        outcome.pushed.iter().for_each(|l| errln!("{l}"));
        outln!("{}", json!({ "schema": JSON_SCHEMA, "via": outcome.via, "components": outcome.components }));
        return;
    }
    for b in &outcome.components {
        let how = match b.via {
            build::Via::UpToDate => "up to date",
            build::Via::Replayed => "replayed",
            build::Via::Made => "built",
            build::Via::Pulled => "pulled",
        };
        outln!("{:<24} {how:<10} {}  sha256:{}", b.name, b.binary, &b.sha256[..16.min(b.sha256.len())]);
    }
    outcome.pushed.iter().for_each(|l| outln!("{l}"));
}

/// `kdbg plan`: the build's plan (with `--debug`, the whole session's), drawn or `--json`.
fn plan(sel: Selection, json: bool, debug: bool, no_ide: bool, local: bool) -> anyhow::Result<()> {
    let Resolved { tree, comps, build: config } = sel.resolve()?;
    let mut plan = build::plan(&tree, &comps, &config)?;
    if debug {
        plan = kdbg_core::session::debug::full_plan(plan, &comps, !local, !no_ide);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&plan.in_order()?)?);
    } else {
        out!("{}", plan.render());
    }
    Ok(())
}

/// `kdbg cache-key`: the CI key (or `--json` per component), and with `--explain` why each
/// component's key changed, on stderr.
fn cache_key(sel: Selection, explain: bool, json: bool) -> anyhow::Result<()> {
    let Resolved { tree, comps, build: config } = sel.resolve()?;
    let prepared = build::prepare(&tree, &config)?;
    let mut keys = build::keys(&tree, &comps, &prepared)?;
    for w in &keys.warnings {
        errln!("warning: {w}");
    }
    let ci = keys.ci_key(&prepared.toolchain.identity);
    if json {
        let comps: Vec<_> = keys
            .components
            .iter()
            .map(|k| json!({ "name": k.component.name, "key": k.key, "changed": k.changed, "built": !k.never_built, "hit": k.hit }))
            .collect();
        outln!("{}", json!({ "schema": JSON_SCHEMA, "key": ci, "components": comps }));
    } else {
        outln!("{ci}");
    }
    if explain {
        let cgo = |c| if prepared.cgo.enabled(c) { "with cgo" } else { "static" };
        for k in &keys.components {
            errln!("{} (for {}, {}):", k.component.name, prepared.platform, cgo(k.component));
            for line in kdbg_core::plan::why(k) {
                errln!("  {line}");
            }
            for line in kdbg_core::cache::rewritten::explain(&keys.state, k) {
                errln!("  {line}");
            }
        }
    }
    // Keep the refreshed stat index, so the next call is fast; a read-only tree is fine.
    if keys.state.index.dirty {
        let _ = keys.state.save(&prepared.state_dir);
    }
    Ok(())
}

fn components() -> anyhow::Result<()> {
    outln!("{:<26} {:<28} {:<30} DLV PORT", "COMPONENT", "ALIASES", "RUNS AS");
    for c in COMPONENTS {
        let runs = match c.launch {
            Launch::StaticPod { manifest } => format!("static pod {manifest}"),
            Launch::Systemd { unit } => format!("systemd {unit}"),
            Launch::DaemonSet { namespace, name } => format!("daemonset {namespace}/{name}"),
        };
        outln!("{:<26} {:<28} {:<30} {}", c.name, c.aliases.join(", "), runs, c.default_port);
    }
    Ok(())
}
