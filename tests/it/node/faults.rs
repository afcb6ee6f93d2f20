//! What a user sees when the node cannot be used: each failure is an error within seconds that
//! names the node and the fix, and the node's previous binary is left as it was.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{file, path_without_dlv, text, Setup, APISERVER};

/// A generous bound on waiting for kdbg to give up (ssh's ConnectTimeout is 10 s): past it kdbg
/// hangs, and is killed. The time it took is printed, never asserted (the bench measures).
const HANG: Duration = Duration::from_secs(90);

/// Runs a kdbg command that must fail; returns its stderr and how long it took.
fn fails(mut c: Command) -> Result<(String, Duration)> {
    let t = Instant::now();
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    while child.try_wait()?.is_none() {
        if t.elapsed() > HANG {
            child.kill()?;
            panic!("kdbg hung: no answer after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out: Output = child.wait_with_output()?;
    let took = t.elapsed();
    assert!(!out.status.success(), "expected a failure: {}", text(&out));
    Ok((String::from_utf8_lossy(&out.stderr).into_owned(), took))
}

#[test]
fn login_failures_name_the_node_and_the_fix() -> Result<()> {
    let s = Setup::new("login")?;
    let before = s.deploy()?;
    let sha = file(&before, "kube-apiserver")["sha256"].as_str().unwrap().to_string();
    s.change_source("not-deployed")?;
    let ip = s.node.ip().to_string();

    // A key the node does not know.
    let wrong = s.tree.join("wrong_key");
    let keygen = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&wrong).output()?;
    assert!(keygen.status.success(), "{}", text(&keygen));
    let (err, took) = fails(s.kdbg_as(&["deploy", "apiserver"], &wrong, s.node.known_hosts()))?;
    eprintln!("wrong key: {took:?}");
    assert!(err.contains(&format!("docker@{ip} refused the login")) && err.contains("Permission denied"), "{err}");
    assert!(err.contains("fix: pass the key that logs in to") && err.contains("--identity FILE"), "{err}");

    // A host ssh has never seen (an empty known_hosts, as on a fresh workstation).
    let empty = s.tree.join("empty_known_hosts");
    std::fs::write(&empty, "")?;
    let (err, took) = fails(s.kdbg_as(&["deploy", "apiserver"], s.node.identity(), &empty))?;
    eprintln!("unknown host key: {took:?}");
    assert!(err.contains(&format!("the host key of docker@{ip} is not the one ssh knows")), "{err}");
    assert!(err.contains(&format!("ssh-keyscan {ip} >> ~/.ssh/known_hosts")), "{err}");

    // Nothing listens: sshd is down.
    s.node.stop_sshd()?;
    let (err, took) = fails(s.kdbg(&["deploy", "apiserver"]))?;
    eprintln!("connection refused: {took:?}");
    assert!(err.contains(&format!("cannot reach docker@{ip}")) && err.contains("Connection refused"), "{err}");
    assert!(err.contains("fix: check that") && err.contains("sshd listens on port 22"), "{err}");

    s.node.start_sshd()?;
    assert_eq!(s.node_sha(APISERVER)?, sha, "the node's binary is untouched");
    Ok(())
}

#[test]
fn sudo_denied_and_a_full_disk_keep_the_old_binary() -> Result<()> {
    let s = Setup::new("nospace")?;
    // /var/lib/kdbg on a small file system of its own, so filling it fills nothing else.
    s.node.small_tmpfs("/var/lib/kdbg", "64m")?;
    let before = s.deploy()?;
    let sha = file(&before, "kube-apiserver")["sha256"].as_str().unwrap().to_string();
    s.change_source("full")?;
    let ip = s.node.ip().to_string();

    s.node.deny_sudo()?;
    let (err, took) = fails(s.kdbg(&["deploy", "apiserver"]))?;
    eprintln!("sudo denied: {took:?}");
    assert!(err.contains(&format!("sudo is not allowed without a password for the login on docker@{ip}")), "{err}");
    assert!(err.contains("fix: give the user passwordless sudo"), "{err}");
    s.node.allow_sudo()?;

    s.node.fill_disk("/var/lib/kdbg")?;
    let (err, took) = fails(s.kdbg(&["deploy", "apiserver"]))?;
    eprintln!("disk full: {took:?}");
    assert!(err.contains(&format!("docker@{ip} has no room left in /var/lib/kdbg/bin")), "{err}");
    assert!(err.contains("fix: free space on the node"), "{err}");
    assert_eq!(s.node_sha(APISERVER)?, sha, "the node's binary is untouched");
    assert_eq!(s.node.sh("ls -A /var/lib/kdbg/bin")?.split_whitespace().collect::<Vec<_>>(), ["dlv", "kube-apiserver"]);

    s.node.free_disk("/var/lib/kdbg")?;
    let after = s.deploy()?;
    assert_eq!(file(&after, "kube-apiserver")["copied"], true);
    Ok(())
}

#[test]
fn missing_dlv_is_an_error_with_an_install_hint() -> Result<()> {
    let s = Setup::new("nodlv")?;
    let before = s.deploy()?;
    let sha = file(&before, "kube-apiserver")["sha256"].as_str().unwrap().to_string();
    s.change_source("no-dlv")?;
    let scratch = tempfile::tempdir()?;
    let mut c = s.kdbg(&["deploy", "apiserver"]);
    c.env("PATH", path_without_dlv(scratch.path())?);
    let (err, _) = fails(c)?;
    assert!(err.contains(&format!("failed to deploy to {}", s.node.ssh_target())), "{err}");
    assert!(err.contains("dlv was not found on PATH"), "{err}");
    assert!(
        err.contains("fix: install Delve") && err.contains("go install github.com/go-delve/delve/cmd/dlv@latest"),
        "{err}"
    );
    assert_eq!(s.node_sha(APISERVER)?, sha, "the node's binary is untouched");
    Ok(())
}

#[test]
fn doctor_names_what_is_broken_and_fails() -> Result<()> {
    let s = Setup::new("doctor")?;
    let out = s.kdbg(&["doctor"]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "a healthy setup: {}", text(&out));
    for item in ["go", "make", "dlv", "ssh", "target", "sudo", "space"] {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("✓ {item} "))), "{item} not ✓:\n{stdout}");
    }

    let scratch = tempfile::tempdir()?;
    let out = s.kdbg(&["doctor"]).env("PATH", path_without_dlv(scratch.path())?).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{}", text(&out));
    let dlv = stdout.lines().position(|l| l.starts_with("✗ dlv ")).unwrap_or_else(|| panic!("no ✗ dlv:\n{stdout}"));
    assert!(stdout.lines().nth(dlv + 1).is_some_and(|l| l.contains("fix: install Delve")), "{stdout}");
    assert!(stdout.contains("✓ target") && stdout.contains("✓ sudo"), "{stdout}");

    s.node.deny_sudo()?;
    let out = s.kdbg(&["doctor"]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success() && stdout.contains("✗ sudo "), "{}", text(&out));
    Ok(())
}

#[test]
fn a_dlv_that_cannot_run_is_named_with_the_fix() -> Result<()> {
    let s = Setup::new("baddlv")?;
    let scratch = tempfile::tempdir()?;
    let dlv = which_dlv();
    use std::os::unix::fs::PermissionsExt;

    let plain = scratch.path().join("dlv");
    std::fs::copy(&dlv, &plain)?;
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644))?;
    let (err, _) = fails(s.kdbg(&["deploy", "apiserver", "--dlv", plain.to_str().unwrap()]))?;
    let p = plain.display();
    assert!(err.contains(&format!("{p} is not executable")) && err.contains(&format!("fix: `chmod +x {p}`")), "{err}");
    assert!(!err.contains("not found on PATH"), "{err}");

    // The same Delve with its ELF header saying AArch64 (e_machine 0xb7).
    let arm = scratch.path().join("dlv-arm64");
    let mut bytes = std::fs::read(&dlv)?;
    bytes[18..20].copy_from_slice(&0xb7u16.to_le_bytes());
    std::fs::write(&arm, bytes)?;
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o755))?;
    let (err, _) = fails(s.kdbg(&["deploy", "apiserver", "--dlv", arm.to_str().unwrap()]))?;
    let want =
        format!("{} is a dlv for arm64 (its ELF machine is Aarch64), but the node is linux/amd64", arm.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("fix: build one for linux/amd64: `GOOS=linux GOARCH=amd64"), "{err}");
    assert!(!err.contains("Exec format error") && !err.contains("os error"), "{err}");
    assert!(s.node.sh("ls -A /var/lib/kdbg/bin 2>/dev/null; true")?.trim().is_empty(), "nothing was copied");
    Ok(())
}

fn which_dlv() -> std::path::PathBuf {
    let out = Command::new("sh").args(["-c", "command -v dlv"]).output().unwrap();
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
