//! A node whose journal is in schema 1, as the kdbg before journal schema 2 wrote it, is restored
//! by this kdbg byte-identical: `kdbg debug apiserver`, the node's journal rewritten into its
//! schema-1 form (the shape of the journals that kdbg wrote, kept in
//! kdbg-core/src/session/journal/testdata), then `kdbg restore` — on a socket (Delve 1.27) and on
//! TCP (Debian's Delve 1.20).

use kdbg_tests::toolchain::Toolchain;
use serde_json::Value;

use crate::session::Lab;
use crate::support::Tree;

const JOURNAL: &str = "/var/lib/kdbg/journal.json";

/// A schema-1 journal the kdbg before schema 2 wrote (kdbg-core's test data).
fn written_before(name: &str) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kdbg-core/src/session/journal/testdata");
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

/// A schema-2 journal in schema 1: no lease, no session ids, no build platform, Delve's listen
/// address as its `--listen` string.
fn to_schema_1(text: &str) -> Value {
    let mut j: Value = serde_json::from_str(text).unwrap();
    assert_eq!((&j["schema"], &j["lease"]), (&Value::from(2), &Value::Null), "{j:#}");
    let top = j.as_object_mut().unwrap();
    top.insert("schema".into(), 1.into());
    top.remove("lease");
    for e in top["components"].as_object_mut().unwrap().values_mut() {
        let e = e.as_object_mut().unwrap();
        assert!(e.remove("session").is_some_and(|s| s.is_string()), "{e:#?}");
        if let Some(built) = e.get_mut("built_from").and_then(Value::as_object_mut) {
            built.remove("platform");
        }
        let l = &e["listen"];
        let listen = match l["kind"].as_str() {
            Some("unix") => format!("unix:{}", l["path"].as_str().unwrap()),
            Some("tcp") => format!("{}:{}", l["host"].as_str().unwrap(), l["port"]),
            _ => panic!("a listen value of this kdbg: {l}"),
        };
        e.insert("listen".into(), listen.into());
    }
    j
}

/// The keys at every level and the type of every value: what two journals of one schema share.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

/// Debug, rewrite the journal in schema 1 (shaped as `before`), restore: the node is as it was.
fn restores_from_schema_1(lab: &Lab, before: &str) {
    let snapshot = lab.snapshot();
    // The kdbg before schema 2 took no lease.
    lab.debug(&["--lease", "none"]).success();
    let v1 = to_schema_1(&lab.journal());
    assert_eq!(shape(&v1), shape(&written_before(before)), "{v1:#}");
    std::fs::write(lab.node.host_path(JOURNAL), serde_json::to_string_pretty(&v1).unwrap() + "\n").unwrap();
    // This kdbg reads it (and says where Delve listens as before).
    let status = lab.kdbg(&["status"]).success();
    let listen = v1["components"]["kube-apiserver"]["listen"].as_str().unwrap();
    assert!(status.stdout.contains(&format!("Delve listens on {listen} (")), "{}", status.stdout);
    let restored = lab.kdbg(&["restore"]).success();
    assert!(restored.stdout.contains("the original runs again"), "{}\n{}", restored.stdout, restored.stderr);
    if listen.starts_with("unix:") {
        assert!(restored.stdout.contains("removed Delve's socket directory /var/lib/kdbg/run/kube-apiserver"));
    }
    assert!(!lab.node.host_path("/var/lib/kdbg/run").exists(), "no socket directory is left");
    assert_eq!(lab.snapshot(), snapshot, "the manifests directory is byte-identical, the journal gone");
    lab.assert_clean();
}

#[test]
fn a_schema_1_journal_on_a_socket_is_restored_byte_identical() {
    let lab = Lab::up_with("v1sock", Tree::fixture_with(Toolchain::newest()));
    restores_from_schema_1(&lab, "static-pod-socket.json");
}

#[test]
fn a_schema_1_journal_on_tcp_is_restored_byte_identical() {
    let lab = Lab::up_with("v1tcp", Tree::fixture_with(Toolchain::debian()));
    restores_from_schema_1(&lab, "static-pod-tcp.json");
}
