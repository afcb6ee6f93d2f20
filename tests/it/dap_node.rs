//! DAP remote attach the way VSCode does it, through the tunnel `kdbg debug` opened, to the Delve
//! it started on a test node, with the launch configuration `kdbg debug` wrote into the tree.

use std::time::Duration;

use kdbg_tests::dap::DapClient;
use kdbg_tests::probe::{Probe, QUERY_EXPR};
use serde_json::Value;

use crate::session::Lab;

#[test]
fn vscode_attach_through_the_tunnel_hits_a_breakpoint_on_the_node_by_workspace_path() {
    let lab = Lab::up("dapnode");
    let port = lab.port.to_string();
    lab.kdbg(&["debug", "apiserver", "--port", &port]).success();
    let restore = || lab.kdbg(&["restore"]).output();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attach_and_break(&lab)));
    let restored = restore();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(restored.stdout.contains("the original runs again"), "{}\n{}", restored.stdout, restored.stderr);
    lab.assert_clean();
}

pub(crate) fn attach_and_break(lab: &Lab) {
    let root = camino::Utf8PathBuf::from_path_buf(lab.tree.root.clone()).unwrap();
    let configs = kdbg_core::ide::vscode::read_launch(&root).unwrap();
    let config = configs.iter().find(|c| c["name"] == "kdbg: attach kube-apiserver").expect("kdbg debug wrote it");
    assert_eq!((&config["host"], &config["port"]), (&Value::from("127.0.0.1"), &Value::from(lab.port)), "{config:#}");
    assert_eq!(config["preLaunchTask"], "kdbg: debug kube-apiserver");
    // What VSCode does before sending the configuration: substitute its variables.
    let config: Value = serde_json::from_str(&config.to_string().replace("${workspaceFolder}", root.as_str())).unwrap();

    // localhost:<port> on this host is kdbg's ssh tunnel; Delve itself is on the node's loopback.
    let (mut dap, line) = DapClient::attach_at_healthz_marker(config, root.as_std_path()).unwrap();
    let file = root.join(lab.tree.healthz()).to_string();

    let probe = Probe::new();
    std::thread::scope(|s| {
        let request = s.spawn(|| lab.get(&probe.path()));
        let stopped = dap.wait_stopped(Duration::from_secs(60)).unwrap();
        assert_eq!(stopped["reason"], "breakpoint", "{stopped}");
        let thread = stopped["threadId"].as_i64().unwrap();
        let frame = dap.top_frame(thread).unwrap();
        // Mapped back through substitutePath: the editor opens its own copy of the file.
        assert_eq!((&*frame.path, frame.line), (&*file, line));
        assert!(frame.name.ends_with("(*Handler).ServeHTTP"), "{frame:?}");
        // The halted goroutine serves this request, so its answer cannot have been sent.
        assert_eq!(dap.evaluate(thread, QUERY_EXPR).unwrap().trim_matches('"'), probe.query());
        assert!(!request.is_finished(), "the request on the node waits at the breakpoint");
        dap.continue_(thread).unwrap();
        let response = request.join().unwrap().unwrap();
        assert!(response.starts_with("HTTP/1.0 200 OK") && response.ends_with("\r\n\r\nok"), "{response}");
    });
    dap.set_breakpoints(&file, &[]).unwrap();
    dap.disconnect(false).unwrap();
    // Delve and the program keep running after the IDE leaves (--accept-multiclient).
    assert!(lab.get("/healthz").unwrap().ends_with("\r\n\r\nok"));
}
