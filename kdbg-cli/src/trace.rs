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
and at least until it ended. Then every breakpoint kdbg set is removed and the component runs on.
Each stop prints as: order, time since the trigger, goroutine, waypoint, file:line in your tree,
captured values. With --stop the breakpoints stay and the component stays halted at the first
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
        outln!("{:>3} {:>8} {:>8}  {:<22} {:<40} CAPTURED", "#", "+MS", "GOROUTINE", "WAYPOINT", "WHERE");
    }
    let json = args.json;
    // The session's lease is kept for as long as the trace runs.
    let timeline = kdbg_core::session::lease::keeping(&*node, || {
        trace::trace(&*node, &config, &term, &mut |h| {
            if !json {
                outln!("{}", line(h));
            }
        })
    })
    .with_context(|| format!("failed to trace {} {}", comp.name, config.tour.name))?;
    if let Some(file) = &args.report {
        std::fs::write(file, trace::report::html(&timeline)).with_context(|| format!("failed to write {file}"))?;
    }
    if json {
        outln!("{}", json!({ "schema": JSON_SCHEMA, "timeline": timeline }));
    } else {
        summary(&timeline, comp, args.report.as_ref());
    }
    Ok(())
}

/// `  3    +12 g42       mux                    /tree/pkg/x.go:29    r.URL.Path="/healthz"`
fn line(h: &TimedHit) -> String {
    let captured: Vec<String> = h.captures.iter().map(|c| format!("{}={}", c.expr, c.value)).collect();
    let at = format!("{}:{}", h.shown_file(), h.line);
    format!(
        "{:>3} {:>8} {:>9}  {:<22} {:<40} {}",
        h.seq,
        format!("+{}", h.ms),
        format!("g{}", h.goroutine),
        h.waypoint_name,
        at,
        captured.join(" ")
    )
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
fn paths(src: &SrcArgs, comp: &Component, term: &Terminal) -> PathMap {
    use kdbg_core::report::Reporter;
    let goroot =
        kdbg_core::host::Cmd::new("go").args(["env", "GOROOT"]).read().ok().map(|g| Utf8PathBuf::from(g.trim()));
    let Ok(tree) = find_tree(src) else {
        term.warn(
            "no kubernetes tree found: file names are shown as the binary recorded them (--src DIR maps them)".into(),
        );
        return PathMap { goroot, ..PathMap::default() };
    };
    let binary = kdbg_core::build::binary_path(&tree, &src.build_config(kdbg_core::flags::Profile::Debug), comp.name);
    match binary.map_err(|e| e.to_string()).and_then(|b| dwarf::recorded_sources(&b).map_err(|e| format!("{b}: {e}"))) {
        Ok(recorded) => PathMap { rules: mapping::mapping(&recorded, &tree.root).rules, root: tree.root, goroot },
        Err(e) => {
            term.warn(format!(
                "cannot read the source paths the binary recorded ({e}): file names are shown as recorded"
            ));
            PathMap { root: tree.root, rules: Vec::new(), goroot }
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
