//! The executor: runs a [`Plan`] wave by wave ([`Plan::waves`]), the steps of a wave
//! concurrently (at most `parallel` at a time, on scoped threads), and reports every step.
//!
//! ```text
//! for each wave:   up to date (plan or Runner::up_to_date)? ─▶ Skipped
//!                  else Started ─▶ Runner::run (concurrently) ─▶ Done | Failed
//!                  after each step: the crash-injection point named by its id
//! a failure:       dependents never start; Policy::Stop ends the run after the wave and calls
//!                  Runner::rollback with the steps that ran; Policy::KeepGoing runs the rest
//! ```
//!
//! Within a chunk of a wave, `Started` (or `Skipped`) events come in plan order, so a run's first
//! event per step follows [`Plan::in_order`], the order `kdbg plan --json` prints.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use super::{Plan, Step, StepId};
use crate::crash::CrashAt;
use crate::report::{Event, Reporter, StepStatus};

/// How a step that ran ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ran {
    Done,
    /// Reported as failed, but nothing depends on it succeeding (the IDE entries).
    Warned(String),
}

/// What to do with the rest of the plan when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Finish the wave, start nothing more, roll back.
    Stop,
    /// Only the failed step's dependents are left out (a restore puts back what it can).
    KeepGoing,
}

/// What the steps of one kind of plan do.
pub(crate) trait Runner: Sync {
    type Error: Send + std::fmt::Display;

    /// `Some(reason)` when the step has nothing to do; asked right before it would start.
    fn up_to_date(&self, _step: &Step) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }

    fn run(&self, step: &Step) -> Result<Ran, Self::Error>;

    /// Undoes what this run changed, after a failure under [`Policy::Stop`]. `ran`: the steps
    /// that started (the failed ones included), in start order.
    fn rollback(&self, _ran: &[&Step]) {}
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    /// Steps of one wave running at once (1: one after the other).
    pub parallel: usize,
    pub policy: Policy,
    pub crash: CrashAt,
}

impl Default for Exec {
    fn default() -> Exec {
        Exec { parallel: 4, policy: Policy::Stop, crash: CrashAt::default() }
    }
}

/// The steps' events of a run, in the order they were reported (`kdbg debug --json`'s `steps`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepEvent {
    pub id: StepId,
    #[serde(flatten)]
    pub status: StepStatus,
}

/// The errors of the steps that failed, first failure first; the events seen either way.
#[derive(Debug)]
pub(crate) struct Failed<E> {
    pub errors: Vec<(StepId, E)>,
}

impl Exec {
    /// Runs `plan`. `Ok`: every step ran or was up to date; the events in report order.
    ///
    /// A plan whose dependencies are unknown or cyclic is a bug in kdbg: it panics.
    pub(crate) fn run<R: Runner>(
        &self,
        plan: &Plan,
        runner: &R,
        reporter: &dyn Reporter,
    ) -> Result<Vec<StepEvent>, Failed<R::Error>> {
        let waves = plan.waves().unwrap_or_else(|e| panic!("kdbg built an invalid plan: {e}"));
        let log = Log { inner: reporter, events: Mutex::new(Vec::new()) };
        let mut ran: Vec<&Step> = Vec::new();
        let mut errors: Vec<(StepId, R::Error)> = Vec::new();
        let mut blocked: BTreeSet<&StepId> = BTreeSet::new();
        for wave in waves {
            let mut todo = Vec::new();
            for step in wave {
                if step.deps.iter().any(|d| blocked.contains(d)) {
                    blocked.insert(&step.id);
                    continue;
                }
                let fresh = match step.up_to_date {
                    true => Ok(Some(step.why.join("; "))),
                    false => runner.up_to_date(step),
                };
                match fresh {
                    Ok(Some(reason)) => {
                        log.step(&step.id, StepStatus::Skipped { reason });
                        self.crash.after(&step.id);
                    }
                    Ok(None) => todo.push(step),
                    Err(e) => {
                        log.step(&step.id, StepStatus::Failed { error: e.to_string() });
                        blocked.insert(&step.id);
                        errors.push((step.id.clone(), e));
                    }
                }
            }
            for chunk in todo.chunks(self.parallel.max(1)) {
                chunk.iter().for_each(|s| log.step(&s.id, StepStatus::Started));
                ran.extend(chunk);
                let results: Vec<Result<Ran, R::Error>> = std::thread::scope(|scope| {
                    let log = &log;
                    let one = move |step: &Step| {
                        let started = Instant::now();
                        let result = runner.run(step);
                        let seconds = started.elapsed().as_secs_f64();
                        match &result {
                            Ok(Ran::Done) => log.step(&step.id, StepStatus::Done { seconds }),
                            Ok(Ran::Warned(error)) => log.step(&step.id, StepStatus::Failed { error: error.clone() }),
                            Err(e) => log.step(&step.id, StepStatus::Failed { error: e.to_string() }),
                        }
                        if result.is_ok() {
                            self.crash.after(&step.id);
                        }
                        result
                    };
                    match chunk {
                        [only] => vec![one(only)],
                        _ => {
                            let handles: Vec<_> = chunk.iter().map(|s| scope.spawn(move || one(s))).collect();
                            handles.into_iter().map(|h| h.join().expect("a step does not panic")).collect()
                        }
                    }
                });
                for (step, result) in chunk.iter().zip(results) {
                    if let Err(e) = result {
                        blocked.insert(&step.id);
                        errors.push((step.id.clone(), e));
                    }
                }
            }
            if !errors.is_empty() && self.policy == Policy::Stop {
                runner.rollback(&ran);
                break;
            }
        }
        let events = log.events.into_inner().unwrap();
        match errors.is_empty() {
            true => Ok(events),
            false => Err(Failed { errors }),
        }
    }
}

/// Reports step events and keeps them.
struct Log<'a> {
    inner: &'a dyn Reporter,
    events: Mutex<Vec<StepEvent>>,
}

impl Log<'_> {
    fn step(&self, id: &StepId, status: StepStatus) {
        self.events.lock().unwrap().push(StepEvent { id: id.clone(), status: status.clone() });
        self.inner.report(Event::Step { id: id.clone(), status });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StepKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Quiet;
    impl Reporter for Quiet {
        fn report(&self, _: Event) {}
    }

    /// The ids of the steps reported.
    #[derive(Default)]
    struct Seen(Mutex<Vec<StepId>>);
    impl Reporter for Seen {
        fn report(&self, e: Event) {
            if let Event::Step { id, .. } = e {
                self.0.lock().unwrap().push(id);
            }
        }
    }
    impl Seen {
        fn any(&self, kind: StepKind) -> bool {
            self.0.lock().unwrap().iter().any(|id| id.kind == kind)
        }
    }

    /// Steps that wait for each other prove they run at once; `fail` fails; rollbacks are kept.
    struct Test {
        fail: Option<StepId>,
        barrier: std::sync::Barrier,
        running: AtomicUsize,
        rolled_back: Mutex<Vec<StepId>>,
    }

    impl Runner for Test {
        type Error = String;
        fn up_to_date(&self, step: &Step) -> Result<Option<String>, String> {
            Ok((step.id.subject.as_deref() == Some("fresh")).then(|| "same bytes".into()))
        }
        fn run(&self, step: &Step) -> Result<Ran, String> {
            if step.id.kind == StepKind::Copy {
                self.running.fetch_add(1, Ordering::SeqCst);
                self.barrier.wait();
            }
            match Some(&step.id) == self.fail.as_ref() {
                true => Err(format!("{} broke", step.id)),
                false => Ok(Ran::Done),
            }
        }
        fn rollback(&self, ran: &[&Step]) {
            self.rolled_back.lock().unwrap().extend(ran.iter().map(|s| s.id.clone()));
        }
    }

    fn plan() -> Plan {
        let mut p = Plan::default();
        let b = p.add(StepKind::Build.on("a"), &[], None, true, vec!["key unchanged".into()]);
        let ca = p.add(StepKind::Copy.on("a"), std::slice::from_ref(&b), None, false, vec![]);
        let cd = p.add(StepKind::Copy.on("dlv"), &[b], None, false, vec![]);
        p.add(StepKind::Copy.on("fresh"), &[], None, false, vec![]);
        p.add(StepKind::Stop.on("a"), &[ca, cd], None, false, vec![]);
        p
    }

    fn test(fail: Option<StepId>) -> Test {
        Test { fail, barrier: std::sync::Barrier::new(2), running: AtomicUsize::new(0), rolled_back: Mutex::default() }
    }

    #[test]
    fn a_wave_runs_concurrently_in_plan_order_and_skips_what_is_up_to_date() {
        let t = test(None);
        let events = Exec::default().run(&plan(), &t, &Quiet).ok().unwrap();
        let first: Vec<String> = events.iter().fold(Vec::new(), |mut seen, e| {
            if !seen.contains(&e.id.to_string()) {
                seen.push(e.id.to_string());
            }
            seen
        });
        let order: Vec<String> = plan().in_order().unwrap().steps.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(first, order);
        assert_eq!(events[0].status, StepStatus::Skipped { reason: "key unchanged".into() });
        assert!(events
            .iter()
            .any(|e| e.id.to_string() == "copy:fresh" && matches!(e.status, StepStatus::Skipped { .. })));
        // copy:a and copy:dlv met at the barrier: they ran at the same time.
        assert_eq!(t.running.load(Ordering::SeqCst), 2);
        assert!(t.rolled_back.lock().unwrap().is_empty());
    }

    #[test]
    fn a_failure_stops_its_dependents_and_rolls_back_what_ran() {
        let t = test(Some(StepKind::Copy.on("dlv")));
        let seen = Seen::default();
        let failed = Exec::default().run(&plan(), &t, &seen).err().unwrap();
        assert_eq!(failed.errors, [(StepKind::Copy.on("dlv"), "copy:dlv broke".to_string())]);
        assert!(!seen.any(StepKind::Stop));
        let rolled: Vec<String> = t.rolled_back.lock().unwrap().iter().map(|s| s.to_string()).collect();
        assert_eq!(rolled, ["copy:a", "copy:dlv"]);

        // Keep going: what does not depend on the failure still runs, nothing is rolled back.
        let mut p = plan();
        p.add(StepKind::Tunnel.on("b"), &[], None, false, vec![]);
        let t = test(Some(StepKind::Copy.on("dlv")));
        let exec = Exec { policy: Policy::KeepGoing, ..Exec::default() };
        let seen = Seen::default();
        exec.run(&p, &t, &seen).err().unwrap();
        assert!(seen.any(StepKind::Tunnel));
        assert!(!seen.any(StepKind::Stop));
        assert!(t.rolled_back.lock().unwrap().is_empty());
    }
}
