//! The plan `kdbg plan --debug` prints is what `kdbg debug` runs: the same step ids, started in
//! the same order.

use kdbg_core::plan::StepId;

use super::Lab;

#[test]
fn debug_runs_the_steps_of_its_plan_in_order() {
    let lab = Lab::up("sessp");
    let plan = lab.debug_plan();
    let out = lab.debug(&["--json"]).success();
    let json = out.stdout.lines().find(|l| l.starts_with('{')).expect("kdbg debug --json prints one object");
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    let events = json["steps"].as_array().unwrap();
    let mut started: Vec<StepId> = Vec::new();
    for e in events {
        let id: StepId = e["id"].as_str().unwrap().parse().unwrap();
        if !started.contains(&id) {
            started.push(id);
        }
    }
    assert_eq!(started, plan, "events: {events:?}");
    for id in &plan {
        let last = events.iter().rfind(|e| e["id"] == id.to_string()).unwrap();
        assert!(["done", "skipped"].contains(&last["status"].as_str().unwrap()), "{id}: {last}");
    }
    // The terminal shows the same ids.
    for id in &plan {
        assert!(out.stderr.contains(&id.to_string()), "{id} not in:\n{}", out.stderr);
    }
    lab.restore();
    lab.assert_clean();
}
