//! The recording itself: breakpoints set, the program running, the trigger started; every stop
//! of kdbg's breakpoints is recorded and the program continued at once, until the time is up.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::run::TraceConfig;
use super::{Capture, TimedHit, Timeline, TraceError, TriggerOutcome};
use crate::component::Component;
use crate::dlv::{DlvClient, DlvRpcError, Stop};
use crate::host::Cmd;
use crate::node::{Node, Privilege};
use crate::report::Reporter;

/// How long one wait for a stop lasts before kdbg looks at the trigger and the clock again.
const SLICE: Duration = Duration::from_millis(200);
/// How long kdbg keeps collecting after `collect` for a trigger that has not ended.
const TRIGGER_GRACE: Duration = Duration::from_secs(120);

/// The loop; returns whether the program was left halted at a hit (`--stop`).
pub(super) fn record(
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
    let trigger = start_trigger(node, config, reporter)?;
    let mut outcome: Option<TriggerOutcome> = None;
    let deadline = started + config.collect;
    let mut said_waiting = false;
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
            if !trigger_done {
                reporter.warn(format!(
                    "the trigger still runs {} s after --for: recording stops; it is left running",
                    TRIGGER_GRACE.as_secs()
                ));
            }
            break;
        }
        if now >= deadline && !said_waiting {
            reporter.warn(overrun(config.collect));
            said_waiting = true;
        }
        let Some(stop) = next_stop(dlv, config.component)? else { continue };
        let ours = record_hits(stop, config, by_id, started, timeline, on_hit);
        if config.stop && ours {
            if let Some((command, _)) = trigger {
                let unfinished = TriggerOutcome { command, exit_code: None, output: String::new() };
                timeline.trigger = Some(outcome.unwrap_or(unfinished));
            }
            return Ok(true);
        }
        dlv.continue_async()?;
    }
    timeline.trigger = outcome;
    Ok(false)
}

/// Starts the trigger command, if there is one; else tells the user to act now.
fn start_trigger(
    node: &dyn Node,
    config: &TraceConfig,
    reporter: &dyn Reporter,
) -> Result<Option<(String, mpsc::Receiver<TriggerResult>)>, TraceError> {
    let Some(command) = &config.trigger else {
        reporter.info(format!(
            "recording for {} s: do what the tour is about now ({})",
            config.collect.as_secs(),
            config.tour.story
        ));
        return Ok(None);
    };
    Ok(Some((command.clone(), spawn_trigger(node, command, config.trigger_on_node)?)))
}

/// The next stop within one [`SLICE`] (`None`: none came); the program exiting is an error.
fn next_stop(dlv: &mut DlvClient, c: &Component) -> Result<Option<Stop>, TraceError> {
    let stop: Stop = match dlv.wait_hits(SLICE) {
        Ok(stop) => stop,
        Err(DlvRpcError::Timeout { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if stop.exited {
        let status = dlv.state_nonblocking().map(|s| s.exit_status).unwrap_or(-1);
        return Err(TraceError::Exited { component: c.name.into(), status });
    }
    Ok(Some(stop))
}

/// Records the hits of kdbg's breakpoints in `stop` (and shows each to `on_hit`); returns
/// whether there was one.
fn record_hits(
    stop: Stop,
    config: &TraceConfig,
    by_id: &BTreeMap<i64, (usize, String)>,
    started: Instant,
    timeline: &mut Timeline,
    on_hit: &mut dyn FnMut(&TimedHit),
) -> bool {
    let mut ours = false;
    for hit in stop.hits {
        let Some((w, function)) = by_id.get(&hit.breakpoint) else { continue };
        ours = true;
        let waypoint = &config.tour.waypoints[*w];
        let t = TimedHit {
            seq: timeline.hits.len() + 1,
            waypoint: *w + 1,
            waypoint_name: waypoint.name.clone(),
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
                .map(|(i, (name, value))| Capture { expr: waypoint.capture.get(i).cloned().unwrap_or(name), value })
                .collect(),
        };
        on_hit(&t);
        timeline.hits.push(t);
    }
    ours
}

/// What kdbg says once when the trigger outlives `--for` (it waits, never kills it).
fn overrun(collect: Duration) -> String {
    format!(
        "the trigger still runs after --for {} s; waiting for it, recording, up to {} s more (Ctrl-C stops it)",
        collect.as_secs(),
        TRIGGER_GRACE.as_secs()
    )
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_trigger_past_for_is_announced() {
        let said = super::overrun(std::time::Duration::from_secs(1));
        assert!(said.starts_with("the trigger still runs after --for 1 s; waiting for it"), "{said}");
        assert!(said.contains("Ctrl-C stops it"), "{said}");
    }
}
