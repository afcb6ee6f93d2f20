//! `kdbg watch`: rebuild, recopy and relaunch components under `kdbg debug` on every source change,
//! printing each cycle's timings; Ctrl-C leaves the session running (or restores it).

use crate::out::{errln, outln};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kdbg_core::ide::vscode::{READY_MARKER, START_MARKER};
use kdbg_core::session::debug::Timeouts;
use kdbg_core::session::restore::{self, RestoreConfig};
use kdbg_core::watch::{self, CycleReport, Stopped, WatchConfig, WatchEvent};

use crate::config::{shell_line, state_dir, target_args, Resolved, Selection, TargetArgs};
use crate::render::Terminal;

/// Test-only: stop after this many cycles, as if Ctrl-C had been pressed.
pub const TEST_CYCLES_ENV: &str = "KDBG_TEST_WATCH_CYCLES";

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg debug apiserver && kdbg watch apiserver          # minikube; edit, save, F5 again
  kdbg watch apiserver scheduler --target kind://dev
  kdbg watch apiserver --target ssh://docker@192.168.49.2 --identity ~/.minikube/machines/minikube/id_rsa
  kdbg watch apiserver --restore-on-exit -v            # -v: make's output, files that changed nothing

Needs a running `kdbg debug` session for the components (it does not start one). On each change
to a component's Go import closure: one make for the components whose cache key changed, a copy
of the binaries that differ from the node's, and Delve relaunched on the same port with the same
arguments; the tunnel stays, so the IDE attaches again to the same localhost port. Each cycle
prints `cycle N: build ..., copy ..., relaunch ..., total ...`, between lines starting with
`kdbg: start` and `kdbg: ready` (VSCode's \"kdbg: watch\" task waits for them). A failed build is
shown and the session keeps running the previous build. Ctrl-C stops watching and leaves the
session running; `kdbg restore` (or --restore-on-exit) puts the node back.")]
pub struct WatchArgs {
    #[command(flatten)]
    pub sel: Selection,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Restore the node (as `kdbg restore` does) when watching stops.
    #[arg(long)]
    pub restore_on_exit: bool,
    /// Milliseconds without further changes before a cycle starts.
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(..=60_000))]
    pub debounce: u64,
}

pub fn run(args: WatchArgs, verbose: bool) -> anyhow::Result<()> {
    let Resolved { tree, comps, build } = args.sel.resolve()?;
    let max_cycles = std::env::var(TEST_CYCLES_ENV).ok().and_then(|v| v.parse().ok());
    let cfg = WatchConfig {
        build,
        debounce: Duration::from_millis(args.debounce),
        timeouts: Timeouts::default(),
        max_cycles,
        crash: kdbg_core::crash::CrashAt::from_env(),
    };
    let node = args.target.connect()?;
    let term = Terminal::new(verbose);
    let stop = stop_on_signals();
    let events = |e: WatchEvent| print(&e, verbose);
    // The session's lease is kept for as long as the watch runs.
    let outcome =
        kdbg_core::session::lease::keeping(&*node, || watch::watch(&tree, &comps, &*node, &cfg, &term, &events, stop))
            .with_context(|| format!("failed to watch on {}", args.target.target()))?;
    let names: Vec<&str> = comps.iter().map(|c| c.name).collect();
    let why = match outcome.stopped {
        Stopped::Asked => "stopped",
        Stopped::Cycles => "ran its cycles",
    };
    errln!("kdbg watch {why} after {} cycle(s)", outcome.cycles);
    if !args.restore_on_exit {
        let target = shell_line(&target_args(&args.target));
        errln!("{} keep running under Delve on {}", names.join(", "), node.describe());
        errln!("  when done: kdbg restore {} {target}", names.join(" "));
        return Ok(());
    }
    let lock = kdbg_core::node_lock::NodeLock::acquire(&*node, &format!("restore {}", names.join(" ")), true, &term)?;
    let config = RestoreConfig { components: comps, state_dir: state_dir(), ..RestoreConfig::default() };
    let restored = restore::restore(kdbg_core::node_lock::Locked::new(&*node, &lock), &config, &term)
        .with_context(|| format!("failed to restore {}", args.target.target()))?;
    for r in restored.iter().filter(|r| !r.done.is_empty()) {
        outln!("{}: {}", r.component, r.done.join("; "));
    }
    Ok(())
}

fn print(e: &WatchEvent, verbose: bool) {
    match e {
        WatchEvent::Watching { components, dirs, missing } => {
            outln!(
                "watching {dirs} directories of {}'s sources; Ctrl-C stops (the session keeps running)",
                components.join(", ")
            );
            if verbose && !missing.is_empty() {
                outln!("  not watched (missing): {}", missing.join(", "));
            }
            outln!("{READY_MARKER}");
        }
        WatchEvent::Started { cycle, files } => outln!("{START_MARKER} cycle {cycle}{}", some_files(files)),
        WatchEvent::NoChange { components, files } => {
            if verbose {
                outln!("no change to {}{}", components.join(", "), some_files(files));
            }
        }
        WatchEvent::Done(r) => {
            outln!("{}", cycle_line(r));
            if verbose {
                outln!(
                    "  {} {:.2}s; on the node: Delve listening after {:.2}s, serving after {:.2}s; {:.2}s debounce; relaunched: {}",
                    r.via.map(kdbg_core::build::Via::word).unwrap_or("no build"),
                    r.make_s,
                    r.dlv_s,
                    r.node_s,
                    r.debounce_s,
                    if r.relaunched.is_empty() { "none (same binaries)".into() } else { r.relaunched.join(", ") }
                );
            }
            outln!("{READY_MARKER}");
        }
        WatchEvent::Failed { cycle, stage, error, session_kept } => {
            errln!("cycle {cycle}: {stage} failed: {error}");
            if *session_kept {
                errln!("  the session keeps running the previous build; fix the error and save again");
                outln!("{READY_MARKER} (cycle {cycle} failed; the previous build runs)");
            } else {
                errln!("  save again to retry; `kdbg status` shows the session, `kdbg restore` ends it");
                outln!("{READY_MARKER} (cycle {cycle} failed; Delve may not be running)");
            }
        }
        WatchEvent::Warning { message } => errln!("warning: {message}"),
    }
}

/// `cycle N: build X.XXs, copy X.XXs (N bytes), relaunch X.XXs, total X.XXs`.
pub fn cycle_line(r: &CycleReport) -> String {
    format!(
        "cycle {}: build {:.2}s{}, copy {:.2}s ({} bytes), relaunch {:.2}s, total {:.2}s",
        r.cycle,
        r.build_s,
        r.via.map(|v| format!(" ({})", v.word())).unwrap_or_default(),
        r.copy_s,
        r.copy_bytes,
        r.relaunch_s,
        r.total_s
    )
}

/// `: a.go, b.go and 3 more`, or nothing.
fn some_files(files: &[String]) -> String {
    match files.len() {
        0 => String::new(),
        1..=3 => format!(": {}", files.join(", ")),
        n => format!(": {} and {} more", files[..3].join(", "), n - 3),
    }
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// SIGINT and SIGTERM set the flag the watch loop (and `kdbg trace`) checks; a second one while the
/// flag is set ends kdbg at once (exit status 130).
pub(crate) fn stop_on_signals() -> &'static AtomicBool {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Neither can fail for SIGINT or SIGTERM. The shutdown one is registered first, so it sees
            // the flag as the previous signal left it.
            let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag));
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_line_has_every_stage() {
        let r = CycleReport {
            cycle: 3,
            build_s: 1.234,
            copy_s: 0.05,
            copy_bytes: 123456,
            relaunch_s: 0.8,
            total_s: 2.4,
            ..CycleReport::default()
        };
        assert_eq!(cycle_line(&r), "cycle 3: build 1.23s, copy 0.05s (123456 bytes), relaunch 0.80s, total 2.40s");
        let replayed = CycleReport { via: Some(kdbg_core::build::Via::Replayed), ..r };
        assert!(cycle_line(&replayed).starts_with("cycle 3: build 1.23s (replay), copy"), "{}", cycle_line(&replayed));
        let files: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        assert_eq!(some_files(&files), ": a, b, c and 2 more");
        assert_eq!(some_files(&files[..1]), ": a");
    }
}
