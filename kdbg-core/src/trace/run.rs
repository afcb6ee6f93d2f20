//! The tracepoint loop: find the session's Delve, resolve the tour, set breakpoints, run the
//! trigger, record every stop and continue at once, then leave Delve as it was.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::tour::{self, Tour};
use super::{
    Capture, PathMap, Resolved, TimedHit, Timeline, TraceError, TriggerOutcome, Unresolved, BREAKPOINT_PREFIX,
};
use crate::component::Component;
use crate::dlv::{DlvClient, DlvRpcError, Stop, TraceBreakpoint};
use crate::host::Cmd;
use crate::node::{Node, Privilege, Tunnel};
use crate::report::Reporter;
use crate::session::{journal, tunnels};

/// How long one wait for a stop lasts before kdbg looks at the trigger and the clock again.
const SLICE: Duration = Duration::from_millis(200);
/// How long kdbg keeps collecting after `collect` for a trigger that has not ended.
const TRIGGER_GRACE: Duration = Duration::from_secs(120);

pub struct TraceConfig<'a> {
    pub component: &'static Component,
    pub tour: Tour,
    /// A shell command run (`sh -c`) once the breakpoints are set: on the workstation, or as
    /// root on the node with `trigger_on_node` (where kubeadm's admin.conf is).
    pub trigger: Option<String>,
    pub trigger_on_node: bool,
    /// How long to record after the trigger starts.
    pub collect: Duration,
    /// Leave real breakpoints and the program halted at the first hit.
    pub stop: bool,
    pub paths: PathMap,
    /// The workstation's state directory (for the tunnel `kdbg debug` left).
    pub state_dir: Option<&'a camino::Utf8Path>,
    /// Set (by Ctrl-C) to stop recording early; the breakpoints are still removed.
    pub interrupt: Option<&'a AtomicBool>,
}

/// A connection to the Delve of `component`'s session on `node`, and the tunnel it goes through.
struct Session {
    dlv: DlvClient,
    _tunnel: Option<Box<dyn Tunnel>>,
}

fn connect(
    node: &dyn Node,
    component: &Component,
    state_dir: Option<&camino::Utf8Path>,
) -> Result<Session, TraceError> {
    let journal = journal::load(node)?;
    let Some(entry) = journal.components.values().find(|e| e.component == component.name) else {
        return Err(TraceError::NotUnderDebug {
            component: component.name.into(),
            alias: component.aliases.first().copied().unwrap_or(component.name).into(),
            node: node.describe(),
        });
    };
    let kept = state_dir.and_then(|d| tunnels::load(d).ok()).unwrap_or_default().into_iter().find(|r| {
        r.node == node.describe() && r.component == entry.component && r.endpoint() == entry.endpoint() && r.alive()
    });
    let (local, tunnel) = match kept {
        Some(r) => (r.local_port, None),
        None => {
            let t = node.forward(0, &entry.endpoint())?;
            (t.local_port(), Some(t))
        }
    };
    let dlv = DlvClient::connect(&format!("127.0.0.1:{local}"), Duration::from_secs(10))?;
    Ok(Session { dlv, _tunnel: tunnel })
}

/// Clears every `kdbgtrace*` breakpoint and lets the program run (what `--stop` leaves behind).
pub fn clear(
    node: &dyn Node,
    component: &'static Component,
    state_dir: Option<&camino::Utf8Path>,
) -> Result<Vec<i64>, TraceError> {
    let mut s = connect(node, component, state_dir)?;
    settle(&mut s.dlv)?;
    let cleared = clear_ours(&mut s.dlv)?;
    s.dlv.resume()?;
    Ok(cleared)
}

/// Brings the target to a stop and consumes a `continue` answer that may still be on its way.
fn settle(dlv: &mut DlvClient) -> Result<(), DlvRpcError> {
    if dlv.state_nonblocking()?.running {
        dlv.halt()?;
    }
    match dlv.wait_stopped(Duration::from_secs(2)) {
        Ok(_) | Err(DlvRpcError::NotContinuing { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_ours(dlv: &mut DlvClient) -> Result<Vec<i64>, DlvRpcError> {
    let mut cleared = Vec::new();
    for bp in dlv.list_breakpoints()? {
        if bp.name.starts_with(BREAKPOINT_PREFIX) {
            dlv.clear_breakpoint(bp.id)?;
            cleared.push(bp.id);
        }
    }
    Ok(cleared)
}

/// Runs a tour; `on_hit` sees each stop as it is recorded (the CLI prints it).
pub fn trace(
    node: &dyn Node,
    config: &TraceConfig,
    reporter: &dyn Reporter,
    on_hit: &mut dyn FnMut(&TimedHit),
) -> Result<Timeline, TraceError> {
    let c = config.component;
    let mut s = connect(node, c, config.state_dir)?;
    let dlv = &mut s.dlv;
    let was_running = dlv.state_nonblocking()?.running;
    if was_running {
        dlv.halt()?;
    }
    let stale = clear_ours(dlv)?;
    if !stale.is_empty() {
        reporter.info(format!("cleared {} breakpoint(s) an earlier `kdbg trace --stop` left", stale.len()));
    }
    let mut timeline = Timeline {
        component: c.name.into(),
        node: node.describe(),
        tour: config.tour.clone(),
        resolved: Vec::new(),
        unresolved: Vec::new(),
        trigger: None,
        hits: Vec::new(),
        left_set: Vec::new(),
    };
    let by_id = match resolve(dlv, &config.tour, &mut timeline, reporter) {
        Ok(ids) => ids,
        Err(e) => {
            let _ = clear_ours(dlv);
            if was_running {
                let _ = dlv.resume();
            }
            return Err(e);
        }
    };
    if by_id.is_empty() {
        if was_running {
            dlv.resume()?;
        }
        return Err(TraceError::NothingResolved { component: c.name.into(), tour: config.tour.name.clone() });
    }
    let recorded = record(node, dlv, config, &by_id, &mut timeline, reporter, on_hit);
    if config.stop && recorded.as_ref().is_ok_and(|halted| *halted) {
        timeline.left_set = by_id.keys().copied().collect();
        return Ok(timeline);
    }
    // Put Delve back as it was: no kdbg breakpoint, the program running (it ran before).
    let cleanup = (|| -> Result<(), DlvRpcError> {
        settle(dlv)?;
        clear_ours(dlv)?;
        if was_running {
            dlv.resume()?;
        }
        Ok(())
    })();
    recorded?;
    cleanup?;
    Ok(timeline)
}

/// Resolves each waypoint and sets its breakpoints; returns breakpoint id → (waypoint, function).
fn resolve(
    dlv: &mut DlvClient,
    tour: &Tour,
    timeline: &mut Timeline,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<i64, (usize, String)>, TraceError> {
    let mut by_id = BTreeMap::new();
    for (i, w) in tour.waypoints.iter().enumerate() {
        let mut found = Vec::new();
        for pattern in &w.functions {
            let mut names: Vec<String> =
                dlv.list_functions(&tour::filter(pattern))?.into_iter().filter(|n| tour::matches(pattern, n)).collect();
            names.sort();
            names.dedup();
            found.extend(names);
        }
        let mut set = Vec::new();
        let mut refused = Vec::new();
        for (j, function) in found.iter().enumerate() {
            let bp = TraceBreakpoint {
                name: format!("{BREAKPOINT_PREFIX}{}w{i}f{j}", sanitize(&tour.name)),
                function: function.clone(),
                variables: w.capture.clone(),
                cond: w.cond.clone(),
            };
            match dlv.create_trace_breakpoint(&bp) {
                Ok(b) => {
                    by_id.insert(b.id, (i, function.clone()));
                    set.push(function.clone());
                }
                Err(DlvRpcError::Rpc { message, .. }) => refused.push(format!("{function}: {message}")),
                Err(e) => return Err(e.into()),
            }
        }
        if set.is_empty() {
            let why = if found.is_empty() {
                "no function of this binary matches".to_string()
            } else {
                format!("Delve refused the breakpoint ({})", refused.join("; "))
            };
            reporter.warn(format!("waypoint {} ({}) not traced: {why}", i + 1, w.name));
            timeline.unresolved.push(Unresolved {
                waypoint: i,
                name: w.name.clone(),
                patterns: w.functions.clone(),
                why,
            });
        } else {
            timeline.resolved.push(Resolved { waypoint: i, name: w.name.clone(), functions: set });
        }
    }
    Ok(by_id)
}

/// Delve breakpoint names take letters and digits only.
fn sanitize(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// The loop; returns whether the program was left halted at a hit (`--stop`).
fn record(
    node: &dyn Node,
    dlv: &mut DlvClient,
    config: &TraceConfig,
    by_id: &BTreeMap<i64, (usize, String)>,
    timeline: &mut Timeline,
    reporter: &dyn Reporter,
    on_hit: &mut dyn FnMut(&TimedHit),
) -> Result<bool, TraceError> {
    dlv.continue_async()?;
    let started = Instant::now();
    let trigger = match &config.trigger {
        Some(command) => Some((command.clone(), spawn_trigger(node, command, config.trigger_on_node)?)),
        None => {
            reporter.info(format!(
                "recording for {} s: do what the tour is about now ({})",
                config.collect.as_secs(),
                config.tour.story
            ));
            None
        }
    };
    let mut outcome: Option<TriggerOutcome> = None;
    let deadline = started + config.collect;
    loop {
        if let (Some((command, rx)), None) = (&trigger, &outcome) {
            if let Ok(done) = rx.try_recv() {
                outcome = Some(done.map_err(|detail| TraceError::Trigger { command: command.clone(), detail })?);
            }
        }
        if config.interrupt.is_some_and(|i| i.load(Ordering::Relaxed)) {
            reporter.warn("interrupted: removing kdbg's breakpoints (Ctrl-C again ends kdbg at once)".into());
            break;
        }
        let now = Instant::now();
        let trigger_done = trigger.is_none() || outcome.is_some();
        if now >= deadline && (trigger_done || now >= deadline + TRIGGER_GRACE) {
            break;
        }
        let stop: Stop = match dlv.wait_hits(SLICE) {
            Ok(stop) => stop,
            Err(DlvRpcError::Timeout { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if stop.exited {
            let status = dlv.state_nonblocking().map(|s| s.exit_status).unwrap_or(-1);
            return Err(TraceError::Exited { component: config.component.name.into(), status });
        }
        let mut ours = false;
        for hit in stop.hits {
            let Some((w, function)) = by_id.get(&hit.breakpoint) else { continue };
            ours = true;
            let t = TimedHit {
                seq: timeline.hits.len() + 1,
                waypoint: *w,
                waypoint_name: config.tour.waypoints[*w].name.clone(),
                function: hit.function.unwrap_or_else(|| function.clone()),
                goroutine: hit.goroutine,
                ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                file: config.paths.to_tree(&hit.file),
                recorded_file: hit.file,
                line: hit.line,
                // Named as the tour asked (Delve renames a field reached through an interface).
                captures: hit
                    .captures
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, value))| Capture {
                        expr: config.tour.waypoints[*w].capture.get(i).cloned().unwrap_or(name),
                        value,
                    })
                    .collect(),
            };
            on_hit(&t);
            timeline.hits.push(t);
        }
        if config.stop && ours {
            if let Some((command, _)) = &trigger {
                let done = outcome.take();
                timeline.trigger = Some(done.unwrap_or(TriggerOutcome {
                    command: command.clone(),
                    exit_code: None,
                    output: String::new(),
                }));
            }
            return Ok(true);
        }
        dlv.continue_async()?;
    }
    timeline.trigger = outcome;
    Ok(false)
}

type TriggerResult = Result<TriggerOutcome, String>;

/// Starts `sh -c command` (here, or as root on the node); its outcome arrives on the channel.
fn spawn_trigger(node: &dyn Node, command: &str, on_node: bool) -> Result<mpsc::Receiver<TriggerResult>, TraceError> {
    let failed = |detail: String| TraceError::Trigger { command: command.to_string(), detail };
    let argv = ["sh", "-c", command];
    let child = if on_node {
        node.spawn(&argv, Privilege::Root).map_err(|e| failed(e.to_string()))?
    } else {
        Cmd::new("sh").args(argv[1..].iter().copied()).spawn_piped().map_err(|e| failed(e.to_string()))?
    };
    let (tx, rx) = mpsc::channel();
    let owned = command.to_string();
    std::thread::Builder::new()
        .name("kdbg-trigger".into())
        .spawn(move || {
            let out = child.wait_with_output().map(|o| {
                let mut output = String::from_utf8_lossy(&o.stdout).into_owned();
                output.push_str(&String::from_utf8_lossy(&o.stderr));
                TriggerOutcome { command: owned, exit_code: o.status.code(), output }
            });
            let _ = tx.send(out.map_err(|e| e.to_string()));
        })
        .map_err(|e| failed(e.to_string()))?;
    Ok(rx)
}

/// For each of `tours`, how many waypoints resolve in the binary of `component`'s session.
pub fn resolvable(
    node: &dyn Node,
    component: &'static Component,
    tours: &[&Tour],
    state_dir: Option<&camino::Utf8Path>,
) -> Result<Vec<usize>, TraceError> {
    let mut s = connect(node, component, state_dir)?;
    let was_running = s.dlv.state_nonblocking()?.running;
    if was_running {
        s.dlv.halt()?;
    }
    let counted = (|| -> Result<Vec<usize>, DlvRpcError> {
        let mut counts = Vec::new();
        for t in tours {
            let mut n = 0;
            for w in &t.waypoints {
                let mut any = false;
                for p in &w.functions {
                    any |= s.dlv.list_functions(&tour::filter(p))?.iter().any(|f| tour::matches(p, f));
                }
                n += usize::from(any);
            }
            counts.push(n);
        }
        Ok(counts)
    })();
    if was_running {
        s.dlv.resume()?;
    }
    Ok(counted?)
}
