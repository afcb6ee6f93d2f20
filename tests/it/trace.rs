//! `kdbg trace` on a test node: the fixture's healthz tour recorded through the session's
//! tunnel, its HTML report rendered by headless Chromium, cleanup, `--stop`/`--clear`, and the
//! errors (component not under debug, a waypoint the binary lacks), tours of your own ([`own`]).

use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kdbg_core::dlv::DlvClient;
use kdbg_tests::lab::API_PORT;
use serde_json::Value;

use crate::session::Lab;

mod own;

/// The names of the breakpoints Delve holds (halting and continuing the target to ask).
fn breakpoint_names(lab: &Lab) -> Vec<String> {
    let mut dlv = DlvClient::connect(&format!("127.0.0.1:{}", lab.port), Duration::from_secs(10)).unwrap();
    let running = dlv.state_nonblocking().unwrap().running;
    if running {
        dlv.halt().unwrap();
    }
    let names = dlv.list_breakpoints().unwrap().into_iter().map(|b| b.name).collect();
    if running {
        dlv.resume().unwrap();
    }
    names
}

#[test]
fn trace_records_the_healthz_tour_and_leaves_no_breakpoint() {
    let lab = Lab::up("tr");
    let curl = format!("curl -s --max-time 60 http://{}:{API_PORT}/healthz", lab.node.ip());

    // Not under debug: a clear error, before anything is done.
    let out = lab.kdbg(&["trace", "apiserver", "healthz", "--run", &curl]).failure(1);
    assert!(
        out.stderr.contains("kube-apiserver is not under debug on") && out.stderr.contains("kdbg debug apiserver"),
        "{}",
        out.stderr
    );
    let out = lab.kdbg(&["trace", "apiserver", "nosuchtour"]).failure(1);
    assert!(out.stderr.contains("kdbg trace --list"), "{}", out.stderr);

    lab.debug(&[]).success();
    let list = lab.kdbg(&["trace", "--list"]).success();
    assert!(list.stdout.lines().any(|l| l.starts_with("healthz") && l.contains("5/6")), "{}", list.stdout);

    let report = lab.tree.scratch().join("tour.html");
    let report_arg = report.to_str().unwrap();
    let out = lab
        .kdbg(&["trace", "apiserver", "healthz", "--run", &curl, "--for", "2", "--json", "--report", report_arg])
        .success();
    let doc: Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
    let t = &doc["timeline"];
    // The waypoint the fixture lacks is reported, not fatal.
    assert_eq!(t["unresolved"][0]["name"], "upstream root health", "{t}");
    assert_eq!(doc["schema"], 3, "waypoints numbered from 1 since schema 3");
    assert_eq!(t["unresolved"][0]["waypoint"], 4, "numbered from 1, as the warning says: {t}");
    assert!(out.stderr.contains("waypoint 4 (upstream root health) not traced"), "{}", out.stderr);
    assert_eq!(t["trigger"]["exit_code"], 0, "{t}");
    assert_eq!(t["trigger"]["output"], "ok", "the request answers: {t}");
    let hits = t["hits"].as_array().unwrap();
    // Each waypoint's first hit comes in the tour's order.
    let mut firsts: Vec<u64> = Vec::new();
    for h in hits {
        let w = h["waypoint"].as_u64().unwrap();
        if !firsts.contains(&w) {
            firsts.push(w);
        }
    }
    assert_eq!(firsts, [1, 2, 3, 5, 6], "{t}");
    let handler = hits.iter().find(|h| h["waypoint_name"] == "healthz handler").unwrap();
    assert_eq!(handler["captures"][0]["expr"], "r.URL.Path");
    assert_eq!(handler["captures"][0]["value"], "\"/healthz\"");
    let in_tree = lab.tree.path("pkg/healthz/healthz.go");
    assert_eq!(handler["file"], in_tree.to_str().unwrap(), "mapped to the tree: {handler}");
    stdlib_from_the_go_flag(&lab, &curl);
    own::own_tours(&lab, &curl);

    // The same as lines, as it happens.
    // (The trigger run on the node this time, through kdbg's ssh transport.)
    let out = lab.kdbg(&["trace", "apiserver", "healthz", "--on-node", "--run", &curl, "--for", "1"]).success();
    let handler_line = out.stdout.lines().find(|l| l.contains("healthz handler")).expect("a line per stop");
    assert!(
        handler_line.contains(&format!("{}:", in_tree.display())) && handler_line.contains("r.URL.Path=\"/healthz\"")
    );
    assert!(out.stdout.contains("not traced: 4. upstream root health") && out.stdout.contains("breakpoints removed"));
    assert!(out.stdout.contains(": exit 0"), "{}", out.stdout);
    assert_table_lines_up(&out.stdout);
    triggers_that_fail_or_outlive_for(&lab, &curl);

    // Afterwards: no kdbg breakpoint, the apiserver serves.
    assert!(!breakpoint_names(&lab).iter().any(|n| n.starts_with("kdbgtrace")));
    assert!(lab.get("/healthz").unwrap().ends_with("ok"));

    // The report renders in a real browser, one diagram lane per package (+ the client's).
    let html = std::fs::read_to_string(&report).unwrap();
    assert_report_structure(&html, hits);
    assert!(html.contains(&format!("vscode://file{}:", in_tree.display())), "vscode links");
    let source_line = std::fs::read_to_string(&in_tree).unwrap();
    let marked = source_line.lines().find(|l| l.contains("kdbg-fixture: breakpoint here")).unwrap().trim();
    assert!(html.contains(&marked.replace('"', "&quot;")), "the tree's source lines are in the report");
    let dom = chromium(&report, &["--dump-dom"]);
    assert!(dom.contains("id=\"sequence\""), "{dom}");
    let packages: std::collections::BTreeSet<&str> =
        hits.iter().map(|h| kdbg_core::trace::package_of(h["function"].as_str().unwrap())).collect();
    assert_eq!(dom.matches("class=\"lane\"").count(), packages.len() + 1, "{packages:?}");
    let shot = lab.tree.scratch().join("tour.png");
    chromium(&report, &[&format!("--screenshot={}", shot.display()), "--window-size=1200,900"]);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a screenshot was taken");

    // Ctrl-C while recording: kdbg still removes its breakpoints.
    let (mut child, _stderr) = recording(&lab, 120);
    // SAFETY: signals the kdbg this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!breakpoint_names(&lab).iter().any(|n| n.starts_with("kdbgtrace")));

    // --stop: halted at the first waypoint, breakpoints left for the IDE, --clear removes them.
    let out = lab.kdbg(&["trace", "apiserver", "healthz", "--stop", "--run", &curl, "--for", "20"]).success();
    assert!(out.stdout.contains("halted at the first hit"), "{}", out.stdout);
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains("halted at"), "{}", status.stdout);
    assert!(status.stdout.contains("`kdbg trace apiserver --clear`"), "{}", status.stdout);
    assert!(breakpoint_names(&lab).iter().any(|n| n.starts_with("kdbgtrace")));
    let out = lab.kdbg(&["trace", "apiserver", "--clear"]).success();
    assert!(out.stdout.contains("cleared 5 kdbg breakpoint(s)"), "{}", out.stdout);
    assert!(!breakpoint_names(&lab).iter().any(|n| n.starts_with("kdbgtrace")));
    lab.wait_healthz();

    a_restore_ends_the_trace(&lab);
    lab.assert_clean();
}

/// The page's structure: the gutter apart from the code, lanes with their package as title,
/// the response as the last arrow, back to the client, the note on the times.
fn assert_report_structure(html: &str, hits: &[Value]) {
    assert!(html.contains("<table class=\"source\"><tr><td class=\"ln\">"), "a gutter column");
    assert!(!html.contains('\t'), "tabs are expanded");
    for h in hits {
        let package = kdbg_core::trace::package_of(h["function"].as_str().unwrap());
        assert!(html.contains(&format!("<g class=\"lane\" data-package=\"{package}\"><title>{package}</title>")));
    }
    let last_hop = html.lines().rfind(|l| l.starts_with("<g class=\"hop")).unwrap();
    assert!(
        last_hop.starts_with("<g class=\"hop response\">") && last_hop.contains(">exit 0: ok</text>"),
        "{last_hop}"
    );
    assert!(last_hop.contains("x2=\"120\""), "back to the client's lane: {last_hop}");
    assert!(html.contains("id=\"response\"") && html.contains("id=\"times\""));
}

/// A `kdbg trace` without a trigger for `seconds`, once it records; its stderr read so far.
fn recording(lab: &Lab, seconds: u32) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut run = lab.kdbg(&["trace", "apiserver", "healthz", "--for", &seconds.to_string()]);
    run.cmd.stderr(Stdio::piped()).stdout(Stdio::piped());
    let mut child = run.cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(&format!("recording for {seconds} s")) {
        assert!(stderr.read_line(&mut seen).unwrap() > 0, "kdbg ended before recording: {seen}");
    }
    (child, stderr)
}

/// The terminal table's columns fit their contents: CAPTURED starts where every capture does.
fn assert_table_lines_up(stdout: &str) {
    let header = stdout.lines().find(|l| l.contains("WHERE") && l.contains("CAPTURED")).unwrap();
    let column = header.find("CAPTURED").unwrap();
    for row in stdout.lines().filter(|l| l.contains("r.URL.Path=")) {
        assert_eq!(row.find("r.URL.Path="), Some(column), "{stdout}");
    }
}

/// A trigger that fails fails the trace after its cleanup; one that outlives --for is waited for.
fn triggers_that_fail_or_outlive_for(lab: &Lab, curl: &str) {
    // A trigger that fails: kdbg cleans up, then fails with the trigger's status and error text.
    let failing = format!("{curl}; echo 'the trigger broke' >&2; exit 3");
    let out = lab.kdbg(&["trace", "apiserver", "healthz", "--run", &failing, "--for", "1"]).failure(1);
    assert!(out.stdout.contains("breakpoints removed"), "{}", out.stdout);
    assert!(out.stderr.contains("failed (exit 3)") && out.stderr.contains("the trigger broke"), "{}", out.stderr);
    assert!(!breakpoint_names(lab).iter().any(|n| n.starts_with("kdbgtrace")));
    assert!(lab.get("/healthz").unwrap().ends_with("ok"));

    // A trigger that outlives --for is waited for, and kdbg says so.
    let out =
        lab.kdbg(&["trace", "apiserver", "healthz", "--run", &format!("sleep 2; {curl}"), "--for", "1"]).success();
    assert!(out.stderr.contains("the trigger still runs after --for 1 s; waiting for it"), "{}", out.stderr);
    assert!(out.stdout.contains("healthz handler"), "the stops after --for are recorded: {}", out.stdout);
}

/// With no `go` on PATH and `--go` given, the standard library's stops show that Go's sources.
fn stdlib_from_the_go_flag(lab: &Lab, curl: &str) {
    let path = std::env::var("PATH").unwrap();
    let (with_go, without): (Vec<&str>, Vec<&str>) = path.split(':').partition(|d| Path::new(d).join("go").is_file());
    let goroot = Path::new(with_go.first().expect("a go on PATH built the fixture")).parent().unwrap();
    let goroot = goroot.canonicalize().unwrap();
    let out = lab
        .kdbg(&[
            "trace",
            "apiserver",
            "healthz",
            "--run",
            curl,
            "--for",
            "1",
            "--json",
            "--go",
            goroot.to_str().unwrap(),
        ])
        .env("PATH", without.join(":"))
        .success();
    assert!(!out.stderr.contains("standard-library files are shown as recorded"), "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let hits = doc["timeline"]["hits"].as_array().unwrap().clone();
    let std = hits.iter().find(|h| h["function"].as_str().unwrap().starts_with("net/http.")).unwrap();
    let file = std["file"].as_str().unwrap_or_default();
    assert!(file.starts_with(&format!("{}/src/net/http/", goroot.display())), "from --go's GOROOT: {std}");

    // No Go at all: said once, with what to pass.
    let out = lab
        .kdbg(&["trace", "apiserver", "healthz", "--run", curl, "--for", "1"])
        .env("PATH", without.join(":"))
        .success();
    assert_eq!(out.stderr.matches("standard-library files are shown as recorded").count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("fix: pass --go"), "{}", out.stderr);
}

/// A restore while a trace records: the trace says the session was restored.
fn a_restore_ends_the_trace(lab: &Lab) {
    let (mut child, mut stderr) = recording(lab, 600);
    lab.restore();
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    assert!(!child.wait().unwrap().success(), "{seen}");
    assert!(seen.contains("the trace of kube-apiserver ended: the session was restored (`kdbg restore`)"), "{seen}");
}

/// Runs headless Chromium on `page` with `args`; returns its stdout.
fn chromium(page: &Path, args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (cargo xtask test installs it)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
