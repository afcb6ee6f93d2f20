//! Fault injection: kdbg SIGKILLed at every step boundary of `debug` and `restore`
//! (`KDBG_TEST_CRASH_AT`); the next `kdbg restore` returns the node byte-identical.

use kdbg_core::session::crash::{self, debug_points, restore_points};

use super::Lab;

#[test]
fn a_kill_at_any_step_boundary_is_undone_by_restore() {
    let lab = Lab::up("sessf");
    let before = lab.snapshot();
    let mut tried = 0;
    for point in debug_points("kube-apiserver") {
        let out = lab.debug(&[]).env(crash::ENV, &point).output();
        assert_eq!(out.code, -1, "{point}: kdbg was not killed there:\n{}", out.stderr);
        lab.restore();
        assert_eq!(lab.snapshot(), before, "after a kill at {point}");
        lab.assert_clean();
        tried += 1;
    }
    for point in restore_points("kube-apiserver") {
        lab.debug(&[]).success();
        let out = lab.kdbg(&["restore"]).env(crash::ENV, &point).output();
        assert_eq!(out.code, -1, "{point}: kdbg restore was not killed there:\n{}", out.stderr);
        lab.restore();
        assert_eq!(lab.snapshot(), before, "after a kill at {point}");
        lab.assert_clean();
        tried += 1;
    }
    eprintln!("fault injection: {tried} kill points, each undone by `kdbg restore`");
    assert_eq!(tried, 14);
}
