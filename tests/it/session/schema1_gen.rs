//! Writes the schema-1 journals of today's kdbg (a real `kdbg debug apiserver` on a test node, on
//! TCP with Debian's Delve 1.20 and on a socket with the matrix's Delve 1.27) into
//! kdbg-core/src/session/journal/testdata, when KDBG_WRITE_SCHEMA1 is set. Run once at the commit
//! before journal schema 2, then removed.

use kdbg_tests::toolchain::Toolchain;

use crate::session::Lab;
use crate::support::Tree;

fn write(name: &str, lab: &Lab) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kdbg-core/src/session/journal/testdata");
    std::fs::write(dir.join(name), lab.journal()).unwrap();
}

#[test]
fn schema1_journals_of_todays_kdbg() {
    if std::env::var_os("KDBG_WRITE_SCHEMA1").is_none() {
        return;
    }
    let lab = Lab::up_with("gen1", Tree::fixture_with(Toolchain::debian()));
    let before = lab.snapshot();
    lab.debug(&[]).success();
    write("static-pod-tcp.json", &lab);
    lab.restore();
    assert_eq!(lab.snapshot(), before);

    let lab = Lab::up_with("gen2", Tree::fixture_with(Toolchain::newest()));
    let before = lab.snapshot();
    lab.debug(&[]).success();
    write("static-pod-socket.json", &lab);
    lab.restore();
    assert_eq!(lab.snapshot(), before);
}
