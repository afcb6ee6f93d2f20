//! Fault injection: kdbg SIGKILLed at every step boundary of `debug` and `restore`
//! (`KDBG_TEST_CRASH_AT`, at the points the plans' step ids name); the next `kdbg restore`
//! returns the node byte-identical.

use kdbg_core::crash;
use kdbg_core::session::restore;

use super::Lab;

#[test]
fn a_kill_at_any_step_boundary_is_undone_by_restore() {
    let lab = Lab::up("sessf");
    let before = lab.snapshot();
    let debug_points = crash::points(&lab.debug_plan());
    let restore_plan = restore::plan(&["kube-apiserver".to_string()]);
    let restore_points = crash::points(restore_plan.steps.iter().map(|s| &s.id));
    for point in &debug_points {
        let out = lab.debug(&[]).env(crash::ENV, point).output();
        assert_eq!(out.code, -1, "{point}: kdbg was not killed there:\n{}", out.stderr);
        lab.restore();
        assert_eq!(lab.snapshot(), before, "after a kill at {point}");
        lab.assert_clean();
    }
    for point in &restore_points {
        lab.debug(&[]).success();
        let out = lab.kdbg(&["restore"]).env(crash::ENV, point).output();
        assert_eq!(out.code, -1, "{point}: kdbg restore was not killed there:\n{}", out.stderr);
        lab.restore();
        assert_eq!(lab.snapshot(), before, "after a kill at {point}");
        lab.assert_clean();
    }
    eprintln!("fault injection: kdbg killed at {debug_points:?} and {restore_points:?}, each undone by `kdbg restore`");
    // Every boundary of the session: capture, build, choose-dlv, hash-node, both copies,
    // choose-endpoint, stop (3 inside), launch (2 inside), tunnel; restore (3 inside).
    assert_eq!((debug_points.len(), restore_points.len()), (15, 4));
}
