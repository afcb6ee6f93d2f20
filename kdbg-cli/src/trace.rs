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
  kdbg trace --list                                   # the tours, their files, what resolves
  kdbg trace --tour mine.json --run 'kubectl get ns'  # your own tour (README: Writing a tour)
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
    /// With --tour FILE, optional (the file names it; if given, it must match).
    #[arg(value_name = "COMPONENT", required_unless_present_any = ["list", "tour_file"])]
    pub component: Option<String>,
    /// The tour (`kdbg trace --list` shows them); with --tour FILE, optional (if given, it must match).
    #[arg(value_name = "TOUR", required_unless_present_any = ["list", "clear", "tour_file"])]
    pub tour: Option<String>,
    /// List the tours, where each came from (shipped, your file) and, for components under debug
    /// on the target, how many waypoints resolve (naming those that do not).
    #[arg(long, conflicts_with_all = ["run", "stop", "clear", "report"])]
    pub list: bool,
    /// A tour file of your own (README, "Writing a tour"); it overrides a tour of the same
    /// component and name. Tours are also read from `tours/*.json` in kdbg's configuration directory.
    #[arg(long = "tour", value_name = "FILE.json", conflicts_with = "clear")]
    pub tour_file: Option<Utf8PathBuf>,
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
        return list::list(&args);
    }
    let term = Terminal::new(verbose);
    let picked = if args.clear { None } else { Some(pick(&args, &term)?) };
    let comp = match &picked {
        Some(l) => Component::lookup(&l.tour.component)?,
        None => Component::lookup(args.component.as_deref().unwrap_or_default())?,
    };
    let node = args.target.connect()?;
    let state = state_dir();
    if args.clear {
        let cleared = trace::clear(&*node, comp, state.as_deref())?;
        outln!("cleared {} kdbg breakpoint(s) on {}; it runs", cleared.len(), comp.name);
        return Ok(());
    }
    let listed = picked.expect("a tour unless --clear");
    let config = TraceConfig {
        component: comp,
        tour: listed.tour.clone(),
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
        let mut doc = json!({ "schema": JSON_SCHEMA, "timeline": timeline });
        if let tour::Origin::File(f) = &listed.origin {
            doc["tour_file"] = json!(f);
        }
        outln!("{doc}");
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
    crate::render::columns(&rows, &[true, true, true], &[" ", " ", "  ", "  ", "  "])
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

/// The tour to trace: the --tour file's (COMPONENT and TOUR, if given, must match it), else
/// TOUR of COMPONENT among the shipped tours and the user's; the configuration directory's bad
/// files are warned about, a user tour's file (and what it overrides) is said.
fn pick(args: &TraceArgs, term: &Terminal) -> anyhow::Result<tour::Listed> {
    use kdbg_core::report::Reporter;
    let dir = kdbg_core::cache::remote::settings::tours_dir();
    let catalogue = tour::Catalogue::load(dir.as_deref(), args.tour_file.as_deref())?;
    for bad in &catalogue.bad {
        term.warn(format!("not a tour, skipped: {bad}"));
    }
    let wanted = args.component.as_deref().map(Component::lookup).transpose()?;
    let listed = match &args.tour_file {
        Some(file) => {
            let origin = tour::Origin::File(file.clone());
            let l = catalogue.tours.iter().find(|l| l.origin == origin).expect("the --tour file is in the catalogue");
            if let Some(c) = wanted.filter(|c| c.name != l.tour.component) {
                anyhow::bail!("{file} is a tour of {}, not of {}\n  fix: drop COMPONENT (the file names it), or correct the file's `component`", l.tour.component, c.name);
            }
            if let Some(name) = args.tour.as_deref().filter(|n| *n != l.tour.name) {
                anyhow::bail!("{file} is the tour {}, not {name}\n  fix: drop TOUR (the file names it), or correct the file's `name`", l.tour.name);
            }
            l.clone()
        }
        None => {
            let comp = wanted.expect("COMPONENT is required without --tour");
            let name = args.tour.as_deref().unwrap_or_default();
            catalogue
                .find(comp.name, name)
                .cloned()
                .ok_or_else(|| trace::TraceError::UnknownTour { component: comp.name.into(), tour: name.into() })?
        }
    };
    if let tour::Origin::File(f) = &listed.origin {
        term.info(
            listed
                .notice()
                .unwrap_or_else(|| format!("tour {} of {} from {f}", listed.tour.name, listed.tour.component)),
        );
    }
    Ok(listed)
}

mod list;
#[cfg(test)]
mod tests;
