//! Tests of the Delve client (`crate::dlv`) against a real headless dlv running the fixture apiserver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use camino::Utf8Path;

use super::*;
use crate::ide::{dwarf, fixture};

/// `dlv exec --headless` of a binary, killed (with its target) when dropped.
struct Headless {
    child: Child,
    addr: String,
    http_port: u16,
}

impl Headless {
    /// Runs the apiserver under dlv the way kdbg's session does, serving HTTP on a free port.
    fn start(binary: &Utf8Path) -> Headless {
        let http_port = free_port();
        let mut child = Command::new("dlv")
            .args(["exec", binary.as_str(), "--headless", "--listen=127.0.0.1:0", "--api-version=2"])
            .args(["--accept-multiclient", "--continue", "--"])
            .arg(format!("--secure-port={http_port}"))
            .arg("--bind-address=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dlv on PATH");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("API server listening at: ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("dlv says where it listens");
        Headless { child, addr, http_port }
    }

    fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        if let Ok(mut c) = DlvClient::connect(&self.addr, Duration::from_secs(1)) {
            c.call_timeout = Duration::from_secs(5);
            let _ = c.detach(true);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /healthz`, the whole response as text.
fn get_healthz(port: u16) -> std::io::Result<String> {
    get(port, "/healthz")
}

/// `GET <path>`, the whole response as text.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `expr` evaluated in the frame where the current goroutine stopped, as Delve prints it.
fn eval(client: &mut DlvClient, expr: &str) -> String {
    let scope = serde_json::json!({ "GoroutineID": -1, "Frame": 0, "DeferredCall": 0 });
    let out: serde_json::Value = client.call("Eval", serde_json::json!({ "Scope": scope, "Expr": expr })).unwrap();
    out["Variable"]["value"].as_str().unwrap_or_else(|| panic!("no value in {out}")).to_string()
}

fn wait_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_healthz(port).is_err() {
        assert!(Instant::now() < deadline, "the apiserver never served /healthz on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_breakpoint_in_healthz_stops_a_request_until_continue() {
    let built = fixture::make(&["DBG=1"]);
    let recorded = dwarf::recorded_sources(&built.binary).unwrap();
    let file = recorded.recorded_file("pkg/healthz/healthz.go");
    let line = fixture::marker_line(&built.root, "pkg/healthz/healthz.go");
    let mut dlv = Headless::start(&built.binary);
    let mut client = DlvClient::connect(&dlv.addr, Duration::from_secs(10)).unwrap();
    assert_eq!(client.version().unwrap().api, 2);
    wait_serving(dlv.http_port);
    assert!(client.state_nonblocking().unwrap().running, "--continue leaves the target running");

    // Delve sets breakpoints only while the target is stopped.
    assert!(!client.halt().unwrap().running);
    let bp = client.create_breakpoint_file_line(&file, line).unwrap();
    assert_eq!((&*bp.file, bp.line), (&*file, line));
    client.continue_async().unwrap();

    let port = dlv.http_port;
    let request = std::thread::spawn(move || get(port, "/healthz?kdbg-probe=1"));
    // Another call on this connection once the continue's answer is on the wire (Delve sends it
    // when the target stops): the answer comes first and is kept for wait_stopped.
    client.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    assert!(client.stream.peek(&mut [0u8; 1]).unwrap() > 0, "delve answers the continue");
    let _ = client.state_nonblocking().unwrap();
    assert!(client.stopped.is_some(), "the continue's answer, read before the state's, is kept");
    let stopped = client.wait_stopped(Duration::from_secs(60)).unwrap();
    let at = stopped.current_thread.expect("a current thread at the breakpoint");
    assert_eq!((&*at.file, at.line), (&*file, line));
    assert_eq!(at.function.as_deref(), Some("k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP"));
    // The halted goroutine serves this request, so its answer cannot have been sent.
    assert_eq!(eval(&mut client, "r.URL.RawQuery"), "kdbg-probe=1");
    assert!(!request.is_finished(), "the request waits at the breakpoint");

    // A second client (as `kdbg status` is) sees the same stop.
    let mut other = DlvClient::connect(&dlv.addr, Duration::from_secs(10)).unwrap();
    let seen = other.state_nonblocking().unwrap();
    assert!(!seen.running);
    assert_eq!(seen.current_thread.map(|t| t.line), Some(line));
    drop(other);

    client.continue_async().unwrap();
    let response = request.join().unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");

    // The same place by the tree's path (what `dlv connect` + `config substitute-path` does),
    // and by function name.
    client.halt().unwrap();
    assert_eq!(client.list_breakpoints().unwrap().iter().filter(|b| b.id == bp.id).count(), 1);
    client.clear_breakpoint(bp.id).unwrap();
    let rules = [(recorded.root_prefix.clone(), built.root.to_string())];
    let by_path =
        client.create_breakpoint_at(&format!("{}/pkg/healthz/healthz.go:{line}", built.root), &rules).unwrap();
    assert_eq!((&*by_path.file, by_path.line), (&*file, line));
    let by_name = client.create_breakpoint_function("k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP").unwrap();
    assert_eq!(by_name.file, file);

    client.detach(true).unwrap();
    assert!(dlv.exited_within(Duration::from_secs(20)), "dlv exits after detach");
    assert!(get_healthz(dlv.http_port).is_err(), "detach(kill) ends the apiserver");
}

#[test]
fn errors_name_the_address_and_what_failed() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let err = DlvClient::connect(&addr, Duration::from_secs(2)).err().unwrap();
    assert!(err.to_string().starts_with(&format!("failed to connect to delve at {addr}: ")), "{err}");

    // A server that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut client = DlvClient::connect(&addr, Duration::from_secs(2)).unwrap();
    client.call_timeout = Duration::from_millis(200);
    let err = client.state_nonblocking().unwrap_err();
    assert_eq!(err.to_string(), format!("delve at {addr} did not answer RPCServer.State within 200ms"));
    let err = client.wait_stopped(Duration::from_millis(10)).unwrap_err();
    assert_eq!(err.to_string(), format!("no continue is pending on the connection to delve at {addr}"));
}

#[test]
fn a_trace_breakpoint_captures_expressions_and_names_its_goroutine() {
    let built = fixture::make(&["DBG=1"]);
    let mut dlv = Headless::start(&built.binary);
    let mut client = DlvClient::connect(&dlv.addr, Duration::from_secs(10)).unwrap();
    wait_serving(dlv.http_port);
    client.halt().unwrap();
    let pattern = "k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP";
    let found = client.list_functions(&crate::trace::tour::filter(pattern)).unwrap();
    assert_eq!(found, [pattern]);
    let spec = TraceBreakpoint {
        name: "kdbgtest0".into(),
        function: pattern.into(),
        variables: vec!["r.URL.Path".into(), "nosuchvar".into()],
        cond: Some("r.Method == \"GET\"".into()),
    };
    let bp = client.create_trace_breakpoint(&spec).unwrap();
    assert_eq!(client.list_breakpoints().unwrap().iter().find(|b| b.id == bp.id).unwrap().name, "kdbgtest0");
    client.continue_async().unwrap();
    let port = dlv.http_port;
    let request = std::thread::spawn(move || get_healthz(port));
    let stop = client.wait_hits(Duration::from_secs(60)).unwrap();
    let hit = stop.hits.iter().find(|h| h.breakpoint == bp.id).expect("a thread at the breakpoint");
    assert!(hit.goroutine > 0 && hit.file.ends_with("pkg/healthz/healthz.go"), "{hit:?}");
    assert_eq!(hit.captures[0], ("r.URL.Path".to_string(), "\"/healthz\"".to_string()));
    assert!(hit.captures[1].1.starts_with("<unreadable: "), "{:?}", hit.captures[1]);
    client.continue_async().unwrap();
    assert!(request.join().unwrap().unwrap().ends_with("ok"));
    client.detach(true).unwrap();
    assert!(dlv.exited_within(Duration::from_secs(20)));
}
