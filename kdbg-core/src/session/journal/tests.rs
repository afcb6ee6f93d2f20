//! The journal's JSON: round trips, schema-1 journals of the kdbg before schema 2 read into typed
//! values, and schemas this kdbg does not know refused.

use super::*;
use crate::session::journal::testdata;

#[test]
fn since_reads_naturally() {
    assert_eq!(since(100, 105), "since 5s");
    assert_eq!(since(100, 292), "since 3m12s");
    assert_eq!(since(0, 7260), "since 2h01m");
    assert_eq!(since(10, 5), "since 0s");
}

fn apiserver(listen: Listen, tcp_because: Option<&str>) -> Entry {
    Entry {
        component: "kube-apiserver".into(),
        state: EntryState::Launched,
        who: Who { host: "ws".into(), pid: 1 },
        session: SessionId("0123456789abcdef".into()),
        started_at: 1,
        updated_at: 2,
        how: How::StaticPod { manifest: "/m".into(), sha256: "ab".into(), mode: 0o600, backup: "/b".into() },
        captured_from: "process 7".into(),
        was_running: true,
        args: vec!["/var/lib/kdbg/bin/kube-apiserver".into(), "--secure-port=8443".into()],
        env_names: vec!["PATH".into()],
        ports: vec![8443],
        binary: "/var/lib/kdbg/bin/kube-apiserver".into(),
        dlv: "/var/lib/kdbg/bin/dlv".into(),
        listen,
        tcp_because: tcp_because.map(String::from),
        port: 2345,
        dlv_pid: Some(9),
        log: "/var/log/kdbg/kube-apiserver.log".into(),
        built_from: Some(BuiltFrom {
            tree: "/src/kubernetes/_output/kdbg/worktrees/v1.20.1".into(),
            version: "v1.20.1".into(),
            commit: Some("0123456789abcdef".into()),
            at: Some("v1.20.1".into()),
            platform: Some("linux/arm64".into()),
        }),
    }
}

#[test]
fn entries_round_trip_through_json() {
    let socket = Listen::Unix { path: "/var/lib/kdbg/run/kube-apiserver/dlv.sock".into() };
    let e = apiserver(socket, None);
    let lease = Lease { seconds: 14400, expires_at: 14402, renewed_at: 2 };
    let mut j = Journal { lease: Some(lease), ..Journal::default() };
    j.components.insert(e.component.clone(), e);
    let text = serde_json::to_string(&j).unwrap();
    assert!(text.starts_with(r#"{"schema":2,"lease":{"seconds":14400,"expires_at":14402,"renewed_at":2},"#), "{text}");
    assert!(text.contains(r#""kind":"static_pod""#) && text.contains(r#""state":"launched""#), "{text}");
    assert!(text.contains(r#""who":{"host":"ws","pid":1},"session":"0123456789abcdef","#), "{text}");
    assert!(text.contains(r#""listen":{"kind":"unix","path":"/var/lib/kdbg/run/kube-apiserver/dlv.sock"}"#), "{text}");
    assert_eq!(parse(text.as_bytes()).unwrap(), j);
    let e = &j.components["kube-apiserver"];
    assert!(e.holder().starts_with("kdbg on ws (pid 1) since "));
    assert!(e.holder().contains(", Delve on unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock, "), "{}", e.holder());
    assert_eq!(e.endpoint(), Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into()));
    assert!(!text.contains("tcp_because"), "{text}");
    // No lease: written as such, read back as such.
    let j = Journal { lease: None, ..j };
    let text = serde_json::to_string(&j).unwrap();
    assert!(text.starts_with(r#"{"schema":2,"lease":null,"#), "{text}");
    assert_eq!(parse(text.as_bytes()).unwrap(), j);
}

/// The entry of a one-component schema-1 journal, upgraded.
fn upgraded(v1: &str) -> (Journal, Entry) {
    let j = parse(v1.as_bytes()).unwrap();
    assert_eq!((j.schema, j.lease, j.components.len()), (JOURNAL_SCHEMA, None, 1));
    let e = j.components.values().next().unwrap().clone();
    (j, e)
}

#[test]
fn schema_1_journals_of_the_kdbg_before_are_read_into_typed_values() {
    let (_, e) = upgraded(testdata::STATIC_POD_SOCKET);
    assert_eq!(e.listen, Listen::Unix { path: "/var/lib/kdbg/run/kube-apiserver/dlv.sock".into() });
    assert_eq!((e.tcp_because.clone(), e.port, e.dlv_pid, e.state), (None, 45695, Some(157), EntryState::Launched));
    assert_eq!(e.session, SessionId("v1:vm:4137".into()));
    assert_eq!(e.who, Who { host: "vm".into(), pid: 4137 });
    let How::StaticPod { manifest, backup, mode, .. } = &e.how else { panic!("{:?}", e.how) };
    assert_eq!(
        (manifest.as_str(), backup.as_str(), *mode),
        ("/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kdbg/backup/kube-apiserver.yaml", 0o644)
    );

    let (_, e) = upgraded(testdata::STATIC_POD_TCP);
    assert_eq!(e.listen, Listen::loopback(46647));
    assert_eq!(e.listen.to_string(), "127.0.0.1:46647");
    assert_eq!(e.tcp_because.as_deref(), Some("Delve 1.20.2 has no unix sockets; they need Delve ≥ 1.22.1"));
    assert_eq!(e.endpoint(), Endpoint::Loopback(46647));
    assert_eq!(e.session, SessionId("v1:vm:2527".into()));
    // A journal written before sockets: no `tcp_because`, a TCP endpoint.
    let before = testdata::STATIC_POD_TCP
        .replace("      \"tcp_because\": \"Delve 1.20.2 has no unix sockets; they need Delve ≥ 1.22.1\",\n", "");
    assert_ne!(before, testdata::STATIC_POD_TCP);
    let (_, e) = upgraded(&before);
    assert_eq!((e.tcp_because.clone(), e.endpoint()), (None, Endpoint::Loopback(46647)));

    let (_, e) = upgraded(testdata::SYSTEMD_KUBELET);
    assert_eq!(e.listen, Listen::Unix { path: "/var/lib/kdbg/run/kubelet/dlv.sock".into() });
    assert_eq!(e.how, How::Systemd { unit: "kubelet.service".into(), active: true, enabled: Some("enabled".into()) });
    assert_eq!((e.port, e.ports.as_slice()), (2348, &[10248, 10250][..]));

    // `--expose`: the host stays 0.0.0.0 (it used to be read back as the loopback).
    let (_, e) = upgraded(testdata::DAEMONSET_KUBE_PROXY);
    assert_eq!(e.listen, Listen::every_interface(2349));
    assert_eq!(e.listen.to_string(), "0.0.0.0:2349");
    assert_eq!((e.tcp_because.as_deref(), e.endpoint()), (Some("--expose"), Endpoint::Loopback(2349)));
    let How::DaemonSet { namespace, name, node, pod, mounts, created, .. } = &e.how else { panic!("{:?}", e.how) };
    assert_eq!(
        (namespace.as_str(), name.as_str(), node.as_str(), pod.as_str()),
        ("kube-system", "kube-proxy", "n1", "kube-proxy-7xk2p")
    );
    assert_eq!((mounts.len(), created.len()), (2, 2));
}

#[test]
fn an_upgraded_journal_is_written_in_schema_2_and_reads_back_the_same() {
    for (name, v1, _) in testdata::ALL {
        let (j, e) = upgraded(v1);
        let mut text = serde_json::to_vec_pretty(&j).unwrap();
        text.push(b'\n');
        let written = String::from_utf8(text.clone()).unwrap();
        assert!(written.starts_with("{\n  \"schema\": 2,\n  \"lease\": null,\n"), "{name}: {written}");
        assert!(written.contains(&format!("\"session\": \"v1:{}:{}\"", e.who.host, e.who.pid)), "{name}");
        assert_eq!(parse(&text).unwrap(), j, "{name}");
        // Every field of the schema-1 entry is kept: its schema-1 view is the entry as written.
        let old: serde_json::Value = serde_json::from_str(v1).unwrap();
        let view = serde_json::to_value(v1::Entry::from(&e)).unwrap();
        assert_eq!(view, old["components"][&e.component], "{name}");
    }
}

#[test]
fn unknown_schemas_and_broken_journals_are_errors() {
    let newer = testdata::STATIC_POD_TCP.replace("\"schema\": 1", "\"schema\": 3");
    assert_eq!(parse(newer.as_bytes()).unwrap_err(), "schema 3 (this kdbg knows 2)");
    let err = parse(b"{ \"schema\": 1, \"compo").unwrap_err();
    assert!(err.contains("EOF"), "{err}");
    let bad = testdata::STATIC_POD_TCP.replace("\"127.0.0.1:46647\"", "\"nonsense\"");
    let err = parse(bad.as_bytes()).unwrap_err();
    assert!(err.contains("`nonsense` is not a Delve listen address"), "{err}");
    // A schema-2 journal that holds a `--listen` string is not a schema-2 journal.
    let wrong = serde_json::to_string(&upgraded(testdata::STATIC_POD_TCP).0)
        .unwrap()
        .replace(r#"{"kind":"tcp","host":"127.0.0.1","port":46647}"#, "\"127.0.0.1:46647\"");
    assert!(parse(wrong.as_bytes()).is_err());
}

#[test]
fn one_session_id_per_process() {
    let id = SessionId::mine();
    assert_eq!(id, SessionId::mine());
    assert!(id.0.len() == 16 && id.0.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(SessionId::of_v1(&Who { host: "ws".into(), pid: 7 }).to_string(), "v1:ws:7");
}
