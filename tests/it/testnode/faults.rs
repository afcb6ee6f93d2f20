//! The fault helpers break the node the way fault tests need, and undo it.

use anyhow::{ensure, Result};

use super::up;

#[test]
fn sudo_disk_and_sshd_faults() -> Result<()> {
    let node = up("faults")?;

    node.deny_sudo()?;
    let out = node.ssh("sudo -n true")?;
    ensure!(!out.status.success(), "sudo still works: {out:?}");
    node.allow_sudo()?;
    let out = node.ssh("sudo -n true")?;
    ensure!(out.status.success(), "sudo does not work again: {out:?}");

    assert!(node.fill_disk("/var/lib/kdbg").is_err(), "filled a real disk");
    node.small_tmpfs("/var/lib/kdbg", "256k")?;
    node.fill_disk("/var/lib/kdbg")?;
    let out = node.ssh("echo x | sudo -n tee /var/lib/kdbg/journal.json")?;
    ensure!(!out.status.success(), "write to a full disk worked: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
    node.free_disk("/var/lib/kdbg")?;
    let out = node.ssh("echo x | sudo -n tee /var/lib/kdbg/journal.json")?;
    ensure!(out.status.success(), "write after free_disk failed: {out:?}");

    node.stop_sshd()?;
    let out = node.ssh("true")?;
    ensure!(!out.status.success(), "ssh works without sshd: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Connection refused"), "{out:?}");
    node.start_sshd()?;
    let out = node.ssh("sudo -n true")?;
    ensure!(out.status.success(), "ssh after start_sshd: {out:?}");
    Ok(())
}
