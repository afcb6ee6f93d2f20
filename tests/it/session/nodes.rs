//! Two test nodes in one run: `kdbg deploy`, `debug`, `status` and `restore` with two `--target`s
//! (one build, steps `…@docker@IP` per node), a breakpoint hit through each node's own tunnel
//! port, both nodes byte-identical after restore; a kill once both nodes run Delve leaves each
//! node restorable on its own; one node's failure rolls back both.

use kdbg_core::crash;
use kdbg_tests::lab;
use serde_json::Value;

use super::Lab;
use crate::support::Run;

/// `kdbg ARGS` from `a`'s tree and state dir, with both nodes as targets.
fn both(a: &Lab, b: &Lab, args: &[&str]) -> Run {
    let all = args.iter().map(|a| a.to_string()).chain(lab::targets_args(&[&a.node, &b.node]));
    a.tree.kdbg(all).env("KDBG_STATE_DIR", a.state.path())
}

/// The JSON document of kdbg's stdout (`kdbg debug` also prints its start and ready markers).
fn json(out: &str) -> Value {
    let doc = out.lines().find(|l| l.starts_with('{')).unwrap_or(out);
    serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The step id suffix of a lab's node: `@docker@IP`.
fn at(lab: &Lab) -> String {
    format!("@{}", lab.node.ssh_target().trim_start_matches("ssh://"))
}

#[test]
fn two_nodes_deploy_debug_status_restore_in_one_run() {
    let (a, b) = (Lab::up("nda"), Lab::up("ndb"));
    let (before_a, before_b) = (a.snapshot(), b.snapshot());

    // deploy: one build, each node's copies; a second deploy sends nothing.
    let out = json(&both(&a, &b, &["deploy", "apiserver", "--json"]).success().stdout);
    let nodes = out["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{out}");
    for n in nodes {
        assert!(n["files"].as_array().unwrap().iter().all(|f| f["copied"] == true), "{n}");
    }
    let again = json(&both(&a, &b, &["deploy", "apiserver", "--json"]).success().stdout);
    for n in again["nodes"].as_array().unwrap() {
        assert!(n["files"].as_array().unwrap().iter().all(|f| f["copied"] == false), "{n}");
    }

    // debug: both nodes in one run, each step of a node named with it; node 2 on port + 100.
    let port = a.port.to_string();
    let out = json(&both(&a, &b, &["debug", "apiserver", "--no-ide", "--port", &port, "--json"]).success().stdout);
    let steps: Vec<String> = out["nodes"][0]["steps"].as_array().unwrap().iter().map(|s| s["id"].to_string()).collect();
    for id in ["stop:kube-apiserver", "launch:kube-apiserver", "tunnel:kube-apiserver"] {
        assert!(steps.iter().any(|s| s.contains(&format!("{id}{}", at(&a)))), "{id}{}: {steps:?}", at(&a));
    }
    assert!(steps.iter().any(|s| s.contains("build:kube-apiserver\"")), "one build for both: {steps:?}");
    let local: Vec<u64> =
        out["nodes"].as_array().unwrap().iter().map(|n| n["sessions"][0]["local_port"].as_u64().unwrap()).collect();
    assert_eq!(local, [a.port as u64, a.port as u64 + 100], "{out}");
    a.hit_breakpoint_on(&a, a.port);
    a.hit_breakpoint_on(&b, a.port + 100);

    let status = json(&both(&a, &b, &["status", "--json"]).success().stdout);
    let tunnels: Vec<u64> =
        status["nodes"].as_array().unwrap().iter().map(|n| n["components"][0]["tunnel"].as_u64().unwrap()).collect();
    assert_eq!(tunnels, [a.port as u64, a.port as u64 + 100], "{status}");

    both(&a, &b, &["restore"]).success();
    assert_eq!(a.snapshot(), before_a);
    assert_eq!(b.snapshot(), before_b);
    a.assert_clean();
    b.assert_clean();

    // A kill once both nodes run Delve: each node is restored on its own.
    let point = format!("tunnel:kube-apiserver{}", at(&a));
    let out = both(&a, &b, &["debug", "apiserver", "--no-ide", "--port", &port]).env(crash::ENV, &point).output();
    assert_eq!(out.code, -1, "{point}: kdbg was not killed there:\n{}", out.stderr);
    for lab in [&a, &b] {
        assert!(lab.node_exes().iter().any(|e| e.ends_with("/dlv")), "no Delve on {} after the kill", lab.node.ip());
    }
    a.kdbg(&["restore"]).success();
    assert_eq!(a.snapshot(), before_a);
    a.assert_clean();
    assert_ne!(b.snapshot(), before_b, "restoring one node left the other alone");
    // The same workstation (its state dir holds the forwards), the other node alone.
    b.kdbg(&["restore"]).env("KDBG_STATE_DIR", a.state.path()).success();
    assert_eq!(b.snapshot(), before_b);
    b.assert_clean();
    let left = both(&a, &b, &["status"]).success().stdout;
    assert_eq!(left.matches("nothing is under debug").count(), 2, "{left}");

    // One node fails after both were changed (B's log directory is a file, so its launch
    // fails once both originals are stopped): the run rolls back both nodes.
    let log = b.node.host_path("/var/log/kdbg");
    let _ = std::fs::remove_dir_all(&log);
    std::fs::write(&log, "in the way").unwrap();
    // Exit 4: a node refused an action.
    let out = both(&a, &b, &["debug", "apiserver", "--no-ide", "--port", &port]).failure(4);
    std::fs::remove_file(&log).unwrap();
    for lab in [&a, &b] {
        let stopped = format!("stop:kube-apiserver{}: done", at(lab));
        let restored = format!("restore:kube-apiserver{}: done", at(lab));
        assert!(out.stderr.contains(&stopped) && out.stderr.contains(&restored), "{restored}:\n{}", out.stderr);
    }
    assert!(out.stderr.contains(&format!("launch:kube-apiserver{}: FAILED", at(&b))), "{}", out.stderr);
    assert_eq!(out.stderr.matches("rolled back docker@").count(), 2, "{}", out.stderr);
    assert_eq!((a.snapshot(), b.snapshot()), (before_a, before_b));
    a.assert_clean();
    b.assert_clean();
}
