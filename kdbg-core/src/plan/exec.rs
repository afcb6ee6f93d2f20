//! The executor: runs a [`Plan`] wave by wave ([`Plan::waves`]), the steps of a wave
//! concurrently (at most `parallel` at a time, on scoped threads), and reports every step.
//!
//! ```text
//! for each wave:   Runner::up_to_date(step, inputs)? ─▶ Skipped (with the step's output)
//!                  else Started ─▶ Runner::run(step, inputs) (concurrently) ─▶ Done | Failed
//!                  steps the runner batches (the builds: one make) ─▶ one Runner::run_batch
//!                  after each step: the crash-injection point named by its id
//! a failure:       dependents never start; Policy::Stop ends the run after the wave and calls
//!                  Runner::rollback with the steps that ran; Policy::KeepGoing runs the rest
//! ```
//!
//! Data flows only along the plan's edges: every step (run or up to date) yields a typed
//! output, kept by the executor, and a step is handed the outputs of the steps it depends on
//! ([`Inputs`]). Runners hold configuration, never another step's result.
//!
//! Within a chunk of a wave, `Started` (or `Skipped`) events come in plan order, so a run's first
//! event per step follows [`Plan::in_order`], the order `kdbg plan --json` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use super::{Plan, Step, StepId};
use crate::crash::CrashAt;
use crate::report::{Event, Reporter, StepStatus};

/// A step that ran and did not fail: its output, and a warning when it failed in a way nothing
/// depends on (the IDE entries), reported as failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ran<O> {
    pub output: O,
    pub warning: Option<String>,
}

impl<O> Ran<O> {
    pub(crate) fn done(output: O) -> Ran<O> {
        Ran { output, warning: None }
    }
}

/// A step with nothing to do: why, and its output all the same (a build that is up to date
/// still yields its binary).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fresh<O> {
    pub reason: String,
    pub output: O,
}

/// The outputs of the steps a step depends on, by their ids.
pub(crate) struct Inputs<'a, O> {
    deps: Vec<(StepId, &'a O)>,
}

impl<'a, O> Inputs<'a, O> {
    pub(crate) fn new(deps: Vec<(StepId, &'a O)>) -> Inputs<'a, O> {
        Inputs { deps }
    }

    /// No inputs (a step with no dependencies).
    pub(crate) fn none() -> Inputs<'a, O> {
        Inputs { deps: Vec::new() }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&StepId, &'a O)> {
        self.deps.iter().map(|(id, o)| (id, *o))
    }

    /// The same inputs as a node's runner sees them: ids without their node.
    pub(crate) fn local(&self) -> Inputs<'a, O> {
        Inputs { deps: self.deps.iter().map(|(id, o)| (id.local(), *o)).collect() }
    }

    /// The inputs whose output `pick` accepts, as what it makes of them (a wrapper's outputs
    /// seen as an inner runner's).
    pub(crate) fn map<P>(&self, pick: impl Fn(&'a O) -> Option<&'a P>) -> Inputs<'a, P> {
        Inputs { deps: self.deps.iter().filter_map(|(id, o)| pick(o).map(|p| (id.clone(), p))).collect() }
    }
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
    /// What a step yields for the steps that depend on it.
    type Output: Send + Sync;

    /// `Some` when the step has nothing to do; asked right before it would start.
    fn up_to_date(
        &self,
        _step: &Step,
        _inputs: &Inputs<'_, Self::Output>,
    ) -> Result<Option<Fresh<Self::Output>>, Self::Error> {
        Ok(None)
    }

    fn run(&self, step: &Step, inputs: &Inputs<'_, Self::Output>) -> Result<Ran<Self::Output>, Self::Error>;

    /// Steps that run as one job: every step of a wave for which this is true is given to one
    /// [`Runner::run_batch`] (the builds: one make for every stale component).
    fn batched(&self, _step: &Step) -> bool {
        false
    }

    /// Runs the batched steps of a wave together; one result per step, in order.
    fn run_batch(&self, steps: &[(&Step, Inputs<'_, Self::Output>)]) -> Vec<Result<Ran<Self::Output>, Self::Error>> {
        steps.iter().map(|(step, inputs)| self.run(step, inputs)).collect()
    }

    /// Undoes what this run changed, after a failure under [`Policy::Stop`]. `ran`: the steps
    /// that started (the failed ones included), in start order.
    fn rollback(&self, _ran: &[&Step]) {}
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    /// Jobs of one wave running at once (1: one after the other).
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

/// A run in which no step failed: its events in report order, and every step's output.
#[derive(Debug)]
pub(crate) struct Run<O> {
    pub events: Vec<StepEvent>,
    pub outputs: BTreeMap<StepId, O>,
}

impl<O> Run<O> {
    /// The outputs of the steps on `node` (`None`: node-less steps, or a one-node run).
    pub(crate) fn on_node<'a>(&'a self, node: Option<&'a str>) -> impl Iterator<Item = (&'a StepId, &'a O)> {
        self.outputs.iter().filter(move |(id, _)| id.node.is_none() || id.node.as_deref() == node)
    }
}

/// The errors of the steps that failed, first failure first, and the outputs of those that did
/// not (what a [`Policy::KeepGoing`] run still did).
#[derive(Debug)]
pub(crate) struct Failed<E, O> {
    pub errors: Vec<(StepId, E)>,
    pub outputs: BTreeMap<StepId, O>,
}

/// One unit of work of a wave: a step alone, or the runner's batch.
enum Job<'p> {
    One(&'p Step),
    Batch(Vec<&'p Step>),
}

impl<'p> Job<'p> {
    fn steps(&self) -> &[&'p Step] {
        match self {
            Job::One(step) => std::slice::from_ref(step),
            Job::Batch(steps) => steps,
        }
    }
}

type Results<O, E> = Vec<(StepId, Result<Ran<O>, E>)>;

/// What [`Exec::run`] returns for a runner `R`.
pub(crate) type Outcome<R> = Result<Run<<R as Runner>::Output>, Failed<<R as Runner>::Error, <R as Runner>::Output>>;

impl Exec {
    /// Runs `plan`. `Ok`: every step ran or was up to date.
    ///
    /// A plan whose dependencies are unknown or cyclic is a bug in kdbg: it panics.
    pub(crate) fn run<R: Runner>(&self, plan: &Plan, runner: &R, reporter: &dyn Reporter) -> Outcome<R> {
        let waves = plan.waves().unwrap_or_else(|e| panic!("kdbg built an invalid plan: {e}"));
        let log = Log { inner: reporter, events: Mutex::new(Vec::new()) };
        let mut outputs: BTreeMap<StepId, R::Output> = BTreeMap::new();
        let mut ran: Vec<&Step> = Vec::new();
        let mut errors: Vec<(StepId, R::Error)> = Vec::new();
        let mut blocked: BTreeSet<StepId> = BTreeSet::new();
        for wave in waves {
            let mut todo = Vec::new();
            for step in wave {
                if step.deps.iter().any(|d| blocked.contains(d)) {
                    blocked.insert(step.id.clone());
                    continue;
                }
                match runner.up_to_date(step, &inputs(step, &outputs)) {
                    Ok(Some(fresh)) => {
                        log.step(&step.id, StepStatus::Skipped { reason: fresh.reason });
                        outputs.insert(step.id.clone(), fresh.output);
                        self.crash.after(&step.id);
                    }
                    Ok(None) => todo.push(step),
                    Err(e) => {
                        log.step(&step.id, StepStatus::Failed { error: e.to_string() });
                        blocked.insert(step.id.clone());
                        errors.push((step.id.clone(), e));
                    }
                }
            }
            for chunk in jobs(todo, runner).chunks(self.parallel.max(1)) {
                chunk.iter().flat_map(Job::steps).for_each(|s| log.step(&s.id, StepStatus::Started));
                ran.extend(chunk.iter().flat_map(Job::steps));
                for (id, result) in self.run_chunk(chunk, runner, &outputs, &log) {
                    match result {
                        Ok(done) => {
                            outputs.insert(id, done.output);
                        }
                        Err(e) => {
                            blocked.insert(id.clone());
                            errors.push((id, e));
                        }
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
            true => Ok(Run { events, outputs }),
            false => Err(Failed { errors, outputs }),
        }
    }

    /// Runs the jobs of a chunk at once (one on this thread), reporting each step's end.
    fn run_chunk<R: Runner>(
        &self,
        chunk: &[Job<'_>],
        runner: &R,
        outputs: &BTreeMap<StepId, R::Output>,
        log: &Log<'_>,
    ) -> Results<R::Output, R::Error> {
        let one = |job: &Job<'_>| -> Results<R::Output, R::Error> {
            let started = Instant::now();
            let results = match job {
                Job::One(step) => vec![runner.run(step, &inputs(step, outputs))],
                Job::Batch(steps) => {
                    let with: Vec<_> = steps.iter().map(|s| (*s, inputs(s, outputs))).collect();
                    runner.run_batch(&with)
                }
            };
            let seconds = started.elapsed().as_secs_f64();
            let steps = job.steps();
            assert_eq!(results.len(), steps.len(), "a batch yields one result per step");
            for (step, result) in steps.iter().zip(&results) {
                match result {
                    Ok(Ran { warning: None, .. }) => log.step(&step.id, StepStatus::Done { seconds }),
                    Ok(Ran { warning: Some(error), .. }) => {
                        log.step(&step.id, StepStatus::Failed { error: error.clone() })
                    }
                    Err(e) => log.step(&step.id, StepStatus::Failed { error: e.to_string() }),
                }
                if result.is_ok() {
                    self.crash.after(&step.id);
                }
            }
            steps.iter().map(|s| s.id.clone()).zip(results).collect()
        };
        match chunk {
            [only] => one(only),
            _ => std::thread::scope(|scope| {
                let one = &one;
                let handles: Vec<_> = chunk.iter().map(|job| scope.spawn(move || one(job))).collect();
                handles.into_iter().flat_map(|h| h.join().expect("a step does not panic")).collect()
            }),
        }
    }
}

/// The outputs of `step`'s dependencies.
fn inputs<'a, O>(step: &Step, outputs: &'a BTreeMap<StepId, O>) -> Inputs<'a, O> {
    Inputs::new(step.deps.iter().filter_map(|d| outputs.get(d).map(|o| (d.clone(), o))).collect())
}

/// The steps to run as jobs: the runner's batched steps as one job where the first of them was,
/// the others alone, in plan order.
fn jobs<'p, R: Runner>(todo: Vec<&'p Step>, runner: &R) -> Vec<Job<'p>> {
    let mut jobs: Vec<Job<'p>> = Vec::new();
    let mut batch: Option<usize> = None;
    for step in todo {
        if !runner.batched(step) {
            jobs.push(Job::One(step));
            continue;
        }
        match batch {
            Some(i) => {
                if let Job::Batch(steps) = &mut jobs[i] {
                    steps.push(step);
                }
            }
            None => {
                batch = Some(jobs.len());
                jobs.push(Job::Batch(vec![step]));
            }
        }
    }
    jobs
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
mod tests;
