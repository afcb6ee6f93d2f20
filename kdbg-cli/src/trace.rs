//! `kdbg trace`: its arguments, the timeline as it is recorded, `--json`, `--report`, `--list`.

use crate::out::outln;
use std::time::Duration;

use anyhow::Context;
use camino::Utf8PathBuf;
use clap::Args;
use kdbg_core::component::Component;
use kdbg_core::ide::{dwarf, mapping};
use kdbg_core::trace::{self, tour, PathMap, TimedHit, Timeline, TraceConfig};
use serde_json::json;

use crate::config::{find_tree, state_dir, SrcArgs, TargetArgs, JSON_SCHEMA};
use crate::render::Terminal;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg trace --list                                   # the tours, and how many waypoints resolve
  kdbg trace apiserver healthz --run 'curl -s http://192.168.49.2:8443/healthz'
  kdbg trace apiserver request --run 'kubectl create namespace kdbg-tour' --report tour.html
  kdbg trace apiserver request --on-node --run 'kubectl --kubeconfig /etc/kubernetes/admin.conf create ns t' 
  kdbg trace scheduler schedule --run 'kubectl run tour --image=nginx' --for 20 --json
  kdbg trace apiserver request --stop --run 'kubectl create ns x'   # halt at the first waypoint
  kdbg trace apiserver --clear                        # remove what --stop left, let it run

The component must be under `kdbg debug` on the target. kdbg halts it briefly, sets a breakpoint
on every waypoint's function (named kdbgtrace...), lets it run, starts --run (a shell command run
on this workstation with `sh -c`, e.g. kubectl with your kubeconfig, or as root on the node with
--on-node; without --run, do the action
yourself) and records every stop, continuing at once, for --for seconds after the trigger started
and at least until it ended (a trigger still running then is waited for, up to 120 s more, and
kdbg says so). Then every breakpoint kdbg set is removed and the component runs on, and the stops
print as a table: order, time since the trigger, goroutine, waypoint (numbered from 1), file:line
in your tree, captured values. A trigger that fails makes kdbg trace fail. With --stop the breakpoints stay and the component stays halted at the first
hit for your IDE; `kdbg trace COMPONENT --clear` (or `clearall` in `dlv connect`) removes them.")]
pub struct TraceArgs {
    /// The component under debug: apiserver, scheduler, controller-manager (cm), kubelet, proxy.
    #[arg(value_name = "COMPONENT", required_unless_present = "list")]
    pub component: Option<String>,
    /// The tour (`kdbg trace --list` shows them).
    #[arg(value_name = "TOUR", required_unless_present_any = ["list", "clear"])]
    pub tour: Option<String>,
    /// List the tours (and, for components under debug on the target, how many waypoints resolve).
    #[arg(long, conflicts_with_all = ["run", "stop", "clear", "report"])]
    pub list: bool,
    /// A shell command run on this workstation (`sh -c`) once the breakpoints are set.
    #[arg(long, value_name = "CMD")]
    pub run: Option<String>,
    /// Run --run on the node instead, as root through kdbg's transport (e.g. `kubectl
    /// --kubeconfig /etc/kubernetes/admin.conf ...` on a kubeadm control-plane node).
    #[arg(long, requires = "run")]
    pub on_node: bool,
    /// Seconds to record after the trigger starts.
    #[arg(long = "for", value_name = "SECONDS", default_value_t = 10, value_parser = crate::config::seconds())]
    pub collect: u64,
    /// Real breakpoints: halt at the first waypoint hit and leave them for the IDE.
    #[arg(long)]
    pub stop: bool,
    /// Remove the breakpoints a `--stop` left and let the component run.
    #[arg(long, conflicts_with_all = ["run", "stop", "report"])]
    pub clear: bool,
    /// Write the timeline as a self-contained HTML page (sequence diagram, source lines, VSCode links).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<Utf8PathBuf>,
    /// Print the timeline as one JSON object (stdout) instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub src: SrcArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: TraceArgs, verbose: bool) -> anyhow::Result<()> {
    if args.list {
        return list(&args);
    }
    let comp = Component::lookup(args.component.as_deref().unwrap_or_default())?;
    let node = args.target.connect()?;
    let state = state_dir();
    if args.clear {
        let cleared = trace::clear(&*node, comp, state.as_deref())?;
        outln!("cleared {} kdbg breakpoint(s) on {}; it runs", cleared.len(), comp.name);
        return Ok(());
    }
    let name = args.tour.as_deref().unwrap_or_default();
    let tour = tour::find(comp.name, name)
        .ok_or_else(|| trace::TraceError::UnknownTour { component: comp.name.into(), tour: name.into() })?;
    let term = Terminal::new(verbose);
    let config = TraceConfig {
        component: comp,
        tour,
        trigger: args.run.clone(),
        trigger_on_node: args.on_node,
        collect: Duration::from_secs(args.collect),
        stop: args.stop,
        paths: paths(&args.src, comp, &term),
        state_dir: state.as_deref(),
        interrupt: Some(crate::watch::stop_on_signals()),
    };
    if !args.json {
        outln!("tour {} of {} on {}: {}", config.tour.name, comp.name, node.describe(), config.tour.story);
    }
    // The session's lease is kept for as long as the trace runs. The table is printed once
    // recorded, its columns as wide as their contents.
    let timeline = kdbg_core::session::lease::keeping(&*node, || trace::trace(&*node, &config, &term, &mut |_| {}))
        .with_context(|| format!("failed to trace {} {}", comp.name, config.tour.name))?;
    if let Some(file) = &args.report {
        std::fs::write(file, trace::report::html(&timeline)).with_context(|| format!("failed to write {file}"))?;
    }
    if args.json {
        outln!("{}", json!({ "schema": JSON_SCHEMA, "timeline": timeline }));
    } else {
        for row in table(&timeline.hits) {
            outln!("{row}");
        }
        summary(&timeline, comp, args.report.as_ref());
    }
    trigger_failed(&timeline)
}

/// The stops as a table whose columns fit their contents, so CAPTURED lines up:
/// `#  +MS  GOROUTINE  WAYPOINT  WHERE  CAPTURED`.
fn table(hits: &[TimedHit]) -> Vec<String> {
    let header = ["#", "+MS", "GOROUTINE", "WAYPOINT", "WHERE", "CAPTURED"].map(String::from);
    let mut rows = vec![header];
    for h in hits {
        let captured: Vec<String> = h.captures.iter().map(|c| format!("{}={}", c.expr, c.value)).collect();
        rows.push([
            h.seq.to_string(),
            format!("+{}", h.ms),
            format!("g{}", h.goroutine),
            format!("{}. {}", h.waypoint, h.waypoint_name),
            format!("{}:{}", h.shown_file(), h.line),
            captured.join(" "),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let w: Vec<usize> = (0..5).map(width).collect();
    rows.iter()
        .map(|r| {
            let line = format!(
                "{:>w0$} {:>w1$} {:>w2$}  {:<w3$}  {:<w4$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            );
            line.trim_end().to_string()
        })
        .collect()
}

/// A trigger that failed fails the trace (after the breakpoints were removed), with its status
/// and the end of what it printed.
fn trigger_failed(t: &Timeline) -> anyhow::Result<()> {
    let Some(tr) = &t.trigger else { return Ok(()) };
    match tr.exit_code {
        Some(code) if code != 0 => anyhow::bail!(
            "the trigger `{}` failed (exit {code}){}\n  fix: run the command by itself to see why; the stops it reached were recorded and kdbg's breakpoints are removed",
            tr.command,
            tail(&tr.output).map(|t| format!(":\n{t}")).unwrap_or_default()
        ),
        _ => Ok(()),
    }
}

/// The last lines of what a trigger printed, indented (`None`: it printed nothing).
fn tail(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    (!last.is_empty()).then(|| last.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"))
}

fn summary(t: &Timeline, comp: &Component, report: Option<&Utf8PathBuf>) {
    let total = t.tour.waypoints.len();
    let seen = {
        let mut w: Vec<usize> = t.hits.iter().map(|h| h.waypoint).collect();
        w.sort_unstable();
        w.dedup();
        w.len()
    };
    outln!("{} stops; {seen} of {total} waypoints seen, {} resolved", t.hits.len(), t.resolved.len());
    for u in &t.unresolved {
        outln!("not traced: {}. {} ({})", u.waypoint, u.name, u.why);
    }
    if let Some(tr) = &t.trigger {
        let code = tr.exit_code.map_or("still running".into(), |c| format!("exit {c}"));
        outln!("trigger `{}`: {code}", tr.command);
    }
    outln!("(+MS: since the trigger started; mostly Delve stopping and resuming at each stop, not the component's latency)");
    if let Some(r) = report {
        outln!("report: {r}");
    }
    if t.left_set.is_empty() {
        outln!("breakpoints removed; {} runs on", comp.name);
    } else {
        let alias = comp.aliases.first().copied().unwrap_or(comp.name);
        outln!(
            "{} halted at the first hit with {} kdbg breakpoint(s) set: attach your IDE; `kdbg trace {alias} --clear` removes them",
            comp.name,
            t.left_set.len()
        );
    }
}

/// The IDE's path rules from the tree's build of `comp`; none (recorded paths shown) without one.
/// The standard library is read from the GOROOT of the Go kdbg selects (`--go`, ...).
fn paths(src: &SrcArgs, comp: &Component, term: &Terminal) -> PathMap {
    use kdbg_core::report::Reporter;
    let (map, warnings) = path_map(src, comp);
    for w in warnings {
        term.warn(w);
    }
    map
}

/// [`paths`] and what it has to warn about, each with its reason.
fn path_map(src: &SrcArgs, comp: &Component) -> (PathMap, Vec<String>) {
    let mut warnings = Vec::new();
    let tree = find_tree(src);
    let root = tree.as_ref().ok().map(|t| t.root.as_path());
    let goroot = trace::goroot(root, src.go.clone())
        .map_err(|e| warnings.push(format!("standard-library files are shown as recorded, without source: {e}")))
        .ok();
    let tree = match tree {
        Ok(tree) => tree,
        Err(e) => {
            warnings
                .push(format!("kubernetes file names are shown as the binary recorded them, without source: {e:#}"));
            return (PathMap { goroot, ..PathMap::default() }, warnings);
        }
    };
    let binary = kdbg_core::build::binary_path(&tree, &src.build_config(kdbg_core::flags::Profile::Debug), comp.name);
    match binary.map_err(|e| e.to_string()).and_then(|b| dwarf::recorded_sources(&b).map_err(|e| format!("{b}: {e}"))) {
        Ok(recorded) => {
            (PathMap { rules: mapping::mapping(&recorded, &tree.root).rules, root: tree.root, goroot }, warnings)
        }
        Err(e) => {
            warnings.push(format!(
                "cannot read the source paths the binary recorded ({e}): file names are shown as recorded"
            ));
            (PathMap { root: tree.root, rules: Vec::new(), goroot }, warnings)
        }
    }
}

fn list(args: &TraceArgs) -> anyhow::Result<()> {
    let tours = tour::all();
    let node = args.target.connect().ok();
    let state = state_dir();
    let mut counts = std::collections::BTreeMap::new();
    if let Some(node) = &node {
        for c in kdbg_core::component::COMPONENTS {
            let of: Vec<&tour::Tour> = tours.iter().filter(|t| t.component == c.name).collect();
            if of.is_empty() {
                continue;
            }
            if let Ok(n) = trace::resolvable(&**node, c, &of, state.as_deref()) {
                for (t, n) in of.iter().zip(n) {
                    counts.insert((t.component.clone(), t.name.clone()), n);
                }
            }
        }
    }
    if args.json {
        let rows: Vec<_> = tours
            .iter()
            .map(|t| {
                json!({ "tour": t.name, "component": t.component, "story": t.story, "waypoints": t.waypoints.len(),
                "resolved": counts.get(&(t.component.clone(), t.name.clone())) })
            })
            .collect();
        outln!("{}", json!({ "schema": JSON_SCHEMA, "tours": rows }));
        return Ok(());
    }
    outln!("{:<12} {:<24} {:<10} STORY", "TOUR", "COMPONENT", "RESOLVE");
    for t in &tours {
        let n = t.waypoints.len();
        let resolve = match counts.get(&(t.component.clone(), t.name.clone())) {
            Some(r) => format!("{r}/{n}"),
            None => format!("-/{n}"),
        };
        outln!("{:<12} {:<24} {resolve:<10} {}", t.name, t.component, t.story);
    }
    if counts.is_empty() {
        outln!("(RESOLVE: waypoints found in the binary of a component under `kdbg debug` on the target; none is)");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
