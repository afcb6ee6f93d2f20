//! Restore's decisions from a schema-1 journal are those from its schema-2 upgrade: a node that
//! records every command (and answers each with success and no output) runs `restore` from both.

use std::sync::Mutex;
use std::time::Duration;

use camino::Utf8Path;

use super::*;
use crate::layout::JOURNAL;
use crate::node::{sh_join, CopyStats, Endpoint, NodeError, NodeOutput, Privilege, Tunnel};
use crate::report::Event;
use crate::session::journal::testdata;

/// A node that holds the journal and a static pod's backup (as the journal names it, with its
/// sha256), and records what kdbg asks of it.
struct Recorder {
    journal: Mutex<Option<Vec<u8>>>,
    /// `(path, sha256)` of the parked manifest.
    backup: Option<(String, String)>,
    said: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(journal: &str) -> Recorder {
        let j: serde_json::Value = serde_json::from_str(journal).unwrap();
        let how = j["components"].as_object().unwrap().values().map(|e| &e["how"]).find(|h| h["kind"] == "static_pod");
        let backup = how.map(|h| (h["backup"].as_str().unwrap().into(), h["sha256"].as_str().unwrap().into()));
        Recorder { journal: Mutex::new(Some(journal.as_bytes().to_vec())), backup, said: Mutex::default() }
    }

    fn is_backup(&self, path: &str) -> bool {
        self.backup.as_ref().is_some_and(|(b, _)| b == path)
    }

    fn note(&self, line: String) {
        self.said.lock().unwrap().push(line);
    }
}

impl Node for Recorder {
    fn describe(&self) -> String {
        "docker@n1".into()
    }

    fn exec(&self, argv: &[&str], privilege: Privilege, stdin: &[u8]) -> Result<NodeOutput, NodeError> {
        let stdin = String::from_utf8_lossy(stdin);
        self.note(format!("{privilege:?} {} <<{stdin}", sh_join(argv)));
        // The journal emptied: `watchdog.sh disarm` removes it (with the node's watchdog).
        if argv.get(4) == Some(&"disarm") {
            *self.journal.lock().unwrap() = None;
        }
        Ok(NodeOutput { status: 0, stdout: Vec::new(), stderr: Vec::new() })
    }

    fn spawn(&self, argv: &[&str], _: Privilege) -> Result<std::process::Child, NodeError> {
        Err(NodeError::other(self.describe(), format!("spawn {argv:?}"), "not on this node"))
    }

    fn copy_to(&self, local: &Utf8Path, remote: &str, _: u32) -> Result<CopyStats, NodeError> {
        Err(NodeError::other(self.describe(), format!("copy {local} to {remote}"), "not on this node"))
    }

    fn read_file(&self, path: &str, privilege: Privilege) -> Result<Option<Vec<u8>>, NodeError> {
        self.note(format!("{privilege:?} read {path}"));
        Ok(match path {
            JOURNAL => self.journal.lock().unwrap().clone(),
            _ if self.is_backup(path) => Some(b"the original manifest\n".to_vec()),
            _ => None,
        })
    }

    fn write_file(&self, path: &str, bytes: &[u8], mode: u32, privilege: Privilege) -> Result<(), NodeError> {
        // The journal as written, but for the times of its writes.
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if path == JOURNAL {
            let mut j: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for e in j["components"].as_object_mut().unwrap().values_mut() {
                e["updated_at"] = 0.into();
            }
            text = j.to_string();
            *self.journal.lock().unwrap() = Some(bytes.to_vec());
        }
        self.note(format!("{privilege:?} write {path} {mode:o} {text}"));
        Ok(())
    }

    fn sha256s(&self, paths: &[&str]) -> Result<Vec<Option<String>>, NodeError> {
        self.note(format!("sha256s {paths:?}"));
        let sum = |p: &&str| self.backup.as_ref().filter(|_| self.is_backup(p)).map(|(_, sha)| sha.clone());
        Ok(paths.iter().map(sum).collect())
    }

    fn platform(&self) -> Result<(String, String), NodeError> {
        Ok(("linux".into(), "amd64".into()))
    }

    fn forward(&self, _: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        Err(NodeError::other(self.describe(), format!("forward to {to:?}"), "not on this node"))
    }

    fn bytes_sent(&self) -> u64 {
        0
    }

    fn round_trips(&self) -> u64 {
        0
    }
}

/// Keeps the messages restore reports (step events carry times).
#[derive(Default)]
struct Said(Mutex<Vec<String>>);

impl Reporter for Said {
    fn report(&self, event: Event) {
        if let Event::Info { message } | Event::Warning { message } = event {
            self.0.lock().unwrap().push(message);
        }
    }
}

/// Restore on a recording node whose journal is `journal`: what it ran, in order, and its outcome.
fn decisions(journal: &str) -> Vec<String> {
    let node = Recorder::new(journal);
    let said = Said::default();
    // The original never comes back on this node: restore waits no time for it.
    let cfg = RestoreConfig { back_timeout: Duration::ZERO, ..RestoreConfig::default() };
    let lock = crate::node_lock::NodeLock::fake(&node);
    let outcome = match restore(crate::node_lock::Locked::new(&node, &lock), &cfg, &said) {
        Ok(r) => format!("{r:?}"),
        Err(e) => format!("error: {e}"),
    };
    let mut all = node.said.into_inner().unwrap();
    all.extend(said.0.into_inner().unwrap());
    all.push(outcome);
    all
}

#[test]
fn restore_decides_the_same_from_a_schema_1_journal_and_its_upgrade() {
    // The put-back op's mode and kdbg's copy, after the manifest and its sha256.
    const MANIFEST_BACK: &str = " 644 /var/lib/kdbg/backup/kube-apiserver.yaml";
    for (name, v1, wants) in [
        (
            "systemd-kubelet",
            testdata::SYSTEMD_KUBELET,
            &["systemctl start", "kubelet.service", "/var/lib/kdbg/run/kubelet"][..],
        ),
        (
            "daemonset-kube-proxy",
            testdata::DAEMONSET_KUBE_PROXY,
            &["kubectl patch daemonset", "/spec/updateStrategy", "/var/lib/kdbg/pods/kube-proxy"],
        ),
        (
            "static-pod-socket",
            testdata::STATIC_POD_SOCKET,
            &["/var/lib/kdbg/run/kube-apiserver", "/etc/kubernetes/manifests/kube-apiserver.yaml", MANIFEST_BACK],
        ),
        ("static-pod-tcp", testdata::STATIC_POD_TCP, &[MANIFEST_BACK]),
    ] {
        let upgraded = crate::session::journal::parse(v1.as_bytes()).unwrap();
        let v2 = serde_json::to_string_pretty(&upgraded).unwrap();
        assert!(v2.contains("\"schema\": 2"), "{name}: {v2}");
        let (from_v1, from_v2) = (decisions(v1), decisions(&v2));
        assert_eq!(from_v1, from_v2, "{name}");
        let all = from_v1.join("\n");
        for w in wants {
            assert!(all.contains(w), "{name}: {w:?} in\n{all}");
        }
        // The socket's directory goes exactly when Delve listened on one.
        let socket = upgraded.components.values().any(|e| e.listen.socket().is_some());
        assert_eq!(all.contains("/dlv.sock"), socket, "{name}:\n{all}");
    }
}
