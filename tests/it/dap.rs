//! DAP remote attach, the way VSCode does it, to a headless dlv, using the launch.json `kdbg vscode` writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kdbg_core::dlv::DlvClient;
use kdbg_tests::dap::{DapClient, HeadlessDlv};
use kdbg_tests::probe::{Probe, QUERY_EXPR};
use serde_json::Value;

use crate::support::Tree;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get_healthz(port: u16) -> std::io::Result<String> {
    get(port, "/healthz")
}

fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn wait_serving(port: u16) {
    for _ in 0..600 {
        if get_healthz(port).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the apiserver never served /healthz on {port}");
}

/// What VSCode does to a launch configuration before sending it: substitute its variables.
fn resolve(config: &Value, workspace: &str) -> Value {
    serde_json::from_str(&config.to_string().replace("${workspaceFolder}", workspace)).unwrap()
}

#[test]
fn vscode_remote_attach_hits_a_breakpoint_set_by_workspace_path() {
    let tree = Tree::fixture();
    let built = tree.build(&["apiserver"]);
    let binary = built[0]["binary"].as_str().unwrap().to_string();
    let http = free_port();
    let mut dlv =
        HeadlessDlv::start(&binary, &[format!("--secure-port={http}"), "--bind-address=127.0.0.1".into()]).unwrap();
    wait_serving(http);

    tree.kdbg(["vscode", "apiserver", "--port", &dlv.port().to_string()]).success();
    let root = camino::Utf8PathBuf::from_path_buf(tree.root.clone()).unwrap();
    let configs = kdbg_core::ide::vscode::read_launch(&root).unwrap();
    let config =
        configs.iter().find(|c| c["name"] == "kdbg: attach kube-apiserver").expect("kdbg's launch configuration");
    for (k, v) in [("type", "go"), ("request", "attach"), ("mode", "remote"), ("debugAdapter", "dlv-dap")] {
        assert_eq!(config[k], v, "{config:#}");
    }
    assert_eq!(config["port"], dlv.port());
    let config = resolve(config, root.as_str());

    let (mut dap, line) = DapClient::attach_at_healthz_marker(config, root.as_std_path()).unwrap();
    let file = root.join("pkg/healthz/healthz.go").to_string();

    let probe = Probe::new();
    let path = probe.path();
    let request = std::thread::spawn(move || get(http, &path));
    let stopped = dap.wait_stopped(Duration::from_secs(60)).unwrap();
    assert_eq!(stopped["reason"], "breakpoint", "{stopped}");
    let thread = stopped["threadId"].as_i64().unwrap();
    let frame = dap.top_frame(thread).unwrap();
    // Mapped back through substitutePath: the editor opens its own file.
    assert_eq!((&*frame.path, frame.line), (&*file, line));
    assert!(frame.name.ends_with("(*Handler).ServeHTTP"), "{frame:?}");
    // The halted goroutine serves this request, so its answer cannot have been sent.
    assert_eq!(dap.evaluate(thread, QUERY_EXPR).unwrap().trim_matches('"'), probe.query());
    assert!(!request.is_finished(), "the request waits at the breakpoint");

    dap.continue_(thread).unwrap();
    let response = request.join().unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.0 200 OK") && response.ends_with("\r\n\r\nok"), "{response}");

    // Removing the breakpoint while the target runs (Delve halts, clears, resumes), then leaving
    // the multi-client server running, as closing VSCode's debug session does.
    dap.set_breakpoints(&file, &[]).unwrap();
    assert!(get_healthz(http).unwrap().ends_with("ok"));
    dap.disconnect(false).unwrap();

    // The same listener still serves JSON-RPC: what `kdbg status` and `kdbg restore` use.
    let mut rpc = DlvClient::connect(&dlv.addr, Duration::from_secs(10)).unwrap();
    assert!(rpc.state_nonblocking().unwrap().running);
    rpc.detach(true).unwrap();
    assert!(dlv.exited_within(Duration::from_secs(20)));
    assert!(get_healthz(http).is_err());
}
