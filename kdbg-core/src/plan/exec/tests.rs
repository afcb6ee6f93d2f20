//! The executor on a test runner: concurrency, skips, typed outputs along the edges, batches,
//! failures and rollback.

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
/// A step's output is its id followed by the outputs it was given, so a test sees what
/// flowed along which edge.
struct Test {
    fail: Option<StepId>,
    barrier: std::sync::Barrier,
    running: AtomicUsize,
    batches: Mutex<Vec<Vec<String>>>,
    rolled_back: Mutex<Vec<StepId>>,
}

fn output(step: &Step, inputs: &Inputs<'_, String>) -> String {
    let given: Vec<&str> = inputs.iter().map(|(_, o)| o.as_str()).collect();
    format!("{}({})", step.id, given.join(" "))
}

impl Runner for Test {
    type Error = String;
    type Output = String;
    fn up_to_date(&self, step: &Step, inputs: &Inputs<'_, String>) -> Result<Option<Fresh<String>>, String> {
        let fresh = step.up_to_date || step.id.component() == Some("fresh");
        Ok(fresh.then(|| Fresh { reason: "same bytes".into(), output: output(step, inputs) }))
    }
    fn run(&self, step: &Step, inputs: &Inputs<'_, String>) -> Result<Ran<String>, String> {
        if step.id.kind == StepKind::Copy {
            self.running.fetch_add(1, Ordering::SeqCst);
            self.barrier.wait();
        }
        match Some(&step.id) == self.fail.as_ref() {
            true => Err(format!("{} broke", step.id)),
            false => Ok(Ran::done(output(step, inputs))),
        }
    }
    fn batched(&self, step: &Step) -> bool {
        step.id.kind == StepKind::Build
    }
    fn run_batch(&self, steps: &[(&Step, Inputs<'_, String>)]) -> Vec<Result<Ran<String>, String>> {
        self.batches.lock().unwrap().push(steps.iter().map(|(s, _)| s.id.to_string()).collect());
        steps.iter().map(|(step, inputs)| self.run(step, inputs)).collect()
    }
    fn rollback(&self, ran: &[&Step]) {
        self.rolled_back.lock().unwrap().extend(ran.iter().map(|s| s.id.clone()));
    }
}

fn plan() -> Plan {
    let mut p = Plan::default();
    let b = p.add(StepKind::Build.on("a"), &[], None, true, vec!["key unchanged".into()]);
    let ca = p.add(StepKind::Copy.on("a"), std::slice::from_ref(&b), None, false, vec![]);
    let cd = p.add(StepKind::Copy.delve(), &[b], None, false, vec![]);
    p.add(StepKind::Copy.on("fresh"), &[], None, false, vec![]);
    p.add(StepKind::Stop.on("a"), &[ca, cd], None, false, vec![]);
    p
}

fn test(fail: Option<StepId>) -> Test {
    Test {
        fail,
        barrier: std::sync::Barrier::new(2),
        running: AtomicUsize::new(0),
        batches: Mutex::default(),
        rolled_back: Mutex::default(),
    }
}

#[test]
fn a_wave_runs_concurrently_in_plan_order_and_skips_what_is_up_to_date() {
    let t = test(None);
    let run = Exec::default().run(&plan(), &t, &Quiet).ok().unwrap();
    let events = &run.events;
    let first: Vec<String> = events.iter().fold(Vec::new(), |mut seen, e| {
        if !seen.contains(&e.id.to_string()) {
            seen.push(e.id.to_string());
        }
        seen
    });
    let order: Vec<String> = plan().in_order().unwrap().steps.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(first, order);
    assert_eq!(events[0].status, StepStatus::Skipped { reason: "same bytes".into() });
    assert!(events.iter().any(|e| e.id.to_string() == "copy:fresh" && matches!(e.status, StepStatus::Skipped { .. })));
    // copy:a and copy:dlv met at the barrier: they ran at the same time.
    assert_eq!(t.running.load(Ordering::SeqCst), 2);
    assert!(t.rolled_back.lock().unwrap().is_empty());
}

#[test]
fn each_step_gets_the_outputs_of_its_dependencies_up_to_date_or_run() {
    let t = test(None);
    let run = Exec::default().run(&plan(), &t, &Quiet).ok().unwrap();
    let out = |id: &str| run.outputs[&id.parse::<StepId>().unwrap()].clone();
    assert_eq!(out("build:a"), "build:a()", "skipped, yet it has an output");
    assert_eq!(out("copy:dlv"), "copy:dlv(build:a())");
    assert_eq!(out("stop:a"), "stop:a(copy:a(build:a()) copy:dlv(build:a()))");
    assert_eq!(run.outputs.len(), plan().steps.len());
}

#[test]
fn batched_steps_of_a_wave_run_as_one_job_and_fail_their_dependents_each() {
    let mut p = Plan::default();
    let (ba, bb) = (StepKind::Build.on("a"), StepKind::Build.on("b"));
    p.add(ba.clone(), &[], None, false, vec![]);
    p.add(bb.clone(), &[], None, false, vec![]);
    p.add(StepKind::Launch.on("a"), std::slice::from_ref(&ba), None, false, vec![]);
    p.add(StepKind::Launch.on("b"), std::slice::from_ref(&bb), None, false, vec![]);
    let t = test(None);
    Exec::default().run(&p, &t, &Quiet).ok().unwrap();
    assert_eq!(*t.batches.lock().unwrap(), [vec!["build:a".to_string(), "build:b".into()]]);

    // The batch's failed step is reported by that step, and stops its dependents only.
    let t = test(Some(bb.clone()));
    let seen = Seen::default();
    let exec = Exec { policy: Policy::KeepGoing, ..Exec::default() };
    let failed = exec.run(&p, &t, &seen).err().unwrap();
    assert_eq!(failed.errors, [(bb, "build:b broke".to_string())]);
    let seen = seen.0.lock().unwrap();
    assert!(seen.iter().any(|id| id.to_string() == "launch:a"));
    assert!(!seen.iter().any(|id| id.to_string() == "launch:b"));
}

#[test]
fn a_failure_stops_its_dependents_and_rolls_back_what_ran() {
    let t = test(Some(StepKind::Copy.delve()));
    let seen = Seen::default();
    let failed = Exec::default().run(&plan(), &t, &seen).err().unwrap();
    assert_eq!(failed.errors, [(StepKind::Copy.delve(), "copy:dlv broke".to_string())]);
    assert!(!seen.any(StepKind::Stop));
    let rolled: Vec<String> = t.rolled_back.lock().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(rolled, ["copy:a", "copy:dlv"]);

    // Keep going: what does not depend on the failure still runs, nothing is rolled back.
    let mut p = plan();
    p.add(StepKind::Tunnel.on("b"), &[], None, false, vec![]);
    let t = test(Some(StepKind::Copy.delve()));
    let exec = Exec { policy: Policy::KeepGoing, ..Exec::default() };
    let seen = Seen::default();
    exec.run(&p, &t, &seen).err().unwrap();
    assert!(seen.any(StepKind::Tunnel));
    assert!(!seen.any(StepKind::Stop));
    assert!(t.rolled_back.lock().unwrap().is_empty());
}
