//! Bad inputs to `kdbg debug`: each a clear error, and the node left exactly as it was.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use super::{Lab, RELEASE_BIN};
use crate::support::GO_BIN;

impl Lab {
    /// Runs `kdbg debug` expecting failure; checks the message and that nothing changed.
    fn rejects(&self, what: &str, path: Option<&str>, expect: &[&str]) {
        let before = self.snapshot();
        let procs = self.components();
        let mut run = self.debug(&[]);
        if let Some(p) = path {
            run = run.env("PATH", p);
        }
        let out = run.output();
        assert!(out.code == 1 || out.code == 4, "{what}: exit {}:\n{}", out.code, out.stderr);
        for e in expect {
            assert!(out.stderr.contains(e), "{what}: expected {e:?} in:\n{}", out.stderr);
        }
        assert_eq!(self.snapshot(), before, "{what}: the node changed");
        assert_eq!(self.components(), procs, "{what}: processes changed");
    }

    /// The node's component processes (binaries under /var/lib), by pid.
    fn components(&self) -> Vec<(u32, String)> {
        self.node_procs().into_iter().filter(|(_, exe)| exe.starts_with("/var/lib/")).collect()
    }

    fn put_manifest(&self, text: &str) {
        std::fs::write(self.manifest_path(), text).unwrap();
    }

    fn wait_gone(&self) {
        let gone =
            kdbg_tests::sys::wait_for(std::time::Duration::from_secs(20), std::time::Duration::from_millis(50), || {
                (!self.node_exes().iter().any(|e| e == RELEASE_BIN)).then_some(())
            });
        assert!(gone.is_some(), "the apiserver did not stop");
    }
}

/// A PATH with everything of /usr/bin but dlv.
fn path_without_dlv(lab: &Lab) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir("/usr/bin").unwrap().map(|e| e.unwrap()) {
        if e.file_name() != "dlv" {
            std::os::unix::fs::symlink(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    let path = format!("{}:{GO_BIN}:{}:/usr/sbin:/sbin", lab.tree.bin.display(), dir.path().display());
    (dir, path)
}

#[test]
fn bad_inputs_are_clear_errors_and_leave_the_node_unchanged() {
    let lab = Lab::up("sessb");
    let good = lab.manifest();

    let (_dir, no_dlv) = path_without_dlv(&lab);
    assert!(!lab.node.host_path("/var/lib/kdbg/bin/dlv").exists());
    lab.rejects("dlv missing on node and workstation", Some(&no_dlv), &["dlv was not found on PATH"]);

    lab.node.deny_sudo().unwrap();
    lab.rejects("sudo denied", None, &["sudo is not allowed without a password"]);
    lab.node.allow_sudo().unwrap();

    let mut listener = listen(&lab, lab.port);
    let busy = format!("port {} is busy on docker@", lab.port);
    lab.rejects("port busy", None, &[&busy, "held by pid", "kdbg-testnode listen"]);
    let _ = listener.kill();
    let _ = listener.wait();

    lab.put_manifest("apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n");
    lab.wait_gone();
    lab.rejects("malformed manifest", None, &["kube-apiserver.yaml on docker@", "cannot be used"]);

    lab.put_manifest(&good.replace(RELEASE_BIN, "/var/lib/minikube/binaries/gone"));
    lab.rejects("component not running", None, &["kube-apiserver is not running on docker@", "--wait-for-debugger"]);

    std::fs::remove_file(lab.manifest_path()).unwrap();
    lab.rejects("no manifest, not running", None, &["does not run on docker@", "has no manifest"]);

    let mut stray = lab
        .node
        .command(RELEASE_BIN)
        .args(lab.manifest_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.wait_healthz();
    lab.rejects(
        "manifest missing",
        None,
        &["runs on docker@", "/etc/kubernetes/manifests/kube-apiserver.yaml is missing"],
    );
    for (pid, _) in lab.components() {
        lab.node.exec(["kill", &pid.to_string()]).unwrap();
    }
    let _ = stray.wait();

    lab.put_manifest(&good);
    lab.wait_healthz();
    lab.restore();
    lab.assert_clean();
}

#[test]
fn failures_after_the_first_change_roll_back() {
    let lab = Lab::up("sesst");
    // A tree whose build exits at start: Delve runs it, it is gone, kdbg rolls back.
    lab.tree.write(
        "cmd/kube-apiserver/app/server.go",
        &std::fs::read_to_string(lab.tree.path("cmd/kube-apiserver/app/server.go")).unwrap().replace(
            "\tflags.Parse(fs, args)\n",
            "\tflags.Parse(fs, args)\n\tklog.Errorf(\"kdbg-it: broken build\")\n\tos.Exit(7)\n",
        ),
    );
    let before = lab.snapshot();
    let out = lab.debug(&[]).output();
    assert_eq!(out.code, 1, "{}", out.stderr);
    for e in ["the debug build exited as it started", "kdbg-it: broken build", "rolled back"] {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();

    // The old process's port stays taken (as by a container that will not die).
    let held = good_with_port(&lab, 18080);
    lab.put_manifest(&held);
    let restarted = |p: &kdbg_tests::PodStatus| {
        p.state == kdbg_tests::PodState::Running && p.argv.iter().any(|a| a == "--insecure-port=18080")
    };
    lab.node.wait_pod("kube-apiserver", std::time::Duration::from_secs(20), "restarted", restarted).unwrap();
    lab.wait_healthz();
    let mut listener = listen(&lab, 18080);
    let before = lab.snapshot();
    let out = lab.debug(&["--stop-timeout", "2"]).output();
    assert_eq!(out.code, 1, "{}", out.stderr);
    for e in [
        "did not stop on docker@",
        "within 2s",
        "port 18080 is still listened on",
        "it was put back: the node is as it was",
    ] {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert_eq!(lab.snapshot(), before, "the manifest is back, byte-identical, and the journal gone");
    lab.wait_healthz();
    let _ = listener.kill();
    let _ = listener.wait();
}

fn good_with_port(lab: &Lab, port: u16) -> String {
    lab.manifest().replace("    - --secure-port=", &format!("    - --insecure-port={port}\n    - --secure-port="))
}

/// `kdbg-testnode listen` on the node's 127.0.0.1:`port`, once it listens.
fn listen(lab: &Lab, port: u16) -> std::process::Child {
    let mut child = lab
        .node
        .command(env!("CARGO_BIN_EXE_kdbg-testnode"))
        .args(["listen", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    child
}
