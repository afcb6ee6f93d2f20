//! A trace run: find the session's Delve, resolve the tour and set its breakpoints, record the
//! stops ([`super::record`]), then leave Delve as it was.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::tour::{self, Tour};
use super::{PathMap, Resolved, TimedHit, Timeline, TraceError, Unresolved, BREAKPOINT_PREFIX};
use crate::component::Component;
use crate::dlv::{DlvClient, DlvRpcError, TraceBreakpoint};
use crate::node::{Node, Tunnel};
use crate::report::Reporter;
use crate::session::journal;
use crate::tunnels;

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
    let was_running = take_over(dlv, reporter)?;
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
    let by_id = set_breakpoints(dlv, config, &mut timeline, reporter, was_running)?;
    let recorded = super::record::record(node, dlv, config, &by_id, &mut timeline, reporter, on_hit);
    if config.stop && recorded.as_ref().is_ok_and(|halted| *halted) {
        timeline.left_set = by_id.keys().copied().collect();
        return Ok(timeline);
    }
    let cleanup = put_back(dlv, was_running);
    recorded.map_err(|e| ended(node, c, e))?;
    cleanup.map_err(|e| ended(node, c, e.into()))?;
    Ok(timeline)
}

/// A Delve connection that closed, or a program that exited, mid-trace because a `kdbg restore`
/// ended the session (the journal marks the component restoring, or no longer names it) becomes
/// [`TraceError::SessionEnded`]; a connection closed for another reason too, saying so.
fn ended(node: &dyn Node, c: &Component, e: TraceError) -> TraceError {
    let closed = matches!(e, TraceError::Dlv(DlvRpcError::Closed { .. } | DlvRpcError::Io { .. }));
    if !closed && !matches!(e, TraceError::Exited { .. }) {
        return e;
    }
    let in_session = journal::load(node)
        .ok()
        .map(|j| j.components.values().any(|x| x.component == c.name && x.state != journal::EntryState::Restoring));
    if !closed && in_session != Some(false) {
        return e;
    }
    TraceError::SessionEnded {
        component: c.name.into(),
        alias: c.aliases.first().copied().unwrap_or(c.name).into(),
        why: ended_why(in_session).into(),
    }
}

/// Why Delve went away, from whether the journal still names the component (`None`: unknown).
fn ended_why(in_session: Option<bool>) -> &'static str {
    match in_session {
        Some(false) => "the session was restored (`kdbg restore`): the original component runs again",
        _ => "Delve closed the connection: the session was restored or Delve exited; `kdbg status` shows which",
    }
}

/// Halts the program (returns whether it ran) and clears what an earlier `--stop` left.
fn take_over(dlv: &mut DlvClient, reporter: &dyn Reporter) -> Result<bool, TraceError> {
    let was_running = dlv.state_nonblocking()?.running;
    if was_running {
        dlv.halt()?;
    }
    let stale = clear_ours(dlv)?;
    if !stale.is_empty() {
        reporter.info(format!("cleared {} breakpoint(s) an earlier `kdbg trace --stop` left", stale.len()));
    }
    Ok(was_running)
}

/// [`resolve`]s the tour; when that fails or nothing resolves, Delve is put back as it was first.
fn set_breakpoints(
    dlv: &mut DlvClient,
    config: &TraceConfig,
    timeline: &mut Timeline,
    reporter: &dyn Reporter,
    was_running: bool,
) -> Result<BTreeMap<i64, (usize, String)>, TraceError> {
    let by_id = match resolve(dlv, &config.tour, timeline, reporter) {
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
        return Err(TraceError::NothingResolved {
            component: config.component.name.into(),
            tour: config.tour.name.clone(),
        });
    }
    Ok(by_id)
}

/// Puts Delve back as it was: no kdbg breakpoint, the program running (if it ran before).
fn put_back(dlv: &mut DlvClient, was_running: bool) -> Result<(), DlvRpcError> {
    settle(dlv)?;
    clear_ours(dlv)?;
    if was_running {
        dlv.resume()?;
    }
    Ok(())
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
                waypoint: i + 1,
                name: w.name.clone(),
                patterns: w.functions.clone(),
                why,
            });
        } else {
            timeline.resolved.push(Resolved { waypoint: i + 1, name: w.name.clone(), functions: set });
        }
    }
    Ok(by_id)
}

/// Delve breakpoint names take letters and digits only.
fn sanitize(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// For each of `tours`, the waypoints that do not resolve in the binary of `component`'s session:
/// `(number from 1, name)`; the others resolve.
pub fn unresolvable(
    node: &dyn Node,
    component: &'static Component,
    tours: &[&Tour],
    state_dir: Option<&camino::Utf8Path>,
) -> Result<Vec<Vec<(usize, String)>>, TraceError> {
    let mut s = connect(node, component, state_dir)?;
    let was_running = s.dlv.state_nonblocking()?.running;
    if was_running {
        s.dlv.halt()?;
    }
    let counted = (|| -> Result<Vec<Vec<(usize, String)>>, DlvRpcError> {
        let mut missing = Vec::new();
        for t in tours {
            let mut of = Vec::new();
            for (i, w) in t.waypoints.iter().enumerate() {
                let mut any = false;
                for p in &w.functions {
                    any |= s.dlv.list_functions(&tour::filter(p))?.iter().any(|f| tour::matches(p, f));
                }
                if !any {
                    of.push((i + 1, w.name.clone()));
                }
            }
            missing.push(of);
        }
        Ok(missing)
    })();
    if was_running {
        s.dlv.resume()?;
    }
    Ok(counted?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_names_the_restore() {
        assert!(ended_why(Some(false)).contains("the session was restored (`kdbg restore`)"));
        assert!(ended_why(None).contains("`kdbg status` shows which"));
        let e = TraceError::SessionEnded {
            component: "kube-apiserver".into(),
            alias: "apiserver".into(),
            why: ended_why(None).into(),
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the trace of kube-apiserver ended: Delve closed the connection: the session was restored or Delve exited"
            ),
            "{text}"
        );
        assert!(text.contains("kdbg debug apiserver"), "{text}");
    }
}
