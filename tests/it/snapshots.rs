//! Snapshot tests (expect-test) of what a user reads: `kdbg components`, `kdbg plan`, `kdbg status`
//! with a recorded journal, and (in `help`) `--help` of every subcommand. A change of the output
//! shows up in review as a change of the snapshot; `UPDATE_EXPECT=1 cargo test -p kdbg-tests
//! --test it -- snapshots` writes the new one. Anything of this machine or this moment (the
//! tree's path, hashes, the node's address, times) is masked by [`Masks`] first.

mod help;

use expect_test::expect;
use kdbg_tests::{TestNode, TestNodeConfig};

use crate::support::Tree;

/// Replaces what differs between machines and runs with `<names>`.
#[derive(Default)]
struct Masks {
    literal: Vec<(String, &'static str)>,
}

impl Masks {
    /// `from` (a path, an address) becomes `to` wherever it appears.
    fn literal(mut self, from: impl Into<String>, to: &'static str) -> Masks {
        self.literal.push((from.into(), to));
        self
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.literal {
            text = text.replace(from.as_str(), to);
        }
        text.lines().map(|l| mask_words(l) + "\n").collect()
    }
}

/// Per line: a plan step's fingerprint (`[0123456789ab]`) becomes `[<fingerprint>]`, and a
/// session's age as `kdbg status` prints it in its padded SINCE column (`2h00m`) becomes `<since>`
/// (padded to the same width, so the columns stay).
fn mask_words(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(|c: char| c == '[' || c.is_ascii_digit()) {
        let (before, at) = rest.split_at(i);
        out.push_str(before);
        let word = at.split(' ').next().unwrap_or_default();
        if is_fingerprint(word) {
            out.push_str("[<fingerprint>]");
            rest = &at[word.len()..];
        } else if is_hours(word) && (out.is_empty() || out.ends_with(' ')) && at[word.len()..].starts_with("  ") {
            let width = word.len() + 2;
            out.push_str(&format!("{:<width$}", "<since>"));
            rest = &at[width..];
        } else {
            out.push_str(&at[..1]);
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `[` twelve lowercase hex digits `]`.
fn is_fingerprint(w: &str) -> bool {
    let hex = w.strip_prefix('[').and_then(|w| w.strip_suffix(']')).unwrap_or_default();
    hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Hours and minutes as `journal::since` prints them: `2h00m`.
fn is_hours(w: &str) -> bool {
    let Some((h, m)) = w.strip_suffix('m').and_then(|w| w.split_once('h')) else { return false };
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()) && m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn masks_keep_columns() {
    let line = "kube-apiserver           launched   x     2h00m      Delve is not running";
    assert_eq!(mask_words(line), "kube-apiserver           launched   x     <since>    Delve is not running");
    let step = "1. build:a  will run  [0123456789ab]  after x";
    assert_eq!(mask_words(step), "1. build:a  will run  [<fingerprint>]  after x");
    assert_eq!(mask_words("port 2345 (pid 42) 1h00m"), "port 2345 (pid 42) 1h00m");
}

#[test]
fn components_lists_the_catalogue() {
    let t = Tree::fixture();
    let out = t.kdbg(["components"]).success();
    expect![[r#"
        COMPONENT                  ALIASES                      RUNS AS                        DLV PORT
        kube-apiserver             apiserver                    static pod kube-apiserver.yaml 2345
        kube-controller-manager    controller-manager, cm       static pod kube-controller-manager.yaml 2346
        kube-scheduler             scheduler                    static pod kube-scheduler.yaml 2347
        kubelet                                                 systemd kubelet.service        2348
        kube-proxy                 proxy                        daemonset kube-system/kube-proxy 2349
    "#]]
    .assert_eq(&out.stdout);
}

#[test]
fn plan_of_a_fresh_tree() {
    let t = Tree::fixture();
    let masks = Masks::default().literal(t.root.display().to_string(), "<tree>");
    let out = t.kdbg(["plan", "apiserver", "scheduler"]).success();
    expect![[r#"
        1. build:kube-apiserver             will run  [<fingerprint>]
             no build recorded
        1. build:kube-scheduler             will run  [<fingerprint>]
             no build recorded
    "#]]
    .assert_eq(&masks.apply(&out.stdout));
    let out = t.kdbg(["plan", "apiserver", "--debug"]).success();
    expect![[r#"
        1. capture-args:kube-apiserver      will run
        2. build:kube-apiserver             will run  [<fingerprint>]  after capture-args:kube-apiserver
             no build recorded
        3. choose-dlv                       will run  after build:kube-apiserver
             the Delve that reads the built binaries (Go and DWARF version) and runs on the node
        4. hash-node                        will run  after build:kube-apiserver, choose-dlv
             one round trip for every file
        5. copy:kube-apiserver              will run  after build:kube-apiserver, hash-node
             sent only if the node's sha256 differs
        5. copy:dlv                         will run  after choose-dlv, hash-node
             sent only if the node's sha256 differs
        6. choose-endpoint                  will run  after choose-dlv, copy:dlv, capture-args:kube-apiserver
             a unix socket only the login user can reach, else loopback TCP (see kdbg status)
        7. stop:kube-apiserver              will run  after copy:kube-apiserver, copy:dlv, capture-args:kube-apiserver, choose-endpoint
        8. launch:kube-apiserver            will run  after stop:kube-apiserver
        9. tunnel:kube-apiserver            will run  after launch:kube-apiserver
        10. write-ide                        will run  after tunnel:kube-apiserver, build:kube-apiserver
    "#]]
    .assert_eq(&masks.apply(&out.stdout));
}

/// A journal as `kdbg debug` (schema 1) leaves it for two sessions on one node: the apiserver's
/// static pod under a Delve on a unix socket, and the kubelet's unit under a Delve on TCP; neither
/// Delve runs any more.
fn recorded_journal(started_at: u64) -> String {
    let who = r#"{ "host": "workstation", "pid": 4242 }"#;
    let apiserver = format!(
        r#"{{
      "component": "kube-apiserver", "state": "launched", "who": {who},
      "started_at": {started_at}, "updated_at": {started_at},
      "how": {{ "kind": "static_pod", "manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "sha256": "{sha}", "mode": 384, "backup": "/var/lib/kdbg/backup/kube-apiserver.yaml" }},
      "captured_from": "process 1234", "was_running": true,
      "args": ["/var/lib/kdbg/bin/kube-apiserver", "--secure-port=8443"], "env_names": ["SECRET_TOKEN"],
      "ports": [8443], "binary": "/var/lib/kdbg/bin/kube-apiserver", "dlv": "/var/lib/kdbg/bin/dlv",
      "listen": "unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock", "port": 2345, "dlv_pid": 999999,
      "log": "/var/lib/kdbg/log/kube-apiserver.log",
      "built_from": {{ "tree": "/home/dev/kubernetes", "version": "v1.20.2", "commit": "0123456789abcdef0123" }}
    }}"#,
        sha = "ab".repeat(32)
    );
    let kubelet = format!(
        r#"{{
      "component": "kubelet", "state": "launched", "who": {who},
      "started_at": {started_at}, "updated_at": {started_at},
      "how": {{ "kind": "systemd", "unit": "kubelet.service", "active": true, "enabled": "enabled" }},
      "captured_from": "unit", "was_running": true,
      "args": ["/var/lib/kdbg/bin/kubelet", "--v=2"], "env_names": [], "ports": [10250],
      "binary": "/var/lib/kdbg/bin/kubelet", "dlv": "/var/lib/kdbg/bin/dlv",
      "listen": "127.0.0.1:2346", "tcp_because": "Delve 1.20.2 has no unix sockets", "port": 2346,
      "dlv_pid": null, "log": "/var/lib/kdbg/log/kubelet.log"
    }}"#
    );
    format!(r#"{{ "schema": 1, "components": {{ "kube-apiserver": {apiserver}, "kubelet": {kubelet} }} }}"#)
}

#[test]
fn status_of_a_recorded_journal() {
    let node = TestNode::up(TestNodeConfig::unique("snap").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let journal = node.host_path("/var/lib/kdbg/journal.json");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let two_hours_ago = kdbg_core::session::journal::now() - 2 * 3600;
    std::fs::write(&journal, recorded_journal(two_hours_ago)).unwrap();
    let t = Tree::fixture();
    let state = tempfile::tempdir().unwrap();
    let target = kdbg_tests::lab::target_args(&node);
    let out = t.kdbg([&["status".to_string()], &target[..]].concat()).env("KDBG_STATE_DIR", state.path()).success();
    let masks = Masks::default().literal(node.ip().to_string(), "<node-ip>");
    expect![[r#"
        COMPONENT                STATE      DELVE              TUNNEL           SINCE      PROGRAM
        kube-apiserver           launched   unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock (down) -                <since>    Delve is not running
                                 by workstation (pid 4242), arguments from process 1234
                                 Delve listens on unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock (a socket only the login user can reach)
                                 built from v1.20.2 (commit 0123456789ab) in /home/dev/kubernetes
        kubelet                  launched   127.0.0.1:2346 (down) -                <since>    Delve is not running
                                 by workstation (pid 4242), arguments from unit
                                 Delve listens on 127.0.0.1:2346 (TCP: Delve 1.20.2 has no unix sockets)
    "#]]
    .assert_eq(&masks.apply(&out.stdout));
}
