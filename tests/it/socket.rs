//! Delve on a unix socket (Delve ≥ 1.22.1, here the matrix's Delve 1.27 on the v1.30+-era
//! fixture): VSCode attaches through the ssh forward to the socket, the login user's forward works
//! while another local user of the node cannot even connect, `kdbg status` names the socket, and
//! restore — from another workstation, then this one — leaves no socket directory and no forward;
//! `kdbg watch` relaunches Delve on the socket, `kdbg trace` reaches it, and a lost journal's
//! socket directory is found and removed; an sshd that refuses streamlocal forwarding is a clear
//! error.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kdbg_tests::toolchain::Toolchain;

use crate::session::Lab;
use crate::support::Tree;

const SOCKET: &str = "/var/lib/kdbg/run/kube-apiserver/dlv.sock";

/// Connects to `SOCKET` inside the node as `uid:gid` (no supplementary groups): `connected`, or
/// the error connect(2) gave.
fn connect_as(lab: &Lab, uid: u32, gid: u32) -> String {
    let perl = r#"use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or do { print "$!\n"; exit 1 }; print "connected\n""#;
    let (reuid, regid) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let out = lab.node.exec(["setpriv", &reuid, &regid, "--clear-groups", "perl", "-e", perl, SOCKET]).unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_string()
}

#[test]
fn delve_on_a_socket_only_the_login_user_reaches_vscode_attaches_and_restore_removes_it() {
    let lab = Lab::up_with("sock", Tree::fixture_with(Toolchain::newest()));
    let port = lab.port.to_string();
    let out = lab.kdbg(&["debug", "apiserver", "--port", &port]).success();
    assert!(out.stdout.contains(&format!("at unix:{SOCKET}")), "{}", out.stdout);
    assert!(!out.stdout.contains("Delve listens on TCP"), "{}", out.stdout);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_the_socket(&lab)));
    if outcome.is_err() {
        lab.kdbg(&["restore"]).output();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    // From another workstation: the journal says where the socket is; its directory goes.
    let elsewhere = tempfile::tempdir().unwrap();
    let restored = lab.kdbg(&["restore"]).env("KDBG_STATE_DIR", elsewhere.path()).success();
    assert!(restored.stdout.contains("removed Delve's socket directory /var/lib/kdbg/run/kube-apiserver"));
    assert!(restored.stdout.contains("the original runs again"), "{}\n{}", restored.stdout, restored.stderr);
    assert!(!lab.node.host_path("/var/lib/kdbg/run").exists(), "the socket directory is gone");
    // Back here, restore stops this workstation's forward to the socket.
    let again = lab.kdbg(&["restore"]).success();
    assert!(again.stderr.contains(&format!("stopped the tunnel localhost:{}", lab.port)), "{}", again.stderr);
    lab.assert_clean();
}

fn on_the_socket(lab: &Lab) {
    // The journal records the socket; Delve runs without `--only-same-user=false`.
    let journal: serde_json::Value = serde_json::from_str(&lab.journal()).unwrap();
    let listen = &journal["components"]["kube-apiserver"]["listen"];
    assert_eq!(listen, &serde_json::json!({ "kind": "unix", "path": SOCKET }), "{journal:#}");
    let dlv = lab.node_procs().into_iter().find(|(_, exe)| exe == "/var/lib/kdbg/bin/dlv").expect("Delve runs");
    let cmdline = lab.node.exec(["cat", &format!("/proc/{}/cmdline", dlv.0)]).unwrap().stdout;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(&format!("--listen=unix:{SOCKET} ")), "{cmdline}");
    assert!(!cmdline.contains("only-same-user"), "{cmdline}");

    // The directory is the login user's, 0700; the socket is handed to it, 0600.
    let dir = std::fs::metadata(lab.node.host_path("/var/lib/kdbg/run/kube-apiserver")).unwrap();
    let sock = std::fs::metadata(lab.node.host_path(SOCKET)).unwrap();
    let docker = std::fs::metadata(lab.node.host_path("/home/docker/.ssh")).unwrap();
    assert_eq!((dir.permissions().mode() & 0o7777, sock.permissions().mode() & 0o777), (0o700, 0o600));
    assert_eq!((dir.uid(), dir.gid()), (docker.uid(), docker.gid()), "owned by the login user");
    assert_eq!(sock.uid(), docker.uid());
    assert_ne!(docker.uid(), 0);

    // Another unprivileged user of the node cannot connect; the login user can.
    assert_eq!(connect_as(lab, 4242, 4242), "Permission denied");
    assert_eq!(connect_as(lab, docker.uid(), docker.gid()), "connected");

    // `kdbg status` names the socket, as text and as JSON.
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains(&format!("Delve listens on unix:{SOCKET} (a socket only")), "{}", status.stdout);
    assert!(status.stdout.contains("running"), "Delve answered through the tunnel: {}", status.stdout);
    let json = lab.kdbg(&["status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let c = &v["components"][0];
    assert_eq!((c["socket"].as_str(), c["dlv_up"].as_bool()), (Some(SOCKET), Some(true)), "{c:#}");
    assert!(c.get("tcp_because").is_none(), "{c:#}");

    // VSCode's attach to 127.0.0.1:PORT goes through the forward to the socket and stops.
    crate::dap_node::attach_and_break(lab);
}

/// The socket directory's owner and modes as the node has them: (uid, dir mode, socket mode).
fn socket_state(lab: &Lab) -> (u32, u32, u32) {
    let dir = std::fs::metadata(lab.node.host_path("/var/lib/kdbg/run/kube-apiserver")).unwrap();
    let sock = std::fs::metadata(lab.node.host_path(SOCKET)).unwrap();
    assert_eq!(dir.uid(), sock.uid());
    (dir.uid(), dir.permissions().mode() & 0o7777, sock.permissions().mode() & 0o777)
}

#[test]
fn watch_relaunches_delve_on_its_socket_and_a_lost_journal_leaves_nothing_behind() {
    let lab = Lab::up_with("sockw", Tree::fixture_with(Toolchain::newest()));
    lab.debug(&[]).success();
    let owner = socket_state(&lab);
    let pid = |lab: &Lab| lab.node_procs().into_iter().find(|(_, e)| e == "/var/lib/kdbg/bin/dlv").map(|(p, _)| p);
    let dlv0 = pid(&lab).expect("Delve runs");

    // `kdbg watch`: an edit relaunches Delve, which binds the socket again (the killed Delve's is
    // removed first) and hands it to the login user again; the same tunnel reaches it.
    let minute = std::time::Duration::from_secs(60);
    let mut w = crate::watch::child::Watcher::spawn(lab.kdbg(&["watch", "apiserver", "-v"]));
    w.wait_line("kdbg: ready", minute, |l| l == "kdbg: ready");
    let nosniff = r#"w.Header().Set("X-Content-Type-Options", "nosniff")"#;
    let text = std::fs::read_to_string(lab.tree.path(lab.tree.healthz())).unwrap();
    let edited = text.replace(nosniff, &format!("{nosniff}\n\tw.Header().Set(\"X-Kdbg-Socket\", \"edited\")"));
    assert_ne!(edited, text);
    lab.tree.write(lab.tree.healthz(), &edited);
    w.wait_line("the cycle's timings", 2 * minute, |l| l.starts_with("cycle 1: "));
    w.wait_line("kdbg: ready", minute, |l| l.starts_with("kdbg: ready"));
    assert_eq!(w.interrupt(minute), 0, "stderr:\n{}", w.stderr());
    drop(w);
    let dlv1 = pid(&lab).expect("Delve runs again");
    assert_ne!(dlv0, dlv1, "Delve was relaunched");
    assert_eq!(socket_state(&lab), owner, "the new socket is the login user's again");
    let status = lab.kdbg(&["status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let c = &v["components"][0];
    assert_eq!((c["dlv_up"].as_bool(), c["program"].as_str()), (Some(true), Some("running")), "{c:#}");
    assert!(lab.get("/healthz").unwrap().contains("X-Kdbg-Socket: edited"), "the new build serves");

    // `kdbg trace` reaches Delve on its socket: through this workstation's forward, and from
    // another workstation through a short-lived one.
    let curl = format!("curl -s --max-time 60 http://{}:{}/healthz", lab.node.ip(), kdbg_tests::lab::API_PORT);
    let elsewhere = tempfile::tempdir().unwrap();
    for state in [lab.state.path(), elsewhere.path()] {
        let trace = ["trace", "apiserver", "healthz", "--run", &curl, "--for", "2", "--json"];
        let out = lab.kdbg(&trace).env("KDBG_STATE_DIR", state).success();
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
        let hits = doc["timeline"]["hits"].as_array().unwrap();
        let seen =
            |h: &serde_json::Value| h["captures"].as_array().unwrap().iter().any(|c| c["value"] == "\"/healthz\"");
        assert!(hits.iter().any(seen), "a waypoint captured the request's path: {doc:#}");
    }

    // The journal lost: the socket directory is a trace that doctor reports and restore removes.
    std::fs::remove_file(lab.node.host_path("/var/lib/kdbg/journal.json")).unwrap();
    let doctor = lab.kdbg(&["doctor"]).failure(1);
    let found = "Delve's socket directory /var/lib/kdbg/run/kube-apiserver";
    assert!(doctor.stdout.contains(found), "{}", doctor.stdout);
    let restored = lab.restore();
    assert!(restored.stdout.contains("removed /var/lib/kdbg/run/kube-apiserver"), "{}", restored.stdout);
    assert!(!lab.node.host_path("/var/lib/kdbg/run").exists(), "the socket directory is gone");
    lab.assert_clean();
}

#[test]
fn an_sshd_without_streamlocal_forwarding_is_a_clear_error_and_the_node_is_rolled_back() {
    let lab = Lab::up_with("socknf", Tree::fixture_with(Toolchain::newest()));
    let before = lab.snapshot();
    let layout = kdbg_tests::layout::Layout::at(lab.node.state_dir().to_path_buf());
    lab.node.stop_sshd().unwrap();
    let mut config = std::fs::read_to_string(layout.sshd_config()).unwrap();
    config.push_str("AllowStreamLocalForwarding no\n");
    std::fs::write(layout.sshd_config(), config).unwrap();
    lab.node.start_sshd().unwrap();

    // The forward listens on this host, but sshd refuses every connection through it.
    let out = lab.debug(&[]).failure(1);
    for part in ["does not answer through localhost:", "AllowStreamLocalForwarding yes", "rolled back"] {
        assert!(out.stderr.contains(part), "{part:?} missing in:\n{}", out.stderr);
    }
    assert_eq!(lab.snapshot(), before, "the manifests and the journal are as before");
    assert!(!lab.node.host_path("/var/lib/kdbg/run").exists(), "no socket directory is left");
    lab.assert_clean();
}
