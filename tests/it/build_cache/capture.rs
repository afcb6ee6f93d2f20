//! Capture of make's `go` calls: after `kdbg build`, `_output/kdbg/capture.json` holds the `go` build that made the binary.

use crate::support::Tree;

#[test]
fn a_make_build_records_the_go_build_it_ran_with_its_env() {
    let t = Tree::fixture();
    let built = t.build(&["apiserver"]);
    let text = std::fs::read_to_string(t.path("_output/kdbg/capture.json")).expect("capture.json after a make build");
    let capture: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(capture["keys"]["kube-apiserver"], built[0]["key"], "{text}");
    let invocations = capture["invocations"].as_array().unwrap();
    let builds_apiserver = invocations.iter().any(|i| {
        let args: Vec<&str> = i["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        matches!(args[0], "build" | "install") && args.iter().any(|a| a.contains("cmd/kube-apiserver"))
    });
    assert!(builds_apiserver, "no go build/install of cmd/kube-apiserver in {text}");
    assert!(invocations.iter().all(|i| i["env"]["GOTOOLCHAIN"] == "local"), "{text}");
}
